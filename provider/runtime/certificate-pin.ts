import * as crypto from "crypto";
import { connectError, parseServerUrl, TargetSources } from "../http/connect-errors";

/** Fingerprint and public-key pin (`sha256//<base64 of the SPKI digest>`) of a certificate, PEM or DER. */
export function describeCertificate(cert: string | Buffer): { fingerprint: string; publicKeyPin: string } {
  const x509 = new crypto.X509Certificate(cert);
  const spki = x509.publicKey.export({ type: "spki", format: "der" });
  return {
    fingerprint: x509.fingerprint256,
    publicKeyPin: `sha256//${crypto.createHash("sha256").update(spki).digest("base64")}`,
  };
}

/**
 * How installers reach `server` (its host:port) and the pin of the key it presents, read over a verified TLS
 * connection: against `ca` when given, else the default CAs (and NODE_EXTRA_CA_CERTS). `sources` say where the
 * URL and CA came from, for an error that says what to change.
 */
export async function serverEndpoint(
  server: string,
  ca?: string | Buffer | (string | Buffer)[],
  sources?: TargetSources,
): Promise<{ proxyAddr: string; caPin: string }> {
  // Required here, not imported: the Pulumi provider serializes this module by value (see pulumi/enrollment.ts).
  const tls: typeof import("tls") = require("tls");
  const url = parseServerUrl(server, sources);
  const port = Number(url.port || 443);
  const der = await new Promise<Buffer>((resolve, reject) => {
    const s = tls.connect({ host: url.hostname, port, servername: undefined, ...(ca ? { ca } : {}) }, () => {
      const raw = s.getPeerCertificate().raw;
      s.end();
      resolve(raw);
    });
    s.on("error", (err) => reject(connectError(err, url, sources)));
  });
  return { proxyAddr: `${url.hostname}:${port}`, caPin: describeCertificate(der).publicKeyPin };
}
