/**
 * Event-driven enrollment against an in-memory fake cloud, a fake event queue and an in-memory SQLite store: a
 * runtime whose poll is 5 minutes enrolls an instance named by an event at once, installs nothing for an event a
 * matcher does not select (forged or not), drops malformed messages, and keeps polling when its queue fails.
 */
import pino from "pino";
import type { CloudEnrollment } from "../../provider/enroll/clouds";
import type { EventQueue, QueuedMessage } from "../../provider/enroll/events";
import type { Candidate, InstallOutcome, ScopeReport } from "../../provider/enroll/types";
import { parseEc2StateChange } from "../../provider/clouds/aws/ec2-events";
import { AwsMatcher, discoveryServiceSection } from "../../provider/model";
import { DiscoveryLoop } from "../../provider/runtime/discovery-loop";
import { EventConsumer } from "../../provider/runtime/events";
import { SqliteStore } from "../../provider/runtime/store";
import { storeDocuments, tokenDocument } from "../fixtures/store-documents";

const ACCOUNT = "123456789012";
const OTHER_ACCOUNT = "210987654321";

interface FakeInstance {
  id: string;
  account?: string;
  region: string;
  tags: Record<string, string>;
  /** Install reports this failure class (once per entry in the list), then succeeds. */
  failures?: string[];
}

const matches = (m: AwsMatcher, i: FakeInstance) =>
  (i.account ?? ACCOUNT) === ACCOUNT &&
  m.regions.includes(i.region) &&
  Object.entries(m.tags).every(([k, v]) => k === "*" || v === "*" || i.tags[k] === v);

/** A cloud whose instances live in an array; fetchInstances narrows the same selection to the ids asked. */
function fakeCloud(store: SqliteStore) {
  const instances: FakeInstance[] = [];
  const installs: string[] = [];
  const lookups: string[][] = [];
  const candidate = (i: FakeInstance): Candidate => ({
    ...{ cloud: "aws", account: ACCOUNT, region: i.region, instanceId: i.id, nodeName: `${ACCOUNT}-${i.id}` },
    ...{ state: "running", tags: i.tags },
  });
  const scope = (region: string, n: number): ScopeReport => ({ cloud: "aws", account: ACCOUNT, region, instances: n });
  const impl: CloudEnrollment<AwsMatcher> = {
    failureClasses: {
      "ssm-agent-not-registered": { commandSent: false, summary: "not registered", notReadyAtBoot: true },
    },
    async fetch(m) {
      const hit = instances.filter((i) => matches(m, i));
      return { candidates: hit.map(candidate), scopes: m.regions.map((r) => scope(r, hit.length)) };
    },
    async fetchInstances(m, q) {
      lookups.push(q.instanceIds);
      if (q.account !== ACCOUNT || !m.regions.includes(q.region)) return { candidates: [], scopes: [] };
      const hit = instances.filter((i) => q.instanceIds.includes(i.id) && i.region === q.region && matches(m, i));
      return { candidates: hit.map(candidate), scopes: [scope(q.region, hit.length)] };
    },
    async install(cands) {
      installs.push(...cands.map((c) => c.instanceId));
      return Promise.all(cands.map((c) => installOne(c)));
    },
  };
  /** The node joins at once unless the instance has a failure left to report. */
  const installOne = async (c: Candidate): Promise<InstallOutcome> => {
    const failureClass = instances.find((i) => i.id === c.instanceId)?.failures?.shift();
    const at = { instanceId: c.instanceId, account: c.account, region: c.region };
    if (failureClass) return { ...at, status: "failed", failureClass, reason: "agent not registered yet" };
    const labels = { "discovery/account-id": c.account, "discovery/instance-id": c.instanceId };
    const joined = { joinMethod: "iam", token: "t", hostPublicKey: "k", principals: [] };
    await store.insertNode({ name: c.nodeName, labels, ...joined, joinedAt: new Date().toISOString() });
    return { ...at, status: "succeeded" };
  };
  return { impl, instances, installs, lookups };
}

/** An in-memory queue: receive waits for a message (or the stop), remove records deletions; `fail` makes it throw. */
function fakeQueue() {
  const messages: QueuedMessage[] = [];
  const removed: string[] = [];
  let wake: (() => void) | undefined;
  let n = 0;
  const state = { fail: undefined as Error | undefined, receives: 0 };
  const queue: EventQueue = {
    name: "https://sqs.us-east-1.amazonaws.com/123456789012/ec2-events",
    async receive(signal) {
      state.receives++;
      if (state.fail) throw state.fail;
      if (messages.length === 0)
        await new Promise<void>((resolve) => {
          wake = resolve;
          signal.addEventListener("abort", () => resolve(), { once: true });
        });
      return messages.splice(0);
    },
    async remove(receipts) {
      removed.push(...receipts);
    },
    parse: parseEc2StateChange,
    problem: (err) => ({ code: (err as Error).name, message: (err as Error).message, fix: "create the queue" }),
  };
  const send = (body: unknown) => {
    const receipt = `r${++n}`;
    messages.push({ receipt, body: typeof body === "string" ? body : JSON.stringify(body) });
    wake?.();
    return receipt;
  };
  return { queue, send, removed, state };
}

/** An EventBridge EC2 state-change event, as a rule delivers it to SQS. */
function ec2Event(instanceId: string, over: Record<string, unknown> = {}) {
  return {
    version: "0",
    id: "7bf73129-1428-4cd3-a780-95db273d1602",
    "detail-type": "EC2 Instance State-change Notification",
    source: "aws.ec2",
    account: ACCOUNT,
    time: "2025-03-01T00:00:00Z",
    region: "us-east-1",
    resources: [`arn:aws:ec2:us-east-1:${ACCOUNT}:instance/${instanceId}`],
    detail: { "instance-id": instanceId, state: "running" },
    ...over,
  };
}

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("event-driven enrollment", () => {
  let store: SqliteStore;
  let cloud: ReturnType<typeof fakeCloud>;
  let q: ReturnType<typeof fakeQueue>;
  let loop: DiscoveryLoop;
  let consumer: EventConsumer;
  let logged: Record<string, unknown>[];
  let logger: pino.Logger;
  const enrolled = async () => (await store.listNodes()).map((n) => n.labels["discovery/instance-id"]).sort();

  beforeEach(async () => {
    store = new SqliteStore(":memory:");
    await store.migrate();
    await storeDocuments(store, tokenDocument("aws-discovery-iam-token", "iam", { allow: [{ aws_account: ACCOUNT }] }));
    cloud = fakeCloud(store);
    cloud.instances.push({ id: "i-0000000000000000a", region: "us-east-1", tags: { env: "prod" } });
    q = fakeQueue();
    logged = [];
    logger = pino({ level: "info" }, { write: (l: string) => void logged.push(JSON.parse(l)) });
    loop = new DiscoveryLoop({
      section: discoveryServiceSection.parse({
        poll_interval: "5m",
        aws: [{ types: ["ec2"], regions: ["us-east-1"], tags: { env: "prod" } }],
      }),
      store,
      endpoint: { proxyAddr: "127.0.0.1:3080" },
      logger,
      runtimeId: "cluster/abc",
      clouds: (name) => (name === "aws" ? (cloud.impl as CloudEnrollment) : undefined),
      joinTimeoutMs: 5_000,
    });
    consumer = new EventConsumer({
      queues: [q.queue],
      target: loop,
      logger,
      debounceMs: 10,
      errorBackoffMs: 50,
      notReadyRetryMs: [50, 100],
    });
    loop.start();
    await until("the first pass", () => loop.passes === 1);
    consumer.start();
  });
  afterEach(async () => {
    await consumer.stop();
    await loop.stop();
    await store.close();
  });

  it("installs on a matching instance named by an event at once, long before the 5-minute poll", async () => {
    expect(await enrolled()).toEqual(["i-0000000000000000a"]);
    cloud.instances.push({ id: "i-0123456789abcdef0", region: "us-east-1", tags: { env: "prod" } });
    const receipt = q.send(ec2Event("i-0123456789abcdef0"));
    await until("the enrollment", async () => (await enrolled()).includes("i-0123456789abcdef0"));
    expect(cloud.installs).toEqual(["i-0000000000000000a", "i-0123456789abcdef0"]);
    // Only the named instance was looked up, and no second full pass ran.
    expect(cloud.lookups).toEqual([["i-0123456789abcdef0"]]);
    expect(loop.passes).toBe(1);
    await until("the message deleted", () => q.removed.includes(receipt));
    expect(logged.some((l) => l.event === true && String(l.msg).startsWith("discovery pass:"))).toBe(true);
  });

  it("batches a burst of events into one targeted pass", async () => {
    const ids = ["i-00000000000000001", "i-00000000000000002", "i-00000000000000003"];
    for (const id of ids) cloud.instances.push({ id, region: "us-east-1", tags: { env: "prod" } });
    for (const id of ids) q.send(ec2Event(id));
    await until("all three enrolled", async () => (await enrolled()).length === 4);
    expect(cloud.lookups).toEqual([ids]);
  });

  it.each([
    ["an instance whose tags the matcher does not select", { id: "i-0000000000000000b", tags: { env: "dev" } }],
    ["an instance in a region the matcher does not scan", { id: "i-0000000000000000c", region: "eu-west-1" }],
    ["a forged event naming an instance of another account", { id: "i-0000000000000000d", account: OTHER_ACCOUNT }],
  ])("sends nothing for %s", async (_what, inst) => {
    const i = { region: "us-east-1", tags: { env: "prod" }, ...inst } as FakeInstance;
    cloud.instances.push(i);
    const receipt = q.send(
      ec2Event(i.id, {
        region: i.region,
        account: i.account ?? ACCOUNT,
        resources: [`arn:aws:ec2:${i.region}:${i.account ?? ACCOUNT}:instance/${i.id}`],
      }),
    );
    await until("the message handled", () => q.removed.includes(receipt));
    expect(cloud.installs).toEqual(["i-0000000000000000a"]);
    expect(await enrolled()).toEqual(["i-0000000000000000a"]);
  });

  it("cannot change what the instance is: the event's tags and state are not read, the cloud's are", async () => {
    cloud.instances.push({ id: "i-0000000000000000e", region: "us-east-1", tags: { env: "dev" } });
    const forged = ec2Event("i-0000000000000000e");
    (forged.detail as Record<string, unknown>).tags = { env: "prod" };
    const receipt = q.send(forged);
    await until("the message handled", () => q.removed.includes(receipt));
    expect(cloud.installs).toEqual(["i-0000000000000000a"]);
  });

  it("drops malformed messages with a log line and keeps reading", async () => {
    const bad = [
      q.send("not json"),
      q.send(ec2Event("i-../../etc")),
      q.send(ec2Event("i-0000000000000000f", { region: "mars-1" })),
      q.send(ec2Event("i-0000000000000000f", { resources: [`arn:aws:ec2:us-east-1:${ACCOUNT}:instance/i-01`] })),
    ];
    const ignored = q.send(
      ec2Event("i-0000000000000000f", { detail: { "instance-id": "i-0000000000000000f", state: "stopped" } }),
    );
    await until("all dropped", () => [...bad, ignored].every((r) => q.removed.includes(r)));
    expect(consumer.counts).toMatchObject({ malformed: 4, ignored: 1, instances: 0 });
    const warnings = logged.filter((l) => String(l.msg).startsWith("dropped a malformed event message"));
    expect(warnings.map((l) => l.reason)).toEqual([
      "the message is not JSON",
      'detail["instance-id"] is not an EC2 instance id such as i-0123456789abcdef0',
      "region is not an AWS region name",
      expect.stringContaining("which is not instance i-0000000000000000f"),
    ]);
    // Still reading: a good event after the bad ones enrolls.
    cloud.instances.push({ id: "i-00000000000000010", region: "us-east-1", tags: { env: "prod" } });
    q.send(ec2Event("i-00000000000000010"));
    await until("the enrollment", async () => (await enrolled()).includes("i-00000000000000010"));
  });

  it("looks again shortly at an instance whose agent had not registered yet", async () => {
    cloud.instances.push({
      ...{ id: "i-00000000000000011", region: "us-east-1", tags: { env: "prod" } },
      failures: ["ssm-agent-not-registered"],
    });
    q.send(ec2Event("i-00000000000000011"));
    await until("the enrollment", async () => (await enrolled()).includes("i-00000000000000011"));
    expect(cloud.installs.filter((i) => i === "i-00000000000000011")).toHaveLength(2);
  });

  it("logs a queue failure with its cause and fix, retries, and the poll still enrolls", async () => {
    await consumer.stop();
    q.state.fail = Object.assign(new Error("The specified queue does not exist."), {
      name: "AWS.SimpleQueueService.NonExistentQueue",
    });
    consumer = new EventConsumer({ queues: [q.queue], target: loop, logger, errorBackoffMs: 20 });
    consumer.start();
    await until("two failed reads", () => q.state.receives >= 3);
    const err = logged.find((l) => String(l.msg).startsWith("could not read the event queue"));
    expect(err).toMatchObject({ code: "AWS.SimpleQueueService.NonExistentQueue", fix: "create the queue" });
    expect(String(err?.msg)).toContain("new instances wait for the next poll");
    // The poll is untouched: a pass asked for now (as the timer would) still enrolls a new instance.
    cloud.instances.push({ id: "i-00000000000000012", region: "us-east-1", tags: { env: "prod" } });
    await loop.runNow();
    expect(await enrolled()).toContain("i-00000000000000012");
  });
});
