import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { request } from "../../provider/http/client";
import { discoveryAsync } from "../fixtures/cli";
import { REPO, TOOLS_BIN } from "../fixtures/pulumi";
import { ensureBuilt, parseEnvFile } from "../fixtures/sandbox";

const EXAMPLE = path.join(REPO, "examples", "automation-api", "index.js");

/** Runs the example with `args`, as its README says, in the sandbox's environment. */
function runExample(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [EXAMPLE, ...args], { cwd: REPO, env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (status) => resolve({ status, stdout, stderr }));
  });
}

/** The README of examples/automation-api stays true: it enrolls the sandbox fleet and destroys what it declared. */
describe("examples/automation-api against the sandbox", () => {
  let sandbox: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    ensureBuilt();
    sandbox = fs.mkdtempSync(path.join(os.tmpdir(), "pd-example-automation-"));
    expect((await discoveryAsync(["sandbox", "start", "--dir", sandbox])).status).toBe(0);
    env = {
      ...parseEnvFile(path.join(sandbox, "env.sh")),
      PATH: `${TOOLS_BIN}${path.delimiter}${process.env.PATH ?? ""}`,
      DISCOVERY_STATE_DIR: path.join(sandbox, "pulumi-state"),
    };
  });
  afterAll(async () => {
    if (sandbox) await discoveryAsync(["sandbox", "stop", "--dir", sandbox]);
    if (sandbox) fs.rmSync(sandbox, { recursive: true, force: true });
  });

  it("previews the fleet, enrolls it, then finds nothing pending; destroy removes its resources", async () => {
    const fleet = ["--account", "123456789012", "--region", "us-east-1", "--tags", "example=automation-api"];
    const args = ["sandbox", "launch", "--dir", sandbox, ...fleet, "--agentless", "--count", "2"];
    const launched = await discoveryAsync(args, { env });
    const nodes = launched.stdout
      .trim()
      .split("\n")
      .map((id) => `123456789012-${id}`)
      .sort();

    const first = await runExample([], env);
    expect(first.stdout).toContain(`would enroll 2 instance(s) for automation-api: ${nodes.join(", ")}\n`);
    expect(first.stdout).toContain("automation-api: enrolled: 2, failed: 0\n");
    for (const n of nodes) expect(first.stdout).toContain(`  ${n}  enrolled\n`);
    expect(first.stderr).toMatch(/^create +Enrollment +enrollment\/automation-api +done in/m);
    expect(first.stderr).toMatch(/^up succeeded on stack automation-api in \d+\.\ds: 3 created$/m);
    expect(first.status).toBe(0);

    const target = {
      server: env.DISCOVERY_SERVER!,
      adminToken: env.DISCOVERY_ADMIN_TOKEN,
      caFile: env.NODE_EXTRA_CA_CERTS,
    };
    const joined = await request(target, "GET", "/v1/nodes");
    expect((joined.body as { nodes: { name: string }[] }).nodes.map((n) => n.name).sort()).toEqual(nodes);

    const second = await runExample([], env);
    expect(second.stdout).toBe(
      "would enroll 0 instance(s) for automation-api\nautomation-api: enrolled: 2, failed: 0\n  no pass: nothing was pending\n",
    );
    expect(second.stderr).toMatch(/^up succeeded on stack automation-api in \d+\.\ds: 3 unchanged$/m);

    const destroyed = await runExample(["destroy"], env);
    expect(destroyed.stdout).toBe("stack destroyed: 3 resource(s) removed; enrolled machines stay enrolled\n");
    expect(destroyed.status).toBe(0);
    expect((await request(target, "GET", "/v1/resources/token/aws-discovery-iam-token")).status).toBe(404);
    expect((await request(target, "GET", "/v1/resources/discovery_config/automation-api")).status).toBe(404);
  });
});
