import { randomBytes } from "crypto";
import * as http from "http";
import type { AddressInfo } from "net";

/** Credentials the fake instance profile hands out, as an instance role's would be. */
export interface ImdsRoleCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** Default: one hour from the request. */
  expiration?: Date;
}

/** What one simulated instance's metadata service serves. */
export interface FakeImdsOptions {
  /** The identity document (`/latest/dynamic/instance-identity/document`); instance id, IP and region come from it. */
  document: { instanceId: string; region: string; availabilityZone?: string; privateIp?: string | null };
  /** The base64 PKCS7 served at `.../rsa2048` (and `.../pkcs7`), e.g. from `signIdentityDocument`. */
  rsa2048: string;
  /** An instance profile role, for the iam join method; omitted, the instance has none. */
  role?: { name: string; credentials: ImdsRoleCredentials };
}

/** A running fake IMDS. */
export interface FakeImds {
  /** `http://127.0.0.1:PORT`, for `AWS_EC2_METADATA_SERVICE_ENDPOINT`. */
  endpoint: string;
  /** Every request seen, so a test can assert how a client talked to it. */
  requests: { method: string; path: string; withToken: boolean }[];
  /** Every session token issued, so a test can look for them where they must not be (a process's argv). */
  issuedTokens: string[];
  stop(): Promise<void>;
}

const MAX_TOKEN_TTL_S = 21600;

/**
 * Starts a fake EC2 instance metadata service on a free loopback port. IMDSv2 only, as hardened instances are
 * configured (`HttpTokens: required`): `PUT /latest/api/token` issues a session token, every GET needs it (401
 * otherwise), so a client that still speaks IMDSv1 fails here as it would on such an instance.
 */
export async function startImds(opts: FakeImdsOptions): Promise<FakeImds> {
  const tokens = new Map<string, number>(); // token -> expiry (ms)
  const requests: FakeImds["requests"] = [];
  const issuedTokens: string[] = [];
  const doc = opts.document;
  const roleBase = "/latest/meta-data/iam/security-credentials/";
  const credentialsJson = (c: ImdsRoleCredentials) =>
    JSON.stringify(
      {
        Code: "Success",
        LastUpdated: new Date().toISOString(),
        Type: "AWS-HMAC",
        AccessKeyId: c.accessKeyId,
        SecretAccessKey: c.secretAccessKey,
        Token: c.sessionToken ?? "",
        Expiration: (c.expiration ?? new Date(Date.now() + 3600_000)).toISOString(),
      },
      null,
      2,
    );
  const paths: Record<string, () => string | undefined> = {
    "/latest/dynamic/instance-identity/document": () => JSON.stringify(doc, null, 2),
    "/latest/dynamic/instance-identity/rsa2048": () => opts.rsa2048,
    // Real IMDS serves a DSA signature here; the fake has no DSA key, so it serves the RSA-2048 one.
    "/latest/dynamic/instance-identity/pkcs7": () => opts.rsa2048,
    "/latest/meta-data/instance-id": () => doc.instanceId,
    "/latest/meta-data/local-ipv4": () => doc.privateIp ?? undefined,
    "/latest/meta-data/placement/region": () => doc.region,
    "/latest/meta-data/placement/availability-zone": () => doc.availabilityZone,
    [roleBase]: () => opts.role?.name,
    ...(opts.role && { [roleBase + opts.role.name]: () => credentialsJson(opts.role!.credentials) }),
  };

  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const token = req.headers["x-aws-ec2-metadata-token"];
    requests.push({ method: req.method ?? "", path, withToken: typeof token === "string" });
    const reply = (status: number, body = "") => {
      res.writeHead(status, { "content-type": "text/plain" });
      res.end(body);
    };
    if (req.method === "PUT" && path === "/latest/api/token") {
      // AWS refuses tokens to requests that came through a proxy, to keep SSRF from minting them.
      if (req.headers["x-forwarded-for"]) return reply(403);
      const ttl = Number(req.headers["x-aws-ec2-metadata-token-ttl-seconds"]);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TOKEN_TTL_S) return reply(400);
      const issued = randomBytes(32).toString("base64url");
      tokens.set(issued, Date.now() + ttl * 1000);
      issuedTokens.push(issued);
      res.setHeader("x-aws-ec2-metadata-token-ttl-seconds", String(ttl));
      return reply(200, issued);
    }
    if (req.method !== "GET") return reply(405);
    const expiry = typeof token === "string" ? tokens.get(token) : undefined;
    if (expiry === undefined || expiry < Date.now()) return reply(401);
    const body = paths[path]?.();
    return body === undefined ? reply(404) : reply(200, body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    issuedTokens,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
