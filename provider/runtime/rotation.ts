/**
 * How far a CA rotation has reached the nodes: which nodes hold credentials from the new key (a host certificate
 * it signed, or the user CA list that includes it) and which still depend on the old one alone.
 */
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
