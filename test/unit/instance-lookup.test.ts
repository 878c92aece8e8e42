import * as http from "http";
import type { AddressInfo } from "net";
import { verifyIamInstance } from "../../provider/clouds/aws/iam-instance";
import { AwsCallError, cachedInstanceApis, sdkInstanceApi } from "../../provider/clouds/aws/instance-lookup";
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

describe("sdkInstanceApi against a stand-in for STS, EC2 and IAM", () => {
  let server: http.Server;
  let endpoint: string;
  let answers: Record<string, Answer>;
  let seen: string[];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        const action = /Action=(\w+)/.exec(body)?.[1] ?? "?";
        seen.push(action);
        const a = answers[action] ?? { status: 500, body: "" };
        res.writeHead(a.status, { "content-type": "text/xml" }).end(a.body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  beforeEach(() => {
    answers = {};
    seen = [];
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
      DescribeInstances: { status: 400, body: ec2Error("InvalidInstanceID.NotFound") },
      GetInstanceProfile: { status: 404, body: queryError("NoSuchEntity") },
    };
    const a = api();
    await expect(a.describeInstance(ID)).resolves.toBeUndefined();
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

  it("answers 429 when EC2 throttles, so the node retries instead of joining unverified", async () => {
    answers = { DescribeInstances: { status: 503, body: ec2Error("RequestLimitExceeded") } };
    const caller = { account: ACCOUNT, arn: `arn:aws:sts::${ACCOUNT}:assumed-role/node/${ID}`, userId: `AROA1:${ID}` };
    const instances = cachedInstanceApis({ endpoint, credentials });
    const e = await failure(verifyIamInstance(caller, { instances, regions: ["us-east-1"] }));
    expect(e).toMatchObject({ code: "aws_throttled", status: 429 });
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
