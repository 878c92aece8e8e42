import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DescribeInstancesCommand, EC2Client } from "@aws-sdk/client-ec2";
import {
  CreateDocumentCommand,
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  GetCommandInvocationCommandOutput,
  GetDocumentCommand,
  SendCommandCommand,
  SSMClient,
} from "@aws-sdk/client-ssm";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import { parse } from "yaml";
import { request } from "../../provider/http/client";
import { discoveryAsync } from "../fixtures/cli";
import { enrollConfigFile, ensureBuilt, parseEnvFile, portOpen } from "../fixtures/sandbox";

/**
 * `discovery sandbox` as a user drives it: the built CLI starts the daemon, launches instances, and the world it
 * makes is used only through what env.sh exports (moto, the SSM simulator, the runtime).
 */
const REPO = path.resolve(__dirname, "../..");
const ACCOUNT = "123456789012";
const OTHER_ACCOUNT = "210987654321";
const TESTING = { accessKeyId: "testing", secretAccessKey: "testing" };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("discovery sandbox: moto, a simulated fleet behind SSM, and a runtime, from the command line", () => {
  let dir: string;
  let env: Record<string, string>;
  let ssm: SSMClient;
  let ec2: EC2Client;
  let stopped = false;

  const cli = (args: string[]) => discoveryAsync(args, { env });

  /** The runtime's API as an admin, trusting its certificate from env.sh. */
  const api = (method: string, route: string, body?: object) =>
    request(
      { server: env.DISCOVERY_SERVER, adminToken: env.DISCOVERY_ADMIN_TOKEN, caFile: env.NODE_EXTRA_CA_CERTS },
      method,
      route,
      body,
    ) as Promise<{ status: number; body: any }>;

  /** `discovery sandbox launch` in ACCOUNT/us-east-1 unless `more` says otherwise (a later flag wins). */
  async function launch(tags: string, ...more: string[]): Promise<string[]> {
    const where = ["--account", ACCOUNT, "--region", "us-east-1"];
    const r = await cli(["sandbox", "launch", "--dir", dir, ...where, "--tags", tags, ...more]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    return r.stdout.trim().split("\n");
  }

  const sshdPort = (id: string) =>
    Number(/^Port (\d+)$/m.exec(fs.readFileSync(path.join(dir, "instances", id, "sshd_config"), "utf8"))![1]);

  /** `discovery apply` of a Node token for ACCOUNT. */
  async function applyToken(name: string, method: string) {
    const file = path.join(dir, `${name}.yaml`);
    const spec = `{roles: [Node], join_method: ${method}, allow: [{aws_account: "${ACCOUNT}"}]}`;
    fs.writeFileSync(file, `kind: token\nversion: v2\nmetadata: {name: ${name}}\nspec: ${spec}\n`);
    const applied = await cli(["apply", "-f", file]);
    expect(applied.stderr).toBe("");
    expect(applied.status).toBe(0);
  }

  /** A built-in installer piped into sh through SSM, as an enrollment sends it; the finished invocation. */
  async function installThroughSsm(id: string, script: string, token: string, exports: string) {
    const url = `${env.DISCOVERY_SERVER}/webapi/scripts/installer/${script}`;
    const commandId = await runShell(
      [id],
      [
        `export ${exports} DISCOVERY_CA_PIN='${env.DISCOVERY_CA_PIN}'`,
        `curl -sS -k --pinnedpubkey "$DISCOVERY_CA_PIN" ${url} | sh -s ${token}`,
      ],
    );
    return finished(commandId, id);
  }

  async function finished(commandId: string, instanceId: string, pluginName?: string) {
    const deadline = Date.now() + 120_000;
    for (;;) {
      let out: GetCommandInvocationCommandOutput | undefined;
      try {
        out = await ssm.send(
          new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId, PluginName: pluginName }),
        );
      } catch (err) {
        if ((err as Error).name !== "InvocationDoesNotExist") throw err;
      }
      if (out && !["Pending", "InProgress", "Delayed"].includes(out.Status!)) return out;
      if (Date.now() > deadline) throw new Error(`command ${commandId} on ${instanceId} did not finish`);
      await sleep(200);
    }
  }

  async function runShell(instanceIds: string[], commands: string[]) {
    const sent = await ssm.send(
      new SendCommandCommand({
        DocumentName: "AWS-RunShellScript",
        InstanceIds: instanceIds,
        Parameters: { commands },
      }),
    );
    return sent.Command!.CommandId!;
  }

  beforeAll(async () => {
    ensureBuilt();
    const help = await discoveryAsync(["sandbox", "--help"]);
    if (help.status !== 0)
      throw new Error(
        `the built CLI has no sandbox command (is sandboxCommand() in provider/cli/index.ts?): ${help.stderr}`,
      );
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-sandbox-"));
    env = {};
    const started = await discoveryAsync(["sandbox", "start", "--dir", dir]);
    expect(started.stderr).toBe("");
    expect(started.status).toBe(0);
    env = parseEnvFile(path.join(dir, "env.sh"));
    ssm = new SSMClient({ region: "us-east-1", endpoint: env.AWS_ENDPOINT_URL_SSM, credentials: TESTING });
    ec2 = new EC2Client({ region: "us-east-1", endpoint: env.AWS_ENDPOINT_URL, credentials: TESTING });
  });
  afterAll(async () => {
    ssm?.destroy();
    ec2?.destroy();
    if (dir && !stopped) await discoveryAsync(["sandbox", "stop", "--dir", dir]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("writes env.sh with SPEC's variables and a runtime.yaml that trusts the sandbox CA; a second start says so", async () => {
    expect(Object.keys(env)).toEqual(
      expect.arrayContaining([
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SSM",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "DISCOVERY_SERVER",
        "DISCOVERY_ADMIN_TOKEN",
        "NODE_EXTRA_CA_CERTS",
        "DISCOVERY_CA_PIN",
      ]),
    );
    for (const k of ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SSM"]) expect(env[k]).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(env.DISCOVERY_SERVER).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(env.AWS_ENDPOINT_URL_SSM).not.toBe(env.AWS_ENDPOINT_URL);
    expect(env.DISCOVERY_CA_PIN).toMatch(/^sha256\/\/[A-Za-z0-9+/]{43}=$/);
    const config = fs.readFileSync(path.join(dir, "runtime.yaml"), "utf8");
    expect(config).toContain("./sandbox-ca.pem");
    expect(config).toContain(`sts_endpoint: ${env.AWS_ENDPOINT_URL}`);
    expect(config).toContain("type: sqlite");
    // Its runtime scans the discovery_configs of group `sandbox` (SPEC §2).
    expect(parse(config).discovery_service).toEqual({ discovery_group: "sandbox", poll_interval: "15s" });
    // The admin CLI works from env.sh alone.
    const ping = await api("GET", "/webapi/ping");
    expect(ping.body.public_addr).toBe(env.DISCOVERY_SERVER);

    const again = await discoveryAsync(["sandbox", "start", "--dir", dir]);
    expect(again.status).toBe(0);
    expect(again.stdout).toContain("already running");
    expect(parseEnvFile(path.join(dir, "env.sh"))).toEqual(env);
  });

  it("launches tagged instances into moto and shows them to SSM as online Linux agents", async () => {
    const ids = await launch("env=prod,team=a", "--count", "3");
    expect(ids).toHaveLength(3);
    for (const id of ids) expect(id).toMatch(/^i-[0-9a-f]{17}$/);
    const described = await ec2.send(new DescribeInstancesCommand({ InstanceIds: ids }));
    const found = (described.Reservations ?? []).flatMap((r) =>
      (r.Instances ?? []).map((i) => ({ i, owner: r.OwnerId })),
    );
    expect(found.map((f) => f.i.InstanceId).sort()).toEqual([...ids].sort());
    for (const { i, owner } of found) {
      expect(owner).toBe(ACCOUNT);
      expect(i.State?.Name).toBe("running");
      expect(i.Tags).toEqual(
        expect.arrayContaining([
          { Key: "env", Value: "prod" },
          { Key: "team", Value: "a" },
        ]),
      );
    }
    const info = await ssm.send(
      new DescribeInstanceInformationCommand({ Filters: [{ Key: "InstanceIds", Values: ids }] }),
    );
    expect(info.InstanceInformationList?.map((i) => [i.InstanceId, i.PingStatus, i.PlatformType]).sort()).toEqual(
      ids.map((id) => [id, "Online", "Linux"]).sort(),
    );
  });

  it("launch --json prints each instance with the port of its sshd when agentless", async () => {
    const [agentless, agent] = [
      (await launch("json=yes", "--agentless", "--json")).map((l) => JSON.parse(l)),
      (await launch("json=yes", "--json")).map((l) => JSON.parse(l)),
    ];
    expect(agentless).toEqual([
      expect.objectContaining({
        cloud: "aws",
        account: ACCOUNT,
        region: "us-east-1",
        ssh_port: sshdPort(agentless[0].id),
      }),
    ]);
    expect(agentless[0].ssh_port).toBeGreaterThan(0);
    expect(agent[0]).not.toHaveProperty("ssh_port");
  });

  it("refuses bad launch arguments with an error naming the flag", async () => {
    const bad: [string[], string][] = [
      [["--account", "12345", "--region", "us-east-1", "--tags", "a=b"], "--account"],
      [["--account", ACCOUNT, "--region", "moon-1", "--tags", "a=b"], "--region"],
      [["--account", ACCOUNT, "--region", "us-east-1", "--tags", "nokey"], "--tags"],
      [["--account", ACCOUNT, "--region", "us-east-1", "--tags", "a=b", "--count", "two"], "--count"],
      [["--account", ACCOUNT, "--region", "us-east-1", "--tags", "a=b", "--state", "paused"], "--state"],
    ];
    for (const [args, flag] of bad) {
      const r = await cli(["sandbox", "launch", "--dir", dir, ...args]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^discovery: ${flag}: `));
      expect(r.stdout).toBe("");
    }
  });

  it("runs AWS-RunShellScript for real: exit code, stdout and stderr come back, a non-zero exit fails", async () => {
    const [id] = await launch("role=shell");
    const commandId = await runShell([id], ["echo hello; echo oops >&2; exit 3"]);
    const out = await finished(commandId, id);
    expect(out).toMatchObject({
      Status: "Failed",
      ResponseCode: 3,
      StandardOutputContent: "hello\n",
      StandardErrorContent: "oops\n",
      PluginName: "aws:runShellScript",
    });
  });

  it("gives every instance its own metadata service", async () => {
    const ids = await launch("role=imds", "--count", "2");
    const commandId = await runShell(ids, [
      `curl -s -H "X-aws-ec2-metadata-token: $(curl -s -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' $AWS_EC2_METADATA_SERVICE_ENDPOINT/latest/api/token)" $AWS_EC2_METADATA_SERVICE_ENDPOINT/latest/meta-data/instance-id`,
    ]);
    for (const id of ids) {
      const out = await finished(commandId, id);
      expect(out.Status).toBe("Success");
      expect(out.StandardOutputContent).toBe(id);
    }
  });

  it("joins an agentless instance with the built-in installer run through SSM; its sshd then trusts the user CA", async () => {
    await applyToken("ec2-token", "ec2");
    const [id] = await launch("role=ssh", "--agentless");
    const out = await installThroughSsm(id, "default-agentless-installer", "ec2-token", "DISCOVERY_JOIN_METHOD=ec2");
    const node = `${ACCOUNT}-${id}`;
    expect(out.StandardErrorContent).toContain(`joined as ${node}`);
    expect(out.Status).toBe("Success");
    const nodes = await api("GET", "/v1/nodes");
    expect(nodes.body.nodes.map((n: { name: string }) => n.name)).toContain(node);

    // Log in with a user certificate from the runtime's user CA, verifying the host by its new certificate.
    const vm = path.join(dir, "instances", id);
    const client = fs.mkdtempSync(path.join(os.tmpdir(), "pd-sandbox-client-"));
    try {
      const key = path.join(client, "id");
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
      const cert = await api("POST", "/v1/certs/user", {
        public_key: fs.readFileSync(`${key}.pub`, "utf8"),
        principals: ["root"],
        ttl: "10m",
      });
      expect(cert.status).toBe(200);
      fs.writeFileSync(`${key}-cert.pub`, cert.body.certificate + "\n");
      const hostCas = fs.readFileSync(path.join(vm, "var-lib-discovery", "known_hosts"), "utf8");
      fs.writeFileSync(
        path.join(client, "known_hosts"),
        hostCas.replace(/^@cert-authority \* /gm, `@cert-authority ${node} `),
      );
      const login = spawnSync(
        "ssh",
        [
          ...["-F", "/dev/null", "-p", String(sshdPort(id)), "-i", key, "-o", `CertificateFile=${key}-cert.pub`],
          ...["-o", `UserKnownHostsFile=${path.join(client, "known_hosts")}`, "-o", "StrictHostKeyChecking=yes"],
          ...["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", `HostKeyAlias=${node}`],
          ...["root@127.0.0.1", "echo logged-in"],
        ],
        { encoding: "utf8", timeout: 30_000 },
      );
      expect(login.stdout + login.stderr).toContain("logged-in");
      expect(login.status).toBe(0);
    } finally {
      fs.rmSync(client, { recursive: true, force: true });
    }
  });

  it("joins an agent-mode instance by its instance profile (iam), named after the instance", async () => {
    await applyToken("iam-token", "iam");
    const [id] = await launch("role=agent");
    const out = await installThroughSsm(id, "default-installer", "iam-token", "DISCOVERY_JOIN_METHOD=iam");
    expect(out.StandardErrorContent).toContain(`joined as ${ACCOUNT}-${id}`);
    expect(out.Status).toBe("Success");
    // Agent mode keeps its credentials on the instance's own disk, not the host's /var/lib/discovery.
    expect(fs.readFileSync(path.join(dir, "instances", id, "var-lib-discovery", "node"), "utf8")).toBe(
      `${ACCOUNT}-${id}\n`,
    );
  });

  it("lets `discovery enroll` enroll agentless instances, editing their sshd_config and never the host's", async () => {
    const hostConfig = fs.existsSync("/etc/ssh/sshd_config") ? fs.readFileSync("/etc/ssh/sshd_config") : undefined;
    await applyToken("aws-discovery-iam-token", "iam");
    const ids = await launch("team=enroll", "--agentless", "--count", "2");
    const matcher = {
      types: ["ec2"],
      regions: ["us-east-1"],
      tags: { team: "enroll" },
      install: { mode: "agentless" },
    };
    const config = enrollConfigFile(dir, "enroll.yaml", { enabled: true, aws: [matcher] });
    const r = await cli(["enroll", "--config", config, "--once", "--json"]);
    const hostAfter = hostConfig && fs.readFileSync("/etc/ssh/sshd_config");
    // Should the simulator ever let the installer through to the host's file, put it back before failing.
    if (hostConfig && !hostConfig.equals(hostAfter!)) fs.writeFileSync("/etc/ssh/sshd_config", hostConfig);
    expect(hostAfter).toEqual(hostConfig);
    expect(r.status).toBe(0);
    const statuses = JSON.parse(r.stdout).instances.map((i: { instance_id: string; status: string }) => [
      i.instance_id,
      i.status,
    ]);
    expect(statuses.sort()).toEqual(ids.map((id) => [id, "enrolled"]).sort());
    // The enrollment names /etc/ssh/sshd_config; on a simulated instance that is the instance's own file.
    for (const id of ids)
      expect(fs.readFileSync(path.join(dir, "instances", id, "sshd_config"), "utf8")).toContain(
        "# managed by pulumi-discovery",
      );
  });

  it("relays document calls to moto, and runs a custom schema 2.2 document step by step", async () => {
    const content = `schemaVersion: "2.2"
description: sandbox test
parameters:
  greeting: {type: String}
  scriptName: {type: String, default: default-installer}
mainSteps:
- action: aws:downloadContent
  name: downloadContent
  inputs:
    sourceType: HTTP
    destinationPath: /tmp/installer.sh
    sourceInfo: {url: "${env.DISCOVERY_SERVER}/webapi/scripts/installer/{{ scriptName }}"}
- action: aws:runShellScript
  name: runShellScript
  inputs:
    runCommand:
    - sed -n 2p /tmp/installer.sh; echo '{{ greeting }}'
`;
    const created = await ssm.send(
      new CreateDocumentCommand({
        Name: "sandbox-test-doc",
        Content: content,
        DocumentType: "Command",
        DocumentFormat: "YAML",
      }),
    );
    expect(created.DocumentDescription).toMatchObject({ Name: "sandbox-test-doc", Owner: ACCOUNT, Status: "Active" });
    const got = await ssm.send(new GetDocumentCommand({ Name: "sandbox-test-doc" }));
    expect(got.Content).toContain("{{ greeting }}");

    const [id] = await launch("role=doc");
    const sent = await ssm.send(
      new SendCommandCommand({
        DocumentName: "sandbox-test-doc",
        InstanceIds: [id],
        Parameters: { greeting: ["hi there"] },
      }),
    );
    const download = await finished(sent.Command!.CommandId!, id, "downloadContent");
    expect(download.Status).toBe("Success");
    const run = await finished(sent.Command!.CommandId!, id, "runShellScript");
    expect(run.StandardOutputContent).toBe(
      "# pulumi-discovery installer (default-installer): joins this VM to the discovery runtime without shared\nhi there\n",
    );
    expect(run.Status).toBe("Success");
  });

  it("answers as AWS does to 51 instance ids, unknown ids, unregistered agents and Windows", async () => {
    const many = Array.from({ length: 51 }, (_, i) => `i-${i.toString(16).padStart(17, "0")}`);
    await expect(runShell(many, ["true"])).rejects.toMatchObject({ name: "ValidationException" });
    await expect(runShell(["i-0000000000000dead"], ["true"])).rejects.toMatchObject({ name: "InvalidInstanceId" });
    const [unregistered] = await launch("k=u", "--ssm-status", "unregistered");
    await expect(runShell([unregistered], ["true"])).rejects.toMatchObject({ name: "InvalidInstanceId" });
    const [windows] = await launch("k=w", "--platform", "Windows");
    const [stopped] = await launch("k=s", "--state", "stopped");
    const info = await ssm.send(
      new DescribeInstanceInformationCommand({
        Filters: [{ Key: "InstanceIds", Values: [unregistered, windows, stopped] }],
      }),
    );
    expect(info.InstanceInformationList?.map((i) => [i.InstanceId, i.PingStatus, i.PlatformType]).sort()).toEqual(
      [
        [windows, "Online", "Windows"],
        [stopped, "ConnectionLost", "Linux"],
      ].sort(),
    );
    await expect(runShell([windows], ["true"])).rejects.toMatchObject({ name: "UnsupportedPlatformType" });
  });

  it("keeps each account to itself: another account's instances are seen only with its credentials", async () => {
    const [away] = await launch("env=prod", "--account", OTHER_ACCOUNT, "--region", "eu-west-1");
    const sts = new STSClient({ region: "us-east-1", endpoint: env.AWS_ENDPOINT_URL, credentials: TESTING });
    const c = (
      await sts.send(new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${OTHER_ACCOUNT}:role/x`, RoleSessionName: "t" }))
    ).Credentials!;
    sts.destroy();
    const credentials = {
      accessKeyId: c.AccessKeyId!,
      secretAccessKey: c.SecretAccessKey!,
      sessionToken: c.SessionToken,
    };
    const theirs = new SSMClient({ region: "eu-west-1", endpoint: env.AWS_ENDPOINT_URL_SSM, credentials });
    const ours = new SSMClient({ region: "eu-west-1", endpoint: env.AWS_ENDPOINT_URL_SSM, credentials: TESTING });
    try {
      const seen = await theirs.send(new DescribeInstanceInformationCommand({}));
      expect(seen.InstanceInformationList?.map((i) => i.InstanceId)).toEqual([away]);
      expect((await ours.send(new DescribeInstanceInformationCommand({}))).InstanceInformationList).toEqual([]);
      const awayEc2 = new EC2Client({ region: "eu-west-1", endpoint: env.AWS_ENDPOINT_URL, credentials });
      const r = await awayEc2.send(new DescribeInstancesCommand({ InstanceIds: [away] }));
      awayEc2.destroy();
      expect(r.Reservations?.[0].OwnerId).toBe(OTHER_ACCOUNT);
    } finally {
      theirs.destroy();
      ours.destroy();
    }
  });

  it("stops every process it started and closes every port; stopping again is fine", async () => {
    const pid = Number(fs.readFileSync(path.join(dir, "sandbox.pid"), "utf8"));
    const state = JSON.parse(fs.readFileSync(path.join(dir, "sandbox.json"), "utf8"));
    const ports = [env.AWS_ENDPOINT_URL, env.AWS_ENDPOINT_URL_SSM, env.DISCOVERY_SERVER, state.control.url].map((u) =>
      Number(new URL(u).port),
    );
    for (const id of fs.readdirSync(path.join(dir, "instances")))
      if (fs.existsSync(path.join(dir, "instances", id, "sshd_config"))) ports.push(sshdPort(id));
    expect(ports.length).toBeGreaterThan(4); // the agentless instance's sshd is among them
    for (const port of ports) expect(await portOpen(port)).toBe(true);

    const r = await discoveryAsync(["sandbox", "stop", "--dir", dir]);
    expect(r.status).toBe(0);
    stopped = true;
    expect(fs.existsSync(path.join(dir, "sandbox.pid"))).toBe(false);
    // Nothing left of the daemon's process group: moto, the runtime and every sshd went with it.
    expect(() => process.kill(-pid, 0)).toThrow(expect.objectContaining({ code: "ESRCH" }));
    for (const port of ports) expect(await portOpen(port)).toBe(false);
    const again = await discoveryAsync(["sandbox", "stop", "--dir", dir]);
    expect(again.status).toBe(0);
    expect(again.stdout).toContain("no sandbox is running");
  });
});
