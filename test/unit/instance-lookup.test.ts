import * as http from "http";
import type { AddressInfo } from "net";
import { verifyIamInstance } from "../../provider/clouds/aws/iam-instance";
import {
  AwsCallError,
  cachedInstanceApis,
  describeLane,
  sdkInstanceApi,
} from "../../provider/clouds/aws/instance-lookup";
import { BucketRegistry, EC2_NON_MUTATING, EC2_UNFILTERED } from "../../provider/clouds/aws/rate-limits";
import { JoinRefusal } from "../../provider/join/errors";

/**
 * The SDK-backed instance checks against a loopback server standing in for STS, EC2 and IAM: what each AWS answer
 * becomes (an instance, "unknown", or a failure naming the permission) and how assumed credentials are reused.
 */
const ACCOUNT = "123456789012";
const ID = "i-0123456789abcdef0";
const ROLE = `arn:aws:iam::${ACCOUNT}:role/discovery-join-check`;
const credentials = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" };

const ec2Error = (code: string) =>
  `<Response><Errors><Error><Code>${code}</Code><Message>${code} happened to role x</Message></Error></Errors><RequestID>r</RequestID></Response>`;
const queryError = (code: string) =>
  `<ErrorResponse><Error><Type>Sender</Type><Code>${code}</Code><Message>${code} happened to role x</Message></Error><RequestId>r</RequestId></ErrorResponse>`;
const ASSUMED =
  "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/discovery-join-check/discovery-iam-join</Arn><AssumedRoleId>AROA:x</AssumedRoleId></AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>";
const NO_INSTANCES = "<DescribeInstancesResponse><reservationSet/></DescribeInstancesResponse>";

type Answer = { status: number; body: string };
/** A fixed answer, or one computed from the request's form body (its parameters). */
type Answers = Record<string, Answer | ((body: string) => Answer)>;

/** The values of `Prefix.N` parameters in a form body (InstanceId.1, Filter.1.Value.2, ...). */
const params = (body: string, prefix: string) =>
  [...new URLSearchParams(body).entries()].filter(([k]) => new RegExp(`^${prefix}\\.\\d+$`).test(k)).map(([, v]) => v);
/** DescribeInstances' answer listing `ids` as running instances of ACCOUNT. */
const instancesXml = (ids: string[]) =>
  `<DescribeInstancesResponse><reservationSet><item><ownerId>${ACCOUNT}</ownerId><instancesSet>${ids
    .map(
      (id) =>
        `<item><instanceId>${id}</instanceId><instanceState><name>running</name></instanceState><privateIpAddress>10.0.0.5</privateIpAddress></item>`,
    )
    .join("")}</instancesSet></item></reservationSet></DescribeInstancesResponse>`;
/** How a DescribeInstances body names its ids. */
const lane = (body: string) =>
  body.includes("InstanceId.1=") ? "by id" : body.includes("Filter.1.Name=instance-id") ? "by filter" : "?";
/** EC2 as it answers DescribeInstances for `known`: by InstanceIds all must exist, a filter leaves unknown ids out. */
const ec2Knowing = (known: Set<string>) => (body: string) => {
  const byId = params(body, "InstanceId");
  if (byId.length) {
    if (byId.some((id) => !known.has(id))) return { status: 400, body: ec2Error("InvalidInstanceID.NotFound") };
    return { status: 200, body: instancesXml(byId) };
  }
  return { status: 200, body: instancesXml(params(body, "Filter\\.1\\.Value").filter((id) => known.has(id))) };
};

describe("sdkInstanceApi against a stand-in for STS, EC2 and IAM", () => {
  let server: http.Server;
  let endpoint: string;
  let answers: Answers;
  let seen: string[];
  let bodies: string[];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        const action = /Action=(\w+)/.exec(body)?.[1] ?? "?";
        seen.push(action);
        bodies.push(body);
        const given = answers[action] ?? { status: 500, body: "" };
        const a = typeof given === "function" ? given(body) : given;
        res.writeHead(a.status, { "content-type": "text/xml" }).end(a.body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  beforeEach(() => {
    answers = {};
    seen = [];
    bodies = [];
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const api = (roleArn?: string) => sdkInstanceApi({ region: "us-east-1", roleArn }, { endpoint, credentials });
  const failure = async (p: Promise<unknown>) =>
    p.then(
      () => new Error("expected a failure"),
      (e: unknown) => e,
    );

  it("reads an unknown instance id and an unknown instance profile as unknown, not as failures", async () => {
    answers = {
      DescribeInstances: ec2Knowing(new Set()),
      GetInstanceProfile: { status: 404, body: queryError("NoSuchEntity") },
    };
    const a = api();
    await expect(a.describeInstance(ID)).resolves.toBeUndefined();
    // A lone id goes by filter, which leaves an unknown id out of the answer.
    expect(bodies.map(lane)).toEqual(["by filter"]);
    await expect(a.describeInstance("i-not-an-id; DROP")).resolves.toBeUndefined(); // malformed: no call at all
    expect(seen.filter((x) => x === "DescribeInstances")).toHaveLength(1);
    await expect(a.instanceProfileRoles(`arn:aws:iam::${ACCOUNT}:instance-profile/gone`)).resolves.toBeUndefined();
    a.destroy();
  });

  it.each([
    ["EC2 denying DescribeInstances", { DescribeInstances: { status: 403, body: ec2Error("UnauthorizedOperation") } }, "ec2:DescribeInstances", undefined], // prettier-ignore
    ["IAM denying GetInstanceProfile", { GetInstanceProfile: { status: 403, body: queryError("AccessDenied") } }, "iam:GetInstanceProfile", undefined], // prettier-ignore
    ["STS refusing the rule's role", { AssumeRole: { status: 403, body: queryError("AccessDenied") } }, "sts:AssumeRole", ROLE], // prettier-ignore
  ])("names the call when %s", async (_, given, action, roleArn) => {
    answers = given;
    const a = api(roleArn);
    const call = action === "iam:GetInstanceProfile" ? a.instanceProfileRoles(`arn:aws:iam::${ACCOUNT}:instance-profile/p`) : a.describeInstance(ID); // prettier-ignore
    const e = await failure(call);
    expect(e).toBeInstanceOf(AwsCallError);
    expect((e as AwsCallError).action).toBe(action);
    a.destroy();
  });

  it("refuses an iam join with 403 iam_instance_check_failed, naming the permission, when EC2 denies the runtime", async () => {
    answers = { DescribeInstances: { status: 403, body: ec2Error("UnauthorizedOperation") } };
    const instances = cachedInstanceApis({ endpoint, credentials });
    const caller = { account: ACCOUNT, arn: `arn:aws:sts::${ACCOUNT}:assumed-role/node/${ID}`, userId: `AROA1:${ID}` };
    const e = await failure(verifyIamInstance(caller, { instances, regions: ["us-east-1"] }));
    expect(e).toBeInstanceOf(JoinRefusal);
    expect(e).toMatchObject({ code: "iam_instance_check_failed", status: 403 });
    expect((e as JoinRefusal).reason).toBe(
      `ec2:DescribeInstances in account ${ACCOUNT}, region us-east-1 failed: UnauthorizedOperation; grant ec2:DescribeInstances to the runtime's own credentials`,
    );
  });

  it("retries a throttled DescribeInstances after a backoff: the join waits, it is not refused", async () => {
    let throttled = 0;
    answers = {
      DescribeInstances: (body) =>
        ++throttled <= 2 ? { status: 503, body: ec2Error("RequestLimitExceeded") } : ec2Knowing(new Set([ID]))(body),
    };
    const a = sdkInstanceApi({ region: "us-east-1" }, { endpoint, credentials, retry: { baseMs: 1, capMs: 2 } });
    await expect(a.describeInstance(ID)).resolves.toMatchObject({ instanceId: ID, state: "running", ownerId: ACCOUNT });
    expect(seen.filter((x) => x === "DescribeInstances")).toHaveLength(3); // two throttled, then answered
    expect(a.describeCalls).toBeGreaterThanOrEqual(2); // ours; the SDK client may retry once inside an attempt
    a.destroy();
  });

  it("answers 429 when EC2 still throttles after every retry, so the node retries instead of joining unverified", async () => {
    answers = { DescribeInstances: { status: 503, body: ec2Error("RequestLimitExceeded") } };
    const caller = { account: ACCOUNT, arn: `arn:aws:sts::${ACCOUNT}:assumed-role/node/${ID}`, userId: `AROA1:${ID}` };
    const instances = cachedInstanceApis({ endpoint, credentials, retry: { maxAttempts: 3, baseMs: 1, capMs: 2 } });
    const e = await failure(verifyIamInstance(caller, { instances, regions: ["us-east-1"] }));
    expect(e).toMatchObject({ code: "aws_throttled", status: 429 });
    // Each attempt is a real call (the SDK's own retry may add to them), never fewer than ours.
    expect(seen.filter((x) => x === "DescribeInstances").length).toBeGreaterThanOrEqual(3);
  });

  it("a storm of 2,500 concurrent lookups in one scope costs 3 calls of at most 1000 ids, each answer the right one", async () => {
    const ids = Array.from({ length: 2500 }, (_, i) => `i-${i.toString(16).padStart(17, "0")}`);
    const unknown = new Set(ids.filter((_, i) => i % 500 === 7)); // 5 ids EC2 does not know, in the first batches
    answers = { DescribeInstances: ec2Knowing(new Set(ids.filter((id) => !unknown.has(id)))) };
    const a = api();
    const found = await Promise.all(ids.map((id) => a.describeInstance(id)));
    for (const [i, id] of ids.entries()) {
      if (unknown.has(id)) expect(found[i]).toBeUndefined();
      else expect(found[i]).toMatchObject({ instanceId: id, ownerId: ACCOUNT, state: "running" });
    }
    const byId = bodies.map((b) => params(b, "InstanceId").length).filter((n) => n > 0);
    expect(byId).toEqual([1000, 1000, 500]);
    // The batches holding an unknown id were asked again by filter, 200 values a call.
    const byFilter = bodies.map((b) => params(b, "Filter\\.1\\.Value").length).filter((n) => n > 0);
    expect(byFilter.every((n) => n <= 200)).toBe(true);
    expect(byFilter.reduce((x, y) => x + y, 0)).toBe(2500);
    a.destroy();
  });

  describe("pacing over EC2's two buckets, on a clock that moves only when a call waits for a token", () => {
    /** Buckets on a fake clock: a wait for a token moves it on at once, or, after `hold()`, when `release()` is called. */
    function fakeTime() {
      let now = 0;
      const slept: number[] = [];
      let hold = false;
      let release: () => void = () => undefined;
      const sleep = (ms: number) => {
        slept.push(ms);
        now += ms;
        if (!hold) return Promise.resolve();
        hold = false;
        return new Promise<void>((r) => (release = r));
      };
      const buckets = new BucketRegistry({ clock: () => now, sleep });
      return { buckets, slept, hold: () => (hold = true), release: () => release() };
    }
    const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `i-${(from + i).toString(16).padStart(17, "0")}`); // prettier-ignore
    const SCOPE = "ec2/runtime/us-east-1";

    it.each([
      ["one id, both buckets ready", 1, 0, 0, "filter"],
      ["200 ids, both ready: one filter holds them", 200, 0, 0, "filter"],
      ["201 ids, both ready: InstanceIds", 201, 0, 0, "ids"],
      ["many ids, the filter's bucket ready first", 900, 0, 50, "filter"],
      ["one id, the InstanceIds bucket ready first", 1, 50, 0, "ids"],
    ] as const)("describeLane: %s", (_, waiting, filterWait, idsWait, expected) => {
      expect(describeLane(waiting, filterWait, idsWait)).toBe(expected);
    });

    it("lone lookups spend the filter bucket (100), then the InstanceIds one (50), each less 2 kept in reserve, then wait for the sooner refill", async () => {
      const t = fakeTime();
      const all = ids(98 + 48 + 1);
      answers = { DescribeInstances: ec2Knowing(new Set(all)) };
      const a = sdkInstanceApi({ region: "us-east-1" }, { endpoint, credentials, buckets: t.buckets });
      for (const id of all) await expect(a.describeInstance(id)).resolves.toMatchObject({ instanceId: id });
      const lanes = bodies.map(lane);
      expect(lanes.slice(0, 98).every((l) => l === "by filter")).toBe(true);
      expect(lanes.slice(98, 146).every((l) => l === "by id")).toBe(true);
      // Both at their reserve: the filter bucket refills a token in 50 ms (20/s), the InstanceIds one in 100 ms (10/s).
      expect(lanes[146]).toBe("by filter");
      expect(t.slept).toEqual([50]);
      expect(bodies[0]).toContain("MaxResults=1000");
      a.destroy();
    });

    it("asks EC2 again for an id it answered a moment ago: every join is proved by a live call", async () => {
      answers = { DescribeInstances: ec2Knowing(new Set([ID])) };
      const a = sdkInstanceApi({ region: "us-east-1" }, { endpoint, credentials, buckets: fakeTime().buckets });
      for (let i = 0; i < 3; i++) await expect(a.describeInstance(ID)).resolves.toMatchObject({ state: "running" });
      expect(seen.filter((x) => x === "DescribeInstances")).toHaveLength(3);
      a.destroy();
    });

    it("takes the token before forming the batch: ids asked while a call waits for it go in that call", async () => {
      const t = fakeTime();
      for (let i = 0; i < EC2_NON_MUTATING.capacity; i++) await t.buckets.take(SCOPE, EC2_NON_MUTATING);
      for (let i = 0; i < EC2_UNFILTERED.capacity; i++) await t.buckets.take(SCOPE, EC2_UNFILTERED);
      const all = ids(10);
      answers = { DescribeInstances: ec2Knowing(new Set(all)) };
      const a = sdkInstanceApi({ region: "us-east-1" }, { endpoint, credentials, buckets: t.buckets });
      t.hold();
      const first = a.describeInstance(all[0]);
      while (t.slept.length === 0) await new Promise((r) => setImmediate(r)); // the call waits for its token
      const later = all.slice(1).map((id) => a.describeInstance(id));
      await new Promise((r) => setImmediate(r));
      t.release();
      const found = await Promise.all([first, ...later]);
      expect(found.map((f) => f?.instanceId)).toEqual(all);
      expect(bodies.map(lane)).toEqual(["by filter"]);
      expect(params(bodies[0], "Filter\\.1\\.Value")).toEqual(all);
      a.destroy();
    });
  });

  it("keeps one client set per region and role, assuming the role once for many joins", async () => {
    answers = { AssumeRole: { status: 200, body: ASSUMED }, DescribeInstances: { status: 200, body: NO_INSTANCES } };
    const instances = cachedInstanceApis({ endpoint, credentials });
    expect(instances({ region: "us-east-1", roleArn: ROLE })).toBe(instances({ region: "us-east-1", roleArn: ROLE }));
    expect(instances({ region: "us-east-1" })).not.toBe(instances({ region: "us-east-1", roleArn: ROLE }));
    for (let i = 0; i < 3; i++) await instances({ region: "us-east-1", roleArn: ROLE }).describeInstance(ID);
    expect(seen).toEqual(["AssumeRole", "DescribeInstances", "DescribeInstances", "DescribeInstances"]);
  });
});
