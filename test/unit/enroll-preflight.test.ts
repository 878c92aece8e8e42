/**
 * The checks a pass makes before sending anything, against an in-memory store and a fake AWS whose "SendCommand"
 * is a list: a join token that is missing or would refuse the instance, and an SSM document missing in a region.
 * A refused instance gets no command, its reason and task name the token (or document), the account and the fix,
 * and it does not back off: the pass after the fix installs. Also `retryFailed`, which skips a backoff.
 */
import { cloudJoinMethods } from "../../provider/clouds";
import { AWS_PLUGIN } from "../../provider/clouds/aws";
import { missingSsmDocuments } from "../../provider/clouds/aws/ssm-preflight";
import { EnrollmentBackend, storeBackend } from "../../provider/enroll/backend";
import type { CloudEnrollment } from "../../provider/enroll/clouds";
import { PassResult, runEnrollmentPass } from "../../provider/enroll/pass";
import type { Candidate } from "../../provider/enroll/types";
import { AwsMatcher, discoveryServiceSection, Token, validateDocument } from "../../provider/model";
import { SqliteStore } from "../../provider/runtime/store";
import { deriveTasks } from "../../provider/runtime/tasks";
import { storeDocuments, tokenDocument } from "../fixtures/store-documents";

const ACCOUNT = "123456789012";
const OTHER = "210987654321";
const TOKEN = "aws-discovery-iam-token";

interface FakeInstance {
  id: string;
  region: string;
  tags?: Record<string, string>;
  /** The installer exits non-zero on it. */
  broken?: boolean;
}

/** A fake AWS: instances in a list, documents in a set, every SendCommand and DescribeDocument recorded. */
function fakeAws(store: SqliteStore) {
  const instances: FakeInstance[] = [];
  const sent: string[] = [];
  const described: string[] = [];
  const documents = new Set<string>();
  const impl: CloudEnrollment<AwsMatcher> = {
    failureClasses: AWS_PLUGIN.enrollment.failureClasses,
    async fetch(m) {
      const tagged = (i: FakeInstance) => Object.entries(m.tags).every(([k, v]) => k === "*" || i.tags?.[k] === v);
      const hit = instances.filter((i) => m.regions.includes(i.region) && tagged(i));
      const candidates: Candidate[] = hit.map((i) => ({
        ...{ cloud: "aws", account: ACCOUNT, region: i.region, instanceId: i.id, nodeName: `${ACCOUNT}-${i.id}` },
        ...{ state: "running", tags: {} },
      }));
      const scopes = m.regions.map((region) => ({
        ...{ cloud: "aws" as const, account: ACCOUNT, region },
        instances: hit.filter((i) => i.region === region).length,
      }));
      return { candidates, scopes };
    },
    preflight: (cs, m, ctx) =>
      missingSsmDocuments(cs, {
        matcher: m,
        once: ctx.once,
        exists: async (account, region, name) => {
          described.push(`${account}/${region}/${name}`);
          return documents.has(`${account}/${region}/${name}`);
        },
      }),
    // The installer joins the instance at once (as `discovery join` would), unless it is broken.
    async install(cs) {
      sent.push(...cs.map((c) => c.instanceId));
      return Promise.all(
        cs.map(async (c) => {
          const base = { instanceId: c.instanceId, account: c.account, region: c.region };
          if (instances.find((i) => i.id === c.instanceId)?.broken)
            return { ...base, status: "failed" as const, failureClass: "script-failure", reason: "exit 1" };
          await store.insertNode({
            name: c.nodeName,
            labels: { "discovery/account-id": c.account, "discovery/instance-id": c.instanceId },
            ...{ joinMethod: "iam", token: TOKEN, hostPublicKey: `k-${c.instanceId}`, principals: [] },
            joinedAt: new Date().toISOString(),
          });
          return { ...base, status: "succeeded" as const };
        }),
      );
    },
  };
  return { impl, instances, sent, described, documents };
}

describe("the checks a pass makes before sending", () => {
  let store: SqliteStore;
  let aws: ReturnType<typeof fakeAws>;
  let tokenLookups: number;
  const NOW = new Date("2025-03-01T00:00:00Z");

  const backend = (): EnrollmentBackend => {
    const b = storeBackend(store, () => NOW);
    return { ...b, token: (name, method) => (tokenLookups++, b.token(name, method)) };
  };
  const pass = (aws_: unknown[], opts: { retryFailed?: boolean } = {}): Promise<PassResult> =>
    runEnrollmentPass({
      matchers: discoveryServiceSection.parse({ aws: aws_ }),
      backend: backend(),
      runtime: { proxyAddr: "127.0.0.1:3080" },
      clouds: (name) => (name === "aws" ? (aws.impl as CloudEnrollment) : undefined),
      joinTimeoutMs: 200,
      pollMs: 10,
      now: () => NOW,
      ...opts,
    });
  const matcher = (extra: Record<string, unknown> = {}) => ({
    types: ["ec2"],
    regions: ["us-east-1"],
    tags: { "*": "*" },
    ...extra,
  });
  const statuses = (r: PassResult) => Object.fromEntries(r.instances.map((i) => [i.instance_id, i.status]));
  const tasks = async () => deriveTasks(await store.listEnrollments(), [], NOW, 3600_000);

  beforeEach(async () => {
    store = new SqliteStore(":memory:");
    await store.migrate();
    aws = fakeAws(store);
    aws.instances.push({ id: "i-1", region: "us-east-1" }, { id: "i-2", region: "us-east-1" });
    tokenLookups = 0;
  });
  afterEach(() => store.close());

  it("sends nothing when the join token is missing, says which token, account and fix, and installs once it exists", async () => {
    aws.instances.push({ id: "i-3", region: "us-east-1" });
    const first = await pass([matcher()]);
    expect(aws.sent).toEqual([]);
    expect(first.commandsSent).toBe(0);
    expect(first.instances.map((i) => [i.instance_id, i.status, i.failure_class])).toEqual([
      ["i-1", "failed", "join-token-missing"],
      ["i-2", "failed", "join-token-missing"],
      ["i-3", "failed", "join-token-missing"],
    ]);
    expect(first.instances[0].reason).toBe(
      `join token "${TOKEN}" does not exist in the runtime, so instance i-1 of aws account ${ACCOUNT} (us-east-1) could not join`,
    );
    // One lookup for the three instances.
    expect(tokenLookups).toBe(1);

    const [task] = await tasks();
    expect(task).toMatchObject({ cloud: "aws", issue_type: "join-token-missing", scope: `${ACCOUNT}/us-east-1` });
    expect(task.fix).toContain(`\`discovery apply -f token.yaml\`: kind token, join_method iam, an allow rule for ${ACCOUNT}`); // prettier-ignore
    expect(task.fix).toContain("nothing was sent to the instance");
    expect(task.instances.map((i) => i.reason)).toEqual([
      expect.stringContaining(`join token "${TOKEN}"`),
      expect.stringContaining(`join token "${TOKEN}"`),
      expect.stringContaining(`join token "${TOKEN}"`),
    ]);

    // Nothing was sent, so nothing backs off: the pass after the token is applied installs at once.
    await storeDocuments(store, tokenDocument(TOKEN, "iam", { allow: [{ aws_account: ACCOUNT }] }));
    const second = await pass([matcher()]);
    expect(statuses(second)).toEqual({ "i-1": "enrolled", "i-2": "enrolled", "i-3": "enrolled" });
    expect(aws.sent).toEqual(["i-1", "i-2", "i-3"]);
    expect(await tasks()).toEqual([]);
  });

  it.each([
    {
      attack: "a token whose rules name another account",
      token: tokenDocument(TOKEN, "iam", { allow: [{ aws_account: OTHER }] }),
      reason: `AWS account ${ACCOUNT}: no rule of token "${TOKEN}" allows it`,
      fix: `add an allow rule {aws_account: "${ACCOUNT}"} to spec.allow of token "${TOKEN}"`,
    },
    {
      attack: "an iam rule whose ARN glob fixes another account",
      token: tokenDocument(TOKEN, "iam", { allow: [{ aws_arn: `arn:aws:sts::${OTHER}:assumed-role/node/*` }] }),
      reason: `AWS account ${ACCOUNT}: no rule of token "${TOKEN}" allows it`,
      fix: `add an allow rule {aws_account: "${ACCOUNT}"}`,
    },
    {
      attack: "a token of another join method",
      token: tokenDocument(TOKEN, "ec2", { allow: [{ aws_account: ACCOUNT }] }),
      reason: `join token "${TOKEN}" has join_method ec2, but the matcher joins instance i-1 of aws account ${ACCOUNT} (us-east-1) with iam`, // prettier-ignore
      fix: "set the matcher's install.join_params.method to ec2, or name a token of join_method iam",
    },
    {
      attack: "an expired token",
      token: JSON.stringify({
        kind: "token",
        version: "v2",
        metadata: { name: TOKEN, expires: "2025-02-01T00:00:00Z" },
        spec: { roles: ["Node"], join_method: "iam", allow: [{ aws_account: ACCOUNT }] },
      }),
      reason: `join token "${TOKEN}" expired at 2025-02-01T00:00:00Z`,
      fix: "apply the token again with a later metadata.expires (or none)",
    },
  ])("sends nothing for $attack, and the reason names the token and the account", async ({ token, reason, fix }) => {
    await storeDocuments(store, token);
    const r = await pass([matcher()]);
    expect(aws.sent).toEqual([]);
    expect(r.instances[0]).toMatchObject({ status: "failed", failure_class: "join-token-not-allowed" });
    expect(r.instances[0].reason).toContain(reason);
    expect(r.instances[0].remediation).toContain(fix);
    const [task] = await tasks();
    expect(task).toMatchObject({ issue_type: "join-token-not-allowed", scope: `${ACCOUNT}/us-east-1` });
    expect(task.instances[0].reason).toContain(TOKEN);
    expect(task.instances[0].reason).toContain(ACCOUNT);
  });

  it("sends nothing to an ec2 token's account in a region its rule leaves out", async () => {
    await storeDocuments(store, tokenDocument("ec2-token", "ec2", { allow: [{ aws_account: ACCOUNT, aws_regions: ["eu-west-1"] }] })); // prettier-ignore
    const r = await pass([matcher({ install: { join_params: { token_name: "ec2-token", method: "ec2" } } })]);
    expect(aws.sent).toEqual([]);
    expect(r.instances[0].reason).toBe(`AWS account ${ACCOUNT} in region us-east-1: no rule of token "ec2-token" allows it`); // prettier-ignore
    expect(r.instances[0].remediation).toContain(`add us-east-1 to aws_regions of the rule for account ${ACCOUNT}`);
  });

  it.each([
    ["an organization rule", { allow: [{ aws_organization_id: "o-abcde12345" }] }],
    ["an ARN glob with a wildcard account", { allow: [{ aws_arn: "arn:aws:sts::*:assumed-role/node/*" }] }],
  ])("leaves %s to the join, which alone can decide it", async (_what, allow) => {
    await storeDocuments(store, tokenDocument(TOKEN, "iam", allow));
    expect(statuses(await pass([matcher()]))).toEqual({ "i-1": "enrolled", "i-2": "enrolled" });
  });

  it("never writes a token-method token's name, the secret, into a reason", async () => {
    const secret = "0123456789abcdef0123456789abcdef";
    const r = await pass([matcher({ install: { join_params: { token_name: secret, method: "token" } } })]);
    expect(aws.sent).toEqual([]);
    expect(r.instances[0].failure_class).toBe("join-token-missing");
    expect(r.instances[0].reason).toContain("the token-method join token named in install.join_params.token_name");
    expect(JSON.stringify(await store.listEnrollments())).not.toContain(secret);
    // Once stored (under its hash), the token admits the instances: the check looks it up as the join does.
    await storeDocuments(store, JSON.stringify({ kind: "token", version: "v2", metadata: { name: secret }, spec: { roles: ["Node"], join_method: "token" } })); // prettier-ignore
    const again = await pass([matcher({ install: { join_params: { token_name: secret, method: "token" } } })]);
    expect(statuses(again)).toEqual({ "i-1": "enrolled", "i-2": "enrolled" });
  });

  it("sends nothing where the SSM document is missing, asks once per account × region, and installs once it exists", async () => {
    await storeDocuments(store, tokenDocument(TOKEN, "iam", { allow: [{ aws_account: ACCOUNT }] }));
    aws.instances.push({ id: "i-w1", region: "us-west-2" }, { id: "i-w2", region: "us-west-2", tags: { team: "web" } });
    aws.documents.add(`${ACCOUNT}/us-east-1/DiscoveryInstaller`);
    const ssm = { ssm: { document_name: "DiscoveryInstaller" } };
    // Two matchers with the same document: one DescribeDocument per account × region in the pass, not per matcher.
    const matchers = [
      matcher({ ...ssm, regions: ["us-west-2"], tags: { team: "web" } }),
      matcher({ ...ssm, regions: ["us-east-1", "us-west-2"] }),
    ];
    const r = await pass(matchers);
    expect(aws.described.sort()).toEqual([
      `${ACCOUNT}/us-east-1/DiscoveryInstaller`,
      `${ACCOUNT}/us-west-2/DiscoveryInstaller`,
    ]);
    expect(aws.sent).toEqual(["i-1", "i-2"]);
    expect(r.commandsSent).toBe(2);
    expect(statuses(r)).toEqual({ "i-1": "enrolled", "i-2": "enrolled", "i-w1": "failed", "i-w2": "failed" });
    const w1 = r.instances.find((i) => i.instance_id === "i-w1")!;
    expect(w1).toMatchObject({
      failure_class: "ssm-document-missing",
      reason: `SSM document "DiscoveryInstaller" does not exist in account ${ACCOUNT}, region us-west-2`,
    });
    const [task] = await tasks();
    expect(task).toMatchObject({ issue_type: "ssm-document-missing", scope: `${ACCOUNT}/us-west-2` });
    expect(task.instances.map((i) => i.instance_id)).toEqual(["i-w1", "i-w2"]);
    expect(task.fix).toContain(`create "DiscoveryInstaller" in account ${ACCOUNT}, region us-west-2`);
    expect(task.fix).toContain('aws.SsmInstallerDocument with region "us-west-2"');
    expect(task.fix).toContain("set the matcher's ssm.document_name to AWS-RunShellScript");

    aws.documents.add(`${ACCOUNT}/us-west-2/DiscoveryInstaller`);
    const next = await pass(matchers);
    expect(statuses(next)).toMatchObject({ "i-w1": "enrolled", "i-w2": "enrolled" });
    expect(aws.sent.sort()).toEqual(["i-1", "i-2", "i-w1", "i-w2"]);
  });

  it("does not ask about AWS-RunShellScript, which every region has", async () => {
    await storeDocuments(store, tokenDocument(TOKEN, "iam", { allow: [{ aws_account: ACCOUNT }] }));
    expect(statuses(await pass([matcher()]))).toEqual({ "i-1": "enrolled", "i-2": "enrolled" });
    expect(aws.described).toEqual([]);
  });

  it("retries a failed instance at once with retryFailed, and otherwise leaves it backing off", async () => {
    await storeDocuments(store, tokenDocument(TOKEN, "iam", { allow: [{ aws_account: ACCOUNT }] }));
    aws.instances[1].broken = true;
    expect(statuses(await pass([matcher()]))).toEqual({ "i-1": "enrolled", "i-2": "failed" });
    const backingOff = await pass([matcher()]);
    expect(backingOff.instances[1]).toMatchObject({ status: "skipped", failure_class: "script-failure" });
    expect(backingOff.instances[1].reason).toMatch(/^backing off after 1 failed attempt\(s\) until /);
    expect(aws.sent).toEqual(["i-1", "i-2"]);

    aws.instances[1].broken = false;
    const retried = await pass([matcher()], { retryFailed: true });
    expect(statuses(retried)).toEqual({ "i-1": "already_enrolled", "i-2": "enrolled" });
    expect(aws.sent).toEqual(["i-1", "i-2", "i-2"]);
  });
});

describe("what each join method can tell of a token before installing", () => {
  const methods = cloudJoinMethods();
  const token = (method: string, spec: Record<string, unknown>) =>
    validateDocument({ kind: "token", version: "v2", metadata: { name: "t" }, spec: { roles: ["Node"], join_method: method, ...spec } }).resource as Token; // prettier-ignore
  const SUB = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

  it.each([
    ["gcp", { gcp: { allow: [{ project_ids: ["p1"] }] } }, "p1", "us-central1-a", undefined],
    [
      "gcp",
      { gcp: { allow: [{ project_ids: ["p1"], locations: ["us-central1"] }] } },
      "p1",
      "us-central1-b",
      undefined,
    ],
    ["gcp", { gcp: { allow: [{ project_ids: ["p1"], service_accounts: ["a@p1.iam.gserviceaccount.com"] }] } }, "p1", "us-central1-a", undefined], // prettier-ignore
    ["gcp", { gcp: { allow: [{ project_ids: ["p1"] }] } }, "p2", "us-central1-a", 'project "p2": no rule of token "t" allows it'], // prettier-ignore
    ["gcp", { gcp: { allow: [{ project_ids: ["p1"], locations: ["us-central1"] }] } }, "p1", "us-central10-a", 'zone "us-central10-a" of project p1: no rule of token "t" allows it'], // prettier-ignore
    ["azure", { azure: { allow: [{ subscription: SUB.toUpperCase() }] } }, SUB, "eastus", undefined],
    ["azure", { azure: { allow: [{ subscription: SUB }] } }, "22222222-2222-4222-8222-222222222222", "eastus", 'subscription 22222222-2222-4222-8222-222222222222: no rule of token "t" allows it'], // prettier-ignore
    ["ec2", { allow: [{ aws_account: ACCOUNT }] }, ACCOUNT, "us-east-1", undefined],
    ["iam", { allow: [{ aws_account: OTHER }, { aws_arn: `arn:aws:sts::${ACCOUNT}:assumed-role/*` }] }, ACCOUNT, "us-east-1", undefined], // prettier-ignore
  ])("%s %j, %s in %s: %s", (method, spec, account, region, reason) => {
    expect(methods[method].allowProblem!(token(method, spec), { account, region })?.reason).toBe(reason);
  });
});
