import pino from "pino";
import { AcquireScope, CloudEnrollment, scopeLeftToOthers } from "../../provider/enroll/clouds";
import type { Candidate, ScopeReport } from "../../provider/enroll/types";
import { AwsMatcher, discoveryServiceSection } from "../../provider/model";
import { DiscoveryLoop } from "../../provider/runtime/discovery-loop";
import { leaseTtlMs, ScopeLeaseKeeper } from "../../provider/runtime/scope-leases";
import { SqliteStore } from "../../provider/runtime/store";

/**
 * Replicas share scans: several discovery loops of one group on one store (in-memory SQLite, the same lease
 * statements PostgreSQL runs), over fake clouds that record which replica listed which region. The clock is jest's
 * and moves only when a test says so; each replica's round is run by hand, so nothing depends on timing.
 */
const ACCOUNT = "123456789012";
const POLL_S = 10;
const REGIONS = ["ap-south-1", "eu-central-1", "eu-west-1", "sa-east-1", "us-east-1", "us-west-2"];
const T0 = Date.parse("2025-03-01T00:00:00Z");

interface Replica {
  id: string;
  loop: DiscoveryLoop;
  logged: Record<string, unknown>[];
  leasesHeld: Record<string, number>[];
}

describe("scope leases between replicas of one discovery group", () => {
  let store: SqliteStore;
  /** Listing calls made, as `replica region`, in order. */
  let listed: string[];
  /** Existence checks asked (the stale-node check), as `replica region`. */
  let existenceAsked: string[];
  /** Regions whose listing fails, for every replica. */
  let denied: Set<string>;
  let replicas: Replica[];

  /** A fake EC2 whose only instance is i-0r1 in the first region; it lists only what the lease allows. */
  function fakeCloud(id: string): CloudEnrollment<AwsMatcher> {
    return {
      async fetch(m, ctx) {
        const scopes: ScopeReport[] = [];
        const candidates: Candidate[] = [];
        // Asked all at once, as the real fetchers scan their scopes concurrently.
        const answers = await Promise.all(
          m.regions.map((region) => scopeLeftToOthers(ctx.acquireScope, { cloud: "aws", account: ACCOUNT, region })),
        );
        for (const [i, region] of m.regions.entries()) {
          const left = answers[i];
          if (left) {
            scopes.push(left);
            continue;
          }
          listed.push(`${id} ${region}`);
          if (denied.has(region)) {
            scopes.push({
              ...{ cloud: "aws", account: ACCOUNT, region, instances: 0 },
              error: { code: "UnauthorizedOperation", message: "not authorized to DescribeInstances" },
            });
            continue;
          }
          const here = region === REGIONS[0] ? ["i-0r1"] : [];
          scopes.push({ cloud: "aws", account: ACCOUNT, region, instances: here.length });
          for (const i of here)
            candidates.push({
              ...{ cloud: "aws", account: ACCOUNT, region, instanceId: i, nodeName: `${ACCOUNT}-${i}` },
              ...{ state: "running", tags: {} },
            });
        }
        return { candidates, scopes };
      },
      async install() {
        throw new Error("nothing is installed in these tests: the one instance is enrolled already");
      },
      // Says every instance is gone: a check that reached it would mark the node stale.
      async existing(_m, q) {
        existenceAsked.push(`${id} ${q.region}`);
        return new Set();
      },
    };
  }

  function replica(id: string, regions = REGIONS): Replica {
    const logged: Record<string, unknown>[] = [];
    const leasesHeld: Record<string, number>[] = [];
    const sink = { write: (line: string) => void logged.push(JSON.parse(line) as Record<string, unknown>) };
    const cloud = fakeCloud(id);
    const loop = new DiscoveryLoop({
      section: discoveryServiceSection.parse({
        discovery_group: "g",
        poll_interval: `${POLL_S}s`,
        aws: [{ types: ["ec2"], regions, tags: { "*": "*" } }],
      }),
      store,
      endpoint: { proxyAddr: "127.0.0.1:3080" },
      logger: pino({ level: "info" }, sink),
      runtimeId: id,
      clouds: (name) => (name === "aws" ? (cloud as CloudEnrollment) : undefined),
      metrics: { passFinished: () => undefined, scopeLeasesHeld: (byCloud) => void leasesHeld.push(byCloud) },
    });
    const r = { id, loop, logged, leasesHeld };
    replicas.push(r);
    return r;
  }

  /** Moves the clock to `s` seconds after T0 (no timer fires) and runs one round of `r`. */
  async function roundAt(s: number, r: Replica): Promise<string[]> {
    jest.setSystemTime(T0 + s * 1000);
    const from = listed.length;
    await r.loop.runNow();
    return listed.slice(from).map((l) => l.split(" ")[1]);
  }

  /** `n` intervals of A's round then B's a second later, from 0 s: A at 0, 10, 20 s..., B at 1, 11, 21 s... */
  async function alternate(a: Replica, b: Replica, n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      await roundAt(i * POLL_S, a);
      await roundAt(i * POLL_S + 1, b);
    }
  }

  const passLine = (r: Replica) => r.logged.filter((l) => String(l.msg).startsWith("discovery pass:")).pop()!;

  beforeEach(async () => {
    jest.useFakeTimers({ doNotFake: ["nextTick", "setImmediate", "queueMicrotask"], now: T0 });
    store = new SqliteStore(":memory:");
    await store.migrate();
    listed = [];
    existenceAsked = [];
    denied = new Set();
    replicas = [];
    await store.insertNode({
      name: `${ACCOUNT}-i-0r1`,
      labels: {
        "discovery/account-id": ACCOUNT,
        "discovery/instance-id": "i-0r1",
        "discovery/region": REGIONS[0],
      },
      ...{ joinMethod: "iam", token: "t", hostPublicKey: "k", principals: [], joinedAt: new Date(T0).toISOString() },
    });
  });
  afterEach(async () => {
    for (const r of replicas) await r.loop.stop();
    await store.close();
    jest.useRealTimers();
  });

  it("lists every scope once per interval across two replicas, once the second has joined and taken its share", async () => {
    const a = replica("A");
    const b = replica("B");
    // A starts alone: every scope is its share.
    expect(await roundAt(0, a)).toEqual(REGIONS);
    // B's first round: A holds everything; B lists nothing and says who holds each scope and until when.
    expect(await roundAt(1, b)).toEqual([]);
    expect(passLine(b)).toMatchObject({
      scopes: 6,
      held_scopes: REGIONS.map((r) => ({
        scope: `aws/${ACCOUNT}/${r}`,
        holder: "A",
        until: new Date(T0 + 2 * POLL_S * 1000).toISOString(),
      })),
    });
    expect(String(passLine(b).msg)).toContain("6 of 6 scope(s) left to other replicas");
    // A now counts two replicas: it lists its scopes once more and gives up the half beyond its share.
    expect(await roundAt(10, a)).toEqual(REGIONS);
    expect(await roundAt(11, b)).toEqual(REGIONS.slice(3));
    // From here on, every interval lists each scope exactly once.
    for (let t = 20; t <= 50; t += POLL_S) {
      const byA = await roundAt(t, a);
      const byB = await roundAt(t + 1, b);
      expect([...byA, ...byB].sort()).toEqual(REGIONS);
      expect(byA).toEqual(REGIONS.slice(0, 3));
    }
    expect(a.leasesHeld.pop()).toEqual({ aws: 3, gcp: 0, azure: 0 });
    expect(b.leasesHeld.pop()).toEqual({ aws: 3, gcp: 0, azure: 0 });
    expect((await store.listScopeLeases("g")).map((l) => `${l.region} ${l.holder}`)).toEqual(
      REGIONS.map((r, i) => `${r} ${i < 3 ? "A" : "B"}`),
    );
  });

  it("splits the scopes evenly between replicas that start together, three of them too", async () => {
    const rs = [replica("A"), replica("B"), replica("C")];
    // All three beat before anyone lists, as replicas started together do within their first seconds.
    for (const r of rs) await r.loop.leases!.beginRound();
    for (const r of rs) await r.loop.leases!.endRound();
    for (let t = 0; t <= 30; t += POLL_S) {
      const lists = [];
      for (const [i, r] of rs.entries()) lists.push(await roundAt(t + i, r));
      if (t === 0) continue; // the first round may still hand scopes over
      expect(lists.flat().sort()).toEqual(REGIONS);
      expect(lists.map((l) => l.length)).toEqual([2, 2, 2]);
    }
  });

  it("takes over a killed replica's scopes once its lease has expired, and not before", async () => {
    const a = replica("A");
    const b = replica("B");
    await alternate(a, b, 3);
    // A is killed after its round at 20 s (no clean stop): its leases run until 20 s + two poll intervals.
    expect(await roundAt(31, b)).toEqual(REGIONS.slice(3));
    expect(passLine(b).held_scopes).toEqual(
      REGIONS.slice(0, 3).map((r) => ({
        scope: `aws/${ACCOUNT}/${r}`,
        holder: "A",
        until: new Date(T0 + 40_000).toISOString(),
        reason: `held by replica A until ${new Date(T0 + 40_000).toISOString()}`,
      })),
    );
    b.logged.length = 0;
    // 41 s: A's leases and heartbeat expired at 40 s, so B is alone and its share is every scope (within three
    // poll intervals of A's last renewal, as docs/OPERATIONS.md says).
    expect(await roundAt(41, b)).toEqual(REGIONS);
    expect(b.logged.filter((l) => String(l.msg).startsWith("took over scope")).map((l) => l.scope)).toEqual(
      REGIONS.slice(0, 3).map((r) => `aws/${ACCOUNT}/${r}`),
    );
    expect(b.leasesHeld.pop()).toEqual({ aws: 6, gcp: 0, azure: 0 });
  });

  it("hands a cleanly stopped replica's scopes over at once", async () => {
    const a = replica("A");
    const b = replica("B");
    await alternate(a, b, 2);
    await a.loop.stop();
    expect(await roundAt(12, b)).toEqual(REGIONS);
  });

  it("never marks a node stale, nor clears a scope's error, for a scope left to another replica", async () => {
    const a = replica("A");
    const b = replica("B");
    denied.add(REGIONS[1]);
    await alternate(a, b, 3);
    // A holds the first region (with the node's instance) and the denied one; B lists neither, so B asked nothing
    // about the node and left A's scope error standing.
    expect(existenceAsked.filter((e) => e.startsWith("B"))).toEqual([]);
    expect((await store.getNode(`${ACCOUNT}-i-0r1`))?.staleSince).toBeUndefined();
    expect((await store.listScopeErrors()).map((e) => [e.region, e.code])).toEqual([
      [REGIONS[1], "UnauthorizedOperation"],
    ]);
  });

  it("lists everything when the store cannot be asked, rather than nothing", async () => {
    const failing = {
      ...store,
      putReplicaHeartbeat: () => Promise.reject(new Error("connection refused")),
    } as unknown as SqliteStore;
    const keeper = new ScopeLeaseKeeper({ store: failing, group: "g", holder: "A", ttlMs: leaseTtlMs(10_000) });
    await keeper.beginRound();
    const acquire: AcquireScope = (s) => keeper.acquire(s);
    expect(await scopeLeftToOthers(acquire, { cloud: "aws", account: ACCOUNT, region: "us-east-1" })).toBeUndefined();
    expect(await keeper.endRound()).toBeUndefined();
  });
});
