import pino from "pino";
import type { CloudEnrollment } from "../../provider/enroll/clouds";
import type { Candidate, InstallOutcome, ScopeReport } from "../../provider/enroll/types";
import { AwsMatcher, discoveryServiceSection, parseDocuments } from "../../provider/model";
import { storageForm } from "../../provider/runtime/admin-routes";
import { DiscoveryLoop } from "../../provider/runtime/discovery-loop";
import { SqliteStore } from "../../provider/runtime/store";
import { deriveTasks, taskName } from "../../provider/runtime/tasks";
import { tokenDocument } from "../fixtures/store-documents";

/**
 * The runtime's discovery loop against an in-memory fake cloud and an in-memory SQLite store, on jest's fake
 * clock: groups, live changes, status, tasks and backoff, each as a user of the runtime would see them.
 */
const ACCOUNT = "123456789012";
const POLL_MS = 25_000;

interface FakeInstance {
  id: string;
  region: string;
  tags: Record<string, string>;
  /** A failure class the install reports, or undefined for an instance that installs and joins. */
  failure?: string;
}

/** A cloud whose instances live in an array: fetch filters by region and tags, install joins the node at once. */
function fakeCloud(store: SqliteStore) {
  const instances: FakeInstance[] = [];
  const installs: string[] = [];
  const denied = new Set<string>();
  const impl: CloudEnrollment<AwsMatcher> = {
    async fetch(m) {
      const scopes: ScopeReport[] = [];
      const candidates: Candidate[] = [];
      for (const region of m.regions) {
        if (denied.has(region)) {
          scopes.push({
            ...{ cloud: "aws", account: ACCOUNT, region, instances: 0 },
            error: { code: "AccessDenied", message: "assuming arn:aws:iam::123456789012:role/d: not authorized" },
          });
          continue;
        }
        const hit = instances.filter(
          (i) =>
            i.region === region && Object.entries(m.tags).every(([k, v]) => k === "*" || v === "*" || i.tags[k] === v),
        );
        scopes.push({ cloud: "aws", account: ACCOUNT, region, instances: hit.length });
        for (const i of hit)
          candidates.push({
            ...{ cloud: "aws", account: ACCOUNT, region, instanceId: i.id, nodeName: `${ACCOUNT}-${i.id}` },
            ...{ state: "running", tags: i.tags },
          });
      }
      return { candidates, scopes };
    },
    async install(cands) {
      const out: InstallOutcome[] = [];
      for (const c of cands) {
        installs.push(c.instanceId);
        const failure = instances.find((i) => i.id === c.instanceId)?.failure;
        const base = { instanceId: c.instanceId, account: c.account, region: c.region };
        if (failure) {
          out.push({ ...base, status: "failed", failureClass: failure, reason: "agent gone", remediation: "start it" });
          continue;
        }
        await store.insertNode({
          name: c.nodeName,
          labels: { "discovery/account-id": c.account, "discovery/instance-id": c.instanceId },
          ...{ joinMethod: "iam", token: "t", hostPublicKey: "k", principals: [], joinedAt: new Date().toISOString() },
        });
        out.push({ ...base, status: "succeeded" });
      }
      return out;
    },
  };
  return { impl, instances, installs, denied };
}

function configDoc(name: string, group: string, tags: Record<string, string>, regions = ["us-east-1"]): string {
  return JSON.stringify({
    kind: "discovery_config",
    version: "v1",
    metadata: { name },
    spec: { discovery_group: group, aws: [{ types: ["ec2"], regions, tags }] },
  });
}

describe("the discovery loop", () => {
  let store: SqliteStore;
  let cloud: ReturnType<typeof fakeCloud>;
  let loop: DiscoveryLoop;
  /** What the loop logged at info and above, one parsed JSON line each. */
  let logged: Record<string, unknown>[];
  const passLines = () => logged.filter((l) => String(l.msg).startsWith("discovery pass:"));

  const apply = async (text: string) => {
    const { resources, problems } = parseDocuments(text);
    expect(problems).toEqual([]);
    return store.putResources(resources.map(storageForm));
  };
  const advance = (ms: number) => jest.advanceTimersByTimeAsync(ms);
  const status = async (name: string) => (await store.listDiscoveryStatus()).get(name);
  const enrolled = async () => (await store.listNodes()).map((n) => n.labels["discovery/instance-id"]).sort();

  beforeEach(async () => {
    jest.useFakeTimers({
      doNotFake: ["nextTick", "setImmediate", "queueMicrotask"],
      now: Date.parse("2025-03-01T00:00:00Z"),
    });
    // Backoff jitter pinned to none: the first retry is exactly one minute after a failure.
    jest.spyOn(Math, "random").mockReturnValue(0.5);
    store = new SqliteStore(":memory:");
    await store.migrate();
    cloud = fakeCloud(store);
    cloud.instances.push(
      { id: "i-a1", region: "us-east-1", tags: { team: "a" } },
      { id: "i-b1", region: "us-east-1", tags: { team: "b" } },
    );
    await apply(configDoc("a", "g", { team: "a" }) + "\n---\n" + configDoc("b", "other", { team: "b" }));
    // The token the matchers join with by default: a pass checks it before it installs anything.
    await apply(tokenDocument("aws-discovery-iam-token", "iam", { allow: [{ aws_account: ACCOUNT }] }));
    logged = [];
    const sink = { write: (line: string) => void logged.push(JSON.parse(line) as Record<string, unknown>) };
    loop = new DiscoveryLoop({
      section: discoveryServiceSection.parse({ discovery_group: "g", poll_interval: "25s" }),
      store,
      endpoint: { proxyAddr: "127.0.0.1:3080" },
      logger: pino({ level: "info" }, sink),
      runtimeId: "cluster/abc123",
      clouds: (name) => (name === "aws" ? (cloud.impl as CloudEnrollment) : undefined),
      watchIntervalMs: 1000,
      debounceMs: 500,
    });
    loop.start();
    await advance(10);
  });
  afterEach(async () => {
    await loop.stop();
    await store.close();
    jest.useRealTimers();
    jest.restoreAllMocks();
  });

  it("scans only the configs of its group, with no static matchers, and writes their status", async () => {
    expect(loop.passes).toBe(1);
    expect(loop.scanned()).toEqual(["a"]);
    expect(await enrolled()).toEqual(["i-a1"]);
    expect(await status("a")).toMatchObject({
      ...{ state: "running", error_message: "", found: 1, enrolled: 1, failed: 0 },
      ...{ last_sync_time: "2025-03-01T00:00:00.000Z", discovered_by: "cluster/abc123" },
    });
    expect(await status("b")).toBeUndefined();
    // The claim carried the runtime's id, which the join turns into the node's discovered-by label.
    expect((await store.listEnrollments())[0].detail).toMatchObject({ discoveredBy: "cluster/abc123" });
  });

  it("runs a pass within the debounce window of a change, and restarts the poll timer from it", async () => {
    await advance(10_000);
    const [{ revision }] = await apply(configDoc("a", "g", { team: "b" }));
    expect(revision).toBe(2);
    await advance(1_600); // one watch interval, then the debounce
    expect(loop.passes).toBe(2);
    expect(await enrolled()).toEqual(["i-a1", "i-b1"]);
    // The old timer (due 25 s after the first pass) was replaced by one 25 s after this pass.
    await advance(POLL_MS - 11_600 + 100);
    expect(loop.passes).toBe(2);
    await advance(11_600);
    expect(loop.passes).toBe(3);
  });

  it("ignores an unchanged re-apply, even one carrying a status of its own, and keeps the stored status", async () => {
    const before = await status("a");
    const withStatus = JSON.parse(configDoc("a", "g", { team: "a" }));
    withStatus.status = { state: "error", found: 99 };
    const [stored] = await apply(JSON.stringify(withStatus));
    expect(stored.revision).toBe(2);
    expect(stored.doc.status).toBeUndefined();
    await advance(5_000);
    expect(loop.passes).toBe(1);
    expect(await status("a")).toEqual(before);
  });

  it("stops scanning a config moved to another group or deleted", async () => {
    await apply(configDoc("a", "other", { team: "a" }));
    await advance(1_600);
    expect(loop.scanned()).toEqual([]);
    cloud.instances.push({ id: "i-a2", region: "us-east-1", tags: { team: "a" } });
    await advance(POLL_MS * 2);
    expect(cloud.installs).toEqual(["i-a1"]);

    await apply(configDoc("a", "g", { team: "a" }));
    await advance(1_600);
    expect(await enrolled()).toEqual(["i-a1", "i-a2"]);
    expect(await store.deleteResource("discovery_config", "a")).toBe(true);
    expect(await status("a")).toBeUndefined();
    await advance(1_600);
    expect(loop.scanned()).toEqual([]);
    cloud.instances.push({ id: "i-a3", region: "us-east-1", tags: { team: "a" } });
    await advance(POLL_MS * 2);
    expect(cloud.installs).toEqual(["i-a1", "i-a2"]);
    expect(await status("a")).toBeUndefined();
  });

  it("reports a denied scope and failing instances in the status, and retries a failure only after its backoff", async () => {
    cloud.denied.add("eu-west-1");
    cloud.instances.push({
      id: "i-bad",
      region: "us-east-1",
      tags: { team: "a" },
      failure: "ssm-agent-not-registered",
    });
    await apply(configDoc("a", "g", { team: "a" }, ["us-east-1", "eu-west-1"]));
    await advance(1_600);
    const st = await status("a");
    expect(st).toMatchObject({ state: "error", found: 2, enrolled: 1, failed: 1 });
    expect(st?.error_message).toMatch(/^aws 123456789012\/eu-west-1: AccessDenied: assuming .*sts:AssumeRole/);
    expect(cloud.installs.filter((i) => i === "i-bad")).toHaveLength(1);

    // Backing off for one minute: the polls within it leave the instance alone but still count it as failing.
    await advance(POLL_MS * 2);
    expect(loop.passes).toBe(4);
    expect(cloud.installs.filter((i) => i === "i-bad")).toHaveLength(1);
    expect(await status("a")).toMatchObject({ failed: 1 });
    await advance(POLL_MS);
    expect(cloud.installs.filter((i) => i === "i-bad")).toHaveLength(2);

    cloud.denied.clear();
    await advance(POLL_MS);
    expect(await status("a")).toMatchObject({ state: "running", error_message: "" });
  });

  it("groups failures into tasks with stable names that close on enrollment and expire when unseen", async () => {
    cloud.denied.add("eu-west-1");
    cloud.instances.push(
      { id: "i-bad1", region: "us-east-1", tags: { team: "a" }, failure: "ssm-agent-not-registered" },
      { id: "i-bad2", region: "us-east-1", tags: { team: "a" }, failure: "ssm-agent-not-registered" },
    );
    await apply(configDoc("a", "g", { team: "a" }, ["us-east-1", "eu-west-1"]));
    await advance(1_600);
    const tasks = async () =>
      deriveTasks(await store.listEnrollments(), await store.listScopeErrors(), new Date(), 2 * POLL_MS);
    const first = await tasks();
    expect(first.map((t) => [t.issue_type, t.scope, t.instances.map((i) => i.instance_id)])).toEqual([
      ["permission-denied", `${ACCOUNT}/eu-west-1`, []],
      ["ssm-agent-not-registered", `${ACCOUNT}/us-east-1`, ["i-bad1", "i-bad2"]],
    ]);
    const agentTask = first[1];
    expect(agentTask.name).toBe(taskName("aws", "ssm-agent-not-registered", `${ACCOUNT}/us-east-1`));
    expect(agentTask.name).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(agentTask.fix).toBe("start it");
    expect(first[0].fix).toMatch(/sts:AssumeRole/);

    // Still failing two polls later: same name, same first_seen, a later last_seen.
    await advance(POLL_MS * 2);
    const later = (await tasks()).find((t) => t.name === agentTask.name)!;
    expect(later.first_seen).toBe(agentTask.first_seen);
    expect(Date.parse(later.last_seen)).toBeGreaterThan(Date.parse(agentTask.last_seen));

    // One instance fixed (enrolls at its retry), the other terminated (never seen again), the role allowed.
    cloud.instances.find((i) => i.id === "i-bad1")!.failure = undefined;
    cloud.instances.splice(
      cloud.instances.findIndex((i) => i.id === "i-bad2"),
      1,
    );
    cloud.denied.clear();
    await advance(POLL_MS);
    expect(await enrolled()).toContain("i-bad1");
    const open = await tasks();
    expect(open.map((t) => [t.issue_type, t.instances.map((i) => i.instance_id)])).toEqual([
      ["ssm-agent-not-registered", ["i-bad2"]],
    ]);
    await advance(POLL_MS * 2 + 1_000);
    expect(await tasks()).toEqual([]);
  });

  it("logs one line per pass with its counts and its most frequent failure classes", async () => {
    expect(passLines()).toEqual([
      expect.objectContaining({
        config: "a",
        ...{ found: 1, enrolled: 1, already_enrolled: 0, failed: 0, commands_sent: 1, top_failures: [] },
        msg: "discovery pass: 1 found, 1 enrolled, 0 already enrolled, 0 failed, 1 command(s) sent",
      }),
    ]);
    cloud.instances.push(
      { id: "i-bad1", region: "us-east-1", tags: { team: "a" }, failure: "ssm-agent-not-registered" },
      { id: "i-bad2", region: "us-east-1", tags: { team: "a" }, failure: "ssm-agent-not-registered" },
      { id: "i-bad3", region: "us-east-1", tags: { team: "a" }, failure: "script-failure" },
    );
    await loop.runNow();
    expect(passLines()).toHaveLength(2);
    expect(passLines()[1]).toMatchObject({
      config: "a",
      // The fake cloud lists no failure classes, so each failed install counts as a command sent.
      ...{ found: 4, enrolled: 0, already_enrolled: 1, failed: 3, backing_off: 0, commands_sent: 3 },
      top_failures: [
        { failure_class: "ssm-agent-not-registered", count: 2, example: "agent gone" },
        { failure_class: "script-failure", count: 1, example: "agent gone" },
      ],
      msg:
        "discovery pass: 4 found, 0 enrolled, 1 already enrolled, 3 failed, 3 command(s) sent; top failures: " +
        "ssm-agent-not-registered ×2 (agent gone); script-failure ×1 (agent gone)",
    });
    // The next pass leaves them alone while they back off, and says so.
    await loop.runNow();
    expect(passLines()[2]).toMatchObject({ failed: 0, backing_off: 3, top_failures: [] });
  });

  it("retries failed instances at once when asked, instead of after their backoff", async () => {
    cloud.instances.push({ id: "i-bad", region: "us-east-1", tags: { team: "a" }, failure: "script-failure" });
    await loop.runNow();
    expect(cloud.installs).toEqual(["i-a1", "i-bad"]);
    // The fix is in, but a poll within the backoff leaves it alone.
    cloud.instances.find((i) => i.id === "i-bad")!.failure = undefined;
    await advance(POLL_MS);
    expect(cloud.installs).toEqual(["i-a1", "i-bad"]);
    await loop.runNow({ retryFailed: true });
    expect(cloud.installs).toEqual(["i-a1", "i-bad", "i-bad"]);
    expect(await enrolled()).toEqual(["i-a1", "i-bad"]);
    expect(passLines().at(-1)).toMatchObject({ retry_failed: true, enrolled: 1, already_enrolled: 1 });
  });
});
