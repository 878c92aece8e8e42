/**
 * Exactly-once enrollment across crashes and faults, through whole passes over an in-memory SQLite store and a
 * fake cloud that keeps SSM's command log: a runtime that dies after claiming (before or after its send) leaves
 * claims the next start takes over at once, following the command already sent instead of sending a second one;
 * another runtime waits out the claim timeout first; a cloud that cannot be reached costs no backoff; a pass that
 * breaks mid-install leaves no claim behind.
 */
import { storeBackend } from "../../provider/enroll/backend";
import type { CloudEnrollment } from "../../provider/enroll/clouds";
import { runEnrollmentPass } from "../../provider/enroll/pass";
import type { EnrollmentDetail } from "../../provider/enroll/rules";
import type { Candidate, InstallOutcome, ScopeReport } from "../../provider/enroll/types";
import { awsMatcher } from "../../provider/model";
import { parseRuntimeConfig } from "../../provider/runtime/config";
import { SqliteStore } from "../../provider/runtime/store";
import { storeDocuments, tokenDocument } from "../fixtures/store-documents";

const ACCOUNT = "123456789012";
const REGION = "us-east-1";
const IDS = ["i-01", "i-02", "i-03"];
const STALE_MS = 60_000;

/** Where the fake install stops, as a SIGKILL would: right after the claim, or right after the send. */
type Crash = "before-send" | "after-send" | undefined;

/** A cloud with SSM's command log: a command per install, named by its attempt; a resumed attempt is looked up. */
function fakeSsmCloud(store: SqliteStore) {
  const commands: { attempt?: string; ids: string[] }[] = [];
  const state = { crash: undefined as Crash, unreachable: false, explode: false };
  const join = (c: Candidate) =>
    store.insertNode({
      name: c.nodeName,
      labels: { "discovery/account-id": c.account, "discovery/instance-id": c.instanceId },
      ...{ joinMethod: "iam", token: "t", hostPublicKey: `k-${c.instanceId}`, principals: [] },
      joinedAt: new Date().toISOString(),
    });
  const impl: CloudEnrollment = {
    failureClasses: {
      "endpoint-unreachable": { commandSent: false, transient: true, summary: "SSM could not be reached" },
    },
    async fetch() {
      const scopes: ScopeReport[] = [{ cloud: "aws", account: ACCOUNT, region: REGION, instances: IDS.length }];
      const candidates = IDS.map((instanceId) => ({
        ...{ cloud: "aws" as const, account: ACCOUNT, region: REGION, instanceId },
        ...{ nodeName: `${ACCOUNT}-${instanceId}`, state: "running", tags: {} },
      }));
      return { candidates, scopes };
    },
    async install(cands) {
      const base = (c: Candidate) => ({ instanceId: c.instanceId, account: c.account, region: c.region });
      if (state.explode) throw new Error("the store went away");
      if (state.unreachable)
        return cands.map((c) => ({
          ...base(c),
          status: "failed" as const,
          failureClass: "endpoint-unreachable",
          reason: "ssm:DescribeInstanceInformation could not reach SSM at http://127.0.0.1:9: connect ECONNREFUSED",
          ...(c.resume && { attempt: c.attempt }),
        }));
      if (state.crash === "before-send") return new Promise<InstallOutcome[]>(() => undefined);
      const toSend = cands.filter((c) => !(c.resume && commands.some((x) => x.attempt === c.attempt)));
      if (toSend.length) commands.push({ attempt: toSend[0].attempt, ids: toSend.map((c) => c.instanceId) });
      if (state.crash === "after-send") return new Promise<InstallOutcome[]>(() => undefined);
      for (const c of cands) await join(c);
      return cands.map((c) => ({ ...base(c), status: "succeeded" as const }));
    },
  };
  /** How many commands each instance got. */
  const perInstance = () =>
    Object.fromEntries(IDS.map((id) => [id, commands.filter((x) => x.ids.includes(id)).length]));
  return { impl, commands, state, perInstance };
}

describe("enrollment passes across crashes and faults", () => {
  let store: SqliteStore;
  let cloud: ReturnType<typeof fakeSsmCloud>;
  let clock: number;

  beforeEach(async () => {
    store = new SqliteStore(":memory:");
    await store.migrate();
    await storeDocuments(store, tokenDocument("aws-discovery-iam-token", "iam", { allow: [{ aws_account: ACCOUNT }] }));
    cloud = fakeSsmCloud(store);
    clock = Date.parse("2025-03-01T00:00:00Z");
  });
  afterEach(() => store.close());

  /** A pass by runtime `by` in its start `boot`; it is not awaited when the fake install crashes. */
  const pass = (by: string, boot: string) => {
    const now = () => new Date(clock);
    return runEnrollmentPass({
      matchers: { aws: [awsMatcher.parse({ regions: [REGION], tags: { "*": "*" } })], gcp: [], azure: [] },
      backend: storeBackend(store, now),
      runtime: { proxyAddr: "127.0.0.1:3080" },
      clouds: (name) => (name === "aws" ? cloud.impl : undefined),
      discoveredBy: by,
      boot,
      staleMs: STALE_MS,
      joinTimeoutMs: 1000,
      pollMs: 5,
      now,
    });
  };
  /** Lets a crashing pass run until its install hangs (the process "dies" there). */
  const crashIn = async (by: string, boot: string, at: Crash) => {
    cloud.state.crash = at;
    void pass(by, boot);
    for (let i = 0; i < 50 && (await claims()).length < IDS.length; i++) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 20));
    cloud.state.crash = undefined;
  };
  const claims = async () => (await store.listEnrollments()).filter((e) => e.status === "installing");
  const statuses = async () => (await store.listEnrollments()).map((e) => [e.instanceId, e.status]);

  it("killed after sending: the restarted runtime takes its dead claims over at once and follows the sent command", async () => {
    await crashIn("rt/a", "boot-1", "after-send");
    expect(cloud.commands).toHaveLength(1);
    const attempt = ((await claims())[0].detail as EnrollmentDetail).attempt;
    expect(cloud.commands[0].attempt).toBe(attempt);

    const r = await pass("rt/a", "boot-2");
    expect(r.instances.map((i) => i.status)).toEqual(["enrolled", "enrolled", "enrolled"]);
    expect(cloud.perInstance()).toEqual({ "i-01": 1, "i-02": 1, "i-03": 1 });
    expect(r.commandsSent).toBe(3);
  });

  it("killed after claiming, before sending: the restart sends once, under the claim's attempt", async () => {
    await crashIn("rt/a", "boot-1", "before-send");
    expect(cloud.commands).toHaveLength(0);
    const attempt = ((await claims())[0].detail as EnrollmentDetail).attempt;

    const r = await pass("rt/a", "boot-2");
    expect(r.instances.map((i) => i.status)).toEqual(["enrolled", "enrolled", "enrolled"]);
    expect(cloud.commands).toEqual([{ attempt, ids: IDS }]);
  });

  it("another runtime leaves a live-looking claim alone until the claim timeout, then takes it over without a second send", async () => {
    await crashIn("rt/a", "boot-1", "after-send");
    const early = await pass("rt/b", "boot-9");
    expect(early.instances.map((i) => i.status)).toEqual(["skipped", "skipped", "skipped"]);
    expect(early.instances[0].reason).toMatch(/^an install is in flight since 2025-03-01T00:00:00.000Z$/);
    expect(cloud.commands).toHaveLength(1);

    clock += STALE_MS;
    const late = await pass("rt/b", "boot-9");
    expect(late.instances.map((i) => i.status)).toEqual(["enrolled", "enrolled", "enrolled"]);
    expect(cloud.perInstance()).toEqual({ "i-01": 1, "i-02": 1, "i-03": 1 });
  });

  it("the same runtime's live claims (same boot) are not taken over by its own next pass", async () => {
    await crashIn("rt/a", "boot-1", "after-send");
    const r = await pass("rt/a", "boot-1");
    expect(r.instances.map((i) => i.status)).toEqual(["skipped", "skipped", "skipped"]);
    expect(cloud.commands).toHaveLength(1);
  });

  it("SSM unreachable: each instance fails naming the cause, without backoff; the next pass enrolls them once", async () => {
    cloud.state.unreachable = true;
    const r = await pass("rt/a", "boot-1");
    expect(r.instances.map((i) => [i.status, i.failure_class])).toEqual(
      IDS.map(() => ["failed", "endpoint-unreachable"]),
    );
    expect(r.instances[0].reason).toMatch(/could not reach SSM at http:\/\/127.0.0.1:9: connect ECONNREFUSED/);
    const detail = (await store.listEnrollments())[0].detail as EnrollmentDetail;
    expect(detail).toMatchObject({ attempts: 0, failureClass: "endpoint-unreachable" });
    expect(detail.nextAttemptAt).toBeUndefined();

    cloud.state.unreachable = false;
    const again = await pass("rt/a", "boot-1");
    expect(again.instances.map((i) => i.status)).toEqual(["enrolled", "enrolled", "enrolled"]);
    expect(cloud.perInstance()).toEqual({ "i-01": 1, "i-02": 1, "i-03": 1 });
  });

  it("unreachable while resuming a dead claim: the attempt is kept, and the pass after follows its command", async () => {
    await crashIn("rt/a", "boot-1", "after-send");
    const attempt = ((await claims())[0].detail as EnrollmentDetail).attempt;
    cloud.state.unreachable = true;
    await pass("rt/a", "boot-2");
    expect(await statuses()).toEqual(IDS.map((id) => [id, "failed"]));
    expect(((await store.listEnrollments())[0].detail as EnrollmentDetail).attempt).toBe(attempt);

    cloud.state.unreachable = false;
    const r = await pass("rt/a", "boot-2");
    expect(r.instances.map((i) => i.status)).toEqual(["enrolled", "enrolled", "enrolled"]);
    expect(cloud.perInstance()).toEqual({ "i-01": 1, "i-02": 1, "i-03": 1 });
  });

  it("a pass that breaks while installing leaves no claim behind: each instance failed with the cause", async () => {
    cloud.state.explode = true;
    const r = await pass("rt/a", "boot-1");
    expect(r.instances.map((i) => [i.status, i.reason])).toEqual(
      IDS.map(() => ["failed", "the pass failed while installing: the store went away"]),
    );
    expect(await claims()).toEqual([]);
    cloud.state.explode = false;
    // Its attempt may have sent something, so it is resumed, not backed off: the next pass installs.
    const again = await pass("rt/a", "boot-1");
    expect(again.instances.map((i) => i.status)).toEqual(["enrolled", "enrolled", "enrolled"]);
    expect(cloud.perInstance()).toEqual({ "i-01": 1, "i-02": 1, "i-03": 1 });
  });
});

describe("discovery_service.claim_timeout", () => {
  const runtimeConfig = (line: string) =>
    `version: v1\ncluster_name: c.test\npublic_addr: https://127.0.0.1:3080\ndiscovery_service:\n${line}  aws: [{regions: [us-east-1]}]\n`;

  it.each([
    ["claim_timeout: soon", /discovery_service\.claim_timeout: "soon" is not a duration; write it like 5m/],
    ["claim_timeout: 0s", /discovery_service\.claim_timeout: duration must be greater than zero/],
    ["claim_timout: 1m", /discovery_service\.claim_timout: .*did you mean "claim_timeout"/],
  ])("refuses %s, naming the field", (line, message) => {
    expect(() => parseRuntimeConfig(runtimeConfig(`  ${line}\n`), "runtime.yaml")).toThrow(message);
  });

  it("defaults to 15m, longer than an install and its join wait", () => {
    expect(parseRuntimeConfig(runtimeConfig(""), "runtime.yaml").discoveryService?.claim_timeout).toBe("15m");
  });
});
