/**
 * The benchmark control plane (bench/control-plane.ts) answers the real SDK clients as AWS would: STS identities and
 * assumed roles attributed to their account, DescribeInstances filtered and paged, SSM's 50-id limit, EC2's
 * throttling, and a 400 naming any action it does not serve. A bench is only as true as these answers.
 */
import { DescribeInstancesCommand, EC2Client, paginateDescribeInstances } from "@aws-sdk/client-ec2";
import {
  DescribeInstanceInformationCommand,
  ListCommandInvocationsCommand,
  SendCommandCommand,
  SSMClient,
} from "@aws-sdk/client-ssm";
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { DescribeRegionsCommand } from "@aws-sdk/client-ec2";
import { ControlPlane, startControlPlane } from "../../bench/control-plane";
import { fetchEc2 } from "../../provider/clouds/aws/fetch";
import { awsMatcher } from "../../provider/model";

const OWN = { accessKeyId: "testing", secretAccessKey: "testing" };
const MEMBER = "210987654321";
let cp: ControlPlane;
const clients: { destroy(): void }[] = [];
const client = <T extends { destroy(): void }>(c: T): T => (clients.push(c), c);
const ec2 = (region: string, credentials = OWN) =>
  client(new EC2Client({ region, endpoint: cp.endpoint, credentials, maxAttempts: 1 }));

beforeEach(async () => {
  cp = await startControlPlane({ latencyMs: 0 });
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await cp.close();
});

async function assume(account: string) {
  const sts = client(new STSClient({ region: "us-east-1", endpoint: cp.endpoint, credentials: OWN }));
  const c = (await sts.send(new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${account}:role/discovery`, RoleSessionName: "bench" }))).Credentials!; // prettier-ignore
  return { accessKeyId: c.AccessKeyId!, secretAccessKey: c.SecretAccessKey!, sessionToken: c.SessionToken };
}

test("GetCallerIdentity names the plane's account, and an assumed role's credentials act in the role's account", async () => {
  const sts = client(new STSClient({ region: "us-east-1", endpoint: cp.endpoint, credentials: OWN }));
  expect((await sts.send(new GetCallerIdentityCommand({}))).Account).toBe(cp.account);
  const mine = cp.addInstances("eu-west-1", 2, { tags: { fleet: "a" } });
  const theirs = cp.addInstances("eu-west-1", 3, { account: MEMBER, tags: { fleet: "a" } });
  const member = await assume(MEMBER);
  const asMember = client(new STSClient({ region: "us-east-1", endpoint: cp.endpoint, credentials: member }));
  expect((await asMember.send(new GetCallerIdentityCommand({}))).Account).toBe(MEMBER);
  const listed = async (credentials: typeof OWN) =>
    ((await ec2("eu-west-1", credentials).send(new DescribeInstancesCommand({}))).Reservations ?? []).flatMap((r) =>
      r.Instances!.map((i) => i.InstanceId),
    );
  expect(await listed(OWN)).toEqual(mine);
  expect(await listed(member)).toEqual(theirs);
  await expect(
    sts.send(new AssumeRoleCommand({ RoleArn: "arn:aws:iam::12:role/x", RoleSessionName: "bench" })),
  ).rejects.toMatchObject({ name: "ValidationError" });
});

test("DescribeInstances filters by tag and pages by MaxResults and NextToken; a page over 1000 is refused", async () => {
  cp.addInstances("us-east-1", 12, { tags: { fleet: "web", Name: "w" } });
  cp.addInstances("us-east-1", 4, { tags: { fleet: "db" } });
  cp.addInstances("us-west-2", 5, { tags: { fleet: "web" } });
  const client = ec2("us-east-1");
  const pages: number[] = [];
  for await (const page of paginateDescribeInstances(
    { client, pageSize: 5 },
    {
      Filters: [
        { Name: "instance-state-name", Values: ["running"] },
        { Name: "tag:fleet", Values: ["w*"] },
      ],
    },
  ))
    pages.push(page.Reservations!.reduce((n, r) => n + r.Instances!.length, 0));
  expect(pages).toEqual([5, 5, 2]);
  const keyed = await client.send(new DescribeInstancesCommand({ Filters: [{ Name: "tag-key", Values: ["Name"] }] }));
  expect(keyed.Reservations!.flatMap((r) => r.Instances!).map((i) => i.Tags)).toHaveLength(12);
  await expect(client.send(new DescribeInstancesCommand({ MaxResults: 1001 }))).rejects.toMatchObject({
    name: "InvalidParameterValue",
  });
  await expect(
    client.send(new DescribeInstancesCommand({ Filters: [{ Name: "instance-colour", Values: ["red"] }] })),
  ).rejects.toThrow(/instance-colour/);
});

test("the EC2 fetcher finds every tagged instance of an assumed-role account in every region, and nothing else", async () => {
  cp.addInstances("us-east-1", 7, { account: MEMBER, tags: { fleet: "bench" } });
  cp.addInstances("ap-south-1", 3, { account: MEMBER, tags: { fleet: "bench" } });
  cp.addInstances("ap-south-1", 2, { account: MEMBER, tags: { fleet: "other" } });
  cp.addInstances("us-east-1", 4, { tags: { fleet: "bench" } }); // the caller's own account: not this matcher's
  const matcher = awsMatcher.parse({
    types: ["ec2"],
    regions: ["us-east-1", "ap-south-1"],
    tags: { fleet: "bench" },
    assume_role: { role_arn: `arn:aws:iam::${MEMBER}:role/discovery` },
  });
  const r = await fetchEc2(matcher, { endpoint: cp.endpoint, credentials: OWN });
  expect(r.scopes.map((s) => [s.account, s.region, s.instances, s.error])).toEqual([
    [MEMBER, "ap-south-1", 3, undefined],
    [MEMBER, "us-east-1", 7, undefined],
  ]);
  expect(new Set(r.candidates.map((c) => c.privateIp)).size).toBe(10);
  expect(cp.stats().byAction).toEqual({ "sts:AssumeRole": 1, "ec2:DescribeInstances": 2 });
});

test("an empty bucket answers RequestLimitExceeded at once, per account and region", async () => {
  cp.addInstances("us-east-1", 1);
  const client = ec2("us-east-1");
  const outcomes = await Promise.all(
    Array.from({ length: 300 }, () =>
      client.send(new DescribeInstancesCommand({ MaxResults: 5 })).then(
        () => "ok",
        (e: Error) => e.name,
      ),
    ),
  );
  // The non-mutating bucket holds 100; some more refill (20/s) while the 300 calls go out, never all 200.
  expect(outcomes.filter((o) => o === "ok").length).toBeGreaterThanOrEqual(100);
  expect(outcomes.filter((o) => o === "ok").length).toBeLessThan(300);
  expect(new Set(outcomes.filter((o) => o !== "ok"))).toEqual(new Set(["RequestLimitExceeded"]));
  expect(cp.stats().throttled).toBe(outcomes.filter((o) => o !== "ok").length);
  // Another region's bucket is untouched.
  await expect(ec2("us-west-2").send(new DescribeInstancesCommand({ MaxResults: 5 }))).resolves.toBeDefined();
});

test("SSM: instances are Online, SendCommand takes at most 50 ids, and its invocations are listed", async () => {
  const ids = cp.addInstances("us-east-1", 51);
  const ssm = client(new SSMClient({ region: "us-east-1", endpoint: cp.endpoint, credentials: OWN, maxAttempts: 1 }));
  const info = await ssm.send(
    new DescribeInstanceInformationCommand({ Filters: [{ Key: "InstanceIds", Values: ids.slice(0, 3) }] }),
  );
  expect(info.InstanceInformationList!.map((i) => [i.InstanceId, i.PingStatus])).toEqual(
    ids.slice(0, 3).map((id) => [id, "Online"]),
  );
  const send = (InstanceIds: string[]) =>
    ssm.send(new SendCommandCommand({ DocumentName: "AWS-RunShellScript", InstanceIds, Parameters: { commands: ["true"] } })); // prettier-ignore
  await expect(send(ids)).rejects.toMatchObject({ name: "ValidationException" });
  const sent = await send(ids.slice(0, 50));
  const listed = await ssm.send(new ListCommandInvocationsCommand({ CommandId: sent.Command!.CommandId }));
  expect(listed.CommandInvocations!.map((c) => c.InstanceId)).toEqual(ids.slice(0, 50));
  // An instance of another region is not managed here.
  const elsewhere = cp.addInstances("eu-west-1", 1);
  await expect(send(elsewhere)).rejects.toMatchObject({ name: "InvalidInstanceId" });
});

test("an action the plane does not serve is a 400 naming it, never a made-up answer", async () => {
  const logged = jest.spyOn(console, "error").mockImplementation(() => undefined);
  await expect(ec2("us-east-1").send(new DescribeRegionsCommand({}))).rejects.toThrow(/ec2:DescribeRegions/);
  expect(cp.stats().unknown).toEqual(["ec2:DescribeRegions"]);
  expect(logged).toHaveBeenCalledWith(expect.stringContaining("ec2:DescribeRegions is not served"));
  logged.mockRestore();
});
