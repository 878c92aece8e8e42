import { execFile, execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { startTestRuntime, TestRuntime } from "../fixtures/runtime";
import { copyProgram, IN_REPO_WORK, linkPackage, localStack, pulumiEnv, REPO, TOOLS_BIN } from "../fixtures/pulumi";

/** The pack the package ships, as a user points `--policy-pack` at it. */
const PACK = path.join(REPO, "dist", "policy", "pack");
const EXAMPLE = path.join(REPO, "examples", "policy-pack-in-ci");
const SHARED_SECRET = "shared-join-secret-4d1e9b";

/** Builds dist/ when the policy sources are newer than the built pack (tests run the pack as users do). */
function ensurePackBuilt(): void {
  const built = path.join(PACK, "package.json");
  const sources = fs
    .readdirSync(path.join(REPO, "policy"), { recursive: true, encoding: "utf8" })
    .map((f) => fs.statSync(path.join(REPO, "policy", f)).mtimeMs);
  if (
    !fs.existsSync(built) ||
    fs.statSync(path.join(REPO, "dist", "policy", "index.js")).mtimeMs < Math.max(...sources)
  )
    execFileSync(process.execPath, [path.join(REPO, "scripts", "build.js")], { cwd: REPO, stdio: "pipe" });
}

/** Runs a command; its exit code and everything it printed. */
function run(
  cmd: string,
  args: string[],
  cwd: string,
  env: Record<string, string>,
): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env: { ...process.env, ...env }, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: `${stdout}\n${stderr}` }),
    );
  });
}

/** A program with an ec2 token, matchers for AWS and GCP, and (config sharedToken) a token-method token. */
const PROGRAM = `"use strict";
const pulumi = require("@pulumi/pulumi");
const discovery = require("pulumi-discovery");
const config = new pulumi.Config();
new discovery.ProvisionToken("ec2-token", {
  name: "ec2-token",
  roles: ["Node"],
  joinMethod: "ec2",
  awsIidTtl: config.get("iidTtl") || "5m",
  allow: [{ awsAccount: "123456789012", awsRegions: ["us-east-1"] }],
});
const shared = config.getSecret("sharedToken");
if (shared) new discovery.ProvisionToken("shared-token", { name: shared, roles: ["Node"], joinMethod: "token" });
new discovery.DiscoveryConfig("prod", {
  name: "prod",
  discoveryGroup: "prod",
  aws: [{ regions: ["us-east-1"], install: { joinParams: { tokenName: shared || "ec2-token", method: "ec2" } } }],
  gcp: [{ projectIds: ["corp-prod"] }],
});
`;

/** A fresh project folder holding PROGRAM and a policy config naming corp-prod an OS Login project. */
function writeProgram(): string {
  const source = fs.mkdtempSync(path.join(IN_REPO_WORK, "policy-src-"));
  fs.writeFileSync(
    path.join(source, "Pulumi.yaml"),
    "name: policy-pack-check\nruntime:\n  name: nodejs\n  options:\n    typescript: false\n",
  );
  fs.writeFileSync(path.join(source, "package.json"), JSON.stringify({ name: "policy-pack-check", main: "index.js" }));
  fs.writeFileSync(path.join(source, "index.js"), PROGRAM);
  fs.writeFileSync(
    path.join(source, "policy-config.json"),
    JSON.stringify({ "gcp-os-login-projects": { osLoginProjects: ["corp-prod"] } }),
  );
  const dir = copyProgram(source, IN_REPO_WORK);
  fs.rmSync(source, { recursive: true, force: true });
  linkPackage(dir);
  return dir;
}

describe("the policy pack under the real engine (pulumi preview/up --policy-pack)", () => {
  let rt: TestRuntime;
  let dir: string;
  let stack: Stack;
  let policyOpts: { policyPacks: string[]; policyPackConfigs: string[] };
  const getAdmin = (kind: string, name: string) =>
    rt.call("GET", `/v1/resources/${kind}/${encodeURIComponent(name)}`, undefined, { admin: true });

  beforeAll(async () => {
    ensurePackBuilt();
    fs.mkdirSync(IN_REPO_WORK, { recursive: true });
    rt = await startTestRuntime();
    dir = writeProgram();
    policyOpts = { policyPacks: [PACK], policyPackConfigs: [path.join(dir, "policy-config.json")] };
    stack = await localStack(dir, "policy", { NODE_EXTRA_CA_CERTS: rt.runtime.tls.certFile });
    await stack.setConfig("discovery:server", { value: rt.url });
    await stack.setConfig("discovery:adminToken", { value: rt.runtime.adminToken, secret: true });
  });
  afterAll(async () => {
    await stack?.destroy().catch(() => undefined);
    await rt?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("lets an update with only an advisory violation through, printing the warning", async () => {
    let printed = "";
    const up = await stack.up({ ...policyOpts, onOutput: (o) => (printed += o) });
    expect(up.summary.result).toBe("succeeded");
    expect(up.summary.resourceChanges).toEqual({ create: 3 }); // the stack and the two resources
    expect(printed).toContain("[advisory]  gcp-os-login-projects");
    expect(printed).toContain(
      'DiscoveryConfig "prod" gcp[0].projectIds targets "corp-prod", where OS Login is enabled',
    );
    expect(printed).not.toContain("[mandatory]");
    expect((await getAdmin("token", "ec2-token")).body.spec.aws_iid_ttl).toBe("5m");
    expect((await getAdmin("discovery_config", "prod")).status).toBe(200);
  });

  it("stops an update on a mandatory violation, naming the policy and the fix, and changes nothing", async () => {
    await stack.setConfig("iidTtl", { value: "10m" });
    let printed = "";
    const err = await stack.up({ ...policyOpts, onOutput: (o) => (printed += o) }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err).toBeDefined();
    const output = `${printed}\n${err?.message}`;
    expect(output).toContain("[mandatory]  ec2-token-iid-ttl-and-regions");
    expect(output).toContain('awsIidTtl is "10m", longer than the 5m allowed');
    expect(output).toContain('Set awsIidTtl to "5m" or less');
    // Neither the runtime nor the state took the change.
    expect((await getAdmin("token", "ec2-token")).body.spec.aws_iid_ttl).toBe("5m");
    const state = (await stack.exportStack()).deployment.resources as {
      urn: string;
      outputs: { awsIidTtl?: string };
    }[];
    expect(state.find((r) => r.urn.endsWith("::ec2-token"))?.outputs.awsIidTtl).toBe("5m");
    await stack.removeConfig("iidTtl");
  });

  it("fails `pulumi preview --policy-pack` on a discovery token with joinMethod token, without printing its secret name", async () => {
    await stack.setConfig("sharedToken", { value: SHARED_SECRET, secret: true });
    const env = {
      ...pulumiEnv(path.join(dir, ".pulumi-home")),
      NODE_EXTRA_CA_CERTS: rt.runtime.tls.certFile,
    };
    const args = ["preview", "--stack", "policy", "--non-interactive", "--policy-pack", PACK];
    const preview = await run(path.join(TOOLS_BIN, "pulumi"), args, dir, env);
    expect(preview.code).not.toBe(0);
    expect(preview.out).toContain("[mandatory]  token-allow-rules");
    expect(preview.out).toContain("joinMethod is token: a shared-secret token has no allow rules");
    expect(preview.out).toContain("[mandatory]  discovery-token-join-method");
    expect(preview.out).toContain(
      'ProvisionToken "shared-token" is a discovery token (the matchers DiscoveryConfig "prod" aws[0] install with it',
    );
    expect(preview.out).not.toContain(SHARED_SECRET);
    // Without the pack's config file the OS Login warning has no project to warn about.
    expect(preview.out).not.toContain("gcp-os-login-projects");
    await stack.removeConfig("sharedToken");
    const clean = await run(path.join(TOOLS_BIN, "pulumi"), args, dir, env);
    expect(clean.code).toBe(0);
  });
});

describe("examples/policy-pack-in-ci", () => {
  let dir: string;
  const env = () => ({
    ...pulumiEnv(path.join(dir, ".pulumi-home")),
    DISCOVERY_SERVER: "https://discovery.example.com:3080", // a preview never contacts the runtime
  });

  beforeAll(() => {
    ensurePackBuilt();
    dir = copyProgram(EXAMPLE, IN_REPO_WORK);
    linkPackage(dir);
  });
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("passes CI as shipped, with the OS Login warning", async () => {
    const ci = await run("bash", [path.join(dir, "ci.sh")], dir, env());
    expect(ci.out).toContain("[advisory]  gcp-os-login-projects");
    expect(ci.out).toContain("+ 4 to create");
    expect(ci.code).toBe(0);
  });

  it("fails CI when a change makes discovery install with a shared secret", async () => {
    const program = path.join(dir, "index.js");
    const source = fs.readFileSync(program, "utf8");
    expect(source).toContain('method: "ec2" }');
    fs.writeFileSync(program, source.replace('method: "ec2" }', 'method: "token" }'));
    const ci = await run("bash", [path.join(dir, "ci.sh")], dir, env());
    expect(ci.code).not.toBe(0);
    expect(ci.out).toContain("[mandatory]  matcher-cloud-join-method");
    expect(ci.out).toContain(
      'aws[0].install.joinParams.method is "token": discovered aws instances must join with a method the cloud attests',
    );
  });
});
