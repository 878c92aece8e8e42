import * as fs from "fs";
import * as https from "https";
import * as os from "os";
import * as path from "path";
import { DescribeImagesCommand, EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { identityDocument, signIdentityDocument, testCa } from "../fixtures/iid-signer";
import { iamJoinBody, instanceCredentials, newHostKey } from "../fixtures/joins";
import { MOTO_CREDENTIALS, Moto, startMoto } from "../fixtures/moto";
import { mutateBytes, mutateJson, Rng } from "../fixtures/fuzz";
import { startTestRuntime, TestRuntime } from "../fixtures/runtime";

/**
 * Seeded fuzzing of every endpoint a client or an admin can reach: valid join, challenge, admin and installer
 * requests are mutated (types, lengths, encodings, unicode, nesting, truncated or invalid bytes) and each answer
 * must be a 4xx or 2xx with a JSON body, never a 5xx or a dropped connection. FUZZ_SEED and FUZZ_ROUNDS repeat
 * or widen a run.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20261130);
const ROUNDS = Number(process.env.FUZZ_ROUNDS ?? 1200);
const ACCOUNT = "123456789012";
const SECRET = "tok-fuzz-8c2e41d7a9f35b60";
const TOKENS = `
kind: token
version: v2
metadata: {name: ${SECRET}}
spec: {roles: [Node], join_method: token}
---
kind: token
version: v2
metadata: {name: iam-token}
spec: {roles: [Node], join_method: iam, allow: [{aws_account: "${ACCOUNT}"}]}
---
kind: token
version: v2
metadata: {name: ec2-token}
spec: {roles: [Node], join_method: ec2, allow: [{aws_account: "${ACCOUNT}", aws_regions: [us-east-1]}]}
`;

interface Request {
  method: string;
  path: string;
  body?: unknown;
  admin?: boolean;
  contentType?: string;
}

interface Answer {
  status: number;
  contentType: string;
  text: string;
}

describe("API fuzzing: no 5xx, always a JSON error", () => {
  let moto: Moto;
  let rt: TestRuntime;
  let agent: https.Agent;
  const bases: Request[] = [];
  const savedEnv = { ...process.env };

  beforeAll(async () => {
    moto = await startMoto();
    process.env.AWS_ENDPOINT_URL = moto.endpoint;
    process.env.AWS_ACCESS_KEY_ID = "testing";
    process.env.AWS_SECRET_ACCESS_KEY = "testing";
    const signer = await testCa();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-fuzz-"));
    fs.writeFileSync(path.join(dir, "test-ca.pem"), signer.certPem);
    rt = await startTestRuntime(
      {
        join: {
          aws: { sts_endpoint: moto.endpoint, extra_ca_certs: ["./test-ca.pem"] },
          rate_limit: { requests_per_minute: 1_000_000, burst: 1_000_000 },
        },
      },
      { dir },
    );
    expect(
      (await rt.call("PUT", "/v1/resources", TOKENS, { admin: true, contentType: "application/yaml" })).status,
    ).toBe(200);
    agent = new https.Agent({ keepAlive: true, maxSockets: 8, ca: rt.runtime.tls.cert });

    const ec2 = new EC2Client({ region: "us-east-1", endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS });
    const image = (await ec2.send(new DescribeImagesCommand({}))).Images![0].ImageId;
    const [instance] = (
      await ec2.send(new RunInstancesCommand({ ImageId: image, MinCount: 1, MaxCount: 1, InstanceType: "t3.micro" }))
    ).Instances!;
    const iid = await signIdentityDocument(identityDocument({ instanceId: instance.InstanceId! }), signer);
    const iam = await iamJoinBody(rt, {
      token: "iam-token",
      motoEndpoint: moto.endpoint,
      credentials: await instanceCredentials(moto.endpoint, ACCOUNT, "i-0f0e0d0c0b0a09080"),
    });
    const hostKey = newHostKey();
    bases.push(
      { method: "POST", path: "/v1/join", body: { method: "token", token: SECRET, host_public_key: hostKey } },
      { method: "POST", path: "/v1/join", body: { method: "ec2", token: "ec2-token", host_public_key: hostKey, iid } },
      { method: "POST", path: "/v1/join", body: iam },
      { method: "POST", path: "/v1/join/challenge", body: { method: "iam", token: "iam-token" } },
      {
        method: "PUT",
        path: "/v1/resources",
        admin: true,
        body: {
          kind: "token",
          version: "v2",
          metadata: { name: "fuzzed", expires: "2030-01-01T00:00:00Z" },
          spec: { roles: ["Node"], join_method: "iam", allow: [{ aws_account: ACCOUNT, aws_arn: "arn:aws:*" }] },
        },
      },
      {
        method: "PUT",
        path: "/v1/resources",
        admin: true,
        body: {
          kind: "discovery_config",
          version: "v1",
          metadata: { name: "fuzzed" },
          spec: {
            discovery_group: "g",
            aws: [{ types: ["ec2"], regions: ["us-east-1"], tags: { env: "dev" }, install: { mode: "agentless" } }],
          },
        },
      },
      {
        method: "POST",
        path: "/v1/certs/user",
        admin: true,
        body: { public_key: hostKey, principals: ["root"], ttl: "5m" },
      },
      {
        method: "POST",
        path: "/v1/enrollments/claim",
        admin: true,
        body: {
          enrollment: {
            cloud: "aws",
            account: ACCOUNT,
            region: "us-east-1",
            instanceId: "i-0123456789abcdef0",
            nodeName: `${ACCOUNT}-i-0123456789abcdef0`,
            status: "pending",
            updatedAt: new Date().toISOString(),
          },
          stale_ms: 60_000,
        },
      },
      { method: "POST", path: "/v1/cas/user/rotation", admin: true, body: { action: "start" } },
    );
  });

  afterAll(async () => {
    agent?.destroy();
    await rt?.stop();
    if (rt) fs.rmSync(rt.dir, { recursive: true, force: true });
    await moto?.stop();
    process.env = savedEnv;
  });

  function send(req: Request, raw: Buffer | undefined, authorization?: string): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = {};
      if (raw !== undefined) headers["content-type"] = req.contentType ?? "application/json";
      if (authorization !== undefined) headers.authorization = authorization;
      else if (req.admin) headers.authorization = `Bearer ${rt.runtime.adminToken}`;
      const r = https.request(`${rt.url}${req.path}`, { method: req.method, headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (d: Buffer) => chunks.push(d));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            contentType: String(res.headers["content-type"] ?? ""),
            text: Buffer.concat(chunks).toString("utf8"),
          }),
        );
        res.on("error", reject);
      });
      r.on("error", (e) => reject(new Error(`${req.method} ${req.path}: connection dropped: ${e.message}`)));
      if (raw !== undefined) r.write(raw);
      r.end();
    });
  }

  /** One fuzzed request: a JSON mutation, a byte mutation, an odd path or content type, or a forged header. */
  function fuzzed(rng: Rng): { req: Request; raw?: Buffer; authorization?: string } {
    const base = rng.pick(bases);
    const kind = rng.int(10);
    if (kind < 6) return { req: base, raw: Buffer.from(JSON.stringify(mutateJson(rng, base.body)) ?? "null") };
    if (kind < 8) return { req: base, raw: mutateBytes(rng, Buffer.from(JSON.stringify(base.body))) };
    if (kind === 8) {
      const contentType = rng.pick(["text/plain", "application/yaml", "application/x-www-form-urlencoded", "a/b"]);
      const raw = Buffer.from(rng.next() < 0.5 ? JSON.stringify(base.body) : "kind: [token\n  - {");
      return { req: { ...base, contentType }, raw, authorization: rng.next() < 0.3 ? "Bearer \u00ff" : undefined };
    }
    // Every byte percent-encoded, some of them not UTF-8 at all.
    const text = Buffer.from(String(mutateJson(rng, "default-installer")).slice(0, 300));
    const bytes = rng.next() < 0.2 ? mutateBytes(rng, text).subarray(0, 400) : text;
    const segment = [...bytes].map((b) => `%${b.toString(16).padStart(2, "0")}`).join("");
    const target = rng.pick([
      `/webapi/scripts/installer/${segment}`,
      `/v1/webapi/scripts/installer/${segment}`,
      `/v1/resources/token/${segment}`,
      `/v1/resources/${segment}`,
      `/v1/resources/${segment}/${segment}`,
      `/v1/cas/${segment}/rotation`,
    ]);
    const method = target.includes("/resources/") ? rng.pick(["GET", "DELETE"]) : "GET";
    return { req: { method, path: target, admin: true } };
  }

  it(`answers ${ROUNDS} mutated requests (seed ${SEED}) with a 4xx or 2xx and JSON`, async () => {
    const rng = new Rng(SEED);
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    for (let i = 0; i < ROUNDS; i += 8) {
      const batch = Array.from({ length: Math.min(8, ROUNDS - i) }, () => fuzzed(rng));
      const answers = await Promise.all(batch.map((f) => send(f.req, f.raw, f.authorization)));
      answers.forEach((a, j) => {
        statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
        const what = `${batch[j].req.method} ${batch[j].req.path} ${String(batch[j].raw?.subarray(0, 200))}`;
        if (a.status >= 500) failures.push(`${a.status} for ${what}: ${a.text.slice(0, 200)}`);
        if (a.status >= 400 && !/^application\/json/.test(a.contentType))
          failures.push(`${a.status} without a JSON body for ${what}`);
        if (a.status >= 400) {
          const body = JSON.parse(a.text) as { error?: { code?: unknown; message?: unknown } };
          if (typeof body.error?.code !== "string" || typeof body.error?.message !== "string")
            failures.push(`${a.status} without {error: {code, message}} for ${what}: ${a.text.slice(0, 200)}`);
        }
      });
    }
    expect(failures.slice(0, 10)).toEqual([]);
    // The fuzzer reached past the first checks: some mutated requests were accepted, many refused.
    expect([...statuses.keys()].some((s) => s >= 200 && s < 300)).toBe(true);
    expect([...statuses.keys()].filter((s) => s >= 400).length).toBeGreaterThanOrEqual(3);
    // The runtime is still healthy.
    expect((await rt.call("GET", "/readyz")).status).toBe(200);
  });
});
