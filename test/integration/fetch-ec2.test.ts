import * as http from "http";
import { AddressInfo } from "net";
import {
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeInstancesCommandOutput,
  EC2Client,
  RunInstancesCommand,
  StopInstancesCommand,
} from "@aws-sdk/client-ec2";
import {
  CreateAccountCommand,
  CreateOrganizationalUnitCommand,
  CreateOrganizationCommand,
  ListRootsCommand,
  MoveAccountCommand,
  OrganizationsClient,
} from "@aws-sdk/client-organizations";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import { readDescribeInstances } from "../../provider/clouds/aws/describe-instances-reader";
import { fetchEc2, FetchOptions } from "../../provider/clouds/aws/fetch";
import { awsMatcher } from "../../provider/model/discovery-config";
import type { ScopeReport } from "../../provider/enroll/types";
import { Moto, MOTO_CREDENTIALS, MOTO_DEFAULT_ACCOUNT, startMoto } from "../fixtures/moto";

type Creds = { accessKeyId: string; secretAccessKey: string; sessionToken?: string };

/** One request the proxy saw, as named by its SigV4 credential scope. */
interface SeenRequest {
  service: string;
  region: string;
  action: string;
  body: string;
}
type Answer = { status: number; body: string } | undefined;

/** An HTTP proxy on loopback in front of moto that can answer some requests itself (throttling, failures). */
async function startProxy(upstream: string, decide: (r: SeenRequest) => Answer) {
  const seen: SeenRequest[] = [];
  const srv = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const text = body.toString();
      const scope = /Credential=[^/]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(req.headers.authorization ?? "");
      const target = String(req.headers["x-amz-target"] ?? "");
      const action = /(?:^|&)Action=([^&]+)/.exec(text)?.[1] ?? target.split(".").pop() ?? "";
      const r = { region: scope?.[1] ?? "", service: scope?.[2] ?? "", action, body: decodeURIComponent(text) };
      seen.push(r);
      const answer = decide(r);
      if (answer) {
        res.writeHead(answer.status, { "content-type": "text/xml" });
        return res.end(answer.body);
      }
      const up = http.request(`${upstream}${req.url}`, {
        method: req.method,
        headers: req.headers,
      });
      up.on("response", (m) => {
        res.writeHead(m.statusCode ?? 502, m.headers);
        m.pipe(res);
      });
      up.on("error", () => res.destroy());
      up.end(body);
    });
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  return {
    endpoint: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((r) => srv.close(() => r())),
  };
}

const ec2Error = (code: string, message: string) =>
  `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>${code}</Code><Message>${message}</Message></Error></Errors><RequestID>proxy</RequestID></Response>`;
const THROTTLED: Answer = { status: 503, body: ec2Error("RequestLimitExceeded", "Request limit exceeded.") };

describe("the EC2 fetcher against moto", () => {
  let moto: Moto;
  const images = new Map<string, string>();
  const fastRetry = { sleep: async () => {} };

  beforeAll(async () => {
    moto = await startMoto();
  });
  afterAll(async () => {
    await moto?.stop();
  });

  const opts = (more: Partial<FetchOptions> = {}): FetchOptions => ({
    credentials: MOTO_CREDENTIALS,
    endpoint: moto.endpoint,
    ...more,
  });
  const matcher = (m: Record<string, unknown>) => awsMatcher.parse({ types: ["ec2"], ...m });
  const ids = (r: { candidates: { instanceId: string }[] }) => r.candidates.map((c) => c.instanceId).sort();
  const scopeOf = (scopes: ScopeReport[], region: string) => scopes.find((s) => s.region === region);

  /** Credentials moto attributes to `account`, as a member role there would give. */
  async function credsFor(account: string, role = "x"): Promise<Creds> {
    if (account === MOTO_DEFAULT_ACCOUNT) return MOTO_CREDENTIALS;
    const sts = new STSClient({ region: "us-east-1", endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS });
    const out = await sts.send(
      new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${account}:role/${role}`, RoleSessionName: "seed" }),
    );
    const c = out.Credentials!;
    return { accessKeyId: c.AccessKeyId!, secretAccessKey: c.SecretAccessKey!, sessionToken: c.SessionToken };
  }

  /** Launches `count` instances, `perReservation` to a RunInstances call, and returns their ids. */
  async function launch(
    account: string,
    region: string,
    count: number,
    tags: Record<string, string>,
    perReservation = count,
  ): Promise<string[]> {
    const client = new EC2Client({ region, endpoint: moto.endpoint, credentials: await credsFor(account) });
    if (!images.has(region)) {
      const out = await client.send(new DescribeImagesCommand({ Owners: ["amazon"] }));
      images.set(region, out.Images![0].ImageId!);
    }
    const Tags = Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
    const batches = Array.from({ length: Math.ceil(count / perReservation) }, (_, i) =>
      Math.min(perReservation, count - i * perReservation),
    );
    const launched: string[] = [];
    // moto is threaded; a few RunInstances at once make 1,100 reservations take seconds, not a minute.
    for (let i = 0; i < batches.length; i += 25) {
      const outs = await Promise.all(
        batches.slice(i, i + 25).map((n) =>
          client.send(
            new RunInstancesCommand({
              ImageId: images.get(region),
              MinCount: n,
              MaxCount: n,
              InstanceType: "t3.micro",
              TagSpecifications: Tags.length ? [{ ResourceType: "instance", Tags }] : undefined,
            }),
          ),
        ),
      );
      for (const o of outs) launched.push(...(o.Instances ?? []).map((x) => x.InstanceId!));
    }
    client.destroy();
    return launched;
  }

  it("pages through more than 1,000 instances in one region", async () => {
    const account = "100000000001";
    // moto pages by reservation, so each instance gets its own to force a second page.
    const launched = await launch(account, "us-east-1", 1100, { fleet: "big" }, 1);
    const m = matcher({
      regions: ["us-east-1"],
      tags: { fleet: "big" },
      assume_role_arn: `arn:aws:iam::${account}:role/d`,
    });
    const r = await fetchEc2(m, opts());
    expect(r.candidates).toHaveLength(1100);
    expect(ids(r)).toEqual([...launched].sort());
    expect(r.candidates[0]).toMatchObject({
      cloud: "aws",
      account,
      region: "us-east-1",
      state: "running",
      tags: { fleet: "big" },
      nodeName: `${account}-${r.candidates[0].instanceId}`,
    });
    expect(r.candidates[0].privateIp).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(r.candidates[0].launchTime).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(r.scopes).toEqual([{ cloud: "aws", account, region: "us-east-1", instances: 1100, apiCalls: 2 }]);
  });

  it("reads moto's DescribeInstances answers with the lean reader, exactly as the SDK reads them", async () => {
    const account = "100000000009";
    await launch(account, "us-west-2", 3, { fleet: "lean", Name: 'a & b <c> "d"' });
    const credentials = await credsFor(account);
    // moto's raw answer: indented XML, as moto writes it
    const sdk = new EC2Client({ region: "us-west-2", endpoint: moto.endpoint, credentials });
    const raw: string[] = [];
    sdk.middlewareStack.add(
      (next) => async (args) => {
        const out = await next(args);
        const body = (out.response as { body: AsyncIterable<Buffer> }).body;
        const chunks: Buffer[] = [];
        for await (const c of body) chunks.push(Buffer.from(c));
        raw.push(Buffer.concat(chunks).toString());
        (out.response as { body: unknown }).body = Buffer.concat(chunks);
        return out;
      },
      { step: "deserialize", priority: "low" },
    );
    const viaSdk = await sdk.send(new DescribeInstancesCommand({ Filters: [{ Name: "tag:fleet", Values: ["lean"] }] }));
    const lean = readDescribeInstances(raw[0]);
    expect(lean).toBeDefined(); // moto's shape is read, not stepped aside from
    const pick = (o: Pick<DescribeInstancesCommandOutput, "Reservations">) =>
      (o.Reservations ?? []).flatMap((r) =>
        (r.Instances ?? []).map((i) => ({
          owner: r.OwnerId,
          id: i.InstanceId,
          state: i.State?.Name,
          names: [i.PrivateDnsName, i.PublicDnsName, i.PrivateIpAddress, i.PublicIpAddress],
          platform: [i.Platform, i.PlatformDetails],
          launch: i.LaunchTime?.toISOString(),
          tags: i.Tags,
        })),
      );
    expect(pick(lean!)).toEqual(pick(viaSdk));
    expect(pick(lean!)).toHaveLength(3);
    expect(pick(lean!)[0].tags).toEqual(expect.arrayContaining([{ Key: "Name", Value: 'a & b <c> "d"' }]));
    sdk.destroy();
  });

  it('matches any value of a tag with "*" and every instance with the key "*"', async () => {
    const account = "100000000002";
    const region = "eu-west-1";
    const prod = await launch(account, region, 2, { env: "prod" });
    const dev = await launch(account, region, 1, { env: "dev" });
    const teamOnly = await launch(account, region, 1, { team: "a" });
    const untagged = await launch(account, region, 1, {});
    const role = { assume_role_arn: `arn:aws:iam::${account}:role/d`, regions: [region] };

    const anyEnv = await fetchEc2(matcher({ ...role, tags: { env: "*" } }), opts());
    expect(ids(anyEnv)).toEqual([...prod, ...dev].sort());
    const listed = await fetchEc2(matcher({ ...role, tags: { env: ["prod", "staging"] } }), opts());
    expect(ids(listed)).toEqual([...prod].sort());
    const all = await fetchEc2(matcher({ ...role, tags: { "*": "*" } }), opts());
    expect(ids(all)).toEqual([...prod, ...dev, ...teamOnly, ...untagged].sort());
    expect(all.candidates.find((c) => c.instanceId === untagged[0])?.tags).toEqual({});
  });

  it("leaves out stopped instances", async () => {
    const account = "100000000003";
    const [a, b, c] = await launch(account, "us-east-1", 3, { app: "web" });
    const client = new EC2Client({
      region: "us-east-1",
      endpoint: moto.endpoint,
      credentials: await credsFor(account),
    });
    await client.send(new StopInstancesCommand({ InstanceIds: [b] }));
    client.destroy();
    const m = matcher({
      regions: ["us-east-1"],
      tags: { app: "web" },
      assume_role_arn: `arn:aws:iam::${account}:role/d`,
    });
    const r = await fetchEc2(m, opts());
    expect(ids(r)).toEqual([a, c].sort());
    expect(r.candidates.every((x) => x.state === "running")).toBe(true);
    expect(r.scopes).toEqual([expect.objectContaining({ account, region: "us-east-1", instances: 2 })]);
  });

  it("reaches three accounts by assuming a role in each, with its external id, and names a denied role", async () => {
    const accounts = ["200000000001", "200000000002", "200000000003"];
    const launched = await Promise.all(accounts.map((a) => launch(a, "us-west-2", 2, { role: "db" })));
    await launch(MOTO_DEFAULT_ACCOUNT, "us-west-2", 1, { role: "db" });
    const denied = "arn:aws:iam::200000000004:role/discovery";
    const proxy = await startProxy(moto.endpoint, (r) =>
      r.action === "AssumeRole" && r.body.includes(denied)
        ? {
            status: 403,
            body:
              `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized to ` +
              `perform: sts:AssumeRole on resource: ${denied}</Message></Error><RequestId>p</RequestId></ErrorResponse>`,
          }
        : undefined,
    );
    try {
      const results = await Promise.all(
        [...accounts, "200000000004"].map((a, n) =>
          fetchEc2(
            matcher({
              regions: ["us-west-2"],
              tags: { role: "db" },
              assume_role: { role_arn: `arn:aws:iam::${a}:role/discovery`, external_id: `ext-${n}` },
            }),
            opts({ endpoint: proxy.endpoint }),
          ),
        ),
      );
      accounts.forEach((a, n) => {
        expect(ids(results[n])).toEqual([...launched[n]].sort());
        expect(results[n].candidates.every((c) => c.account === a && c.nodeName.startsWith(`${a}-i-`))).toBe(true);
        expect(results[n].scopes).toEqual([expect.objectContaining({ account: a, region: "us-west-2", instances: 2 })]);
      });
      const assumed = proxy.seen.filter((r) => r.action === "AssumeRole");
      [...accounts, "200000000004"].forEach((a, n) =>
        expect(
          assumed.some(
            (r) => r.body.includes(`arn:aws:iam::${a}:role/discovery`) && r.body.includes(`ExternalId=ext-${n}`),
          ),
        ).toBe(true),
      );
      expect(results[3].candidates).toEqual([]);
      expect(results[3].scopes).toEqual([
        {
          cloud: "aws",
          account: "200000000004",
          region: "*",
          instances: 0,
          apiCalls: 1,
          error: { code: "AccessDenied", message: expect.stringContaining(`assuming role ${denied}`) },
        },
      ]);
    } finally {
      await proxy.close();
    }
  });

  it("walks an organization's nested units, skipping an excluded unit and the units below it", async () => {
    const org = new OrganizationsClient({
      region: "us-east-1",
      endpoint: moto.endpoint,
      credentials: MOTO_CREDENTIALS,
    });
    const created = await org.send(new CreateOrganizationCommand({ FeatureSet: "ALL" }));
    const orgId = created.Organization!.Id!;
    const rootId = (await org.send(new ListRootsCommand({}))).Roots![0].Id!;
    const ou = async (name: string, parent: string) =>
      (await org.send(new CreateOrganizationalUnitCommand({ Name: name, ParentId: parent }))).OrganizationalUnit!.Id!;
    const account = async (name: string, parent: string) => {
      const out = await org.send(new CreateAccountCommand({ AccountName: name, Email: `${name}@example.com` }));
      const id = out.CreateAccountStatus!.AccountId!;
      await org.send(new MoveAccountCommand({ AccountId: id, SourceParentId: rootId, DestinationParentId: parent }));
      return id;
    };
    const apps = await ou("apps", rootId);
    const appsTeam = await ou("apps-team", apps);
    const sandbox = await ou("sandbox", rootId);
    const sandboxTeam = await ou("sandbox-team", sandbox);
    const [appsAcct, teamAcct, sandboxAcct, sandboxTeamAcct] = await Promise.all([
      account("apps", apps),
      account("apps-team", appsTeam),
      account("sandbox", sandbox),
      account("sandbox-team", sandboxTeam),
    ]);
    const launched = new Map<string, string[]>();
    for (const a of [appsAcct, teamAcct, sandboxAcct, sandboxTeamAcct])
      launched.set(a, await launch(a, "us-east-1", 2, { suite: "org" }));
    org.destroy();
    const orgMatcher = (units: Record<string, string[]>, id = orgId) =>
      matcher({
        regions: ["us-east-1"],
        tags: { suite: "org" },
        assume_role: { role_name: "DiscoveryMember", external_id: "org-ext" },
        organization: { organization_id: id, organizational_units: units },
      });

    const r = await fetchEc2(orgMatcher({ include: ["*"], exclude: [sandbox] }), opts());
    const scanned = r.scopes.map((s) => s.account).sort();
    expect(scanned).toEqual([MOTO_DEFAULT_ACCOUNT, appsAcct, teamAcct].sort());
    expect(r.scopes.every((s) => s.error === undefined)).toBe(true);
    expect(ids(r)).toEqual([...launched.get(appsAcct)!, ...launched.get(teamAcct)!].sort());

    const onlyApps = await fetchEc2(orgMatcher({ include: [apps], exclude: [appsTeam] }), opts());
    expect(onlyApps.scopes.map((s) => s.account)).toEqual([appsAcct]);
    expect(ids(onlyApps)).toEqual([...launched.get(appsAcct)!].sort());

    const wrong = await fetchEc2(orgMatcher({ include: ["*"] }, "o-0000000000"), opts());
    expect(wrong.candidates).toEqual([]);
    expect(wrong.scopes).toEqual([
      expect.objectContaining({
        account: "o-0000000000",
        region: "*",
        error: { code: "OrganizationMismatch", message: expect.stringContaining(orgId) },
      }),
    ]);
  });

  it("reports a region that fails while the other regions still deliver their instances", async () => {
    const account = "300000000001";
    const regions = ["us-east-1", "us-west-2", "eu-central-1"];
    const launched = await Promise.all(regions.map((region) => launch(account, region, 2, { tier: "app" })));
    const proxy = await startProxy(moto.endpoint, (r) => {
      if (r.service !== "ec2") return undefined;
      if (r.region === "us-west-2") return THROTTLED;
      if (r.region === "eu-central-1")
        return { status: 500, body: ec2Error("InternalError", "An internal error has occurred.") };
      return undefined;
    });
    try {
      const retries: number[] = [];
      const m = matcher({ regions, tags: { tier: "app" }, assume_role_arn: `arn:aws:iam::${account}:role/d` });
      const seenScopes: string[] = [];
      const r = await fetchEc2(
        m,
        opts({
          endpoint: proxy.endpoint,
          retry: { ...fastRetry, onRetry: (_e, n) => retries.push(n) },
          onScope: (s) => seenScopes.push(s.region),
        }),
      );
      expect(ids(r)).toEqual([...launched[0]].sort());
      expect(scopeOf(r.scopes, "us-east-1")).toEqual({
        cloud: "aws",
        account,
        region: "us-east-1",
        instances: 2,
        apiCalls: 1,
      });
      // Throttling is retried up to 6 attempts in all; an InternalError is an answer and is not.
      expect(scopeOf(r.scopes, "us-west-2")).toMatchObject({
        instances: 0,
        apiCalls: 6,
        error: { code: "RequestLimitExceeded", message: expect.stringContaining("region us-west-2") },
      });
      expect(scopeOf(r.scopes, "eu-central-1")).toMatchObject({
        instances: 0,
        apiCalls: 1,
        error: { code: "InternalError" },
      });
      expect(retries).toEqual([1, 2, 3, 4, 5]);
      expect(seenScopes.sort()).toEqual([...regions].sort());
    } finally {
      await proxy.close();
    }
  });

  it("succeeds after throttling clears, within the retry budget", async () => {
    const account = "300000000002";
    const launched = await launch(account, "us-west-2", 3, { tier: "app" });
    let throttled = 0;
    const proxy = await startProxy(moto.endpoint, (r) =>
      r.service === "ec2" && r.action === "DescribeInstances" && throttled++ < 2 ? THROTTLED : undefined,
    );
    try {
      const m = matcher({
        regions: ["us-west-2"],
        tags: { tier: "app" },
        assume_role_arn: `arn:aws:iam::${account}:role/d`,
      });
      // Real backoff here (100 ms, then up to 200 ms): the point is that it passes with the defaults.
      const r = await fetchEc2(m, opts({ endpoint: proxy.endpoint }));
      expect(ids(r)).toEqual([...launched].sort());
      expect(r.scopes).toEqual([{ cloud: "aws", account, region: "us-west-2", instances: 3, apiCalls: 3 }]);
    } finally {
      await proxy.close();
    }
  });

  it('resolves regions "*" to the regions enabled in the account', async () => {
    const account = "400000000001";
    const enabled = await launch(account, "ap-southeast-2", 1, { any: "where" });
    const home = await launch(account, "us-east-1", 1, { any: "where" });
    // moto lets instances run in a region the account has not opted into; discovery must not look there.
    const optIn = await launch(account, "ap-east-1", 1, { any: "where" });
    const m = matcher({ regions: ["*"], tags: { any: "where" }, assume_role_arn: `arn:aws:iam::${account}:role/d` });
    const r = await fetchEc2(m, opts());
    expect(ids(r)).toEqual([...enabled, ...home].sort());
    expect(ids(r)).not.toContain(optIn[0]);
    const regions = r.scopes.map((s) => s.region);
    expect(regions).toEqual(expect.arrayContaining(["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"]));
    expect(regions).not.toContain("ap-east-1");
    expect(regions).not.toContain("*");
    expect(r.scopes.every((s) => s.account === account && s.error === undefined)).toBe(true);
  });
});
