/**
 * Stale nodes and forced reinstall, through a whole enrollment pass over an in-memory store and a fake cloud whose
 * instances a test terminates, brings back, or makes unanswerable; the clock is injected so the grace period passes
 * in a line.
 */
import { storeBackend } from "../../provider/enroll/backend";
import type { CloudEnrollment } from "../../provider/enroll/clouds";
import { runEnrollmentPass } from "../../provider/enroll/pass";
import { ReinstallRefusal, reinstallInstance } from "../../provider/enroll/reinstall";
import type { Candidate } from "../../provider/enroll/types";
import { parseRuntimeConfig } from "../../provider/runtime/config";
import { SqliteStore, Store } from "../../provider/runtime/store";

const ACCOUNT = "123456789012";
const REGION = "us-east-1";
const HOUR = 3600_000;

/** The fake cloud: instance id -> state; `describeFails` makes the existence check throw as a denied call would. */
const world = {
  instances: new Map<string, string>(),
  describeFails: false,
  installed: [] as string[],
  existenceCalls: 0,
};
let store: Store;

const candidate = (id: string): Candidate => ({
  cloud: "aws",
  account: ACCOUNT,
  region: REGION,
  instanceId: id,
  nodeName: `${ACCOUNT}-${id}`,
  state: "running",
  tags: {},
});

const join = (id: string, at = "2025-01-01T00:00:00.000Z") =>
  store.insertNode({
    name: `${ACCOUNT}-${id}`,
    labels: {
      "discovery/origin": "cloud",
      "discovery/account-id": ACCOUNT,
      "discovery/instance-id": id,
      "discovery/region": REGION,
    },
    joinMethod: "ec2",
    token: "ec2-token",
    hostPublicKey: `ssh-ed25519 AAAA${id}`,
    principals: [],
    joinedAt: at,
  });

/** The fake AWS, passed to each pass as its only cloud. */
const fakeAws: CloudEnrollment = {
  fetch: async () => ({
    candidates: [...world.instances].filter(([, s]) => s === "running").map(([id]) => candidate(id)),
    scopes: [{ cloud: "aws", account: ACCOUNT, region: REGION, instances: world.instances.size }],
  }),
  // The installer "joins" the instance at once, as a real installer would by calling the join API.
  install: async (cs) => {
    for (const c of cs) {
      world.installed.push(c.rejoin ? `${c.instanceId} (rejoin)` : c.instanceId);
      await join(c.instanceId);
    }
    return cs.map((c) => ({ instanceId: c.instanceId, account: c.account, region: c.region, status: "succeeded" }));
  },
  existing: async (_m, q) => {
    world.existenceCalls++;
    if (world.describeFails) throw new Error("UnauthorizedOperation: ec2:DescribeInstances denied");
    return new Set(q.instanceIds.filter((id) => (world.instances.get(id) ?? "terminated") !== "terminated"));
  },
};
const clouds = (name: string) => (name === "aws" ? fakeAws : undefined);

let clock = new Date("2025-03-01T00:00:00.000Z");
const pass = () =>
  runEnrollmentPass({
    matchers: { aws: [{}] as never[], gcp: [], azure: [] },
    clouds,
    backend: storeBackend(store, () => clock),
    runtime: { proxyAddr: "127.0.0.1:3080" },
    staleNodeGraceMs: 24 * HOUR,
    now: () => clock,
    pollMs: 1,
  });
const nodeState = async (id: string) => {
  const n = await store.getNode(`${ACCOUNT}-${id}`);
  return n ? (n.staleSince ? `stale since ${n.staleSince}` : "active") : "removed";
};

beforeEach(async () => {
  store = new SqliteStore(":memory:");
  await store.migrate();
  world.instances = new Map([
    ["i-keep", "running"],
    ["i-gone", "running"],
  ]);
  world.describeFails = false;
  world.installed = [];
  world.existenceCalls = 0;
  clock = new Date("2025-03-01T00:00:00.000Z");
});
afterEach(() => store.close());

describe("stale nodes", () => {
  it("marks the node of a terminated instance stale, keeps it through the grace period, then removes it", async () => {
    await pass();
    expect(world.installed.sort()).toEqual(["i-gone", "i-keep"]);
    expect(world.installed.every((i) => !i.includes("rejoin"))).toBe(true);
    world.instances.set("i-gone", "terminated");

    const second = await pass();
    expect(second.nodes?.staled).toEqual([`${ACCOUNT}-i-gone`]);
    expect(await nodeState("i-gone")).toBe("stale since 2025-03-01T00:00:00.000Z");
    expect(await nodeState("i-keep")).toBe("active");

    clock = new Date(clock.getTime() + 23 * HOUR);
    expect((await pass()).nodes?.removed).toEqual([]);
    expect(await nodeState("i-gone")).toBe("stale since 2025-03-01T00:00:00.000Z");

    clock = new Date(clock.getTime() + 1 * HOUR);
    expect((await pass()).nodes?.removed).toEqual([`${ACCOUNT}-i-gone`]);
    expect(await nodeState("i-gone")).toBe("removed");
    expect(await nodeState("i-keep")).toBe("active");
    const audit = (await store.listAudit(10)).map((e) => `${e.type} ${e.node}`);
    expect(audit).toEqual(expect.arrayContaining([`node.stale ${ACCOUNT}-i-gone`, `node.removed ${ACCOUNT}-i-gone`]));
  });

  it("treats an instance that no longer exists at all like a terminated one, and asks only about absent ones", async () => {
    await pass();
    world.instances.delete("i-gone");
    await pass();
    expect(await nodeState("i-gone")).toMatch(/^stale since /);
    // i-keep was found running by the scan itself: no existence call was needed for it.
    expect(world.existenceCalls).toBe(1);
  });

  it("changes nothing when the existence check fails: no node marked stale, none removed", async () => {
    await pass();
    world.instances.set("i-gone", "terminated");
    await pass();
    world.describeFails = true;
    clock = new Date(clock.getTime() + 48 * HOUR);
    world.instances.delete("i-keep");
    const r = await pass();
    expect(r.nodes).toMatchObject({ staled: [], removed: [], activated: [] });
    expect(r.nodes?.unchecked).toEqual([
      { cloud: "aws", account: ACCOUNT, region: REGION, error: "UnauthorizedOperation: ec2:DescribeInstances denied" },
    ]);
    expect(await nodeState("i-gone")).toBe("stale since 2025-03-01T00:00:00.000Z");
    expect(await nodeState("i-keep")).toBe("active");
  });

  it("makes a stale node active again when its instance is back", async () => {
    await pass();
    world.instances.delete("i-gone");
    await pass();
    expect(await nodeState("i-gone")).toMatch(/^stale/);
    world.instances.set("i-gone", "stopped");
    const r = await pass();
    expect(r.nodes?.activated).toEqual([`${ACCOUNT}-i-gone`]);
    expect(await nodeState("i-gone")).toBe("active");
  });

  it("leaves nodes without verified cloud labels, and nodes in scopes no matcher scanned, alone", async () => {
    await store.insertNode({
      name: "laptop",
      labels: { "discovery/origin": "token" },
      joinMethod: "token",
      token: "sha256:x",
      hostPublicKey: "ssh-ed25519 AAAAlaptop",
      principals: [],
      joinedAt: "2025-01-01T00:00:00.000Z",
    });
    await store.insertNode({
      name: `${ACCOUNT}-i-elsewhere`,
      labels: {
        "discovery/account-id": ACCOUNT,
        "discovery/instance-id": "i-elsewhere",
        "discovery/region": "eu-west-1",
      },
      joinMethod: "ec2",
      token: "ec2-token",
      hostPublicKey: "ssh-ed25519 AAAAelse",
      principals: [],
      joinedAt: "2025-01-01T00:00:00.000Z",
    });
    await pass();
    expect((await store.getNode("laptop"))?.staleSince).toBeUndefined();
    expect((await store.getNode(`${ACCOUNT}-i-elsewhere`))?.staleSince).toBeUndefined();
  });

  it("is off unless the pass is given a grace period", async () => {
    await pass();
    world.instances.set("i-gone", "terminated");
    const r = await runEnrollmentPass({
      matchers: { aws: [{}] as never[], gcp: [], azure: [] },
      clouds,
      backend: storeBackend(store, () => clock),
      runtime: { proxyAddr: "127.0.0.1:3080" },
      now: () => clock,
    });
    expect(r.nodes).toBeUndefined();
    expect(await nodeState("i-gone")).toBe("active");
  });

  it.each([
    ["stale_node_grace: soon", /discovery_service\.stale_node_grace: "soon" is not a duration; write it like 5m/],
    ["stale_node_grace: 0h", /discovery_service\.stale_node_grace: duration must be greater than zero/],
    ["stale_node_grace_period: 1h", /discovery_service\.stale_node_grace_period: .*did you mean "stale_node_grace"/],
  ])("refuses %s in the runtime config, naming the field", (line, message) => {
    const text = `version: v1\ncluster_name: c.test\npublic_addr: https://127.0.0.1:3080\ndiscovery_service:\n  ${line}\n  aws: [{regions: [us-east-1]}]\n`;
    expect(() => parseRuntimeConfig(text, "runtime.yaml")).toThrow(message);
  });

  it("defaults the grace period to 24h", () => {
    const text = `version: v1\ncluster_name: c.test\npublic_addr: https://127.0.0.1:3080\ndiscovery_service:\n  aws: [{regions: [us-east-1]}]\n`;
    expect(parseRuntimeConfig(text, "runtime.yaml").discoveryService?.stale_node_grace).toBe("24h");
  });
});

describe("forced reinstall", () => {
  it("clears a failed instance's backoff so the next pass installs at once", async () => {
    await store.upsertEnrollment({
      ...{ cloud: "aws", account: ACCOUNT, region: REGION, instanceId: "i-keep", nodeName: `${ACCOUNT}-i-keep` },
      status: "failed",
      reason: "script-failure",
      detail: { attempts: 3, nextAttemptAt: "2025-03-01T01:00:00.000Z" },
      updatedAt: "2025-02-28T23:00:00.000Z",
    });
    world.instances = new Map([["i-keep", "running"]]);
    expect((await pass()).instances[0]).toMatchObject({ status: "skipped", reason: /^backing off after 3/ });
    expect(world.installed).toEqual([]);

    const r = await reinstallInstance(store, { cloud: "aws", instanceId: "i-keep" }, { now: clock });
    expect(r).toEqual({ instanceId: "i-keep", nodesRemoved: [], enrollmentsCleared: 1 });
    expect((await pass()).instances[0]).toMatchObject({ status: "enrolled" });
    expect(world.installed).toEqual(["i-keep (rejoin)"]);
  });

  it("deletes a joined instance's node (audited) so the re-run installer may join again", async () => {
    world.instances = new Map([["i-keep", "running"]]);
    await pass();
    expect((await pass()).instances[0].status).toBe("already_enrolled");
    const r = await reinstallInstance(
      store,
      { cloud: "aws", account: ACCOUNT, instanceId: "i-keep" },
      { now: clock, source: "127.0.0.1" },
    );
    expect(r.nodesRemoved).toEqual([`${ACCOUNT}-i-keep`]);
    expect((await store.listAudit(1))[0]).toMatchObject({
      type: "enrollment.reinstall",
      node: `${ACCOUNT}-i-keep`,
      source: "127.0.0.1",
    });
    expect((await pass()).instances[0].status).toBe("enrolled");
    // The installer is told to join again although the machine holds a certificate from its first join.
    expect(world.installed).toEqual(["i-keep", "i-keep (rejoin)"]);
    expect((await pass()).instances[0].status).toBe("already_enrolled");
  });

  it("refuses an unknown instance and one with an install in flight, changing nothing", async () => {
    await expect(reinstallInstance(store, { cloud: "aws", instanceId: "i-nope" })).rejects.toThrow(
      new ReinstallRefusal(
        404,
        "no enrollment or node is known for aws instance i-nope; check the id, account and region",
      ),
    );
    const installing = {
      ...{ cloud: "aws", account: ACCOUNT, region: REGION, instanceId: "i-busy", nodeName: `${ACCOUNT}-i-busy` },
      status: "installing",
      updatedAt: clock.toISOString(),
    };
    await store.upsertEnrollment(installing);
    await expect(reinstallInstance(store, { cloud: "aws", instanceId: "i-busy" }, { now: clock })).rejects.toThrow(
      /an install is in flight since .*; retry once it has finished/,
    );
    expect(await store.listEnrollments()).toEqual([installing]);
  });
});
