import * as fs from "fs";
import * as https from "https";
import type { PeerCertificate } from "tls";
import { describeCertificate } from "../runtime/certificate-pin";
import { adminTokenRefused, connectError, parseServerUrl, pinMismatch, TargetSources } from "./connect-errors";

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
  /** Where the URL, token, CA and pin came from (a flag, a variable, a file), for errors that say what to change. */
  sources?: TargetSources;
}

/** The PEM text of the target's CA: `ca`, else the file `caFile` (an unreadable file names its source). */
export function targetCa(target: RuntimeTarget): string | string[] | Buffer | undefined {
  if (target.ca || !target.caFile) return target.ca;
  try {
    return fs.readFileSync(target.caFile);
  } catch (err) {
    const from = target.sources?.ca?.from ?? target.caFile;
    const reason = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message;
    throw new Error(`cannot read the CA certificate ${target.caFile} (from ${from}): ${reason}`);
  }
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
  let url: URL;
  let ca: ReturnType<typeof targetCa>;
  try {
    const base = parseServerUrl(target.server, target.sources);
    url = new URL(path, base.href.endsWith("/") ? base.href : base.href + "/");
    ca = targetCa(target);
  } catch (err) {
    return Promise.reject(err);
  }
  const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
  const headers: Record<string, string> = { ...extraHeaders };
  if (payload !== undefined) headers["content-type"] = contentType;
  if (target.adminToken) headers.authorization = `Bearer ${target.adminToken}`;
  return new Promise((resolve, reject) => {
    const timeout = target.timeoutMs ?? 60_000;
    const options: https.RequestOptions = { method, headers, ca, timeout };
    if (target.pin)
      options.checkServerIdentity = (_host: string, cert: PeerCertificate) => {
        const actual = describeCertificate(cert.raw).publicKeyPin;
        return actual === target.pin ? undefined : pinMismatch(target.pin!, actual);
      };
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
    req.on("timeout", () =>
      req.destroy(
        Object.assign(new Error(`no answer within ${timeout / 1000} s`), {
          code: "ETIMEDOUT",
        }) as NodeJS.ErrnoException,
      ),
    );
    req.on("error", (err) => reject(connectError(err, url, target.sources)));
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/**
 * The error message of a runtime answer, for people. With the target, a refused admin token (401) names where
 * the token came from and where the right one is.
 */
export function answerError(a: HttpAnswer, target?: RuntimeTarget): string {
  const e = (a.body as { error?: { message?: string; reason?: string } })?.error;
  const text = e?.message
    ? `${e.message}${e.reason ? ` (${e.reason})` : ""}`
    : `HTTP ${a.status}: ${a.text.slice(0, 500)}`;
  return a.status === 401 && target ? adminTokenRefused(target.server, text, target.sources) : text;
}
