import Database from "better-sqlite3";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Client } from "pg";
import {
  AuditEvent,
  CaKey,
  ChallengeRecord,
  DiscoveryStatus,
  EnrollmentRecord,
  migrationsFor,
  NodeRecord,
  openStore,
  Store,
  StoreConfig,
} from "../../provider/runtime/store";
import { Postgres, startPostgres } from "../fixtures/postgres";

/** One empty database of a backend, which a test may open several times to play several replicas. */
interface TestDatabase {
  config: StoreConfig;
  /** Rows of the migration ledger, read behind the store's back. */
  ledger(): Promise<{ version: number; name: string; applied_at: string }[]>;
}

/** A backend the suite runs on. */
interface Backend {
  name: string;
  newDatabase(): Promise<TestDatabase>;
}

let tmp: string;
let pg: Postgres;
let databases = 0;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pd-store-"));
  pg = await startPostgres();
});
afterAll(async () => {
  await pg?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function pgQuery<T>(url: string, sql: string): Promise<T[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows as T[];
  } finally {
    await client.end();
  }
}

const LEDGER = "SELECT version, name, CAST(applied_at AS TEXT) AS applied_at FROM schema_migrations ORDER BY version";

const backends: Backend[] = [
  {
    name: "sqlite",
    newDatabase: async () => {
      // A parent directory that does not exist yet: the store must create it.
      const file = path.join(tmp, `db-${++databases}`, "state", "store.db");
      return {
        config: { type: "sqlite", path: file },
        ledger: async () => {
          const db = new Database(file, { readonly: true });
          try {
            return db.prepare(LEDGER).all() as { version: number; name: string; applied_at: string }[];
          } finally {
            db.close();
          }
        },
      };
    },
  },
  {
    name: "postgres",
    newDatabase: async () => {
      const name = `store_${++databases}`;
      await pgQuery(pg.url, `CREATE DATABASE ${name}`);
      const url = new URL(pg.url);
      url.pathname = `/${name}`;
      return { config: { type: "postgres", url: url.href }, ledger: () => pgQuery(url.href, LEDGER) };
    },
  },
];

const key = (n: number): CaKey => ({
  publicKey: `ssh-ed25519 AAAA${n}`,
  privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${n}`,
  createdAt: new Date(Date.UTC(2025, 0, 1, 0, 0, n)).toISOString(),
});

const node = (name: string, hostKey: string): NodeRecord => ({
  name,
  labels: { env: "prod", "aws/InstanceId": "i-0abc" },
  joinMethod: "ec2",
  token: "ec2-token",
  hostPublicKey: hostKey,
  principals: ["10.0.0.5", "ip-10-0-0-5.ec2.internal"],
  joinedAt: "2025-01-02T03:04:05.678Z",
});

const inAMinute = () => new Date(Date.now() + 60_000).toISOString();

describe.each(backends)("the $name store", (backend) => {
  let db: TestDatabase;
  let store: Store;
  const opened: Store[] = [];
  /** Another replica on the same database. */
  const open = async (config = db.config) => {
    const s = await openStore(config);
    opened.push(s);
    return s;
  };

  beforeEach(async () => {
    db = await backend.newDatabase();
    store = await open();
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
  });

  describe("resources", () => {
    it("are stored, read back by kind and key, listed, and deleted", async () => {
      const doc = { kind: "token", version: "v2", spec: { join_method: "ec2", allow: [{ aws_account: "1" }] } };
      const [token, installer] = await store.putResources([
        { kind: "token", key: "ec2-token", doc },
        { kind: "installer", key: "default", doc: { script: "#!/bin/sh\n" } },
      ]);
      expect(token).toEqual({
        kind: "token",
        key: "ec2-token",
        doc,
        revision: 1,
        createdAt: token.updatedAt,
        updatedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      });
      expect(await store.getResource("token", "ec2-token")).toEqual(token);
      expect(await store.getResource("installer", "ec2-token")).toBeUndefined();
      expect(await store.listResources()).toEqual([installer, token]);
      expect(await store.listResources("token")).toEqual([token]);
      expect(await store.listResources("discovery_config")).toEqual([]);

      expect(await store.deleteResource("token", "ec2-token")).toBe(true);
      expect(await store.deleteResource("token", "ec2-token")).toBe(false);
      expect(await store.getResource("token", "ec2-token")).toBeUndefined();
      expect(await store.listResources()).toEqual([installer]);
    });

    it("get a revision one higher on every write, keeping createdAt", async () => {
      const first = (await store.putResources([{ kind: "token", key: "t", doc: { n: 1 } }]))[0];
      await new Promise((r) => setTimeout(r, 5));
      await store.putResources([{ kind: "token", key: "t", doc: { n: 2 } }]);
      const third = (await store.putResources([{ kind: "token", key: "t", doc: { n: 3 } }]))[0];
      expect(third).toMatchObject({ revision: 3, doc: { n: 3 }, createdAt: first.createdAt });
      expect(third.updatedAt > first.updatedAt).toBe(true);
      expect(await store.getResource("token", "t")).toEqual(third);
    });

    it("written concurrently from two replicas each get their own revision", async () => {
      const replicas = [store, await open()];
      const writes = Array.from({ length: 10 }, (_, n) =>
        replicas[n % 2].putResources([{ kind: "token", key: "shared", doc: { n } }]),
      );
      const revisions = (await Promise.all(writes)).map(([r]) => r.revision).sort((a, b) => a - b);
      expect(revisions).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect((await store.getResource("token", "shared"))?.revision).toBe(10);
    });

    it.each([
      ["a document that cannot be serialised as JSON", { kind: "token", key: "c", doc: { big: 10n } }],
      ["an empty key, refused by a database constraint", { kind: "token", key: "", doc: {} }],
    ])("are not stored at all when a batch holds %s, and the previous version survives", async (_, bad) => {
      const before = (await store.putResources([{ kind: "token", key: "a", doc: { v: 1 } }]))[0];
      await expect(
        store.putResources([
          { kind: "token", key: "a", doc: { v: 2 } },
          { kind: "installer", key: "b", doc: { v: 1 } },
          bad,
        ]),
        // Not toThrow(): better-sqlite3's native half keeps the error class of the first test file that loaded
        // it, so in a shared jest process the error may come from another realm and fail an instanceof check.
      ).rejects.toHaveProperty("message", expect.any(String));
      expect(await store.getResource("token", "a")).toEqual(before);
      expect(await store.listResources()).toEqual([before]);
      // The failed transaction is over: the next write goes through and continues the old revision.
      const [after] = await store.putResources([{ kind: "token", key: "a", doc: { v: 3 } }]);
      expect(after).toMatchObject({ revision: 2, doc: { v: 3 } });
    });
    it("write and delete on condition: only if absent, or only over the revision read", async () => {
      const [created] = await store.putResources([{ kind: "token", key: "t", doc: { v: 1 }, ifRevision: 0 }]);
      expect(created.revision).toBe(1);
      const conflict = (expected: number, actual: number) =>
        expect.objectContaining({ code: "revision_mismatch", kind: "token", key: "t", expected, actual });
      // Exists already: refused, and nothing of its batch is written.
      await expect(
        store.putResources([
          { kind: "installer", key: "i", doc: {} },
          { kind: "token", key: "t", doc: { v: 2 }, ifRevision: 0 },
        ]),
      ).rejects.toEqual(conflict(0, 1));
      expect(await store.getResource("installer", "i")).toBeUndefined();
      await store.putResources([{ kind: "token", key: "t", doc: { v: 2 } }]); // another writer
      await expect(store.putResources([{ kind: "token", key: "t", doc: { v: 3 }, ifRevision: 1 }])).rejects.toEqual(
        conflict(1, 2),
      );
      expect(await store.deleteResource("token", "t", 1)).toBe(false);
      expect(await store.getResource("token", "t")).toMatchObject({ revision: 2, doc: { v: 2 } });
      const [third] = await store.putResources([{ kind: "token", key: "t", doc: { v: 3 }, ifRevision: 2 }]);
      expect(third).toMatchObject({ revision: 3, doc: { v: 3 } });
      await expect(store.putResources([{ kind: "token", key: "u", doc: {}, ifRevision: 1 }])).rejects.toEqual(
        expect.objectContaining({ key: "u", expected: 1, actual: 0 }),
      );
      expect(await store.deleteResource("token", "t", 3)).toBe(true);
      expect(await store.getResource("token", "t")).toBeUndefined();
    });

    it("let exactly one of several concurrent writes over one revision in, on two replicas", async () => {
      await store.putResources([{ kind: "token", key: "race", doc: { n: -1 } }]);
      const replicas = [store, await open()];
      const writes = Array.from({ length: 6 }, (_, n) =>
        replicas[n % 2].putResources([{ kind: "token", key: "race", doc: { n }, ifRevision: 1 }]).then(
          () => "written",
          (e: { code?: string }) => e.code,
        ),
      );
      expect((await Promise.all(writes)).sort()).toEqual([...Array(5).fill("revision_mismatch"), "written"]);
      expect((await store.getResource("token", "race"))?.revision).toBe(2);
    });
  });

  describe("nodes", () => {
    it("keep the first record when a second node of the same name joins", async () => {
      const first = node("123456789012-i-0abc", "ssh-ed25519 FIRST");
      expect(await store.insertNode(first)).toBe("inserted");
      expect(await store.insertNode({ ...first, hostPublicKey: "ssh-ed25519 SECOND", token: "other" })).toBe("exists");
      expect(await store.getNode(first.name)).toEqual(first);
      expect(await store.listNodes()).toEqual([first]);
      expect(await store.getNode("123456789012-i-0def")).toBeUndefined();
    });

    it("can join again once deleted", async () => {
      const n = node("n1", "ssh-ed25519 A");
      await store.insertNode(n);
      expect(await store.deleteNode("n1")).toBe(true);
      expect(await store.deleteNode("n1")).toBe(false);
      expect(await store.getNode("n1")).toBeUndefined();
      expect(await store.insertNode({ ...n, hostPublicKey: "ssh-ed25519 B" })).toBe("inserted");
      expect((await store.getNode("n1"))?.hostPublicKey).toBe("ssh-ed25519 B");
    });

    it("record a join's node, certificate record and audit row together, and nothing for a name that joined", async () => {
      const n = node("n-join", "ssh-ed25519 A");
      const at = "2026-12-01T10:00:00.000Z";
      const certificate = { node: "n-join", hostCaKey: "ssh-ed25519 HOSTCA", userCaKeys: ["ssh-ed25519 USERCA"], issuedAt: at }; // prettier-ignore
      const audit = { at, type: "join.accepted", source: "10.0.0.9", method: "iam", token: "t", node: "n-join" };
      expect(await store.recordJoin({ node: n, certificate, audit })).toBe("inserted");
      expect(await store.getNode("n-join")).toEqual(n);
      expect(await store.getNodeCertificate("n-join")).toMatchObject({ hostCaKey: "ssh-ed25519 HOSTCA" });
      expect(await store.listAudit(10)).toMatchObject([audit]);
      const again = { node: { ...n, hostPublicKey: "ssh-ed25519 B" }, certificate: { ...certificate, hostCaKey: "ssh-ed25519 OTHER" }, audit }; // prettier-ignore
      expect(await store.recordJoin(again)).toBe("exists");
      expect(await store.getNode("n-join")).toEqual(n);
      expect(await store.getNodeCertificate("n-join")).toMatchObject({ hostCaKey: "ssh-ed25519 HOSTCA" });
      expect(await store.listAudit(10)).toHaveLength(1);
    });

    it("keep none of a join's writes when its last one fails", async () => {
      const n = node("n-half", "ssh-ed25519 A");
      const at = "2026-12-01T10:00:00.000Z";
      const certificate = { node: "n-half", hostCaKey: "ssh-ed25519 HOSTCA", userCaKeys: [], issuedAt: at };
      // An audit row without a type breaks the table's NOT NULL: the node and certificate writes before it roll back.
      const audit = { at, type: null as unknown as string };
      // The rejection is read by its message: better-sqlite3's SqliteError comes from the realm of the first test file
      // that loaded the addon in this jest worker, so in later files it is no `Error` to jest's toThrow.
      const refused = await store.recordJoin({ node: n, certificate, audit }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(String((refused as { message?: unknown })?.message)).toMatch(/NOT NULL|null value/i);
      expect(await store.getNode("n-half")).toBeUndefined();
      expect(await store.getNodeCertificate("n-half")).toBeUndefined();
      expect(await store.listAudit(10)).toEqual([]);
      expect(await store.recordJoin({ node: n, certificate, audit: { ...audit, type: "join.accepted" } })).toBe("inserted"); // prettier-ignore
    });

    it("record joins made at once each all or nothing: a failing one alone refused, one name let in once", async () => {
      const at = "2026-12-01T10:00:00.000Z";
      const join = (name: string, key: string, type: string | null = "join.accepted") => ({
        node: node(name, key),
        certificate: { node: name, hostCaKey: "ssh-ed25519 HOSTCA", userCaKeys: [], issuedAt: at },
        audit: { at, type: type as string, node: name },
      });
      // Made in one turn of the event loop, as a DescribeInstances answer releases a batch of joins.
      const settled = await Promise.all(
        [
          join("g-1", "ssh-ed25519 A"),
          join("g-bad", "ssh-ed25519 B", null),
          join("g-2", "ssh-ed25519 C"),
          join("g-1", "ssh-ed25519 D"),
          join("g-3", "ssh-ed25519 E"),
        ].map((j) =>
          store.recordJoin(j).then(
            (r) => r,
            (e: { message?: string }) => `refused: ${e?.message}`,
          ),
        ),
      );
      expect(settled[0]).toBe("inserted");
      expect(settled[1]).toMatch(/^refused: .*(NOT NULL|null value)/i);
      expect(settled.slice(2)).toEqual(["inserted", "exists", "inserted"]);
      expect((await store.getNode("g-1"))?.hostPublicKey).toBe("ssh-ed25519 A");
      expect(await store.getNode("g-bad")).toBeUndefined();
      expect(await store.getNodeCertificate("g-bad")).toBeUndefined();
      expect((await store.listAudit(10)).map((a) => a.node).sort()).toEqual(["g-1", "g-2", "g-3"]);
      // Committed when answered: another connection to the same store sees every accepted join.
      const other = await open();
      expect((await other.listNodes()).map((x) => x.name).sort()).toEqual(["g-1", "g-2", "g-3"]);
    });

    it("let exactly one of 20 concurrent joins of one name from two replicas in", async () => {
      const replicas = [store, await open()];
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => replicas[i % 2].insertNode(node("racy", `ssh-ed25519 K${i}`))),
      );
      expect(results.filter((r) => r === "inserted")).toHaveLength(1);
      const winner = results.indexOf("inserted");
      expect((await store.getNode("racy"))?.hostPublicKey).toBe(`ssh-ed25519 K${winner}`);
    });
  });

  describe("challenges", () => {
    const challenge = (c: string, expiresAt = inAMinute()): ChallengeRecord => ({
      challenge: c,
      method: "iam",
      token: "iam-token",
      expiresAt,
    });

    it("are handed out once, then never again", async () => {
      const c = challenge("c1");
      await store.putChallenge(c);
      expect(await store.consumeChallenge("c1", new Date())).toEqual(c);
      expect(await store.consumeChallenge("c1", new Date())).toBeUndefined();
      expect(await store.consumeChallenge("never-issued", new Date())).toBeUndefined();
    });

    it("are refused once expired, including at the exact expiry instant", async () => {
      const now = new Date("2025-06-01T12:00:00.000Z");
      await store.putChallenge(challenge("old", "2025-06-01T11:59:59.000Z"));
      await store.putChallenge(challenge("edge", now.toISOString()));
      expect(await store.consumeChallenge("old", now)).toBeUndefined();
      expect(await store.consumeChallenge("edge", now)).toBeUndefined();
      // The clock is the caller's: the same challenge is still good a moment before it expires.
      await store.putChallenge(challenge("fresh", "2025-06-01T12:00:00.001Z"));
      expect(await store.consumeChallenge("fresh", now)).toMatchObject({ challenge: "fresh" });
    });

    it("expired and unused are deleted by the sweep, fresh ones kept and still usable", async () => {
      const now = new Date("2025-06-01T12:00:00.000Z");
      await store.putChallenge(challenge("abandoned", "2025-06-01T11:59:00.000Z"));
      await store.putChallenge(challenge("edge", now.toISOString()));
      await store.putChallenge(challenge("fresh", "2025-06-01T12:00:30.000Z"));
      expect(await store.deleteExpiredChallenges(now)).toBe(2);
      expect(await store.deleteExpiredChallenges(now)).toBe(0);
      // Deleted for good: not even a clock turned back finds them.
      expect(await store.consumeChallenge("abandoned", new Date("2025-06-01T11:00:00.000Z"))).toBeUndefined();
      expect(await store.consumeChallenge("fresh", now)).toMatchObject({ challenge: "fresh" });
    });

    it("are taken by exactly one of 20 concurrent consumers on two replicas", async () => {
      const replicas = [store, await open()];
      await store.putChallenge(challenge("contested"));
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => replicas[i % 2].consumeChallenge("contested", new Date())),
      );
      expect(results.filter((r) => r !== undefined)).toEqual([challenge("contested", expect.any(String))]);
    });
  });

  describe("certificate authorities", () => {
    it("are created by the first of several concurrent replicas, and every replica gets that key", async () => {
      expect(await store.getCertAuthority("host")).toBeUndefined();
      const replicas = [store, await open()];
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          replicas[i % 2].initCertAuthority({ type: "host", active: key(i), previous: [] }),
        ),
      );
      const stored = await store.getCertAuthority("host");
      expect(stored).toMatchObject({ type: "host", previous: [], revision: 1 });
      expect(Array.from({ length: 10 }, (_, i) => key(i))).toContainEqual(stored?.active);
      for (const r of results) expect(r).toEqual(stored);
      // The user CA is a separate authority, not a second try at the host CA.
      const user = await store.initCertAuthority({ type: "user", active: key(99), previous: [] });
      expect(user).toEqual({ type: "user", active: key(99), previous: [], revision: 1 });
      expect(await store.getCertAuthority("host")).toEqual(stored);
    });

    it("refuse an update made from a stale revision and keep the newer state", async () => {
      const v1 = await store.initCertAuthority({ type: "user", active: key(1), previous: [] });
      const rotated = { ...v1, active: key(2), previous: [key(1)] };
      expect(await store.updateCertAuthority(rotated)).toBe(true);
      const v2 = await store.getCertAuthority("user");
      expect(v2).toEqual({ ...rotated, revision: 2 });

      expect(await store.updateCertAuthority({ ...v1, active: key(3) })).toBe(false);
      expect(await store.getCertAuthority("user")).toEqual(v2);
      expect(await store.updateCertAuthority({ ...v1, type: "host" })).toBe(false);
      expect(await store.getCertAuthority("host")).toBeUndefined();
    });
  });

  it("lists audit events newest first, at most `limit` of them", async () => {
    const events: AuditEvent[] = [
      { at: "2025-01-01T00:00:01.000Z", type: "join.accepted", source: "127.0.0.1", method: "ec2", node: "n1" },
      { at: "2025-01-01T00:00:02.000Z", type: "join.refused", method: "iam", code: "token_expired", reason: "gone" },
      { at: "2025-01-01T00:00:03.000Z", type: "join.accepted", token: "t", node: "n2" },
      { at: "2025-01-01T00:00:04.000Z", type: "ca.rotated" },
    ];
    for (const e of events) await store.appendAudit(e);
    const all = await store.listAudit(100);
    expect(all).toEqual([...events].reverse().map((e) => ({ ...e, id: expect.any(Number) })));
    expect(all.map((e) => e.id)).toEqual([...all.map((e) => e.id)].sort((a, b) => b! - a!));
    expect(await store.listAudit(2)).toEqual(all.slice(0, 2));
    expect(await store.listAudit(0)).toEqual([]);
  });

  it("prunes audit events older than the retention, keeping newer ones and their order", async () => {
    for (const at of ["2025-01-01T00:00:00.000Z", "2025-01-09T23:59:59.999Z", "2025-01-10T00:00:00.000Z"])
      await store.appendAudit({ at, type: "join.refused", code: "token_not_allowed" });
    await store.appendAudit({ at: "2025-02-01T00:00:00.000Z", type: "join.accepted" });
    expect(await store.pruneAudit(new Date("2025-01-10T00:00:00.000Z"))).toBe(2);
    expect((await store.listAudit(10)).map((e) => e.at)).toEqual([
      "2025-02-01T00:00:00.000Z",
      "2025-01-10T00:00:00.000Z",
    ]);
    expect(await store.pruneAudit(new Date("2025-01-10T00:00:00.000Z"))).toBe(0);
  });

  it("keeps one enrollment per cloud, account, region and instance, replaced whole on upsert", async () => {
    const base: EnrollmentRecord = {
      cloud: "aws",
      account: "123456789012",
      region: "us-east-1",
      instanceId: "i-0abc",
      nodeName: "123456789012-i-0abc",
      status: "failed",
      reason: "SSM agent not online",
      detail: { commandId: "c-1" },
      updatedAt: "2025-01-01T00:00:00.000Z",
    };
    const otherRegion = { ...base, region: "eu-west-1", status: "enrolled", reason: undefined, detail: undefined };
    await store.upsertEnrollment(base);
    await store.upsertEnrollment(otherRegion);
    const enrolled: EnrollmentRecord = { ...base, status: "enrolled", updatedAt: "2025-01-01T00:05:00.000Z" };
    delete enrolled.reason;
    delete enrolled.detail;
    await store.upsertEnrollment(enrolled);
    expect(await store.listEnrollments()).toEqual([otherRegion, enrolled]);
    expect((await store.listEnrollments())[1]).not.toHaveProperty("reason");
  });

  it("finds a node's enrollment records by node name, newest first", async () => {
    const record = (region: string, at: string): EnrollmentRecord => ({
      cloud: "aws",
      account: "123456789012",
      region,
      instanceId: "i-0node",
      nodeName: "123456789012-i-0node",
      status: "enrolled",
      updatedAt: at,
    });
    const older = record("us-east-1", "2025-01-01T00:00:00.000Z");
    const newer = record("eu-west-1", "2025-02-01T00:00:00.000Z");
    await store.upsertEnrollment(older);
    await store.upsertEnrollment(newer);
    await store.upsertEnrollment({ ...older, instanceId: "i-0other", nodeName: "123456789012-i-0other" });
    expect(await store.enrollmentsOfNode("123456789012-i-0node")).toEqual([newer, older]);
    expect(await store.enrollmentsOfNode("123456789012-i-0none")).toEqual([]);
  });

  it("lets exactly one of many concurrent claims of an instance win, and respects the caller's rule", async () => {
    const claim = (n: number): EnrollmentRecord => ({
      cloud: "aws",
      account: "123456789012",
      region: "us-east-1",
      instanceId: "i-0race",
      nodeName: "123456789012-i-0race",
      status: "installing",
      detail: { by: n },
      updatedAt: new Date().toISOString(),
    });
    const free = (cur: EnrollmentRecord | undefined) => cur === undefined || cur.status === "failed";
    const won = await Promise.all(Array.from({ length: 20 }, (_, i) => store.claimEnrollment(claim(i), free)));
    expect(won.filter(Boolean)).toHaveLength(1);
    const winner = (await store.listEnrollments())[0];
    expect(winner.detail).toEqual({ by: won.indexOf(true) });
    await store.upsertEnrollment({ ...winner, status: "failed" });
    expect(await store.claimEnrollment(claim(99), free)).toBe(true);
    expect(await store.claimEnrollment(claim(100), free)).toBe(false);
  });

  describe("discovery status (migration 4)", () => {
    const st = (found: number): DiscoveryStatus => ({
      ...{ state: "running", error_message: "", last_sync_time: "2025-03-01T00:00:00.000Z" },
      ...{ found, enrolled: found, failed: 0 },
    });
    const config = { kind: "discovery_config", key: "c", doc: { spec: { discovery_group: "g" } } };

    it("is kept beside the document: writing it never bumps the revision, a re-apply keeps it, a delete drops it", async () => {
      const [first] = await store.putResources([config]);
      await store.putDiscoveryStatus("c", st(3), new Date());
      await store.putDiscoveryStatus("c", st(4), new Date());
      expect(await store.getResource("discovery_config", "c")).toEqual(first);
      const [again] = await store.putResources([config]);
      expect(again.revision).toBe(2);
      expect((await store.listDiscoveryStatus()).get("c")).toEqual(st(4));
      expect(await store.deleteResource("discovery_config", "c")).toBe(true);
      expect(await store.listDiscoveryStatus()).toEqual(new Map());
    });

    it("is not written for a config that does not exist (deleted while a pass ran)", async () => {
      await store.putDiscoveryStatus("gone", st(1), new Date());
      expect(await store.listDiscoveryStatus()).toEqual(new Map());
    });

    it("has a watermark that moves on every write and delete of the kind, and only then, on every replica", async () => {
      const other = await open();
      const w0 = await store.resourceWatermark("discovery_config");
      await store.putResources([config]);
      const w1 = await other.resourceWatermark("discovery_config");
      await store.putResources([{ kind: "token", key: "t", doc: {} }]);
      await store.putDiscoveryStatus("c", st(1), new Date());
      expect(await store.resourceWatermark("discovery_config")).toBe(w1);
      await other.putResources([config]);
      const w2 = await store.resourceWatermark("discovery_config");
      await store.deleteResource("discovery_config", "c");
      const w3 = await other.resourceWatermark("discovery_config");
      // Each step differs from the one before it, which is all a watcher compares.
      expect([w1 !== w0, w2 !== w1, w3 !== w2]).toEqual([true, true, true]);
    });

    it("keeps a failing scope's first_seen, moves its last_seen, and forgets it once the scope succeeds", async () => {
      const scope = { cloud: "aws", account: "123456789012", region: "eu-west-1" };
      const denied = { ...scope, error: { code: "AccessDenied", message: "assuming role r: not authorized" } };
      await store.recordScopeResults([denied], new Date("2025-03-01T00:00:00.000Z"));
      await store.recordScopeResults([denied], new Date("2025-03-01T00:05:00.000Z"));
      expect(await store.listScopeErrors()).toEqual([
        {
          ...scope,
          ...{ code: "AccessDenied", message: "assuming role r: not authorized" },
          ...{ firstSeen: "2025-03-01T00:00:00.000Z", lastSeen: "2025-03-01T00:05:00.000Z" },
        },
      ]);
      await store.recordScopeResults([scope], new Date("2025-03-01T00:10:00.000Z"));
      expect(await store.listScopeErrors()).toEqual([]);
    });
  });

  describe("migrations", () => {
    it("running migrate() again changes neither the schema ledger nor the data", async () => {
      await store.putResources([{ kind: "token", key: "t", doc: { v: 1 } }]);
      const ledger = await db.ledger();
      expect(ledger.map((m) => m.version)).toEqual(migrationsFor("sqlite").map((m) => m.version));
      await store.migrate();
      await store.migrate();
      expect(await db.ledger()).toEqual(ledger);
      expect((await store.getResource("token", "t"))?.doc).toEqual({ v: 1 });
    });

    it("several replicas migrating a new database at the same moment all succeed", async () => {
      const fresh = await backend.newDatabase();
      const replicas = await Promise.all(Array.from({ length: 5 }, () => open(fresh.config)));
      expect((await fresh.ledger()).map((m) => m.version)).toEqual(migrationsFor("postgres").map((m) => m.version));
      await replicas[0].putResources([{ kind: "token", key: "t", doc: { v: 1 } }]);
      expect((await replicas[4].getResource("token", "t"))?.doc).toEqual({ v: 1 });
    });

    it("keep the data when the store is closed and opened again", async () => {
      const [res] = await store.putResources([{ kind: "token", key: "t", doc: { v: 1 } }]);
      await store.insertNode(node("n1", "ssh-ed25519 A"));
      const ca = await store.initCertAuthority({ type: "host", active: key(1), previous: [] });
      await store.appendAudit({ at: "2025-01-01T00:00:00.000Z", type: "join.accepted" });
      await store.close();

      const reopened = await open();
      expect(await reopened.getResource("token", "t")).toEqual(res);
      expect(await reopened.getNode("n1")).toEqual(node("n1", "ssh-ed25519 A"));
      expect(await reopened.getCertAuthority("host")).toEqual(ca);
      expect(await reopened.listAudit(10)).toMatchObject([{ type: "join.accepted" }]);
    });
  });
});
