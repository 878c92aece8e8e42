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
import { gcp } from "../../sdk";

interface Call {
  method: string;
  path: string;
  permission: string;
  status: number;
}

/** The example's matchers with its default config, as the role the test grants is computed from. */
const EXAMPLE_MATCHERS = [
  { types: ["gce" as const], projectIds: ["web-prod"], locations: ["us-central1"], labels: { fleet: "web" } },
  { types: ["gce" as const], projectIds: ["bastions"], locations: ["*"], labels: { fleet: "web" } },
];

/**
 * examples/gcp against the sandbox's GCP world: `pulumi up` finds labelled VMs in two projects and three zones,
 * installs over SSH with an ephemeral metadata key (removed afterwards), the VMs join with identity tokens from
 * their metadata servers, an OS Login VM fails with its fix, the agentless VM then takes certificate logins, and
 * every Compute call stayed within `gcp.discoveryRole` (the fake refuses anything outside it, as IAM would).
 * Then the runtime's own loop scans a gcp discovery_config of its group and reports the OS Login VM as a task.
 */
describe("examples/gcp", () => {
  let sb: ExampleSandbox;
  let dir: string | undefined;
  const nodes = async () => ((await sb.runtime("GET", "/v1/nodes")).body as { nodes: Node[] }).nodes;
  const calls = async () => ((await sb.control("GET", "/v1/gcp/calls")).body as { calls: Call[] }).calls;
  const sshKeys = async (project: string, zone: string, name: string) => {
    const vm = await sb.compute(`/projects/${project}/zones/${zone}/instances/${name}`);
    const items = (vm.metadata as { items?: { key: string; value: string }[] }).items ?? [];
    return items.find((i) => i.key === "ssh-keys")?.value ?? "";
  };

  // The sandbox's VMs share this host: an installer must change only its own VM's files, never the host's.
  const hostBefore = hostFilesSnapshot();

  beforeAll(async () => {
    sb = await startExampleSandbox();
  });
  afterAll(async () => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    await sb?.stop();
  });

  it("enrolls agent and agentless VMs across projects and zones within the role, and reports OS Login", async () => {
    const zoneA = await sb.launchGcp({ project: "web-prod", zone: "us-central1-a", labels: "fleet=web" });
    const zoneB = await sb.launchGcp({ project: "web-prod", zone: "us-central1-b", labels: "fleet=web" });
    const oslogin = await sb.launchGcp({
      project: "web-prod",
      zone: "us-central1-c",
      labels: "fleet=web",
      oslogin: true,
    });
    const agentless = await sb.launchGcp({
      project: "bastions",
      zone: "europe-west1-b",
      labels: "fleet=web",
      agentless: true,
    });
    const otherLabel = await sb.launchGcp({ project: "web-prod", zone: "us-central1-a", labels: "fleet=db" });
    const otherRegion = await sb.launchGcp({ project: "web-prod", zone: "us-east1-b", labels: "fleet=web" });
    const joining = [...zoneA, ...zoneB, ...agentless];

    // The fake Google APIs now answer only what the example's role allows.
    const role = gcp.discoveryRole(EXAMPLE_MATCHERS);
    expect(role.permissions).toEqual(
      [
        "compute.instances.get",
        "compute.instances.getGuestAttributes",
        "compute.instances.list",
        "compute.instances.setMetadata",
        "compute.projects.get",
        "compute.zoneOperations.get",
        "compute.zones.list",
        "iam.serviceAccounts.actAs",
      ].sort(),
    );
    const before = (await calls()).length;
    const made = await upWithin(sb, "gcp", {
      route: "/v1/gcp/permissions",
      key: "permissions",
      allowed: role.permissions,
    });
    dir = made.dir;
    const up = made.up;
    expect(up.outputs.discoveryRole.value.permissions).toEqual(role.permissions);

    // Three enrolled, the OS Login VM failed with its fix; other labels and regions were never selected.
    const outcomes = up.outputs.instances.value as Outcome[];
    expect(outcomes.map((o) => [o.instanceId, o.status]).sort()).toEqual(
      [...joining.map((v) => [v.id, "enrolled"]), [oslogin[0].id, "failed"]].sort(),
    );
    expect(up.outputs.enrolled.value).toBe(3);
    expect(up.outputs.failed.value).toBe(1);
    const refused = outcomes.find((o) => o.instanceId === oslogin[0].id)!;
    expect(refused.reason).toMatch(
      /^oslogin-enabled; OS Login is enabled for VM \d+ .*; fix: set metadata enable-oslogin=FALSE/,
    );
    const ids = outcomes.map((o) => o.instanceId);
    expect(ids).not.toContain(otherLabel[0].id);
    expect(ids).not.toContain(otherRegion[0].id);

    // Every call the pass and the joins made was allowed by the role, and the role holds nothing unused but actAs
    // (which setMetadata needs on the VM's service account; the fake does not model service account IAM).
    const made_calls = (await calls()).slice(before);
    expect(made_calls.filter((c) => c.status === 403)).toEqual([]);
    expect(new Set(made_calls.map((c) => c.permission))).toEqual(
      new Set(role.permissions.filter((p) => p !== "iam.serviceAccounts.actAs")),
    );
    // No key was added to the OS Login VM, whose guest would ignore it.
    expect(made_calls.filter((c) => c.path.endsWith(`/${oslogin[0].name}/setMetadata`))).toEqual([]);

    // They joined with their identity tokens, under <project>-<zone>-<id>, labelled from the verified claims.
    const joined = (await nodes()).filter((n) => joining.some((v) => n.labels["discovery/instance-id"] === v.id));
    expect(joined.map((n) => [n.name, n.join_method]).sort()).toEqual(
      joining.map((v) => [`${v.project}-${v.zone}-${v.id}`, "gcp"]).sort(),
    );
    for (const v of joining)
      expect(joined.find((n) => n.labels["discovery/instance-id"] === v.id)?.labels).toMatchObject({
        "discovery/project-id": v.project,
        "discovery/zone": v.zone,
        "discovery/name": v.name,
      });

    // The ephemeral keys are gone from the metadata again (each VM had one, added and removed).
    for (const v of joining) {
      expect(await sshKeys(v.project, v.zone, v.name)).not.toMatch(/google-ssh/);
      expect(made_calls.filter((c) => c.path.endsWith(`/${v.name}/setMetadata`) && c.status === 200)).toHaveLength(2);
    }

    // The agentless VM's own sshd now takes user certificates from the runtime only, and shows a host certificate
    // for its node name.
    const target = agentless[0];
    expectCertificateLoginsOnly(
      await certificateLogins(sb.runtime, target.ssh_port!, `${target.project}-${target.zone}-${target.id}`),
    );

    expect(hostFilesSnapshot()).toEqual(hostBefore);
    await made.stack.destroy();
  });

  it("the runtime's loop scans a gcp discovery_config of its group, and shows OS Login as a task with its fix", async () => {
    const fleet = await sb.launchGcp({ project: "batch-jobs", zone: "asia-east1-a", labels: "fleet=batch", count: 2 });
    const locked = await sb.launchGcp({
      project: "batch-jobs",
      zone: "asia-east1-b",
      labels: "fleet=batch",
      oslogin: true,
    });
    await applyDocuments(sb, "batch.yaml", [
      "kind: token\nversion: v2\nmetadata: {name: gcp-discovery-token}\nspec:\n  roles: [Node]\n  join_method: gcp\n" +
        "  gcp: {allow: [{project_ids: [batch-jobs], locations: [asia-east1]}]}\n",
      "kind: discovery_config\nversion: v1\nmetadata: {name: batch}\nspec:\n  discovery_group: sandbox\n" +
        "  gcp: [{types: [gce], project_ids: [batch-jobs], locations: ['*'], labels: {fleet: batch}}]\n",
    ]);
    await eventually("the loop enrolled the two VMs", 120, async () => {
      const n = (await nodes()).map((x) => x.labels["discovery/instance-id"]);
      return fleet.every((v) => n.includes(v.id)) || undefined;
    });
    const task = await eventually("an oslogin-enabled task", 60, async () => {
      const { tasks } = (await sb.runtime("GET", "/v1/tasks")).body as {
        tasks: { name: string; cloud: string; issue_type: string; scope: string; instances: unknown[]; fix: string }[];
      };
      return tasks.find((t) => t.issue_type === "oslogin-enabled");
    });
    expect(task).toMatchObject({
      cloud: "gcp",
      instances: [{ instance_id: locked[0].id, node_name: `batch-jobs-asia-east1-b-${locked[0].id}` }],
    });
    expect(task.scope).toContain("batch-jobs");
    expect(task.scope).toContain("asia-east1-b");
    expect(task.fix).toMatch(/enable-oslogin=FALSE/);
    const status = await eventually("the config's status", 60, async () => {
      const got = await sb.runtime("GET", "/v1/resources/discovery_config/batch");
      const s = (got.body as { status?: Record<string, unknown> }).status;
      return s?.enrolled === 2 ? s : undefined;
    });
    expect(status).toMatchObject({ found: 3, enrolled: 2, failed: 1 });

    // A deleted VM's node turns stale at the next pass (Compute says NOT_FOUND); the other stays active.
    const [kept, deleted] = fleet;
    expect((await sb.control("DELETE", `/v1/gcp/instances/${deleted.id}`)).status).toBe(200);
    const stateOf = async (id: string) =>
      ((await sb.runtime("GET", "/v1/nodes")).body as { nodes: (Node & { state: string })[] }).nodes.find(
        (n) => n.labels["discovery/instance-id"] === id,
      )?.state;
    await eventually("the deleted VM's node is stale", 60, async () =>
      (await stateOf(deleted.id)) === "stale" ? true : undefined,
    );
    expect(await stateOf(kept.id)).toBe("active");
  });
});
