import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { newHostKey } from "../fixtures/joins";
import { Postgres, startPostgres } from "../fixtures/postgres";
import { startTestRuntime, TestRuntime } from "../fixtures/runtime";

const SECRET = "pg-secret-61c0de93aa";

describe("two runtime replicas sharing one PostgreSQL database", () => {
  let pg: Postgres;
  let a: TestRuntime;
  let b: TestRuntime;

  beforeAll(async () => {
    pg = await startPostgres();
    const storage = { type: "postgres", url: pg.url };
    // Started together: both race to create the schema and the certificate authorities.
    [a, b] = await Promise.all([
      startTestRuntime({ storage }, { dir: fs.mkdtempSync(path.join(os.tmpdir(), "pd-replica-a-")) }),
      startTestRuntime({ storage }, { dir: fs.mkdtempSync(path.join(os.tmpdir(), "pd-replica-b-")) }),
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

  it("show the same inventory and audit log", async () => {
    const [na, nb] = await Promise.all([
      a.call("GET", "/v1/nodes", undefined, { admin: true }),
      b.call("GET", "/v1/nodes", undefined, { admin: true }),
    ]);
    expect(na.body.nodes).toHaveLength(4);
    expect(nb.body).toEqual(na.body);
  });
});
