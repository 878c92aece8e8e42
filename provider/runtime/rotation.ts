/**
 * How far a CA rotation has reached the nodes: which nodes hold credentials from the new key (a host certificate
 * it signed, or the user CA list that includes it) and which still depend on the old one alone.
 */
import { trustedPublicKeys } from "../ssh/ca";
import type { CertAuthorityRecord, NodeCertificateRecord, Store } from "./store/types";

/** A node that has not received the rotated key yet, and why it counts as pending. */
export interface PendingNode {
  node: string;
  reason: string;
}

/** Progress of one open rotation. */
export interface RotationProgress {
  /** Nodes whose credentials already come from the active key. */
  rotated: string[];
  /** Nodes that still depend on a previous key only. */
  pending: PendingNode[];
}

/** Whether `cert` already reflects `ca`'s active key; a reason when it does not. */
export function pendingReason(ca: CertAuthorityRecord, cert: NodeCertificateRecord | undefined): string | undefined {
  if (!cert) return "no certificate on record (joined before certificates were tracked)";
  if (ca.type === "host" && cert.hostCaKey !== ca.active.publicKey)
    return "its host certificate is signed by the old host CA key";
  if (ca.type === "user" && !cert.userCaKeys.includes(ca.active.publicKey)) return "it trusts only the old user CA key";
  return undefined;
}

/** The rotation progress of `ca` over every node in the store. */
export async function rotationProgress(store: Store, ca: CertAuthorityRecord): Promise<RotationProgress> {
  const certs = new Map((await store.listNodeCertificates()).map((c) => [c.node, c]));
  const rotated: string[] = [];
  const pending: PendingNode[] = [];
  for (const node of await store.listNodes()) {
    const reason = pendingReason(ca, certs.get(node.name));
    if (reason) pending.push({ node: node.name, reason });
    else rotated.push(node.name);
  }
  return { rotated, pending };
}

/**
 * Why a node's credentials no longer match the CAs, or undefined when they do: its host certificate is signed by
 * a key other than the active host key, or the user CA keys it trusts differ from the trusted set (a rotation
 * added a key, or its completion dropped one the node still trusts). A node with no record counts only while a
 * rotation is open, so an upgrade does not re-run every installer.
 */
export function outdatedReason(
  host: CertAuthorityRecord,
  user: CertAuthorityRecord,
  cert: NodeCertificateRecord | undefined,
): string | undefined {
  const open = host.previous.length > 0 || user.previous.length > 0;
  if (!cert) return open ? "no certificate on record" : undefined;
  if (cert.hostCaKey !== host.active.publicKey) return "its host certificate is signed by a previous host CA key";
  const trusted = trustedPublicKeys(user);
  const same = trusted.length === cert.userCaKeys.length && trusted.every((k) => cert.userCaKeys.includes(k));
  return same ? undefined : "the user CA keys it trusts are not the trusted set";
}

/** Names of the nodes whose credentials {@link outdatedReason} finds out of date. */
export async function outdatedNodes(store: Store): Promise<Set<string>> {
  const [host, user] = await Promise.all([store.getCertAuthority("host"), store.getCertAuthority("user")]);
  const out = new Set<string>();
  if (!host || !user) return out;
  const certs = new Map((await store.listNodeCertificates()).map((c) => [c.node, c]));
  for (const node of await store.listNodes()) if (outdatedReason(host, user, certs.get(node.name))) out.add(node.name);
  return out;
}
