import * as http from "http";
import type { AddressInfo } from "net";
import type { GcpIssuer } from "./gcp-issuer";

/** What one VM's metadata server reads, live, from the fake control plane. */
export interface GcpMetadataSource {
  project: string;
  projectNumber: string;
  zone: string;
  id: string;
  name: string;
  serviceAccount: string;
  /** The VM's creation time, whole seconds in `instance_creation_timestamp`. */
  createdAt: Date;
  attributes(): { key: string; value?: string }[];
}

/** A running per-VM metadata server. */
export interface GcpMetadataServer {
  /** `127.0.0.1:PORT`: the form `GCE_METADATA_HOST` takes (no scheme). */
  host: string;
  /** Every path asked for, so a test can see how a client talked to it. */
  requests: { path: string; flavor: boolean }[];
  stop(): Promise<void>;
}

const TOKEN_TTL_S = 3600;

/**
 * Starts a GCE metadata server for one VM on a free loopback port. As Google's, it answers only requests with
 * `Metadata-Flavor: Google` (403 otherwise, which stops browser-borne SSRF) and marks its answers with the same
 * header. The identity endpoint signs with the sandbox issuer; `format=full` adds `google.compute_engine`.
 */
export async function startGcpMetadata(src: GcpMetadataSource, issuer: GcpIssuer): Promise<GcpMetadataServer> {
  const requests: GcpMetadataServer["requests"] = [];
  const base = "/computeMetadata/v1/";
  const zonePath = () => `projects/${src.projectNumber}/zones/${src.zone}`;
  const values: Record<string, () => string | undefined> = {
    "instance/id": () => src.id,
    "instance/name": () => src.name,
    "instance/hostname": () => `${src.name}.${src.zone}.c.${src.project}.internal`,
    "instance/zone": zonePath,
    "instance/network-interfaces/0/ip": () => "127.0.0.1",
    "instance/service-accounts/": () => `default/\n${src.serviceAccount}/\n`,
    "instance/service-accounts/default/email": () => src.serviceAccount,
    "instance/attributes/": () =>
      src
        .attributes()
        .map((a) => a.key + "\n")
        .join(""),
    "project/project-id": () => src.project,
    "project/numeric-project-id": () => src.projectNumber,
  };

  function identity(query: URLSearchParams): [number, string] {
    const audience = query.get("audience");
    if (!audience) return [400, "non-empty audience parameter required\n"];
    const iat = Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = {
      aud: audience,
      azp: src.id,
      sub: src.id,
      email: src.serviceAccount,
      email_verified: true,
      iat,
      exp: iat + TOKEN_TTL_S,
    };
    if (query.get("format") === "full")
      claims.google = {
        compute_engine: {
          project_id: src.project,
          project_number: Number(src.projectNumber),
          zone: src.zone,
          instance_id: src.id,
          instance_name: src.name,
          instance_creation_timestamp: Math.floor(src.createdAt.getTime() / 1000),
        },
      };
    return [200, issuer.sign(claims)];
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://metadata.google.internal");
    const flavor = req.headers["metadata-flavor"] === "Google";
    requests.push({ path: url.pathname, flavor });
    const reply = (status: number, body: string) => {
      res.writeHead(status, { "content-type": "application/text", "metadata-flavor": "Google" });
      res.end(body);
    };
    if (!flavor) return reply(403, "Missing required header: Metadata-Flavor\n");
    if (req.method !== "GET") return reply(405, "");
    if (url.pathname === "/" || url.pathname === base || url.pathname === base + "instance/") return reply(200, "");
    if (!url.pathname.startsWith(base)) return reply(404, "");
    const key = url.pathname.slice(base.length);
    if (key === "instance/service-accounts/default/identity") return reply(...identity(url.searchParams));
    const attr = /^instance\/attributes\/(.+)$/.exec(key);
    if (attr) {
      const found = src.attributes().find((a) => a.key === attr[1]);
      return found ? reply(200, found.value ?? "") : reply(404, "");
    }
    const value = values[key]?.();
    return value === undefined ? reply(404, "") : reply(200, value);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
