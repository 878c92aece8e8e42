import * as http from "http";
import * as https from "https";
import type { AddressInfo } from "net";

/** An answer: status, JSON body, extra headers. */
export type JsonReply = [number, unknown, Record<string, string>?];

/** A running loopback HTTPS server of the fake Azure. */
export interface HttpsJsonServer {
  /** `https://127.0.0.1:PORT`. */
  endpoint: string;
  close(): Promise<void>;
}

/** Reads a request's body as text (cut off past 1 MiB), then calls `done` with it. */
export function collectBody(req: http.IncomingMessage, done: (raw: string) => void): void {
  let raw = "";
  req.setEncoding("utf8");
  req.on("data", (d: string) => {
    raw += d;
    if (raw.length > 1024 * 1024) req.destroy();
  });
  req.on("end", () => done(raw));
}

/**
 * Serves `handle` over HTTPS on a free loopback port with the sandbox's Azure TLS certificate: Azure's pipeline
 * sends bearer tokens only over https. Bodies over 1 MiB are cut off; answers are JSON.
 */
export async function startHttpsJson(
  tls: { cert: string; key: string },
  handle: (req: http.IncomingMessage, raw: string) => Promise<JsonReply> | JsonReply,
): Promise<HttpsJsonServer> {
  const server = https.createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    collectBody(req, (raw) => {
      Promise.resolve()
        .then(() => handle(req, raw))
        .catch((err: Error): JsonReply => [500, { error: { code: "InternalServerError", message: err.message } }])
        .then(([status, json, headers]) => {
          res.writeHead(status, { "content-type": "application/json; charset=utf-8", ...headers });
          res.end(json === undefined ? "" : JSON.stringify(json));
        });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    endpoint: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
