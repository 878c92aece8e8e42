import { ListAccountsForParentCommand, ListRootsCommand, OrganizationsClient } from "@aws-sdk/client-organizations";
import * as fs from "fs";
import { discoveryAsync } from "../fixtures/cli";
import { ExampleSandbox, exampleStack, startExampleSandbox } from "../fixtures/example-sandbox";
import { MOTO_CREDENTIALS } from "../fixtures/moto";

interface Outcome {
  account: string;
  instanceId: string;
  nodeName: string;
  status: string;
}

/**
 * examples/aws-organization against the sandbox: an organization with a "workloads" unit (two member accounts) and a
 * "sandbox" unit (one account) that is excluded. One `pulumi up` enrolls the tagged instances of every account but
 * the excluded unit's, through a role assumed in each, and they join with one iam token that names the organization.
 */
describe("examples/aws-organization", () => {
  let sb: ExampleSandbox;
  let dir: string | undefined;
  const org = () =>
    new OrganizationsClient({ region: "us-east-1", endpoint: sb.env.AWS_ENDPOINT_URL, credentials: MOTO_CREDENTIALS });

  beforeAll(async () => {
    sb = await startExampleSandbox();
  });
  afterAll(async () => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    await sb?.stop();
  });

  it("enrolls the tagged instances of the included units' accounts, and nothing else", async () => {
    const client = org();
    const root = (await client.send(new ListRootsCommand({}))).Roots![0].Id!;
    // As the example's README says: `discovery sandbox account`, no AWS CLI.
    const account = async (name: string, unit: string) => {
      const r = await discoveryAsync(["sandbox", "account", "--dir", sb.dir, "--name", name, "--unit", unit, "--json"]);
      expect([r.status, r.stderr]).toEqual([0, ""]);
      return JSON.parse(r.stdout) as { account: string; name: string; parent: string };
    };
    const [prodMade, stagingMade, scratchMade] = [
      await account("prod", "workloads"),
      await account("staging", "workloads"),
      await account("scratch", "sandbox"),
    ];
    const [prod, staging, scratch] = [prodMade.account, stagingMade.account, scratchMade.account];
    expect(prod).toMatch(/^\d{12}$/);
    expect(stagingMade.parent).toBe(prodMade.parent); // one "workloads" unit, reused
    const excluded = scratchMade.parent;
    const workloads = prodMade.parent;
    const inUnit = async (parent: string) =>
      ((await client.send(new ListAccountsForParentCommand({ ParentId: parent }))).Accounts ?? []).map((a) => a.Id);
    expect((await inUnit(workloads)).sort()).toEqual([prod, staging].sort());
    expect(await inUnit(excluded)).toEqual([scratch]);
    client.destroy();

    const wanted = [
      ...(await sb.launch({ account: prod, tags: "team=payments", count: 2, agentless: true })),
      ...(await sb.launch({ account: staging, tags: "team=search", agentless: true })),
      // The management account sits at the root, which the example includes.
      ...(await sb.launch({ account: "123456789012", tags: "team=payments", agentless: true })),
    ];
    const untagged = await sb.launch({ account: prod, tags: "owner=nobody", agentless: true });
    const outside = await sb.launch({ account: scratch, tags: "team=payments", agentless: true });

    const made = await exampleStack("aws-organization", sb.env, "org");
    dir = made.dir;
    const stack = made.stack;
    await stack.setConfig("organizationId", { value: sb.state.organizationId! });
    await stack.setConfig("include", { value: JSON.stringify([root]) });
    await stack.setConfig("exclude", { value: JSON.stringify([excluded]) });

    const preview = await stack.preview();
    expect(preview.changeSummary).toEqual({ create: 4 });

    const up = await stack.up();
    const outcomes = up.outputs.instances.value as Outcome[];
    expect(up.outputs.failed.value).toBe(0);
    expect(outcomes.map((o) => [o.instanceId, o.status]).sort()).toEqual(wanted.map((id) => [id, "enrolled"]).sort());
    for (const id of [...untagged, ...outside]) expect(outcomes.map((o) => o.instanceId)).not.toContain(id);

    // They joined by iam: the runtime checked each account's organization with organizations:DescribeAccount.
    const nodes = (
      (await sb.runtime("GET", "/v1/nodes")).body as {
        nodes: { name: string; join_method: string; labels: Record<string, string> }[];
      }
    ).nodes;
    expect(nodes.map((n) => [n.name, n.join_method]).sort()).toEqual(
      outcomes.map((o) => [`${o.account}-${o.instanceId}`, "iam"]).sort(),
    );
    // STS does not say where an instance runs; the scan that found it does, and the join takes it from there.
    for (const n of nodes) expect(n.labels["discovery/region"]).toBe("us-east-1");
    expect(new Set(outcomes.map((o) => o.account))).toEqual(new Set([prod, staging, "123456789012"]));

    // The policy the runtime's role needs: walk the organization, assume the member role.
    const statements = (up.outputs.discoveryPolicy.value as { Statement: { Action: string[]; Resource: string[] }[] })
      .Statement;
    expect(statements.flatMap((s) => s.Action)).toEqual(
      expect.arrayContaining(["organizations:ListAccountsForParent", "sts:AssumeRole"]),
    );
    expect(statements.find((s) => s.Action.includes("sts:AssumeRole"))!.Resource).toEqual([
      "arn:aws:iam::*:role/OrganizationAccountAccessRole",
    ]);

    expect((await stack.preview()).changeSummary).toEqual({ same: 4 });
    await stack.destroy();
  });
});
