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
import { benchAdcCredentials } from "../../bench/control-plane-compute";
import { fetchEc2 } from "../../provider/clouds/aws/fetch";
import { awsMatcher, gcpMatcher } from "../../provider/model";
import { googleClients } from "../../provider/clouds/gcp/clients";
import { fetchGce } from "../../provider/clouds/gcp/fetch";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

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

describe("Compute Engine (the GCP side)", () => {
  let credentialsFile: string;
  const saved = process.env.GOOGLE_APPLICATION_CREDENTIALS;
  beforeEach(() => {
    // Google's ADC as the sandbox writes it: a user credential whose file names the token endpoint.
    credentialsFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pd-bench-gce-")), "adc.json");
    fs.writeFileSync(credentialsFile, benchAdcCredentials(cp.endpoint));
    process.env.GOOGLE_APPLICATION_CREDENTIALS = credentialsFile;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.GOOGLE_APPLICATION_CREDENTIALS;
    else process.env.GOOGLE_APPLICATION_CREDENTIALS = saved;
    fs.rmSync(path.dirname(credentialsFile), { recursive: true, force: true });
  });
  const google = () => {
    const clients = googleClients({ apiEndpoint: new URL(cp.endpoint).host, protocol: "http" });
    clients_.push(clients);
    return clients;
  };
  const clients_: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const c of clients_.splice(0)) await c.close();
  });
  const gce = (m: Record<string, unknown>) => gcpMatcher.parse({ types: ["gce"], ...m });

  test("the real fetcher lists zones page by page and by the aggregated listing, through ADC's token", async () => {
    const web = cp.addGceVms("proj-a", "europe-west1-b", 11, { fleet: "web" });
    cp.addGceVms("proj-a", "europe-west1-c", 3, { fleet: "db" });
    cp.addGceVms("proj-b", "us-central1-a", 7, { fleet: "web" });
    const zonal = await fetchGce(gce({ project_ids: ["proj-a"], locations: ["europe-west1-b"], labels: { fleet: "web" } }), { clients: google(), pageSize: 5 }); // prettier-ignore
    expect(zonal.candidates.map((c) => c.nodeName ?? c.instanceId)).toHaveLength(11);
    expect(zonal.scopes).toMatchObject([{ cloud: "gcp", account: "proj-a", region: "europe-west1-b", instances: 11, apiCalls: 3 }]); // prettier-ignore
    expect(zonal.candidates[0]).toMatchObject({ cloud: "gcp", account: "proj-a", privateIp: expect.stringMatching(/^10\./) }); // prettier-ignore
    expect(web).toHaveLength(11);
    const all = await fetchGce(gce({ project_ids: ["proj-a", "proj-b"], labels: { fleet: "web" } }), { clients: google(), pageSize: 5 }); // prettier-ignore
    expect(all.candidates).toHaveLength(18);
    expect(cp.stats().byAction).toMatchObject({ "compute:GET instances.list": 3, "compute:GET instances.aggregatedList": 5 }); // prettier-ignore
    expect(cp.stats().byAction["oauth:token"]).toBeGreaterThanOrEqual(1);
    expect(cp.stats().unknown).toEqual([]);
  }, 30_000); // Google's clients load their protos on first use, seconds under ts-jest

  // prettier-ignore
  test("past the project's reads per minute, 403 rateLimitExceeded, which the fetcher reports for the scope", async () => {
    const plane = await startControlPlane({ latencyMs: 0, gceReadsPerMinute: 2 });
    try {
      plane.addGceVms("proj-q", "asia-east1-a", 1);
      const clients = googleClients({ apiEndpoint: new URL(plane.endpoint).host, protocol: "http" });
      clients_.push(clients);
      fs.writeFileSync(credentialsFile, fs.readFileSync(credentialsFile, "utf8").replace(cp.endpoint, plane.endpoint));
      const m = gce({ project_ids: ["proj-q"], locations: ["asia-east1-a"] });
      for (let i = 0; i < 2; i++) expect((await fetchGce(m, { clients })).candidates).toHaveLength(1);
      const third = await fetchGce(m, { clients });
      expect(third.candidates).toEqual([]);
      expect(third.scopes[0].error?.message).toMatch(/Quota exceeded for quota metric 'Read requests'/);
      expect(plane.stats().throttled).toBe(1);
    } finally {
      await plane.close();
    }
  }, 30_000);

  test("a call without the token is 401, and a Compute request it does not serve is a 400 naming it", async () => {
    const unauthenticated = await fetch(`${cp.endpoint}/compute/v1/projects/p/zones/z/instances`);
    expect(unauthenticated.status).toBe(401);
    const other = await fetch(`${cp.endpoint}/compute/v1/projects/p/zones/z/disks`, { headers: { authorization: "Bearer bench-access-token" } }); // prettier-ignore
    expect(other.status).toBe(400);
    expect(((await other.json()) as { error: { message: string } }).error.message).toMatch(/GET \/compute\/v1\/projects\/p\/zones\/z\/disks is not served/); // prettier-ignore
    expect(cp.stats().unknown).toEqual(["compute:GET /compute/v1/projects/p/zones/z/disks"]);
  });
});
