import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Client } from "pg";
import { ConfigScopeStatus, openStore, ScopeKey, Store, StoreConfig } from "../../provider/runtime/store";
import { Postgres, startPostgres } from "../fixtures/postgres";

/**
 * Scope leases (migration 7) on both backends, with two store handles playing two replicas on one database: one
 * grant per scope, renewal by the holder only, takeover after expiry, release, heartbeats. Then a config's status
 * per scope (migration 8), which those replicas write for the scopes they list and read summed.
 */
let tmp: string;
let pg: Postgres;
let databases = 0;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pd-leases-"));
  pg = await startPostgres();
});
afterAll(async () => {
  await pg?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const backends: { name: string; newDatabase: () => Promise<StoreConfig> }[] = [
  { name: "sqlite", newDatabase: async () => ({ type: "sqlite", path: path.join(tmp, `db-${++databases}.db`) }) },
  {
    name: "postgres",
    newDatabase: async () => {
      const name = `leases_${++databases}`;
      const client = new Client({ connectionString: pg.url });
      await client.connect();
      await client.query(`CREATE DATABASE ${name}`);
      await client.end();
      const url = new URL(pg.url);
      url.pathname = `/${name}`;
      return { type: "postgres", url: url.href };
    },
  },
];

const T0 = Date.parse("2025-03-01T00:00:00.000Z");
const at = (s: number) => new Date(T0 + s * 1000);
const scope = (region: string): ScopeKey => ({ cloud: "aws", group: "g", account: "123456789012", region });

describe.each(backends)("scope leases on the $name store", (backend) => {
  let a: Store;
  let b: Store;

  beforeEach(async () => {
    const config = await backend.newDatabase();
    a = await openStore(config);
    b = await openStore(config);
  });
  afterEach(async () => {
    await a.close();
    await b.close();
  });

  it("grants a free scope to exactly one of many replicas racing for it", async () => {
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        (i % 2 ? a : b).acquireScopeLease(scope("us-east-1"), `r${i}`, at(0), at(30)),
      ),
    );
    const winners = new Set(answers.map((l) => l.holder));
    // Every caller is told the same holder, and that holder is one of the callers.
    expect(winners.size).toBe(1);
    expect([...winners][0]).toMatch(/^r\d+$/);
    expect(answers.every((l) => l.expiresAt === at(30).toISOString())).toBe(true);
  });

  it("lets the holder renew, keeps its acquired_at, refuses others until expiry, then hands the scope over", async () => {
    expect(await a.acquireScopeLease(scope("eu-west-1"), "A", at(0), at(30))).toEqual({
      ...scope("eu-west-1"),
      holder: "A",
      acquiredAt: at(0).toISOString(),
      expiresAt: at(30).toISOString(),
    });
    expect(await a.acquireScopeLease(scope("eu-west-1"), "A", at(10), at(40))).toMatchObject({
      holder: "A",
      acquiredAt: at(0).toISOString(),
      expiresAt: at(40).toISOString(),
    });
    // B is told who holds it and until when.
    expect(await b.acquireScopeLease(scope("eu-west-1"), "B", at(39), at(69))).toMatchObject({
      holder: "A",
      expiresAt: at(40).toISOString(),
    });
    expect(await b.acquireScopeLease(scope("eu-west-1"), "B", at(40), at(70))).toMatchObject({
      holder: "B",
      acquiredAt: at(40).toISOString(),
      expiresAt: at(70).toISOString(),
    });
    // A's renewal of a lease it lost changes nothing.
    expect(await a.renewScopeLeases("A", [scope("eu-west-1")], at(100))).toBe(0);
    expect(await b.renewScopeLeases("B", [scope("eu-west-1")], at(100))).toBe(1);
    expect((await a.listScopeLeases("g"))[0]).toMatchObject({ holder: "B", expiresAt: at(100).toISOString() });
  });

  it("frees a released scope at once, for the holder's scopes only", async () => {
    await a.acquireScopeLease(scope("us-east-1"), "A", at(0), at(30));
    await b.acquireScopeLease(scope("us-west-2"), "B", at(0), at(30));
    expect(await a.releaseScopeLeases("A", [scope("us-east-1"), scope("us-west-2")], at(5))).toBe(1);
    expect(await b.acquireScopeLease(scope("us-east-1"), "B", at(5), at(35))).toMatchObject({ holder: "B" });
    expect((await a.listScopeLeases()).map((l) => [l.region, l.holder])).toEqual([
      ["us-east-1", "B"],
      ["us-west-2", "B"],
    ]);
  });

  it("keeps groups and clouds apart: the same account and region in another group is another lease", async () => {
    await a.acquireScopeLease(scope("us-east-1"), "A", at(0), at(30));
    expect(await b.acquireScopeLease({ ...scope("us-east-1"), group: "h" }, "B", at(0), at(30))).toMatchObject({
      holder: "B",
    });
    expect(await b.acquireScopeLease({ ...scope("us-east-1"), cloud: "gcp" }, "B", at(0), at(30))).toMatchObject({
      holder: "B",
    });
    expect((await a.listScopeLeases("g")).map((l) => [l.cloud, l.holder])).toEqual([
      ["aws", "A"],
      ["gcp", "B"],
    ]);
  });

  it("counts the replicas alive now, forgets one that left or went quiet, and prunes what expired long ago", async () => {
    await a.putReplicaHeartbeat({
      group: "g",
      runtimeId: "A",
      seenAt: at(0).toISOString(),
      expiresAt: at(30).toISOString(),
    });
    await b.putReplicaHeartbeat({
      group: "g",
      runtimeId: "B",
      seenAt: at(0).toISOString(),
      expiresAt: at(20).toISOString(),
    });
    await b.putReplicaHeartbeat({
      group: "h",
      runtimeId: "C",
      seenAt: at(0).toISOString(),
      expiresAt: at(90).toISOString(),
    });
    expect((await b.listReplicas("g", at(10))).map((r) => r.runtimeId)).toEqual(["A", "B"]);
    expect((await b.listReplicas("g", at(25))).map((r) => r.runtimeId)).toEqual(["A"]);
    expect((await b.listReplicas(undefined, at(25))).map((r) => r.runtimeId)).toEqual(["A", "C"]);
    await a.removeReplica("g", "A");
    expect((await b.listReplicas("g", at(10))).map((r) => r.runtimeId)).toEqual(["B"]);
    await a.acquireScopeLease(scope("us-east-1"), "A", at(0), at(30));
    await a.acquireScopeLease(scope("us-west-2"), "A", at(0), at(60));
    // Pruned before 40 s: the lease that expired at 30 s and B's heartbeat (20 s); not group h.
    expect(await a.pruneScopeLeases("g", at(40))).toBe(2);
    expect((await a.listScopeLeases("g")).map((l) => l.region)).toEqual(["us-west-2"]);
    expect((await a.listReplicas(undefined, at(0))).map((r) => r.runtimeId)).toEqual(["C"]);
  });
});

describe.each(backends)("a discovery_config's status per scope on the $name store", (backend) => {
  let a: Store;
  let b: Store;
  const config = { kind: "discovery_config", key: "c", doc: { spec: { discovery_group: "g" } } };
  const denied = "aws 123456789012/eu-west-1: AccessDenied: not authorized. Grant the role.";
  /** A row `holder` wrote at `s` seconds, fresh for 30 s. */
  const row = (region: string, holder: string, s: number, figures: Partial<ConfigScopeStatus> = {}) => ({
    ...{ config: "c", cloud: "aws", account: "123456789012", region, holder, position: 0 },
    ...{ found: 0, enrolled: 0, failed: 0, error: "", lastSync: at(s).toISOString() },
    ...{ freshUntil: at(s + 30).toISOString(), ...figures },
  });

  beforeEach(async () => {
    const db = await backend.newDatabase();
    a = await openStore(db);
    b = await openStore(db);
    await a.putResources([config]);
    await a.putDiscoveryStatus("c", { state: "running", error_message: "", found: 0, enrolled: 0, failed: 0 }, at(0));
  });
  afterEach(async () => {
    await a.close();
    await b.close();
  });

  it("shows the sum of every replica's fresh scopes, with their errors, and forgets a scope once its row is stale", async () => {
    await a.putConfigScopes("c", [
      row("us-east-1", "A", 0, { found: 2, enrolled: 1, failed: 1 }),
      row("eu-west-1", "A", 0, { error: denied, position: 1 }),
    ]);
    await b.putConfigScopes("c", [row("sa-east-1", "B", 5, { found: 3, enrolled: 3 })]);
    expect((await b.listDiscoveryStatus(at(10))).get("c")).toEqual({
      ...{ state: "error", error_message: denied, last_sync_time: at(5).toISOString() },
      ...{ found: 5, enrolled: 4, failed: 1, discovered_by: "A, B" },
    });
    // 31 s: A's rows (written at 0 s) are no longer fresh; B's are.
    expect((await a.listDiscoveryStatus(at(31))).get("c")).toEqual({
      ...{ state: "running", error_message: "", last_sync_time: at(5).toISOString() },
      ...{ found: 3, enrolled: 3, failed: 0, discovered_by: "B" },
    });
    // A holder that begins a pass keeps its rows fresh.
    await a.extendConfigScopes("c", "A", at(60));
    expect((await a.listConfigScopes("c")).map((r) => [r.region, r.freshUntil])).toEqual([
      ["eu-west-1", at(60).toISOString()],
      ["sa-east-1", at(35).toISOString()],
      ["us-east-1", at(60).toISOString()],
    ]);
  });

  it("lets the newest writer own a scope, and prunes what no pass reports any more: the writer's own, or stale rows", async () => {
    await a.putConfigScopes("c", [row("us-east-1", "A", 0, { found: 1 }), row("eu-west-1", "A", 0)]);
    await a.putConfigScopes("c", [row("ap-south-1", "A", 35)]);
    await b.putConfigScopes("c", [row("us-west-2", "B", 0), row("sa-east-1", "B", 0)]);
    // B takes us-east-1 over. A's next pass lists eu-west-1 and leaves us-east-1 and us-west-2 to B: gone are A's own
    // ap-south-1 (fresh, but no longer reported) and B's stale sa-east-1 (no pass reports it any more).
    await b.putConfigScopes("c", [row("us-east-1", "B", 40, { found: 2 })]);
    await a.putConfigScopes("c", [row("eu-west-1", "A", 41)], {
      holder: "A",
      reported: [row("us-east-1", "B", 41), row("us-west-2", "B", 41)],
      now: at(41),
    });
    expect((await b.listConfigScopes()).map((r) => [r.region, r.holder, r.found])).toEqual([
      ["eu-west-1", "A", 0],
      ["us-east-1", "B", 2],
      ["us-west-2", "B", 0],
    ]);
    // Unreported, B's stale us-west-2 goes; B's fresh us-east-1 is not A's to drop.
    await a.putConfigScopes("c", [row("eu-west-1", "A", 42)], { holder: "A", reported: [], now: at(42) });
    expect((await b.listConfigScopes()).map((r) => r.region)).toEqual(["eu-west-1", "us-east-1"]);
  });

  it("keeps no rows for a config that is gone, and drops them with the config", async () => {
    await a.putConfigScopes("gone", [row("us-east-1", "A", 0)]);
    await a.putConfigScopes("c", [row("us-east-1", "A", 0)]);
    expect((await b.listConfigScopes()).map((r) => r.config)).toEqual(["c"]);
    await b.deleteResource("discovery_config", "c");
    expect(await a.listConfigScopes()).toEqual([]);
    expect(await a.listDiscoveryStatus()).toEqual(new Map());
  });
});
