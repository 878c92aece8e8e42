import * as crypto from "crypto";

/** Fingerprint and public-key pin (`sha256//<base64 of the SPKI digest>`) of a certificate, PEM or DER. */
export function describeCertificate(cert: string | Buffer): { fingerprint: string; publicKeyPin: string } {
  const x509 = new crypto.X509Certificate(cert);
  const spki = x509.publicKey.export({ type: "spki", format: "der" });
  return {
    fingerprint: x509.fingerprint256,
    publicKeyPin: `sha256//${crypto.createHash("sha256").update(spki).digest("base64")}`,
  };
}
