import * as fs from "fs";
import * as https from "https";
import type { PeerCertificate } from "tls";
import { describeCertificate } from "../runtime/certificate-pin";

/** An HTTP answer: status and parsed body (JSON when it parses, else text). */
export interface HttpAnswer {
  status: number;
  body: unknown;
  text: string;
  /** The response headers (names in lower case). */
  headers: Record<string, string | string[] | undefined>;
}

/** Where and how to reach the runtime. */
export interface RuntimeTarget {
  server: string;
  adminToken?: string;
  /** A CA certificate file to trust for the runtime's TLS (NODE_EXTRA_CA_CERTS works too). */
  caFile?: string;
  /** The same as PEM text (a self-signed runtime's own certificate will do); wins over caFile. */
  ca?: string | string[];
  /**
   * `sha256//<base64>`: accept only a server presenting this key, whatever names its certificate carries (a
   * certificate for a public name still serves on 127.0.0.1). The chain must still verify against the CAs.
   */
  pin?: string;
  /** How long to wait for an answer; default 60 s. */
  timeoutMs?: number;
}

/** One request to the runtime with https (no redirects followed, answers capped at 16 MiB); `extraHeaders` are sent too. */
export function request(
  target: RuntimeTarget,
  method: string,
  path: string,
  body?: string | object,
  contentType = "application/json",
  extraHeaders: Record<string, string> = {},
): Promise<HttpAnswer> {
  const url = new URL(path, target.server.endsWith("/") ? target.server : target.server + "/");
  if (url.protocol !== "https:")
    return Promise.reject(new Error(`--server must be an https URL, not ${target.server}`));
  const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
  const headers: Record<string, string> = { ...extraHeaders };
  if (payload !== undefined) headers["content-type"] = contentType;
  if (target.adminToken) headers.authorization = `Bearer ${target.adminToken}`;
  const ca = target.ca ?? (target.caFile ? fs.readFileSync(target.caFile) : undefined);
  return new Promise((resolve, reject) => {
    const timeout = target.timeoutMs ?? 60_000;
    const options: https.RequestOptions = { method, headers, ca, timeout };
    if (target.pin)
      options.checkServerIdentity = (_host: string, cert: PeerCertificate) =>
        describeCertificate(cert.raw).publicKeyPin === target.pin
          ? undefined
          : new Error(`the server's key is not ${target.pin}`);
    const req = https.request(url, options, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > 16 * 1024 * 1024) req.destroy(new Error("answer larger than 16 MiB"));
        else chunks.push(c);
      });
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // not JSON: keep the text
        }
        resolve({ status: res.statusCode ?? 0, body: parsed, text, headers: res.headers });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`no answer from ${url.origin} within ${timeout / 1000} s`)));
    req.on("error", (err) => reject(new Error(`cannot reach ${url.origin}: ${err.message}`)));
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** The error message of a runtime answer, for people. */
export function answerError(a: HttpAnswer): string {
  const e = (a.body as { error?: { message?: string; reason?: string } })?.error;
  return e?.message ? `${e.message}${e.reason ? ` (${e.reason})` : ""}` : `HTTP ${a.status}: ${a.text.slice(0, 500)}`;
}
