/**
 * Key material a VM deployment makes ahead of the runtime's first start, so its pins are known at deploy time:
 * the TLS certificate and key, the SSH host and user CA keys (`certificate_authorities` in the runtime config)
 * and the admin token.
 */
import * as crypto from "crypto";
import { generateCertAuthority } from "../ssh";
import { describeCertificate, makeSelfSignedCertificate } from "../runtime/tls";

/** The TLS half: a self-signed certificate for the deployment's addresses. */
export interface TlsKeys {
  /** PEM certificate (public): what clients trust, e.g. as NODE_EXTRA_CA_CERTS. */
  tlsCert: string;
  /** PEM PKCS#8 private key (secret). */
  tlsKey: string;
  /** `sha256//<base64>` of the public key, for `curl --pinnedpubkey` and DISCOVERY_CA_PIN. */
  tlsPin: string;
  /** When the certificate stops being valid (RFC 3339). */
  tlsNotAfter: string;
}

/** Everything a VM deployment ships to the runtime. */
export interface RuntimeKeys extends TlsKeys {
  /** OpenSSH public key of the host CA (as GET /v1/cas lists it). */
  hostCaPublicKey: string;
  /** OpenSSH private key of the host CA (secret). */
  hostCaPrivateKey: string;
  /** OpenSSH public key of the user CA. */
  userCaPublicKey: string;
  /** OpenSSH private key of the user CA (secret). */
  userCaPrivateKey: string;
  /** The admin API's bearer token (secret). */
  adminToken: string;
}

/** A new self-signed TLS certificate for `hosts` (DNS names or IP addresses). */
export async function makeTlsKeys(clusterName: string, hosts: string[]): Promise<TlsKeys> {
  const made = await makeSelfSignedCertificate(clusterName, hosts);
  return {
    tlsCert: made.cert,
    tlsKey: made.key,
    tlsPin: describeCertificate(made.cert).publicKeyPin,
    tlsNotAfter: new Date(new crypto.X509Certificate(made.cert).validTo).toISOString(),
  };
}

/** New keys for a deployment reached at `hosts`. */
export async function makeRuntimeKeys(clusterName: string, hosts: string[]): Promise<RuntimeKeys> {
  const host = generateCertAuthority("host").active;
  const user = generateCertAuthority("user").active;
  return {
    ...(await makeTlsKeys(clusterName, hosts)),
    hostCaPublicKey: host.publicKey,
    hostCaPrivateKey: host.privateKey,
    userCaPublicKey: user.publicKey,
    userCaPrivateKey: user.privateKey,
    // The same shape and strength as the runtime's own (loadOrCreateToken).
    adminToken: crypto.randomBytes(32).toString("base64url"),
  };
}

/** Names of the secret bundle's fields, in the order the bootstrap writes them. */
export const SECRET_BUNDLE_FIELDS = ["tls_key", "host_ca_key", "user_ca_key", "admin_token"] as const;
