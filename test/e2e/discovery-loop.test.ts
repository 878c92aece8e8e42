import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { EC2Client, TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { request } from "../../provider/http/client";
import { discoveryAsync } from "../fixtures/cli";
import { ensureBuilt, parseEnvFile } from "../fixtures/sandbox";
import { eventually } from "../fixtures/eventually";

/**
 * The sandbox runtime as a control loop (group `sandbox`, poll 15 s): applying a discovery_config enrolls its
 * instances with no `enroll` command, a change of tags enrolls the new set, a deleted config leaves new instances
 * alone, and a failing instance shows as a task until it is terminated. One sandbox for the whole suite; the steps
 * run in order, each building on the last.
 */
const ACCOUNT = "123456789012";
const SCOPE = `${ACCOUNT}/us-east-1`;

describe("the sandbox runtime's discovery loop", () => {
  let dir: string;
  let env: Record<string, string>;
  const ids: Record<string, string[]> = {};
  const cli = (args: string[]) => discoveryAsync(args, { env });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const api = (method: string, route: string, body?: string): Promise<{ status: number; body: any }> =>
    request(
      { server: env.DISCOVERY_SERVER, adminToken: env.DISCOVERY_ADMIN_TOKEN, caFile: env.NODE_EXTRA_CA_CERTS },
      method,
      route,
      body,
      "application/yaml",
    );
  const launch = async (...args: string[]) => {
    const r = await cli(["sandbox", "launch", "--dir", dir, "--account", ACCOUNT, "--region", "us-east-1", ...args]);
    expect(r.stderr).toBe("");
    return r.stdout.trim().split("\n");
  };
  const config = (tags: Record<string, string>) =>
    `kind: discovery_config\nversion: v1\nmetadata: {name: loop}\nspec:\n  discovery_group: sandbox\n` +
    `  aws: [{types: [ec2], regions: [us-east-1], tags: ${JSON.stringify(tags)}}]\n`;
  const nodeIds = async (): Promise<Map<string, Record<string, string>>> =>
    new Map(
      (await api("GET", "/v1/nodes")).body.nodes.map((n: { labels: Record<string, string> }) => [
        n.labels["discovery/instance-id"],
        n.labels,
      ]),
    );
  const agentTask = async () =>
    (await api("GET", "/v1/tasks")).body.tasks.find(
      (t: { issue_type: string; scope: string }) => t.issue_type === "ssm-agent-not-registered" && t.scope === SCOPE,
    );

  beforeAll(async () => {
    ensureBuilt();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-loop-e2e-"));
    expect((await discoveryAsync(["sandbox", "start", "--dir", dir])).status).toBe(0);
    env = parseEnvFile(path.join(dir, "env.sh"));
    const token = `kind: token\nversion: v2\nmetadata: {name: aws-discovery-iam-token}\nspec: {roles: [Node], join_method: iam, allow: [{aws_account: "${ACCOUNT}"}]}\n`;
    expect((await api("PUT", "/v1/resources", token)).status).toBe(200);
    ids.a = await launch("--tags", "team=loop-a", "--count", "2");
    ids.b = await launch("--tags", "team=loop-b");
    ids.broken = await launch("--tags", "team=loop-a", "--ssm-status", "unregistered");
  });
  afterAll(async () => {
    if (dir) await discoveryAsync(["sandbox", "stop", "--dir", dir]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("enrolls a config's instances once it is applied, with no enroll command, and shows its status", async () => {
    const applied = await cli(["apply", "-f", writeFile(dir, "loop.yaml", config({ team: "loop-a" }))]);
    expect(applied.stdout).toBe("discovery_config/loop created\n");
    const nodes = await eventually("both team=loop-a instances joined", 90, async () => {
      const n = await nodeIds();
      return ids.a.every((id) => n.has(id)) ? n : undefined;
    });
    expect(ids.b.some((id) => nodes.has(id))).toBe(false);
    expect(nodes.get(ids.a[0])!["discovery/discovered-by"]).toMatch(/^sandbox\.discovery\.local\/[0-9a-f]{12}$/);

    const status = await eventually("a status after the pass", 60, async () => {
      const st = (await api("GET", "/v1/resources/discovery_config/loop")).body.status;
      return st?.state === "running" && st.found === 3 ? st : undefined;
    });
    expect(status).toMatchObject({ state: "running", error_message: "", found: 3, enrolled: 2, failed: 1 });
    const shown = await cli(["get", "discovery_config", "loop", "-o", "json"]);
    expect(JSON.parse(shown.stdout).status).toMatchObject({ found: 3, enrolled: 2, failed: 1 });
  });

  it("lists the unregistered instance as a task with its fix, and closes the task once it is terminated", async () => {
    const task = await eventually("the ssm-agent-not-registered task", 30, agentTask);
    expect(task.instances.map((i: { instance_id: string }) => i.instance_id)).toEqual(ids.broken);
    expect(task.cloud).toBe("aws");
    expect(task.fix).toMatch(/SSM/);
    const table = await cli(["get", "tasks"]);
    expect(table.stdout).toContain(task.name);
    expect(table.stdout).toContain("ssm-agent-not-registered");

    const ec2 = new EC2Client({
      region: "us-east-1",
      endpoint: env.AWS_ENDPOINT_URL,
      credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
    });
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: ids.broken }));
    ec2.destroy();
    // Not seen for two polls (2 × 15 s): gone.
    await eventually("the task closed", 75, async () => ((await agentTask()) ? undefined : true));
  });

  it("enrolls the new set when the config's tags change", async () => {
    expect((await api("PUT", "/v1/resources", config({ team: "loop-b" }))).status).toBe(200);
    const started = Date.now();
    await eventually("the team=loop-b instance joined", 60, async () =>
      (await nodeIds()).has(ids.b[0]) ? true : undefined,
    );
    // A change starts a pass at once, not at the next 15 s poll (the install itself takes a few seconds).
    expect(Date.now() - started).toBeLessThan(14_000);
  });

  it("leaves newly launched instances alone once the config is deleted", async () => {
    expect((await cli(["rm", "discovery_config", "loop"])).stdout).toBe("discovery_config/loop deleted\n");
    const late = await launch("--tags", "team=loop-b");
    await new Promise((r) => setTimeout(r, 35_000)); // two polls of 15 s
    expect((await nodeIds()).has(late[0])).toBe(false);
    const enrollments = (await api("GET", "/v1/enrollments")).body.enrollments;
    expect(enrollments.some((e: { instanceId: string }) => e.instanceId === late[0])).toBe(false);
  });
});

function writeFile(dir: string, name: string, text: string): string {
  fs.writeFileSync(path.join(dir, name), text);
  return path.join(dir, name);
}
