import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { describeCertificate } from "./certificate-pin";
import { writePrivateFile } from "./file-modes";

// The pin has a module of its own, light enough for every HTTPS client; it is this module's too.
export { describeCertificate };

/** A certificate serial from random bytes: the top bit cleared (positive), the first byte never 0 (minimal DER). */
export function serialBytes(random: Uint8Array): Uint8Array {
  const out = Uint8Array.from(random);
  out[0] = (out[0] & 0x7f) | 0x01;
  return out;
}

/** A certificate and key in PEM, with the certificate's SHA-256 fingerprint. */
export interface TlsMaterial {
  cert: string;
  key: string;
  /** SHA-256 of the DER certificate, upper-case hex pairs joined by colons (as openssl prints it). */
  fingerprint: string;
  /** Where the certificate is stored, for NODE_EXTRA_CA_CERTS or curl --cacert. */
  certFile: string;
  /** `sha256//<base64>` of the public key, for `curl --pinnedpubkey`. */
  publicKeyPin: string;
}

function pem(label: string, der: ArrayBuffer | Buffer): string {
  const b64 = Buffer.from(der as ArrayBuffer).toString("base64");
  return `-----BEGIN ${label}-----\n${b64.replace(/(.{64})/g, "$1\n").replace(/\n$/, "")}\n-----END ${label}-----\n`;
}

/** Makes a self-signed ECDSA P-256 server certificate for `hosts` (DNS names or IP addresses). */
export async function makeSelfSignedCertificate(commonName: string, hosts: string[], now = new Date()) {
  const webcrypto = crypto.webcrypto;
  const engine = new pkijs.CryptoEngine({ name: "node", crypto: webcrypto as never });
  const keys = (await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ])) as crypto.webcrypto.CryptoKeyPair;
  const cert = new pkijs.Certificate();
  cert.version = 2;
  // 127 random bits, positive and in minimal DER form: a first byte of 0x00 followed by one below 0x80 is an
  // "illegal padding" that OpenSSL (and so Node's X509Certificate and TLS) refuses, one certificate in 256.
  cert.serialNumber = new asn1js.Integer({ valueHex: serialBytes(crypto.randomBytes(16)) });
  const name = [
    new pkijs.AttributeTypeAndValue({ type: "2.5.4.3", value: new asn1js.Utf8String({ value: commonName }) }),
  ];
  cert.subject.typesAndValues = name;
  cert.issuer.typesAndValues = name;
  cert.notBefore.value = new Date(now.getTime() - 60_000);
  cert.notAfter.value = new Date(now.getTime() + 365 * 24 * 3600_000);
  const altNames = [...new Set(hosts)].map((h) =>
    net.isIP(h)
      ? new pkijs.GeneralName({
          type: 7,
          value: new asn1js.OctetString({
            valueHex: net.isIPv4(h) ? Buffer.from(h.split(".").map(Number)) : ipv6Bytes(h),
          }),
        })
      : new pkijs.GeneralName({ type: 2, value: h }),
  );
  cert.extensions = [
    new pkijs.Extension({
      extnID: "2.5.29.17",
      critical: false,
      extnValue: new pkijs.GeneralNames({ names: altNames }).toSchema().toBER(false),
    }),
    new pkijs.Extension({
      extnID: "2.5.29.19",
      critical: true,
      extnValue: new pkijs.BasicConstraints({ cA: false }).toSchema().toBER(false),
    }),
  ];
  await cert.subjectPublicKeyInfo.importKey(keys.publicKey as never, engine);
  await cert.sign(keys.privateKey as never, "SHA-256", engine);
  const key = await webcrypto.subtle.exportKey("pkcs8", keys.privateKey);
  return { cert: pem("CERTIFICATE", cert.toSchema().toBER(false)), key: pem("PRIVATE KEY", key) };
}

function ipv6Bytes(ip: string): Buffer {
  const [head, tail] = ip.split("::");
  const parts = (s?: string) => (s ? s.split(":").filter(Boolean) : []);
  const h = parts(head);
  const t = parts(tail);
  const groups = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  return Buffer.from(groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]));
}

/**
 * The runtime's TLS material: the configured certificate and key, or a self-signed pair kept in
 * `dataDir` (made once, reused on restart so pins and fingerprints stay stable).
 */
export async function loadOrCreateTls(opts: {
  tls?: { certFile: string; keyFile: string };
  dataDir: string;
  clusterName: string;
  hosts: string[];
}): Promise<TlsMaterial & { selfSigned: boolean }> {
  if (opts.tls) {
    const cert = fs.readFileSync(opts.tls.certFile, "utf8");
    const key = fs.readFileSync(opts.tls.keyFile, "utf8");
    return { cert, key, certFile: opts.tls.certFile, selfSigned: false, ...describeCertificate(cert) };
  }
  const certFile = path.join(opts.dataDir, "tls.crt");
  const keyFile = path.join(opts.dataDir, "tls.key");
  if (!fs.existsSync(certFile) || !fs.existsSync(keyFile)) {
    const made = await makeSelfSignedCertificate(opts.clusterName, [...opts.hosts, "localhost", "127.0.0.1"]);
    // A key left by an interrupted first start is replaced, never reused with a certificate it does not match.
    fs.rmSync(keyFile, { force: true });
    writePrivateFile(keyFile, made.key);
    fs.writeFileSync(certFile, made.cert, { mode: 0o644 });
  }
  const cert = fs.readFileSync(certFile, "utf8");
  return { cert, key: fs.readFileSync(keyFile, "utf8"), certFile, selfSigned: true, ...describeCertificate(cert) };
}
