import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { request } from "../../provider/http/client";
import { discoveryAsync } from "../fixtures/cli";
import { TOOLS_BIN } from "../fixtures/pulumi";
import { enrollConfigFile, ensureBuilt, parseEnvFile } from "../fixtures/sandbox";

const ACCOUNT = "123456789012";

/**
 * `discovery up|preview --enroll` over the sandbox's simulated fleet, with the runtime named by its own config
 * (teleport.yaml style: its discovery_service is the discovery_config whose matchers the Enrollment runs).
 */
describe("discovery up --enroll against the sandbox", () => {
  let sandbox: string;
  let sandboxEnv: Record<string, string>;
  let env: NodeJS.ProcessEnv;
  let runtimeConfig: string;
  let tokens: string;
  const cli = (args: string[]) =>
    discoveryAsync([...args, "--state-dir", path.join(sandbox, "pulumi-state")], { env, cwd: sandbox });
  const docs = () => ["--config", runtimeConfig, "--config", tokens];
  const launch = async (count: number) => {
    const r = await discoveryAsync(
      [
        "sandbox",
        "launch",
        "--dir",
        sandbox,
        "--account",
        ACCOUNT,
        "--region",
        "us-east-1",
        "--tags",
        "team=automation",
        "--agentless",
        "--count",
        String(count),
      ],
      { env: sandboxEnv },
    );
    expect(r.stderr).toBe("");
    return r.stdout.trim().split("\n");
  };
  const nodes = async () => {
    const a = await request(
      {
        server: sandboxEnv.DISCOVERY_SERVER,
        adminToken: sandboxEnv.DISCOVERY_ADMIN_TOKEN,
        caFile: sandboxEnv.NODE_EXTRA_CA_CERTS,
      },
      "GET",
      "/v1/nodes",
    );
    return (a.body as { nodes: { name: string }[] }).nodes.map((n) => n.name).sort();
  };

  beforeAll(async () => {
    ensureBuilt();
    sandbox = fs.mkdtempSync(path.join(os.tmpdir(), "pd-automation-enroll-"));
    expect((await discoveryAsync(["sandbox", "start", "--dir", sandbox])).status).toBe(0);
    sandboxEnv = parseEnvFile(path.join(sandbox, "env.sh"));
    // The cloud endpoints of the sandbox, but not its DISCOVERY_* or CA: those come from the runtime config.
    const { DISCOVERY_SERVER: _s, DISCOVERY_ADMIN_TOKEN: _t, NODE_EXTRA_CA_CERTS: _c, ...clouds } = sandboxEnv;
    env = { ...clouds, PATH: `${TOOLS_BIN}${path.delimiter}${process.env.PATH ?? ""}`, PULUMI_CONFIG_PASSPHRASE: "e" };
    env.DISCOVERY_SERVER = "";
    env.DISCOVERY_ADMIN_TOKEN = "";
    env.NODE_EXTRA_CA_CERTS = "";
    runtimeConfig = enrollConfigFile(sandbox, "runtime-discovery.yaml", {
      enabled: "yes",
      discovery_group: "automation",
      aws: [{ types: ["ec2"], regions: ["us-east-1"], tags: { team: "automation" }, install: { agentless: true } }],
    });
    tokens = path.join(sandbox, "tokens.yaml");
    fs.writeFileSync(
      tokens,
      `kind: token\nversion: v2\nmetadata: {name: aws-discovery-iam-token}\nspec: {roles: [Node], join_method: iam, allow: [{aws_account: "${ACCOUNT}"}]}\n`,
    );
  });
  afterAll(async () => {
    if (sandbox) await discoveryAsync(["sandbox", "stop", "--dir", sandbox]);
    if (sandbox) fs.rmSync(sandbox, { recursive: true, force: true });
  });

  it("previews the instances it would enroll, enrolls them on up, then again only the new one", async () => {
    const first = await launch(2);
    const nodeNames = first.map((id) => `${ACCOUNT}-${id}`).sort();

    const preview = await cli(["preview", "--enroll", ...docs()]);
    expect(preview.status).toBe(0);
    expect(preview.stderr).toMatch(/^create +Enrollment +enrollment\/automation +would create$/m);
    expect(preview.stderr).toContain(`         pending: ${nodeNames.join(", ")}\n`);
    expect(preview.stderr).toMatch(/^preview of stack dev: 3 to create$/m);
    expect(await nodes()).toEqual([]);

    const up = await cli(["up", "--enroll", "--join-timeout", "60", ...docs()]);
    expect(up.stderr).toMatch(/^create +Enrollment +enrollment\/automation +done in/m);
    expect(up.stderr).toMatch(/^up succeeded on stack dev in \d+\.\ds: 3 created$/m);
    expect(up.stdout).toContain("enrollment automation: enrolled: 2, failed: 0\n");
    for (const id of first) expect(up.stdout).toMatch(new RegExp(`^${id} +${ACCOUNT} +us-east-1 +enrolled$`, "m"));
    expect(up.status).toBe(0);
    expect(await nodes()).toEqual(nodeNames);

    const quiet = await cli(["preview", "--enroll", ...docs()]);
    expect(quiet.stderr).toMatch(/^preview of stack dev: no changes \(3 unchanged\)$/m);

    const [added] = await launch(1);
    const pending = JSON.parse((await cli(["preview", "--enroll", "--json", ...docs()])).stdout);
    expect(pending.changes).toEqual({ update: 1, same: 2 });
    expect(pending.enrollments).toEqual([{ name: "automation", pending: [`${ACCOUNT}-${added}`] }]);

    const again = await cli(["up", "--enroll", "--json", "--join-timeout", "60", ...docs()]);
    expect(again.status).toBe(0);
    const [outcome] = JSON.parse(again.stdout).enrollments;
    expect(outcome).toMatchObject({ name: "automation", enrolled: 3, failed: 0, pending: [] });
    const statuses = Object.fromEntries(
      outcome.instances.map((i: { instance_id: string; status: string }) => [i.instance_id, i.status]),
    );
    expect(statuses).toEqual({ [added]: "enrolled", [first[0]]: "already_enrolled", [first[1]]: "already_enrolled" });

    // Destroy removes the declarations; enrolled machines stay enrolled.
    const destroy = await cli(["destroy", "--config", runtimeConfig]);
    expect(destroy.stderr).toMatch(/^destroy succeeded on stack dev in \d+\.\ds: 3 deleted$/m);
    expect(await nodes()).toEqual([...nodeNames, `${ACCOUNT}-${added}`].sort());
  });
});
