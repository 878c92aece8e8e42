/**
 * Housekeeping as an operator sees it: audit events past `audit.retention` leave GET /v1/audit at start and on the
 * timer, and challenges nobody used leave the store, counted on /metrics. The runtime's clock is injected, so
 * "two hours later" takes a few milliseconds.
 */
import Database from "better-sqlite3";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { openStore } from "../../provider/runtime/store";
import { newHostKey } from "../fixtures/joins";
import { startTestRuntime, TestRuntime } from "../fixtures/runtime";

const HOUR = 3600_000;
const IAM_TOKEN = `kind: token\nversion: v2\nmetadata: {name: iam-token}\nspec: {roles: [Node], join_method: iam, allow: [{aws_account: "123456789012"}]}\n`;

/** A clock the test moves forward. */
function testClock() {
  let offset = 0;
  return { now: () => new Date(Date.now() + offset), advance: (ms: number) => (offset += ms) };
}

/** Polls `probe` until it returns true, for at most two seconds. */
async function eventually(probe: () => Promise<boolean> | boolean): Promise<void> {
  for (const deadline = Date.now() + 2000; !(await probe());) {
    if (Date.now() > deadline) throw new Error("not within 2 s");
    await new Promise((r) => setTimeout(r, 25));
  }
}

const deleted = async (rt: TestRuntime, table: string) =>
  Number(
    new RegExp(`discovery_housekeeping_deleted_total\\{table="${table}"\\} (\\d+)`).exec(
      (await rt.call("GET", "/metrics")).text,
    )?.[1],
  );

describe("audit retention", () => {
  let rt: TestRuntime | undefined;
  afterEach(async () => {
    await rt?.stop();
    rt = undefined;
  });

  it("deletes events older than audit.retention when the runtime starts", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-retention-"));
    const store = await openStore({ type: "sqlite", path: path.join(dir, "data", "discovery.db") });
    const ago = (ms: number) => new Date(Date.now() - ms).toISOString();
    await store.appendAudit({ at: ago(25 * HOUR), type: "join.refused", code: "token_not_allowed" });
    await store.appendAudit({ at: ago(23 * HOUR), type: "join.accepted", node: "kept" });
    await store.close();

    rt = await startTestRuntime({ audit: { retention: "24h" } }, { dir });
    const audit = await rt.call("GET", "/v1/audit", undefined, { admin: true });
    expect(audit.body.events).toEqual([expect.objectContaining({ type: "join.accepted", node: "kept" })]);
    expect(await deleted(rt, "audit_events")).toBe(1);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("deletes them on the timer once they age past the retention, keeping newer ones", async () => {
    const clock = testClock();
    rt = await startTestRuntime(
      { audit: { retention: "1h" } },
      { runtime: { now: clock.now, housekeepingIntervalMs: 50 } },
    );
    const probe = { method: "token", token: "no-such-token", host_public_key: newHostKey() };
    expect((await rt.call("POST", "/v1/join", probe)).status).toBe(403);
    const events = async () => (await rt!.call("GET", "/v1/audit", undefined, { admin: true })).body.events;
    // Several passes run while the event is young: it stays.
    await new Promise((r) => setTimeout(r, 200));
    const [old] = await events();
    expect(old).toMatchObject({ type: "join.refused", code: "token_not_allowed" });

    clock.advance(HOUR + 60_000);
    expect((await rt.call("POST", "/v1/join", { ...probe, token: "newer" })).status).toBe(403);
    await eventually(async () => {
      const left = await events();
      return left.length === 1 && left[0].id > old.id;
    });
    expect(await deleted(rt, "audit_events")).toBe(1);
  });
});

describe("challenges nobody used", () => {
  let rt: TestRuntime;
  const clock = testClock();
  const stored = () => {
    const db = new Database(path.join(rt.dir, "data", "discovery.db"), { readonly: true });
    try {
      return (db.prepare("SELECT COUNT(*) AS n FROM challenges").get() as { n: number }).n;
    } finally {
      db.close();
    }
  };
  beforeAll(async () => {
    rt = await startTestRuntime(
      { join: { rate_limit: { requests_per_minute: 100000, burst: 100000 } } },
      { runtime: { now: clock.now, housekeepingIntervalMs: 50 } },
    );
    await rt.call("PUT", "/v1/resources", IAM_TOKEN, { admin: true, contentType: "application/yaml" });
  });
  afterAll(async () => rt?.stop());

  it("are deleted from the store on the timer once expired, and only then", async () => {
    for (let i = 0; i < 5; i++)
      expect((await rt.call("POST", "/v1/join/challenge", { method: "iam", token: "iam-token" })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 200));
    expect(stored()).toBe(5);

    clock.advance(61_000);
    const fresh = await rt.call("POST", "/v1/join/challenge", { method: "iam", token: "iam-token" });
    expect(fresh.status).toBe(200);
    await eventually(() => stored() === 1);
    expect(await deleted(rt, "challenges")).toBe(5);
  });
});
