import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { discoveryAsync } from "../fixtures/cli";
import { startTestRuntime, TestRuntime } from "../fixtures/runtime";
import { TOOLS_BIN } from "../fixtures/pulumi";
import { ensureBuilt } from "../fixtures/sandbox";

const SECRET = "automation-secret-4c7d9e1f";

const DOCS = (installerDescription: string) =>
  [
    `kind: token\nversion: v2\nmetadata: {name: ec2-token}\nspec: {roles: [Node], join_method: ec2, allow: [{aws_account: "123456789012", aws_regions: [us-east-1]}]}`,
    `kind: token\nversion: v2\nmetadata: {name: ${SECRET}}\nspec: {roles: [Node], join_method: token}`,
    `kind: installer\nversion: v1\nmetadata: {name: custom-installer, description: ${installerDescription}}\nspec:\n  script: |\n    #!/bin/sh\n    curl -sSL https://{{ .PublicProxyAddr }}/agent | sh\n`,
    `kind: discovery_config\nversion: v1\nmetadata: {name: prod}\nspec:\n  discovery_group: prod\n  aws:\n    - types: [ec2]\n      regions: [us-east-1]\n      tags: {env: prod}\n`,
  ].join("\n---\n");

/** `discovery up|preview|destroy` as a user runs them against a runtime, checked through the runtime's admin API. */
describe("discovery up, preview and destroy against a runtime", () => {
  let rt: TestRuntime;
  let dir: string;
  let docs: string;
  let env: NodeJS.ProcessEnv;
  const stateDir = () => path.join(dir, "state");
  const cli = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
    discoveryAsync([...args, "--state-dir", stateDir()], { env: { ...env, ...extra }, cwd: dir });
  const admin = (kind: string, name: string) =>
    rt.call("GET", `/v1/resources/${kind}/${encodeURIComponent(name)}`, undefined, { admin: true });

  beforeAll(async () => {
    ensureBuilt();
    rt = await startTestRuntime();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-automation-"));
    docs = path.join(dir, "docs.yaml");
    fs.writeFileSync(docs, DOCS("first"));
    env = {
      PATH: `${TOOLS_BIN}${path.delimiter}${process.env.PATH ?? ""}`,
      DISCOVERY_SERVER: rt.url,
      DISCOVERY_ADMIN_TOKEN: rt.runtime.adminToken,
      NODE_EXTRA_CA_CERTS: rt.runtime.tls.certFile,
      PULUMI_CONFIG_PASSPHRASE: "",
    };
    delete env.PULUMI_CONFIG_PASSPHRASE; // the generated passphrase file is what a first-time user gets
  });
  afterAll(async () => {
    await rt?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("up creates every document in the runtime, showing a line per resource; a second up changes nothing", async () => {
    const up = await cli(["up", "--config", docs]);
    expect(up.stderr).toMatch(/^create +ProvisionToken +token\/ec2-token +done in \d+\.\d\ds$/m);
    expect(up.stderr).toMatch(/^create +Installer +installer\/custom-installer +done in/m);
    expect(up.stderr).toMatch(/^create +DiscoveryConfig +discovery_config\/prod +done in/m);
    expect(up.stderr).toMatch(/^create +ProvisionToken +token\/sha256-[0-9a-f]{16} +done in/m);
    expect(up.stderr).toMatch(/^up succeeded on stack dev in \d+\.\ds: 4 created$/m);
    expect(up.stderr).not.toContain(SECRET);
    expect(up.status).toBe(0);

    const ec2 = await admin("token", "ec2-token");
    expect(ec2.status).toBe(200);
    expect(ec2.body.spec).toEqual({
      roles: ["Node"],
      join_method: "ec2",
      aws_iid_ttl: "5m",
      allow: [{ aws_account: "123456789012", aws_regions: ["us-east-1"] }],
    });
    expect((await admin("token", SECRET)).body.metadata.name).toBe("(secret)");
    expect((await admin("installer", "custom-installer")).body.metadata.description).toBe("first");
    expect((await admin("discovery_config", "prod")).body.spec.aws[0].tags).toEqual({ env: "prod" });
    // The state is kept where --state-dir says, its secrets under a generated passphrase only the owner reads.
    expect(fs.statSync(path.join(stateDir(), "passphrase")).mode & 0o777).toBe(0o600);
    expect(fs.existsSync(path.join(stateDir(), "backend", ".pulumi", "stacks", "discovery", "dev.json"))).toBe(true);

    const again = await cli(["up", "--config", docs, "--json"]);
    expect(again.status).toBe(0);
    const summary = JSON.parse(again.stdout);
    expect(summary).toMatchObject({ result: "succeeded", operation: "up", stack: "dev", changes: { same: 4 } });
    expect(summary.outputs.resources).toContainEqual({ kind: "token", name: "(secret)", id: expect.any(String) });
    expect(again.stderr).toMatch(/^up succeeded on stack dev in \d+\.\ds: 4 unchanged$/m);
  });

  it("preview after editing a document shows the update and changes nothing; up then applies it", async () => {
    fs.writeFileSync(docs, DOCS("second"));
    const preview = await cli(["preview", "--config", docs]);
    expect(preview.status).toBe(0);
    expect(preview.stderr).toMatch(/^update +Installer +installer\/custom-installer +would update \(description\)$/m);
    expect(preview.stderr).toMatch(/^preview of stack dev: 1 to update, 3 unchanged$/m);
    expect((await admin("installer", "custom-installer")).body.metadata.description).toBe("first");

    const json = JSON.parse((await cli(["preview", "--config", docs, "--json"])).stdout);
    expect(json.changes).toEqual({ update: 1, same: 3 });
    expect(json.steps.find((s: { op: string }) => s.op === "update")).toMatchObject({
      type: "Installer",
      name: "installer/custom-installer",
      status: "planned",
      diffs: ["description"],
    });

    const up = await cli(["up", "--config", docs]);
    expect(up.stderr).toMatch(/^up succeeded on stack dev in \d+\.\ds: 1 updated, 3 unchanged$/m);
    expect((await admin("installer", "custom-installer")).body.metadata.description).toBe("second");

    // Removed behind the stack's back: --refresh reads the runtime first, so the drift shows and up repairs it.
    await rt.call("DELETE", "/v1/resources/installer/custom-installer", undefined, { admin: true });
    expect((await cli(["preview", "--config", docs])).stderr).toMatch(/^preview of stack dev: no changes/m);
    const drift = await cli(["preview", "--refresh", "--config", docs]);
    expect(drift.stderr).toMatch(/^create +Installer +installer\/custom-installer +would create$/m);
    expect(drift.stderr).toMatch(/^preview of stack dev: 1 to create, 3 unchanged$/m);
    expect((await cli(["up", "--refresh", "--config", docs])).status).toBe(0);
    expect((await admin("installer", "custom-installer")).body.metadata.description).toBe("second");
  });

  it("takes a teleport.yaml, and a runtime config that names the runtime too", async () => {
    // A plain teleport.yaml: its discovery_service is one discovery_config; the runtime comes from the environment.
    const teleport = path.join(dir, "teleport.yaml");
    fs.writeFileSync(
      teleport,
      stringify({
        version: "v3",
        teleport: { nodename: "discovery-host" },
        discovery_service: {
          enabled: "yes",
          discovery_group: "from-teleport",
          aws: [
            { types: ["ec2"], regions: ["us-west-1"], tags: { teleport: "yes" }, install: { install_teleport: false } },
          ],
        },
      }),
    );
    // The runtime's own config with a discovery_service: no DISCOVERY_* and no CA in the environment at all.
    const runtimeConfig = path.join(rt.dir, "with-discovery.yaml");
    fs.writeFileSync(
      runtimeConfig,
      fs.readFileSync(rt.configFile, "utf8") +
        stringify({
          discovery_service: {
            discovery_group: "from-runtime-config",
            aws: [
              {
                types: ["ec2"],
                regions: ["eu-west-1"],
                assume_role_arn: "arn:aws:iam::123456789012:role/discovery",
                external_id: "ext-1",
              },
            ],
          },
        }),
    );
    const bare = { DISCOVERY_SERVER: "", DISCOVERY_ADMIN_TOKEN: "", NODE_EXTRA_CA_CERTS: "" };
    const up = await cli(["up", "--stack", "teleport", "--config", runtimeConfig, "--config", teleport], bare);
    expect(up.stderr).toMatch(/^create +DiscoveryConfig +discovery_config\/from-teleport +done in/m);
    expect(up.stderr).toMatch(/^up succeeded on stack teleport in \d+\.\ds: 2 created$/m);
    expect(up.status).toBe(0);
    const fromTeleport = (await admin("discovery_config", "from-teleport")).body.spec.aws[0];
    expect(fromTeleport.install.mode).toBe("agentless");
    const fromRuntime = (await admin("discovery_config", "from-runtime-config")).body.spec.aws[0];
    expect(fromRuntime.assume_role).toEqual({
      role_arn: "arn:aws:iam::123456789012:role/discovery",
      external_id: "ext-1",
    });

    // The state knows where the runtime is; the runtime config says which certificate to trust for it.
    const destroy = await cli(["destroy", "--stack", "teleport", "--config", runtimeConfig], bare);
    expect(destroy.stderr).toMatch(/^destroy succeeded on stack teleport in \d+\.\ds: 2 deleted$/m);
    expect((await admin("discovery_config", "from-teleport")).status).toBe(404);
    expect((await admin("token", "ec2-token")).status).toBe(200); // another stack's resources are left alone
  });

  it("refuses invalid documents with FILE:LINE:COL and the fix, and changes nothing", async () => {
    const good = path.join(dir, "good.yaml");
    fs.writeFileSync(good, "kind: installer\nversion: v1\nmetadata: {name: never-applied}\nspec: {script: echo hi}\n");
    const bad = path.join(dir, "bad.yaml");
    fs.writeFileSync(bad, "kind: installer\nversion: v1\nmetadata: {name: x}\nspec:\n  script: echo {{ .Nope }}\n");
    const fresh = path.join(dir, "fresh-state");
    const refused = await discoveryAsync(["up", "--config", good, "--config", bad, "--state-dir", fresh], { env });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toBe(
      `${bad}:5:16: spec.script: template variable {{ .Nope }} is not allowed; use {{ .PublicProxyAddr }} or {{ .ClusterName }}\n` +
        "1 problem found; nothing was changed\n",
    );
    expect(refused.stdout).toBe("");
    expect((await admin("installer", "never-applied")).status).toBe(404);
    expect(fs.existsSync(fresh)).toBe(false);
    const json = await discoveryAsync(["up", "--json", "--config", bad, "--state-dir", fresh], { env });
    expect(json.status).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({
      result: "failed",
      operation: "up",
      error: {
        code: "invalid_documents",
        problems: [{ file: bad, line: 5, col: 16, path: ["spec", "script"], message: expect.any(String) }],
      },
    });

    const missing = await cli(["preview", "--config", path.join(dir, "nope.yaml")]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain(
      `${path.join(dir, "nope.yaml")}:1:1: file: cannot read: no such file; check the --config path`,
    );

    const twice = path.join(dir, "twice.yaml");
    const ec2Token = `kind: token\nversion: v2\nmetadata: {name: ec2-token}\nspec: {roles: [Node], join_method: ec2, allow: [{aws_account: "123456789012"}]}\n`;
    fs.writeFileSync(twice, `${ec2Token}---\n${ec2Token}`);
    const duplicate = await cli(["up", "--config", twice]);
    expect(duplicate.status).toBe(1);
    expect(duplicate.stderr).toBe(
      `${twice}:8:18: metadata.name: token "ec2-token" is already declared at ${twice}:3:18; the runtime keys documents by kind and name, keep one\n` +
        "1 problem found; nothing was changed\n",
    );

    const brokenRuntime = path.join(dir, "runtime.yaml");
    fs.writeFileSync(brokenRuntime, "version: v1\ncluster_name: x.test\npublic_addr: http://127.0.0.1:1\n");
    const runtimeRefused = await cli(["up", "--config", brokenRuntime]);
    expect(runtimeRefused.status).toBe(1);
    expect(runtimeRefused.stderr).toContain(`${brokenRuntime}:3:14: public_addr: must be an https URL`);
    // What the first test declared is untouched by all of the above.
    expect((await admin("installer", "custom-installer")).body.metadata.description).toBe("second");
  });

  it("says what is missing and how to fix it: the runtime, the Pulumi CLI, its dynamic provider plugin", async () => {
    const noRuntime = await cli(["up", "--config", docs], { DISCOVERY_SERVER: "", DISCOVERY_ADMIN_TOKEN: "" });
    expect(noRuntime.status).toBe(1);
    expect(noRuntime.stderr).toBe(
      "discovery: no runtime to declare the documents in: pass --server URL and --admin-token-file FILE, set " +
        "DISCOVERY_SERVER and DISCOVERY_ADMIN_TOKEN, or add the runtime's config (SPEC §3) with --config\n",
    );
    const noCli = await cli(["up", "--config", docs, "--pulumi", path.join(dir, "no-pulumi")]);
    expect(noCli.status).toBe(1);
    expect(noCli.stderr).toContain(`--pulumi ${path.join(dir, "no-pulumi")}: no such file; install the Pulumi CLI`);

    const wrongToken = path.join(dir, "wrong.token");
    fs.writeFileSync(wrongToken, "not-the-admin-token\n");
    const refused = await cli(["up", "--stack", "refused", "--config", docs, "--admin-token-file", wrongToken]);
    expect(refused.status).toBe(1);
    // The engine stops at the first failures, so which of the four resources were tried varies.
    expect(refused.stderr).toMatch(/^create +\w+ +\S+ +failed after \d+\.\d\ds$/m);
    // Each create reads what the runtime holds first (to refuse overwriting a document it does not own).
    expect(refused.stderr).toMatch(
      /^error: \S+: cannot read (token|installer|discovery_config) .+ from the runtime https:\/\/\S+: a valid admin bearer token is required$/m,
    );
    expect(refused.stderr).toMatch(/discovery: up failed on stack refused\n$/);

    // A CLI whose folder lacks pulumi-resource-pulumi-nodejs, with nothing on PATH to make up for it.
    const lonely = path.join(dir, "lonely", "bin");
    fs.mkdirSync(lonely, { recursive: true });
    fs.writeFileSync(path.join(lonely, "pulumi"), "#!/bin/sh\necho v3.276.0\n", { mode: 0o755 });
    const noPlugin = await cli(["up", "--config", docs, "--pulumi", path.join(lonely, "pulumi")], {
      PATH: "/usr/bin:/bin",
    });
    expect(noPlugin.status).toBe(1);
    expect(noPlugin.stderr).toContain(
      `the plugin pulumi-resource-pulumi-nodejs, which runs this package's resources, is neither next to ${path.join(lonely, "pulumi")} nor on PATH`,
    );
  });

  it("destroy removes every resource of the stack from the runtime; preview then shows them to create", async () => {
    const destroy = await cli(["destroy"]);
    expect(destroy.stderr).toMatch(/^delete +ProvisionToken +token\/ec2-token +done in/m);
    expect(destroy.stderr).toMatch(/^destroy succeeded on stack dev in \d+\.\ds: 4 deleted$/m);
    expect(destroy.status).toBe(0);
    for (const [kind, name] of [
      ["token", "ec2-token"],
      ["token", SECRET],
      ["installer", "custom-installer"],
      ["discovery_config", "prod"],
    ])
      expect((await admin(kind, name)).status).toBe(404);
    const preview = await cli(["preview", "--config", docs]);
    expect(preview.stderr).toMatch(/^preview of stack dev: 4 to create$/m);
  });
});
