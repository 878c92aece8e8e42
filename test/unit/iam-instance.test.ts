import { iamNodeIdentity } from "../../provider/clouds/aws/attest-iam";
import {
  checkAwsRegionField,
  InstanceVerification,
  stsHostRegion,
  verifyIamInstance,
  VerifyIamInstanceOptions,
} from "../../provider/clouds/aws/iam-instance";
import {
  AwsCallError,
  DescribedInstance,
  InstanceApiFactory,
  ProfileRole,
} from "../../provider/clouds/aws/instance-lookup";
import type { CallerIdentity } from "../../provider/clouds/aws/sts-request";
import { JoinRefusal } from "../../provider/join/errors";

const ACCOUNT = "123456789012";
const OTHER_ACCOUNT = "210987654321";
const REAL = "i-0123456789abcdef0"; // runs with the profile of role "node"
const WEB = "i-0aaaaaaaaaaaaaaa1"; // runs with the profile of role "web"
const STOPPED = "i-0bbbbbbbbbbbbbbb2";
const BARE = "i-0ccccccccccccccc3"; // no instance profile
const FOREIGN = "i-0ddddddddddddddd4"; // EC2 says another account owns it
const NODE_ROLE_ID = "AROANODEEXAMPLE00001";
const WEB_ROLE_ID = "AROAWEBEXAMPLE000002";
const profileArn = (name: string, account = ACCOUNT) => `arn:aws:iam::${account}:instance-profile/${name}`;
const role = (name: string, id: string, account = ACCOUNT): ProfileRole => ({
  arn: `arn:aws:iam::${account}:role/apps/${name}`, // a role with a path: sessions name the role without it
  name,
  id,
});

const instance = (id: string, over: Partial<DescribedInstance> = {}): DescribedInstance => ({
  instanceId: id,
  ownerId: ACCOUNT,
  state: "running",
  instanceProfileArn: profileArn("node-profile"),
  addresses: { privateIp: "10.0.0.7", privateDnsName: "ip-10-0-0-7.ec2.internal" },
  ...over,
});

/** The fake AWS: instances per region, instance profiles, and the failure a test injects; it records every call. */
function fakeAws(fail?: { action: AwsCallError["action"]; code: string }) {
  const regions: Record<string, DescribedInstance[]> = {
    "us-east-1": [
      instance(REAL),
      instance(WEB, { instanceProfileArn: profileArn("web-profile") }),
      instance(STOPPED, { state: "stopped" }),
      instance(BARE, { instanceProfileArn: undefined }),
      instance(FOREIGN, { ownerId: OTHER_ACCOUNT }),
    ],
  };
  const profiles: Record<string, ProfileRole[]> = {
    [profileArn("node-profile")]: [role("node", NODE_ROLE_ID)],
    [profileArn("web-profile")]: [role("web", WEB_ROLE_ID)],
  };
  const calls: string[] = [];
  const throwIf = (action: AwsCallError["action"]) => {
    if (fail?.action === action)
      throw new AwsCallError(action, Object.assign(new Error(`${fail.code} happened`), {
        name: fail.code,
        $metadata: { httpStatusCode: 400 },
      })); // prettier-ignore
  };
  const factory: InstanceApiFactory = (scope) => ({
    async describeInstance(id) {
      calls.push(`describe ${scope.region} ${scope.roleArn ?? "-"} ${id}`);
      throwIf("sts:AssumeRole");
      throwIf("ec2:DescribeInstances");
      return regions[scope.region]?.find((i) => i.instanceId === id);
    },
    async instanceProfileRoles(arn) {
      calls.push(`profile ${arn}`);
      throwIf("iam:GetInstanceProfile");
      return profiles[arn];
    },
  });
  return { factory, calls };
}

const session = (roleName: string, sessionName: string, roleId = NODE_ROLE_ID, account = ACCOUNT): CallerIdentity => ({
  account,
  arn: `arn:aws:sts::${account}:assumed-role/${roleName}/${sessionName}`,
  userId: `${roleId}:${sessionName}`,
});
const user = (name: string): CallerIdentity => ({
  account: ACCOUNT,
  arn: `arn:aws:iam::${ACCOUNT}:user/${name}`,
  userId: "AIDAEXAMPLEEXAMPLE01",
});

const verify = (id: CallerIdentity, aws = fakeAws(), over: Partial<VerifyIamInstanceOptions> = {}) =>
  verifyIamInstance(id, { instances: aws.factory, regions: ["us-east-1"], ...over });

async function refusalOf(p: Promise<unknown>): Promise<JoinRefusal> {
  const e = await p.then(
    () => new Error("expected a refusal, but the check passed"),
    (err: unknown) => err,
  );
  if (e instanceof JoinRefusal) return e;
  throw e;
}

describe("verifyIamInstance: a caller is named after an instance only when EC2 says it is that instance", () => {
  it("verifies the instance itself: running, its profile holding the caller's role (name, account, id)", async () => {
    const aws = fakeAws();
    expect(await verify(session("node", REAL), aws)).toEqual({
      verified: true,
      instanceId: REAL,
      region: "us-east-1",
      addresses: { privateIp: "10.0.0.7", privateDnsName: "ip-10-0-0-7.ec2.internal" },
    });
    expect(aws.calls).toEqual([`describe us-east-1 - ${REAL}`, `profile ${profileArn("node-profile")}`]);
  });

  it.each<[string, CallerIdentity, InstanceVerification["verified"] | string]>([
    ["an IAM user named like the instance", user(REAL), "not-instance-session"],
    ["an IAM user with a path, named like the instance", user(`ops/${REAL}`), "not-instance-session"],
    ["a role session named after an instance that runs with another role", session("node", WEB), "role-mismatch"],
    ["another role's session named after the instance", session("web", REAL, WEB_ROLE_ID), "role-mismatch"],
    [
      "a session named after an instance that does not exist",
      session("node", "i-0eeeeeeeeeeeeeee5"),
      "instance-not-found",
    ],
    ["a session named after a stopped instance", session("node", STOPPED), "instance-not-running"],
    ["a session named after an instance without a profile", session("node", BARE), "role-mismatch"],
    ["a session named after an instance of another account", session("node", FOREIGN), "account-mismatch"],
    ["a namesake role (same name, another role id)", session("node", REAL, "AROARECREATED0000001"), "role-mismatch"],
    ["a session name that only starts like an instance id", session("node", `${REAL}x`), "not-instance-session"],
    ["a session named with upper-case hex", session("node", REAL.toUpperCase()), "not-instance-session"],
  ])("does not verify %s", async (_, caller, reason) => {
    expect(await verify(caller)).toEqual({ verified: false, reason });
  });

  it("asks AWS nothing about a caller that is not an instance session", async () => {
    const aws = fakeAws();
    await verify(user(REAL), aws);
    expect(aws.calls).toEqual([]);
  });

  it("does not verify an instance whose profile lies in another account", async () => {
    const aws = fakeAws();
    const base = aws.factory;
    aws.factory = (scope) => ({
      ...base(scope),
      describeInstance: async (id) => instance(id, { instanceProfileArn: profileArn("node-profile", OTHER_ACCOUNT) }),
    });
    expect(await verify(session("node", REAL), aws)).toEqual({ verified: false, reason: "role-mismatch" });
  });

  it("looks in the stated region, then discovery's, then the STS host's, each once, until EC2 knows the instance", async () => {
    const aws = fakeAws();
    const enrollmentRegion = jest.fn(async () => "us-east-1");
    const out = await verify(session("node", REAL), aws, {
      regions: ["eu-west-1", "ap-south-1"],
      enrollmentRegion,
    });
    expect(out.verified).toBe(true);
    expect(enrollmentRegion).toHaveBeenCalledWith(ACCOUNT, REAL);
    expect(aws.calls.filter((c) => c.startsWith("describe"))).toEqual([
      `describe eu-west-1 - ${REAL}`,
      `describe us-east-1 - ${REAL}`,
    ]);
  });

  it("asks each region once, and calls an instance not found after its candidates, never sweeping every region", async () => {
    const aws = fakeAws();
    const out = await verify(session("node", "i-0eeeeeeeeeeeeeee5"), aws, {
      regions: ["us-east-1", "us-east-1"],
      enrollmentRegion: async () => "us-east-1",
    });
    expect(out).toEqual({ verified: false, reason: "instance-not-found" });
    expect(aws.calls).toEqual(["describe us-east-1 - i-0eeeeeeeeeeeeeee5"]);
  });

  it("does not verify without a region to look in, and asks AWS nothing", async () => {
    const aws = fakeAws();
    expect(await verify(session("node", REAL), aws, { regions: [undefined, undefined] })).toEqual({
      verified: false,
      reason: "region-unknown",
    });
    expect(aws.calls).toEqual([]);
  });

  it("looks with the allow rule's aws_role when it names one", async () => {
    const aws = fakeAws();
    const roleArn = `arn:aws:iam::${ACCOUNT}:role/discovery-join-check`;
    await verify(session("node", REAL), aws, { roleArn });
    expect(aws.calls[0]).toBe(`describe us-east-1 ${roleArn} ${REAL}`);
  });

  // A failed call must not pass for a missing instance: the spoofer would keep a name and the instance's join
  // would look like an attack. The join is refused with the permission to grant, or 429 to retry.
  it.each<[string, AwsCallError["action"], string, string, number, string]>([
    [
      "EC2 denying DescribeInstances",
      "ec2:DescribeInstances",
      "UnauthorizedOperation",
      "iam_instance_check_failed",
      403,
      "grant ec2:DescribeInstances to the runtime's own credentials",
    ],
    [
      "IAM denying GetInstanceProfile",
      "iam:GetInstanceProfile",
      "AccessDenied",
      "iam_instance_check_failed",
      403,
      "grant iam:GetInstanceProfile to the runtime's own credentials",
    ],
    ["EC2 throttling", "ec2:DescribeInstances", "RequestLimitExceeded", "aws_throttled", 429, "retry shortly"],
    ["IAM throttling", "iam:GetInstanceProfile", "Throttling", "aws_throttled", 429, "retry shortly"],
  ])("refuses when %s", async (_, action, code, refusal, status, fix) => {
    const e = await refusalOf(verify(session("node", REAL), fakeAws({ action, code })));
    expect({ code: e.code, status: e.status }).toEqual({ code: refusal, status });
    expect(e.reason).toContain(fix);
    if (status === 403) expect(e.reason).toContain(`${action} in account ${ACCOUNT}, region us-east-1 failed: ${code}`);
    expect(e.reason).not.toContain("happened"); // AWS's message can name the runtime's role; only its code is shown
  });

  it("assumes a * account rule's role in the caller's account", async () => {
    const aws = fakeAws();
    await verify(session("node", REAL), aws, { roleArn: "arn:aws:iam::*:role/Member" });
    expect(aws.calls[0]).toBe(`describe us-east-1 arn:aws:iam::${ACCOUNT}:role/Member ${REAL}`);
  });

  it("refuses, naming the role, when the rule's aws_role cannot be assumed", async () => {
    const roleArn = `arn:aws:iam::${ACCOUNT}:role/discovery-join-check`;
    const aws = fakeAws({ action: "sts:AssumeRole", code: "AccessDenied" });
    const e = await refusalOf(verify(session("node", REAL), aws, { roleArn }));
    expect({ code: e.code, status: e.status }).toEqual({ code: "iam_instance_check_failed", status: 403 });
    expect(e.reason).toContain(`let the runtime assume ${roleArn}`);
  });

  it("asks no further region once a call failed", async () => {
    const aws = fakeAws({ action: "ec2:DescribeInstances", code: "UnauthorizedOperation" });
    await refusalOf(verify(session("node", REAL), aws, { regions: ["us-east-1", "eu-west-1"] }));
    expect(aws.calls).toEqual([`describe us-east-1 - ${REAL}`]);
  });
});

describe("iamNodeIdentity: names and labels from what was verified", () => {
  const verified: InstanceVerification = {
    verified: true,
    instanceId: REAL,
    region: "us-east-1",
    addresses: { privateIp: "10.0.0.7", privateDnsName: "ip-10-0-0-7.ec2.internal" },
  };

  it("names a verified instance <account>-<instance-id>, with its instance id, region and addresses", () => {
    expect(iamNodeIdentity(session("node", REAL), verified)).toEqual({
      nodeName: `${ACCOUNT}-${REAL}`,
      labels: {
        "discovery/origin": "cloud",
        "discovery/account-id": ACCOUNT,
        "discovery/instance-id": REAL,
        "discovery/region": "us-east-1",
        "discovery/instance-verified": "true",
      },
      principals: [`${ACCOUNT}-${REAL}`, "10.0.0.7", "ip-10-0-0-7.ec2.internal"],
    });
  });

  it.each([
    [user(REAL), "role-mismatch", /^123456789012-iam-i-0123456789abcdef0-[0-9a-f]{12}$/],
    [session("node", WEB), "role-mismatch", /^123456789012-iam-i-0aaaaaaaaaaaaaaa1-[0-9a-f]{12}$/],
    [session("sso", "Alice@Example.com"), "not-instance-session", /^123456789012-iam-alice-example.com-[0-9a-f]{12}$/],
    [user("ops/.hidden"), "not-instance-session", /^123456789012-iam-hidden-[0-9a-f]{12}$/],
    [
      { account: ACCOUNT, arn: `arn:aws:iam::${ACCOUNT}:root`, userId: ACCOUNT },
      "not-instance-session",
      /^123456789012-iam-root-[0-9a-f]{12}$/,
    ],
    [user("x".repeat(64)), "not-instance-session", new RegExp(`^123456789012-iam-${"x".repeat(32)}-[0-9a-f]{12}$`)],
    [user("@@@"), "not-instance-session", /^123456789012-iam-caller-[0-9a-f]{12}$/],
  ] as const)("names unverified %j apart from every instance", (caller, reason, name) => {
    const out = iamNodeIdentity(caller, { verified: false, reason });
    expect(out.nodeName).toMatch(name);
    expect(out.nodeName).not.toMatch(/^\d{12}-i-/);
    expect(out.labels).toEqual({
      "discovery/origin": "cloud",
      "discovery/account-id": ACCOUNT,
      "discovery/instance-verified": "false",
      "discovery/unverified-reason": reason,
    });
    expect(out.principals).toEqual([out.nodeName]);
  });

  it("gives two callers whose names clean up alike two names", () => {
    const a = iamNodeIdentity(session("node", "build-1"), { verified: false, reason: "not-instance-session" });
    const b = iamNodeIdentity(session("web", "build-1"), { verified: false, reason: "not-instance-session" });
    expect(a.nodeName).not.toBe(b.nodeName);
    expect(iamNodeIdentity(session("node", "build-1"), { verified: false, reason: "not-instance-session" })).toEqual(a);
  });
});

describe("checkAwsRegionField and stsHostRegion", () => {
  it.each([undefined, "us-east-1", "eu-west-1", "us-gov-west-1"])("accepts aws_region %j", (region) => {
    expect(checkAwsRegionField(region === undefined ? {} : { aws_region: region })).toBe(region);
  });

  it.each([["xx-fake-1"], [""], ["US-EAST-1"], ["us-east-1 "], ["../../latest"], [5], [["us-east-1"]], [null]])(
    "refuses aws_region %j with 400 iam_region_invalid",
    (region) => {
      let err: unknown;
      try {
        checkAwsRegionField({ aws_region: region });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(JoinRefusal);
      expect(err).toMatchObject({ code: "iam_region_invalid", status: 400 });
      expect((err as JoinRefusal).reason).toContain("/latest/meta-data/placement/region");
    },
  );

  it.each([
    ["https://sts.eu-west-1.amazonaws.com/", "eu-west-1"],
    ["https://sts.amazonaws.com/", undefined],
    ["https://sts.xx-fake-1.amazonaws.com/", undefined],
    ["http://127.0.0.1:4566/", undefined],
  ])("reads the region of %s as %s", (url, region) => {
    expect(stsHostRegion(url)).toBe(region);
  });
});
