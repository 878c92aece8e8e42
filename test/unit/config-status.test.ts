import pino from "pino";
import { CloudEnrollment, scopeLeftToOthers } from "../../provider/enroll/clouds";
import type { Candidate, InstallOutcome, ScopeReport } from "../../provider/enroll/types";
import { AwsMatcher, discoveryServiceSection } from "../../provider/model";
import { DiscoveryLoop } from "../../provider/runtime/discovery-loop";
import { listResourceViews } from "../../provider/runtime/fleet";
import { SqliteStore } from "../../provider/runtime/store";
import { storeDocuments, tokenDocument } from "../fixtures/store-documents";

/**
 * A discovery_config's status when two replicas of its group split its scopes: two discovery loops on one
 * in-memory store over one fake EC2, each round run by hand on jest's clock (as in scope-leases.test.ts), and the
 * status read as `discovery get discovery_config` and the status page read it.
 */
const ACCOUNT = "123456789012";
const POLL_S = 10;
// In key order: the first three end up with the replica that starts first, the last three with the other.
const REGIONS = ["ap-south-1", "eu-central-1", "eu-west-1", "sa-east-1", "us-east-1", "us-west-2"];
const T0 = Date.parse("2025-03-01T00:00:00Z");
const iso = (s: number) => new Date(T0 + s * 1000).toISOString();

/** Instances by region: enrolled already, except i-4, whose install fails. eu-west-1 is denied and lists nothing. */
const INSTANCES: Record<string, string[]> = {
  "ap-south-1": ["i-0"],
  "eu-central-1": ["i-1"],
  "sa-east-1": ["i-3"],
  "us-east-1": ["i-4"],
  "us-west-2": ["i-5"],
};
const DENIED = "eu-west-1";

/** A fake EC2 that lists only the regions the replica's leases allow, and records them. */
function fakeEc2(listed: string[]): CloudEnrollment<AwsMatcher> {
  return {
    async fetch(m, ctx) {
      const scopes: ScopeReport[] = [];
      const candidates: Candidate[] = [];
      for (const region of m.regions) {
        const left = await scopeLeftToOthers(ctx.acquireScope, { cloud: "aws", account: ACCOUNT, region });
        if (left) {
          scopes.push(left);
          continue;
        }
        listed.push(region);
        const scope = { cloud: "aws" as const, account: ACCOUNT, region };
        if (region === DENIED) {
          const error = { code: "UnauthorizedOperation", message: "not authorized to DescribeInstances" };
          scopes.push({ ...scope, instances: 0, error });
          continue;
        }
        const ids = INSTANCES[region] ?? [];
        scopes.push({ ...scope, instances: ids.length });
        for (const id of ids)
          candidates.push({ ...scope, instanceId: id, nodeName: `${ACCOUNT}-${id}`, state: "running", tags: {} });
      }
      return { candidates, scopes };
    },
    async install(cands): Promise<InstallOutcome[]> {
      return cands.map((c) => ({
        ...{ instanceId: c.instanceId, account: c.account, region: c.region, status: "failed" },
        ...{ failureClass: "ssm-agent-not-registered", reason: "agent gone", remediation: "start it" },
      }));
    },
  };
}

interface Replica {
  loop: DiscoveryLoop;
  started: boolean;
  /** Regions this replica listed in its last round. */
  listed: string[];
}

describe("a discovery_config's status across replicas that split its scopes", () => {
  let store: SqliteStore;
  let replicas: Replica[];

  function replica(id: string): Replica {
    const r: Replica = { started: false, listed: [], loop: undefined! };
    const cloud = fakeEc2(r.listed);
    r.loop = new DiscoveryLoop({
      section: discoveryServiceSection.parse({ discovery_group: "g", poll_interval: `${POLL_S}s` }),
      store,
      endpoint: { proxyAddr: "127.0.0.1:3080" },
      logger: pino({ level: "silent" }),
      runtimeId: id,
      clouds: (name) => (name === "aws" ? (cloud as CloudEnrollment) : undefined),
    });
    replicas.push(r);
    return r;
  }

  /** Moves the clock to `s` seconds after T0 (no timer fires) and runs one round of `r`; its first loads the configs. */
  async function roundAt(s: number, r: Replica): Promise<string[]> {
    jest.setSystemTime(T0 + s * 1000);
    r.listed.length = 0;
    const passes = r.loop.passes;
    if (r.started) await r.loop.runNow();
    else {
      r.started = true;
      r.loop.start();
      while (r.loop.passes === passes) await new Promise((done) => setImmediate(done));
    }
    return [...r.listed];
  }

  /** The config's status as a user reads it, at the clock's time. */
  const status = async () =>
    (await listResourceViews(store, "discovery_config"))[0].status as Record<string, unknown> | undefined;

  beforeEach(async () => {
    jest.useFakeTimers({ doNotFake: ["nextTick", "setImmediate", "queueMicrotask"], now: T0 });
    store = new SqliteStore(":memory:");
    await store.migrate();
    replicas = [];
    const config = { discovery_group: "g", aws: [{ types: ["ec2"], regions: REGIONS, tags: { "*": "*" } }] };
    await storeDocuments(
      store,
      JSON.stringify({ kind: "discovery_config", version: "v1", metadata: { name: "fleet" }, spec: config }) +
        "\n---\n" +
        tokenDocument("aws-discovery-iam-token", "iam", { allow: [{ aws_account: ACCOUNT }] }),
    );
    for (const id of ["i-0", "i-1", "i-3", "i-5"])
      await store.insertNode({
        name: `${ACCOUNT}-${id}`,
        labels: { "discovery/account-id": ACCOUNT, "discovery/instance-id": id },
        ...{ joinMethod: "iam", token: "t", hostPublicKey: "k", principals: [], joinedAt: iso(0) },
      });
  });
  afterEach(async () => {
    for (const r of replicas) await r.loop.stop();
    await store.close();
    jest.useRealTimers();
  });

  /** Rounds of A and B one second apart from 0 s to 21 s: by then each lists three regions. */
  async function split(a: Replica, b: Replica): Promise<void> {
    for (const [t, r] of [
      [0, a],
      [1, b],
      [10, a],
      [11, b],
      [20, a],
      [21, b],
    ] as const)
      await roundAt(t, r);
    expect(a.listed).toEqual(REGIONS.slice(0, 3));
    expect(b.listed).toEqual(REGIONS.slice(3));
  }

  /** All instances of all six regions, and A's denied region. */
  const whole = (lastSync: number) => ({
    ...{ state: "error", found: 5, enrolled: 4, failed: 1 },
    ...{ last_sync_time: iso(lastSync), discovered_by: "A, B" },
  });

  it("counts every instance of every scope, and keeps one replica's scope error after the other writes its pass", async () => {
    const a = replica("A");
    const b = replica("B");
    await split(a, b);
    // B wrote last, having listed only its three regions (one instance failing) and not A's denied one.
    const st = await status();
    expect(st).toMatchObject(whole(21));
    expect(st?.error_message).toMatch(/^aws 123456789012\/eu-west-1: UnauthorizedOperation: not authorized/);
    // Each replica's round writes the same whole: the counts no longer jump between replicas.
    for (const [t, r] of [
      [30, a],
      [31, b],
      [40, a],
      [41, b],
    ] as const) {
      await roundAt(t, r);
      expect(await status()).toEqual({ ...whole(t), error_message: st?.error_message });
    }
  });

  it("stops counting a gone replica's scopes once their rows are no longer fresh, until another replica lists them", async () => {
    const a = replica("A");
    const b = replica("B");
    await split(a, b);
    // A is killed after its round at 20 s: its rows count for three poll intervals, until 50 s.
    await roundAt(31, b);
    expect(await status()).toMatchObject(whole(31));
    jest.setSystemTime(T0 + 49_000);
    expect(await status()).toMatchObject(whole(31));
    // 51 s: A's leases expired at 40 s and B has not had a round since to take them; only B's scopes count.
    jest.setSystemTime(T0 + 51_000);
    expect((await store.listScopeLeases("g")).filter((l) => l.holder === "A").map((l) => l.expiresAt)).toEqual(
      REGIONS.slice(0, 3).map(() => iso(40)),
    );
    expect(await status()).toEqual({
      ...{ state: "running", error_message: "", found: 3, enrolled: 2, failed: 1 },
      ...{ last_sync_time: iso(31), discovered_by: "B" },
    });
    // B's next round takes A's scopes over and lists them: the whole group counts again, all of it B's.
    expect(await roundAt(52, b)).toEqual(REGIONS);
    expect(await status()).toMatchObject({ ...whole(52), discovered_by: "B" });
  });

  it("keeps the figures of the replica that lists the scopes while another waits for its share", async () => {
    const a = replica("A");
    const b = replica("B");
    // A lists all six alone; B's first round lists nothing (A holds all) and must not lose A's figures.
    await roundAt(0, a);
    expect(await roundAt(1, b)).toEqual([]);
    expect(await status()).toMatchObject({ ...whole(0), discovered_by: "A" });
  });
});
