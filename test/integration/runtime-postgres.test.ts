import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { CloudEnrollment } from "../../provider/enroll/clouds";
import { newHostKey } from "../fixtures/joins";
import { Postgres, startPostgres } from "../fixtures/postgres";
import { startTestRuntime, TestRuntime } from "../fixtures/runtime";

const SECRET = "pg-secret-61c0de93aa";
const INSTANCE = { cloud: "aws" as const, account: "123456789012", region: "us-east-1", instanceId: "i-0pg" };

describe("two runtime replicas sharing one PostgreSQL database", () => {
  let pg: Postgres;
  let a: TestRuntime;
  let b: TestRuntime;

  beforeAll(async () => {
    pg = await startPostgres();
    const storage = { type: "postgres", url: pg.url };
    // Started together: both race to create the schema and the certificate authorities.
    // B alone runs a discovery loop, for group pg-fleet, over a fake cloud whose one instance fails to install.
    const failing: CloudEnrollment = {
      fetch: async () => ({
        candidates: [
          { ...INSTANCE, nodeName: `${INSTANCE.account}-${INSTANCE.instanceId}`, state: "running", tags: {} },
        ],
        scopes: [{ cloud: "aws", account: INSTANCE.account, region: INSTANCE.region, instances: 1 }],
      }),
      install: async () => [{ ...INSTANCE, status: "failed", failureClass: "script-failure", reason: "exit 1" }],
    };
    [a, b] = await Promise.all([
      startTestRuntime({ storage }, { dir: fs.mkdtempSync(path.join(os.tmpdir(), "pd-replica-a-")) }),
      startTestRuntime(
        { storage, discovery_service: { discovery_group: "pg-fleet", poll_interval: "10m" } },
        {
          dir: fs.mkdtempSync(path.join(os.tmpdir(), "pd-replica-b-")),
          runtime: { discovery: { clouds: (c) => (c === "aws" ? failing : undefined) } },
        },
      ),
    ]);
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    for (const rt of [a, b]) if (rt) fs.rmSync(rt.dir, { recursive: true, force: true });
    await pg?.stop();
  });

  it("share one pair of certificate authorities", async () => {
    const key = newHostKey();
    const docs = `kind: token\nversion: v2\nmetadata: {name: ${SECRET}}\nspec: {roles: [Node], join_method: token}\n`;
    expect((await a.call("PUT", "/v1/resources", docs, { admin: true, contentType: "application/yaml" })).status).toBe(
      200,
    );
    const joined = await b.call("POST", "/v1/join", { method: "token", token: SECRET, host_public_key: key });
    expect(joined.status).toBe(200);
    const again = await a.call("POST", "/v1/join", { method: "token", token: SECRET, host_public_key: newHostKey() });
    expect(again.body.host_ca_public_keys).toEqual(joined.body.host_ca_public_keys);
    expect(again.body.user_ca_public_keys).toEqual(joined.body.user_ca_public_keys);
  });

  it("refuse a node on one replica that joined through the other", async () => {
    const key = newHostKey();
    expect((await a.call("POST", "/v1/join", { method: "token", token: SECRET, host_public_key: key })).status).toBe(
      200,
    );
    const second = await b.call("POST", "/v1/join", { method: "token", token: SECRET, host_public_key: key });
    expect([second.status, second.body.error.reason]).toEqual([403, "already_joined"]);
  });

  it("let exactly one of many concurrent joins of the same node through, across replicas", async () => {
    const key = newHostKey();
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? a : b).call("POST", "/v1/join", { method: "token", token: SECRET, host_public_key: key }),
      ),
    );
    expect(answers.filter((r) => r.status === 200)).toHaveLength(1);
    expect(answers.filter((r) => r.status === 403 && r.body.error.reason === "already_joined")).toHaveLength(9);
  });

  it("scan a discovery_config applied through the other replica at once, and both show its status and task", async () => {
    const config =
      "kind: discovery_config\nversion: v1\nmetadata: {name: pg-config}\n" +
      "spec: {discovery_group: pg-fleet, aws: [{regions: [us-east-1]}]}\n";
    // The token the matcher installs with: without it the pass would refuse before sending (join-token-missing).
    const token =
      "kind: token\nversion: v2\nmetadata: {name: aws-discovery-iam-token}\n" +
      'spec: {roles: [Node], join_method: iam, allow: [{aws_account: "123456789012"}]}\n';
    expect((await a.call("PUT", "/v1/resources", token, { admin: true, contentType: "application/yaml" })).status).toBe(
      200,
    );
    const applied = Date.now();
    expect(
      (await a.call("PUT", "/v1/resources", config, { admin: true, contentType: "application/yaml" })).status,
    ).toBe(200);
    // B polls the store's watermark every second; its 10-minute poll timer plays no part.
    let status;
    while (Date.now() - applied < 15_000) {
      status = (await a.call("GET", "/v1/resources/discovery_config/pg-config", undefined, { admin: true })).body
        .status;
      if (status?.state === "running") break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(status).toMatchObject({ state: "running", found: 1, enrolled: 0, failed: 1 });
    expect(status.discovered_by).toBe(b.runtime.runtimeId);
    expect(a.runtime.loop).toBeUndefined();
    const tasks = (await a.call("GET", "/v1/tasks", undefined, { admin: true })).body.tasks;
    expect(tasks).toMatchObject([
      {
        cloud: "aws",
        issue_type: "script-failure",
        scope: "123456789012/us-east-1",
        instances: [{ instance_id: "i-0pg" }],
      },
    ]);
  });

  it("show the same inventory and audit log", async () => {
    const [na, nb] = await Promise.all([
      a.call("GET", "/v1/nodes", undefined, { admin: true }),
      b.call("GET", "/v1/nodes", undefined, { admin: true }),
    ]);
    expect(na.body.nodes).toHaveLength(4);
    expect(nb.body).toEqual(na.body);
  });
});
