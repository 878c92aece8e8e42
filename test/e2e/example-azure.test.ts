import * as fs from "fs";
import { eventually } from "../fixtures/eventually";
import {
  applyDocuments,
  ExampleSandbox,
  hostFilesSnapshot,
  startExampleSandbox,
  ExampleOutcome as Outcome,
  RuntimeNode as Node,
  upWithin,
} from "../fixtures/example-sandbox";
import { certificateLogins, expectCertificateLoginsOnly } from "../fixtures/ssh-client";
import { azure } from "../../sdk";

interface Call {
  method: string;
  path: string;
  action: string;
  status: number;
}

const WEB = "11111111-1111-4111-8111-111111111111";
const BASTIONS = "22222222-2222-4222-8222-222222222222";
/** The example's matchers with its default config, as the role the test grants is computed from. */
const EXAMPLE_MATCHERS = [
  {
    types: ["vm" as const],
    subscriptions: [WEB],
    resourceGroups: ["*"],
    regions: ["eastus", "westeurope"],
    tags: { fleet: "web" },
  },
  {
    types: ["vm" as const],
    subscriptions: [BASTIONS],
    resourceGroups: ["bastions"],
    regions: ["*"],
    tags: { fleet: "web" },
  },
];

/**
 * examples/azure against the sandbox's Azure world: `pulumi up` finds tagged VMs in two subscriptions, runs the
 * installer through managed Run Command, the VMs join with their attested documents and managed identity tokens,
 * a deallocated VM is skipped, a VM without its agent fails with the fix, the agentless VM then takes certificate
 * logins, and every ARM call stayed within `azure.discoveryRole` (the fake refuses anything else, as RBAC would).
 * Then the runtime's own loop scans an azure discovery_config of its group over every subscription (`*`), enrolls
 * a scale set's VM too, and reports the VM without an agent as a task.
 */
describe("examples/azure", () => {
  let sb: ExampleSandbox;
  let dir: string | undefined;
  const nodes = async () => ((await sb.runtime("GET", "/v1/nodes")).body as { nodes: Node[] }).nodes;
  const calls = async () => ((await sb.control("GET", "/v1/azure/calls")).body as { calls: Call[] }).calls;
  // The sandbox's VMs share this host: a run command must change only its own VM's files, never the host's.
  const hostBefore = hostFilesSnapshot();

  beforeAll(async () => {
    sb = await startExampleSandbox();
  });
  afterAll(async () => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    await sb?.stop();
  });

  it("enrolls agent and agentless VMs across subscriptions within the role; skips a deallocated VM, reports a missing agent", async () => {
    const east = await sb.launchAzure({
      subscription: WEB,
      resourceGroup: "web-east",
      region: "eastus",
      tags: "fleet=web",
    });
    const west = await sb.launchAzure({
      subscription: WEB,
      resourceGroup: "Web-West",
      region: "westeurope",
      tags: "fleet=web",
    });
    const stopped = await sb.launchAzure({ subscription: WEB, resourceGroup: "web-east", region: "eastus", tags: "fleet=web", state: "deallocated" }); // prettier-ignore
    const noAgent = await sb.launchAzure({ subscription: WEB, resourceGroup: "web-east", region: "eastus", tags: "fleet=web", noAgent: true }); // prettier-ignore
    const bastion = await sb.launchAzure({ subscription: BASTIONS, resourceGroup: "bastions", region: "northeurope", tags: "fleet=web", agentless: true }); // prettier-ignore
    const otherRegion = await sb.launchAzure({ subscription: WEB, resourceGroup: "web-asia", region: "japaneast", tags: "fleet=web" }); // prettier-ignore
    const otherGroup = await sb.launchAzure({ subscription: BASTIONS, resourceGroup: "jumpboxes", region: "northeurope", tags: "fleet=web" }); // prettier-ignore
    const joining = [...east, ...west, ...bastion];

    const role = azure.discoveryRole(EXAMPLE_MATCHERS);
    const before = (await calls()).length;
    const made = await upWithin(sb, "azure", { route: "/v1/azure/actions", key: "actions", allowed: role.actions });
    dir = made.dir;
    const up = made.up;
    expect(up.outputs.discoveryRole.value.actions).toEqual(role.actions);

    const outcomes = up.outputs.instances.value as Outcome[];
    const byId = new Map(outcomes.map((o) => [o.instanceId, o]));
    for (const v of joining) expect(byId.get(v.id)?.status).toBe("enrolled");
    expect(byId.get(stopped[0].id)?.status ?? "not selected").toMatch(/skipped|not selected/);
    expect(byId.get(noAgent[0].id)?.status).toBe("failed");
    expect(byId.get(noAgent[0].id)?.reason).toMatch(/^vm-agent-not-available.*fix: /);
    expect(byId.has(otherRegion[0].id)).toBe(false);
    expect(byId.has(otherGroup[0].id)).toBe(false);

    const made_calls = (await calls()).slice(before);
    expect(made_calls.filter((c) => c.status === 403)).toEqual([]);
    const used = new Set(made_calls.map((c) => c.action));
    for (const a of used) expect(role.actions).toContain(a);

    const joined = (await nodes()).filter((n) => joining.some((v) => n.labels["discovery/vm-id"] === v.id));
    expect(joined.map((n) => [n.name, n.join_method]).sort()).toEqual(
      joining.map((v) => [`${v.subscription}-${v.id}`, "azure"]).sort(),
    );
    for (const v of joining)
      expect(joined.find((n) => n.labels["discovery/vm-id"] === v.id)?.labels).toMatchObject({
        "discovery/subscription-id": v.subscription,
        "discovery/region": v.region,
        "discovery/resource-group": v.resource_group,
      });

    const target = bastion[0];
    expectCertificateLoginsOnly(
      await certificateLogins(sb.runtime, target.ssh_port!, `${target.subscription}-${target.id}`),
    );

    expect(hostFilesSnapshot()).toEqual(hostBefore);
    await made.stack.destroy();
  });

  it("the runtime's loop scans an azure discovery_config of its group and shows a missing agent as a task", async () => {
    const SUB = "33333333-3333-4333-8333-333333333333";
    const fleet = await sb.launchAzure({ subscription: SUB, resourceGroup: "batch", region: "eastus", tags: "fleet=batch", count: 2 }); // prettier-ignore
    const scaled = await sb.launchAzure({ subscription: SUB, resourceGroup: "batch", region: "eastus", tags: "fleet=batch", scaleSet: "batch-ss" }); // prettier-ignore
    const broken = await sb.launchAzure({ subscription: SUB, resourceGroup: "batch", region: "eastus", tags: "fleet=batch", noAgent: true }); // prettier-ignore
    await applyDocuments(sb, "batch.yaml", [
      "kind: token\nversion: v2\nmetadata: {name: azure-discovery-token}\nspec:\n  roles: [Node]\n  join_method: azure\n" +
        `  azure: {allow: [{subscription: ${SUB}}]}\n`,
      "kind: discovery_config\nversion: v1\nmetadata: {name: batch}\nspec:\n  discovery_group: sandbox\n" +
        `  azure: [{types: [vm], subscriptions: ['*'], resource_groups: ['*'], regions: ['*'], tags: {fleet: batch}}]\n`,
    ]);
    await eventually("the loop enrolled the two VMs and the scale set's VM", 120, async () => {
      const n = (await nodes()).map((x) => x.labels["discovery/vm-id"]);
      return [...fleet, ...scaled].every((v) => n.includes(v.id)) || undefined;
    });
    // The scale set's VM joined with the set's identity, found in the set by its attested vmId.
    const setNode = (await nodes()).find((x) => x.labels["discovery/vm-id"] === scaled[0].id);
    expect(setNode?.labels).toMatchObject({ "discovery/scale-set": "batch-ss", "discovery/subscription-id": SUB });
    const task = await eventually("a vm-agent-not-available task", 60, async () => {
      const { tasks } = (await sb.runtime("GET", "/v1/tasks")).body as {
        tasks: {
          cloud: string;
          issue_type: string;
          scope: string;
          instances: { instance_id: string }[];
          fix: string;
        }[];
      };
      return tasks.find((t) => t.issue_type === "vm-agent-not-available" && t.scope.includes(SUB));
    });
    expect(task.cloud).toBe("azure");
    expect(task.instances.map((i) => i.instance_id)).toEqual([broken[0].id]);
    expect(task.scope).toContain(SUB);
    expect(task.fix).not.toBe("");

    // A deleted VM's node turns stale at the next pass (ARM says ResourceNotFound).
    expect((await sb.control("DELETE", `/v1/azure/vms/${fleet[1].id}`)).status).toBe(200);
    await eventually("the deleted VM's node is stale", 60, async () => {
      const n = (await nodes()).find((x) => x.labels["discovery/vm-id"] === fleet[1].id);
      return n?.state === "stale" ? true : undefined;
    });
  });
});
