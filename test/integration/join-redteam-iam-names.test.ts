import { CreateAccessKeyCommand, CreateUserCommand, IAMClient } from "@aws-sdk/client-iam";
import type { AwsCredentials } from "../../provider/clouds/aws/sts-request";
import { MOTO_CREDENTIALS, Moto, startMoto } from "../fixtures/moto";
import { startTestRuntime, TestRuntime } from "../fixtures/runtime";
import { iamJoinBody, instanceCredentials, launchWithRole, newHostKey } from "../fixtures/joins";

/**
 * Claiming an instance's node name over the iam join: any principal of an allowed account can call itself
 * `i-...` (an IAM user's name, a role session's name). The node name `<account>-<instance-id>` is the instance's
 * only when EC2 shows the instance running with the caller's role as its instance profile; every other caller
 * joins under a name no instance can have, so it neither takes the instance's name nor blocks its join.
 */
const ACCOUNT = "123456789012";
const NODE_ROLE = "discovery-node";
const TOKENS = `
kind: token
version: v2
metadata: {name: iam-token}
spec: {roles: [Node], join_method: iam, allow: [{aws_account: "${ACCOUNT}"}]}
`;
const UNVERIFIED = (name: string) => new RegExp(`^${ACCOUNT}-iam-${name}-[0-9a-f]{12}$`);

type Answer = Awaited<ReturnType<TestRuntime["call"]>>;

describe("join API red team: iam node names cannot be claimed", () => {
  let moto: Moto;
  let rt: TestRuntime;
  let real: string; // running, instance profile of discovery-node
  let web: string; // running, instance profile of web
  let stopped: string; // stopped, instance profile of discovery-node
  const saved = { ...process.env };
  const join = async (credentials: AwsCredentials, extra = {}): Promise<Answer> =>
    rt.call("POST", "/v1/join", {
      ...(await iamJoinBody(rt, { token: "iam-token", motoEndpoint: moto.endpoint, credentials })),
      ...extra,
    });
  let regionCase = 0;
  const session = (instanceId: string, role = NODE_ROLE) =>
    instanceCredentials(moto.endpoint, ACCOUNT, instanceId, role);
  const expectUnverified = (r: Answer, name: string, reason: string) => {
    expect(r.status).toBe(200);
    expect(r.body.node_name).toMatch(UNVERIFIED(name));
    expect(r.body.labels).toEqual({
      "discovery/origin": "cloud",
      "discovery/account-id": ACCOUNT,
      "discovery/instance-verified": "false",
      "discovery/unverified-reason": reason,
      "discovery/join-method": "iam",
    });
  };

  beforeAll(async () => {
    moto = await startMoto();
    // The runtime runs in this process: its EC2 and IAM clients reach moto through the standard variables.
    Object.assign(process.env, {
      AWS_ENDPOINT_URL: moto.endpoint,
      AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey,
    });
    rt = await startTestRuntime({
      join: { aws: { sts_endpoint: moto.endpoint }, rate_limit: { requests_per_minute: 100000, burst: 100000 } },
    });
    expect(
      (await rt.call("PUT", "/v1/resources", TOKENS, { admin: true, contentType: "application/yaml" })).status,
    ).toBe(200);
    [{ id: real }] = await launchWithRole(moto.endpoint, NODE_ROLE);
    [{ id: web }] = await launchWithRole(moto.endpoint, "web");
    [{ id: stopped }] = await launchWithRole(moto.endpoint, NODE_ROLE, 1, { stopped: true });
  });
  afterAll(async () => {
    await rt?.stop();
    await moto?.stop();
    process.env = saved;
  });

  it("an IAM user named like a real instance joins under an unverified name, without the instance's id", async () => {
    const iam = new IAMClient({ region: "us-east-1", endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS });
    await iam.send(new CreateUserCommand({ UserName: real }));
    const key = (await iam.send(new CreateAccessKeyCommand({ UserName: real }))).AccessKey!;
    iam.destroy();
    const r = await join({ accessKeyId: key.AccessKeyId!, secretAccessKey: key.SecretAccessKey! });
    expectUnverified(r, real, "not-instance-session");
    expect(r.body.node_name).not.toBe(`${ACCOUNT}-${real}`);
  });

  it.each([
    ["another role, named after a real running instance", () => real, "ci-runner", "role-mismatch"],
    ["the instance role, named after an instance that runs with another role", () => web, NODE_ROLE, "role-mismatch"],
    ["the instance role, named after an instance that does not exist", () => "i-0deadbeefdeadbeef", NODE_ROLE, "instance-not-found"], // prettier-ignore
    ["the instance role, named after a stopped instance", () => stopped, NODE_ROLE, "instance-not-running"],
  ])("a role session of %s joins unverified", async (_, instance, role, reason) => {
    expectUnverified(await join(await session(instance(), role), { aws_region: "us-east-1" }), instance(), reason);
  });

  it("after the spoofers joined, the real instance joins under its own name, verified, and once only", async () => {
    const r = await join(await session(real), { aws_region: "us-east-1" });
    expect(r.status).toBe(200);
    expect(r.body.node_name).toBe(`${ACCOUNT}-${real}`);
    expect(r.body.labels).toEqual({
      "discovery/origin": "cloud",
      "discovery/account-id": ACCOUNT,
      "discovery/instance-id": real,
      "discovery/region": "us-east-1",
      "discovery/instance-verified": "true",
      "discovery/join-method": "iam",
    });
    const nodes = (await rt.call("GET", "/v1/nodes", undefined, { admin: true })).body.nodes as {
      name: string;
      labels: Record<string, string>;
    }[];
    expect(nodes.filter((n) => n.labels["discovery/instance-id"] === real).map((n) => n.name)).toEqual([
      `${ACCOUNT}-${real}`,
    ]);
    // The spoofers hold names of their own: the IAM user and the ci-runner session used the real instance's id.
    expect(nodes.filter((n) => UNVERIFIED(real).test(n.name))).toHaveLength(2);
    const again = await join(await session(real), { aws_region: "us-east-1" });
    expect([again.status, again.body.error?.reason]).toEqual([403, "already_joined"]);
  });

  it("a real instance that states no region, with none recorded, joins unverified: no region is guessed or swept", async () => {
    // No aws_region, no enrollment record, and moto's STS endpoint names no region.
    const [{ id }] = await launchWithRole(moto.endpoint, NODE_ROLE);
    expectUnverified(await join(await session(id)), id, "region-unknown");
  });

  it.each([["mars-1"], ["us-east-1; rm -rf /"], [""], [42]])(
    "an aws_region of %j is refused with 400 before the caller is looked at, leaving the challenge unused",
    async (region) => {
      const body = await iamJoinBody(rt, {
        token: "iam-token",
        motoEndpoint: moto.endpoint,
        credentials: await session(`i-0ffffffffffff${String(++regionCase).padStart(4, "0")}`, "other-role"),
      });
      const r = await rt.call("POST", "/v1/join", { ...body, aws_region: region });
      expect({ status: r.status, code: r.body.error?.code, reason: r.body.error?.reason }).toEqual({
        status: 400,
        code: "bad_request",
        reason: "iam_region_invalid",
      });
      expect(r.body.error.message).toContain("is not a known AWS region");
      // The same challenge still joins once the field is fixed (another key: the refused one stored nothing).
      const again = await rt.call("POST", "/v1/join", { ...body, host_public_key: newHostKey() });
      expect(again.status).toBe(200);
    },
  );
});
