/**
 * Issues OpenSSH host and user certificates signed by a CA's active key. Requests are checked here, not only at
 * the edge, because a malformed principal list silently widens what a certificate grants.
 */
import { createPrivateKey, KeyObject, randomBytes, sign as nodeSign } from "crypto";
import * as sshpk from "sshpk";
// sshpk's OpenSSH certificate format: `signAsync` signs the to-be-signed blob with any signer we hand it.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const opensshCert = require("sshpk/lib/formats/openssh-cert") as {
  signAsync(
    cert: sshpk.Certificate,
    signer: (blob: Buffer, done: (err: Error | undefined, signature?: sshpk.Signature) => void) => void,
    done: (err?: Error) => void,
  ): void;
};
import type { CertAuthority } from "./ca";

/** The longest certificate we issue; longer-lived certificates outlast a CA rotation and cannot be revoked. */
export const MAX_CERT_TTL_SECONDS = 30 * 24 * 3600;

/** How far validity is back-dated, so a host whose clock runs slightly behind still accepts a fresh certificate. */
export const CLOCK_SKEW_SECONDS = 60;

/** The extensions `ssh-keygen` grants user certificates by default; without permit-pty a login gets no terminal. */
export const USER_CERT_EXTENSIONS = [
  "permit-X11-forwarding",
  "permit-agent-forwarding",
  "permit-port-forwarding",
  "permit-pty",
  "permit-user-rc",
] as const;

/** What to certify. */
export interface CertificateRequest {
  /**
   * The subject's public key: one OpenSSH line, e.g. the contents of `/etc/ssh/ssh_host_ed25519_key.pub`, or that
   * line as {@link parsePublicKeyLine} decoded it (not decoded again).
   */
  publicKey: string | ParsedPublicKey;
  /** Host certificates: node name, private IP and hostnames. User certificates: login names. */
  principals: string[];
  /** Lifetime in whole seconds, at most `MAX_CERT_TTL_SECONDS`. */
  ttlSeconds: number;
  /** Shown by sshd in its logs for every login with the certificate, so name the node or user. */
  keyId: string;
  /** The instant to issue at; defaults to now. */
  now?: Date;
}

/** A refused certificate request: a stable code, the offending field, and a message naming the fix. */
export class CertificateRequestError extends Error {
  /** Builds the error; the message starts with the field so it reads well in logs and API replies. */
  constructor(
    /** Stable machine-readable code, e.g. `principal_invalid`. */
    public readonly code: string,
    /** The request field at fault, e.g. `principals[2]`. */
    public readonly field: string,
    detail: string,
  ) {
    super(`${field}: ${detail}`);
    this.name = "CertificateRequestError";
  }
}

// OpenSSH splits principal lists on commas, and whitespace or control characters cannot survive a config line.
const BAD_PRINCIPAL_CHARS = /[\s,\x00-\x1f\x7f]/;

/**
 * Parses the subject key, refusing anything that is not a bare public key line (private keys, certificates); with
 * the key's own OpenSSH line (type, base64 and sshpk's comment), which the check needs anyway.
 */
function decodeSubjectKey(publicKey: string): { key: sshpk.Key; ssh: string } {
  const line = typeof publicKey === "string" ? publicKey.trim() : "";
  try {
    if (line !== "" && !line.includes("\n")) {
      const key = sshpk.parseKey(line, "ssh");
      const ssh = key.toString("ssh");
      // sshpk reads the type from the blob; a line whose label names another type is inconsistent.
      if (ssh.slice(0, ssh.indexOf(" ")) === line.split(/\s+/)[0]) return { key, ssh };
    }
  } catch {
    // Fall through to the one message that tells the caller what to pass instead.
  }
  throw new CertificateRequestError(
    "public_key_invalid",
    "publicKey",
    'is not an OpenSSH public key; pass one line such as "ssh-ed25519 AAAA... comment", ' +
      "e.g. the contents of a .pub file (not the private key, not a certificate)",
  );
}

/** {@link decodeSubjectKey}'s key alone. */
function parseSubjectKey(publicKey: string): sshpk.Key {
  return decodeSubjectKey(publicKey).key;
}

/** A public key a node presented, decoded: its canonical line (type and base64, no comment) and SHA-256 fingerprint. */
export interface ParsedPublicKey {
  /** `<type> <base64>` re-encoded from the decoded key, so two spellings of one key give one line. */
  line: string;
  /** Hex SHA-256 of the key's wire encoding: the same for every spelling of the key. */
  sha256: string;
}

// The decoded key behind each ParsedPublicKey this module made, so a certificate for it need not decode it again.
// Only keys decoded here are found: an object built elsewhere with the same fields is decoded from its line.
const decodedKeys = new WeakMap<ParsedPublicKey, sshpk.Key>();

/** Decodes one OpenSSH public key line; throws {@link CertificateRequestError} `public_key_invalid` otherwise. */
export function parsePublicKeyLine(publicKey: string): ParsedPublicKey {
  const { key, ssh } = decodeSubjectKey(publicKey);
  const parsed = {
    line: ssh.split(" ").slice(0, 2).join(" "),
    sha256: key.fingerprint("sha256").hash.toString("hex"),
  };
  decodedKeys.set(parsed, key);
  return parsed;
}

/** Checks principals; an empty list must be refused because OpenSSH reads it as "valid for every name". */
function checkPrincipals(principals: string[], kind: "host" | "user"): void {
  if (!Array.isArray(principals) || principals.length === 0) {
    const what = kind === "host" ? "the node name, private IP and hostnames" : 'the login names, e.g. ["root"]';
    throw new CertificateRequestError(
      "principals_empty",
      "principals",
      `must list at least one principal (an empty list would make the certificate valid for any name); pass ${what}`,
    );
  }
  principals.forEach((p, i) => {
    if (typeof p !== "string" || p === "") {
      throw new CertificateRequestError("principal_invalid", `principals[${i}]`, "is empty; remove it");
    }
    if (BAD_PRINCIPAL_CHARS.test(p)) {
      throw new CertificateRequestError(
        "principal_invalid",
        `principals[${i}]`,
        `${JSON.stringify(p)} contains a space, comma or control character; pass each name as its own entry`,
      );
    }
  });
}

/** Checks the lifetime: whole seconds, positive, and bounded so a leaked certificate expires on its own. */
function checkTtl(ttlSeconds: number): void {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) {
    throw new CertificateRequestError(
      "ttl_invalid",
      "ttlSeconds",
      `must be a whole number of seconds greater than 0, got ${String(ttlSeconds)}`,
    );
  }
  if (ttlSeconds > MAX_CERT_TTL_SECONDS) {
    throw new CertificateRequestError(
      "ttl_invalid",
      "ttlSeconds",
      `${ttlSeconds} exceeds the maximum of ${MAX_CERT_TTL_SECONDS} (30 days); issue a shorter certificate and renew it`,
    );
  }
}

/** Checks the key id, which sshd writes into its log line for every login. */
function checkKeyId(keyId: string): void {
  if (typeof keyId !== "string" || keyId.trim() === "") {
    throw new CertificateRequestError(
      "key_id_invalid",
      "keyId",
      "must not be empty; use a name that identifies the certificate in sshd logs, e.g. the node name",
    );
  }
  if (/[\x00-\x1f\x7f]/.test(keyId)) {
    throw new CertificateRequestError(
      "key_id_invalid",
      "keyId",
      "must not contain control characters such as newlines, which would forge extra sshd log lines",
    );
  }
}

/** A CA key as sshpk reads it, and for ed25519 as Node's crypto signs with it. */
interface CaSigningKey {
  key: sshpk.PrivateKey;
  native?: KeyObject;
}

// Parsed once per CA key (a runtime has two, four while rotating): parsing is per key, not per certificate.
const signingKeys = new Map<string, CaSigningKey>();

function caSigningKey(privateKey: string): CaSigningKey {
  let k = signingKeys.get(privateKey);
  if (k) return k;
  const key = sshpk.parsePrivateKey(privateKey, "auto");
  const parts = key.part as unknown as Record<string, { data: Buffer }>;
  const native =
    key.type === "ed25519"
      ? createPrivateKey({
          key: {
            kty: "OKP",
            crv: "Ed25519",
            d: parts.k.data.subarray(0, 32).toString("base64url"),
            x: parts.A.data.toString("base64url"),
          },
          format: "jwk",
        })
      : undefined;
  k = { key, native };
  if (signingKeys.size >= 16) signingKeys.clear();
  signingKeys.set(privateKey, k);
  return k;
}

/**
 * Signs the certificate's OpenSSH form with the CA key: Node's native ed25519 for ed25519 CAs (sshpk's pure-JS
 * tweetnacl took about 9 ms a signature, and signWith signs every format sshpk knows, X.509 included), sshpk for
 * any other key type a `certificate_authorities` file may bring.
 */
function signOpenssh(cert: sshpk.Certificate, ca: CaSigningKey): void {
  const native = ca.native;
  if (!native) {
    cert.signWith(ca.key);
    return;
  }
  let failed: Error | undefined;
  opensshCert.signAsync(
    cert,
    (blob, done) => done(undefined, sshpk.parseSignature(nodeSign(null, blob, native), "ed25519", "raw")),
    (err) => (failed = err),
  );
  if (failed) throw failed;
}

/** Validates the request and signs it with the CA's active key. */
function sign(ca: CertAuthority, kind: "host" | "user", req: CertificateRequest): string {
  if (ca.type !== kind) {
    throw new CertificateRequestError(
      "ca_type_mismatch",
      "ca.type",
      `is "${ca.type}", but ${kind} certificates must be signed by the ${kind} CA; pass the ${kind} CertAuthorityRecord`,
    );
  }
  const given = req.publicKey;
  const subjectKey =
    typeof given === "string" ? parseSubjectKey(given) : (decodedKeys.get(given) ?? parseSubjectKey(given?.line));
  checkPrincipals(req.principals, kind);
  checkTtl(req.ttlSeconds);
  checkKeyId(req.keyId);

  const caKey = caSigningKey(ca.active.privateKey);
  // Whole seconds, rounded down: OpenSSH counts validity in seconds and sshpk would round to the nearest one, so a
  // certificate issued in the second half of a second would outlive its TTL by up to a second.
  const now = Math.floor((req.now ?? new Date()).getTime() / 1000) * 1000;
  const subjects = req.principals.map((p) => (kind === "host" ? sshpk.identityForHost(p) : sshpk.identityForUser(p)));
  // A random serial lets a KRL revoke this one certificate without revoking the key. The top bit stays clear
  // because sshpk also encodes the serial as an X.509 INTEGER, where it would read as negative.
  const serial = randomBytes(8);
  serial[0] &= 0x7f;
  // Built unsigned (sshpk.createCertificate would sign every format at once), with the key id and extensions
  // sshpk's options lack, then signed once.
  const cert = new (sshpk.Certificate as unknown as new (opts: object) => sshpk.Certificate)({
    subjects,
    issuer: sshpk.identityForHost(`${kind}-ca`),
    subjectKey,
    issuerKey: caKey.key.toPublic(),
    signatures: {
      openssh: {
        keyId: req.keyId,
        exts:
          kind === "user" ? USER_CERT_EXTENSIONS.map((name) => ({ critical: false, name, data: Buffer.alloc(0) })) : [],
      },
    },
    serial,
    validFrom: new Date(now - CLOCK_SKEW_SECONDS * 1000),
    validUntil: new Date(now + req.ttlSeconds * 1000),
    purposes: ["signature", kind === "host" ? "serverAuth" : "clientAuth", "keyAgreement"],
  });
  signOpenssh(cert, caKey);
  return cert.toString("openssh");
}

/** Signs a host certificate (principals: node name, private IP, hostnames) with the host CA's active key. */
export function signHostCertificate(ca: CertAuthority, req: CertificateRequest): string {
  return sign(ca, "host", req);
}

/** Signs a user certificate (principals: login names, with the standard permit-* extensions) with the user CA. */
export function signUserCertificate(ca: CertAuthority, req: CertificateRequest): string {
  return sign(ca, "user", req);
}
