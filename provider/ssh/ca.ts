/**
 * SSH certificate authorities as plain values: generate, list trusted keys, rotate. Nothing here touches the
 * store; the runtime persists what these functions return and owns the revision counter.
 */
import * as sshpk from "sshpk";
import type { CaKey, CertAuthorityRecord } from "../runtime/store/types";

/** A CA as the runtime holds it before or after storing: the revision, when present, is passed through untouched. */
export type CertAuthority = Omit<CertAuthorityRecord, "revision">;

/** Why a CA operation was refused, with a stable code (jose style) and a message naming the fix. */
export class CertAuthorityError extends Error {
  /** Builds the error; `code` is stable for callers and tests, `message` is for people. */
  constructor(
    /** Stable machine-readable code, e.g. `rotation_in_progress`. */
    public readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "CertAuthorityError";
  }
}

/** A fresh Ed25519 key pair; the comment names the CA so a trusted-keys file explains itself to an operator. */
function generateCaKey(type: "host" | "user", now: Date): CaKey {
  const key = sshpk.generatePrivateKey("ed25519");
  const createdAt = now.toISOString();
  key.comment = `pulumi-discovery-${type}-ca@${createdAt}`;
  return {
    publicKey: key.toPublic().toString("ssh"),
    // OpenSSH's own private key format, so `ssh-keygen -s` can sign with it too if ever needed.
    privateKey: key.toString("openssh"),
    createdAt,
  };
}

/** Creates a new host or user CA with one Ed25519 key and nothing else trusted. */
export function generateCertAuthority(type: "host" | "user", now: Date = new Date()): CertAuthority {
  return { type, active: generateCaKey(type, now), previous: [] };
}

/** The public keys sshd (TrustedUserCAKeys) or clients (@cert-authority) must trust: active first, then previous. */
export function trustedPublicKeys(ca: CertAuthority): string[] {
  return [ca.active.publicKey, ...ca.previous.map((k) => k.publicKey)];
}

/**
 * Begins a rotation: new certificates are signed by a fresh key while the old one stays trusted, so nodes and
 * users holding certificates from it keep working until they are reissued and `completeRotation` is called.
 */
export function startRotation<T extends CertAuthority>(ca: T, now: Date = new Date()): T {
  // A second rotation on top of an open one would keep an ever-growing tail of old keys trusted.
  if (ca.previous.length > 0) {
    throw new CertAuthorityError(
      "rotation_in_progress",
      `${ca.type} CA: a rotation is already in progress; call completeRotation once certificates signed by the ` +
        "previous key are reissued, then start the next rotation",
    );
  }
  return { ...ca, active: generateCaKey(ca.type, now), previous: [ca.active] };
}

/** Ends a rotation: only the active key stays trusted, so certificates signed by the old keys stop working. */
export function completeRotation<T extends CertAuthority>(ca: T): T {
  return { ...ca, previous: [] };
}
