import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ListCommandsCommand } from "@aws-sdk/client-ssm";
import { callControl, readSandboxState } from "../../provider/sandbox/sandbox-control";
import { discoveryAsync } from "../fixtures/cli";
import { enrollConfigFile, ensureBuilt, parseEnvFile, sandboxApi, sandboxSsm } from "../fixtures/sandbox";
import { clientKey, sshLogin } from "../fixtures/ssh-client";

/**
 * `discovery enroll` over a simulated fleet in the sandbox: two accounts, agent and agentless instances, the iam
 * and ec2 join methods, a stopped instance, an instance whose SSM agent never registered, and an installer that
 * "succeeds" without joining. Everything a user sees: the JSON result, the inventory, an SSH login, and a second
 * pass that sends nothing.
 */
const ACCOUNT = "123456789012";
const OTHER = "210987654321";

type Instance = {
  cloud: string;
  account: string;
  region: string;
  instance_id: string;
  node_name: string;
  status: string;
  reason?: string;
};

describe("discovery enroll against the sandbox", () => {
  let dir: string;
  let env: Record<string, string>;
  let config: string;
  const ids: Record<string, string[]> = {};
  const cli = (args: string[]) => discoveryAsync(args, { env });
  const api = (method: string, route: string, body?: object | string) => sandboxApi(env, method, route, body);
  const launch = async (...args: string[]) => {
    const r = await cli(["sandbox", "launch", "--dir", dir, ...args]);
    expect(r.stderr).toBe("");
    return r.stdout.trim().split("\n");
  };
  const commandsSent = async () => {
    const ssm = sandboxSsm(env);
    const out = await ssm.send(new ListCommandsCommand({ MaxResults: 50 }));
    ssm.destroy();
    return out.Commands?.length ?? 0;
  };
  const pass = async () => {
    // The join wait stays well inside the first backoff (48 s at the least), which the second pass relies on: an
    // instance that failed at the start of the first pass must still be backing off when the second one starts.
    const r = await cli(["enroll", "--config", config, "--once", "--json", "--join-timeout", "25"]);
    const instances = JSON.parse(r.stdout).instances as Instance[];
    // 3: the pass ran, and some instance failed; 0: none did.
    expect(r.status).toBe(instances.some((i) => i.status === "failed") ? 3 : 0);
    return new Map(instances.map((i) => [i.instance_id, i]));
  };

  beforeAll(async () => {
    ensureBuilt();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-enroll-e2e-"));
    const started = await discoveryAsync(["sandbox", "start", "--dir", dir]);
    expect(started.status).toBe(0);
    env = parseEnvFile(path.join(dir, "env.sh"));
    // The other account's instances are verified (DescribeInstances, GetInstanceProfile) through a role there.
    const tokens = [
      `kind: token\nversion: v2\nmetadata: {name: iam-token}\nspec: {roles: [Node], join_method: iam, allow: [{aws_account: "${ACCOUNT}"}, {aws_account: "${OTHER}", aws_role: "arn:aws:iam::${OTHER}:role/discovery-sandbox"}]}`,
      `kind: token\nversion: v2\nmetadata: {name: ec2-token}\nspec: {roles: [Node], join_method: ec2, allow: [{aws_account: "${ACCOUNT}", aws_regions: [us-west-2]}]}`,
      // An installer that exits 0 without ever joining: the pass must notice.
      `kind: installer\nversion: v1\nmetadata: {name: no-join}\nspec: {script: "#!/bin/sh\\necho pretending to install {{ .ClusterName }}\\necho no join today >&2\\nexit 0\\n"}`,
    ].join("\n---\n");
    const applied = await api("PUT", "/v1/resources", tokens);
    expect(applied.status).toBe(200);

    ids.agent = await launch(
      "--account",
      ACCOUNT,
      "--region",
      "us-east-1",
      "--tags",
      "fleet=e2e,mode=agent",
      "--count",
      "2",
    );
    ids.agentless = await launch(
      "--account",
      ACCOUNT,
      "--region",
      "us-west-2",
      "--tags",
      "fleet=e2e,mode=agentless",
      "--count",
      "2",
      "--agentless",
    );
    ids.stopped = await launch(
      "--account",
      ACCOUNT,
      "--region",
      "us-east-1",
      "--tags",
      "fleet=e2e,mode=agent",
      "--state",
      "stopped",
    );
    ids.other = await launch(
      "--account",
      OTHER,
      "--region",
      "us-east-1",
      "--tags",
      "fleet=e2e,mode=agent",
      "--count",
      "2",
    );
    ids.unregistered = await launch(
      "--account",
      ACCOUNT,
      "--region",
      "us-east-1",
      "--tags",
      "fleet=e2e,mode=broken",
      "--ssm-status",
      "unregistered",
    );
    ids.nojoin = await launch("--account", ACCOUNT, "--region", "us-east-1", "--tags", "fleet=e2e,mode=nojoin");

    const iam = { join_params: { token_name: "iam-token", method: "iam" } };
    const matchers = [
      { types: ["ec2"], regions: ["us-east-1"], tags: { fleet: "e2e", mode: "agent" }, install: iam },
      {
        types: ["ec2"],
        regions: ["us-west-2"],
        tags: { fleet: "e2e", mode: "agentless" },
        install: { mode: "agentless", join_params: { token_name: "ec2-token", method: "ec2" } },
      },
      {
        types: ["ec2"],
        regions: ["us-east-1"],
        tags: { fleet: "e2e", mode: "agent" },
        assume_role: { role_arn: `arn:aws:iam::${OTHER}:role/discovery-sandbox`, external_id: "e2e" },
        install: iam,
      },
      { types: ["ec2"], regions: ["us-east-1"], tags: { fleet: "e2e", mode: "broken" }, install: iam },
      {
        types: ["ec2"],
        regions: ["us-east-1"],
        tags: { fleet: "e2e", mode: "nojoin" },
        install: { ...iam, script_name: "no-join" },
      },
    ];
    config = enrollConfigFile(dir, "enroll.yaml", { enabled: true, aws: matchers });
  });
  afterAll(async () => {
    if (dir) await discoveryAsync(["sandbox", "stop", "--dir", dir]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  let first: Map<string, Instance>;
  it("enrolls agent (iam) and agentless (ec2) instances in two accounts, and says why the others failed", async () => {
    first = await pass();
    for (const id of [...ids.agent, ...ids.agentless])
      expect(first.get(id)).toMatchObject({
        cloud: "aws",
        account: ACCOUNT,
        node_name: `${ACCOUNT}-${id}`,
        status: "enrolled",
      });
    for (const id of ids.other)
      expect(first.get(id)).toMatchObject({ account: OTHER, region: "us-east-1", status: "enrolled" });
    expect(first.has(ids.stopped[0])).toBe(false);
    const unregistered = first.get(ids.unregistered[0])!;
    expect(unregistered.status).toBe("failed");
    expect(unregistered.reason).toMatch(/^ssm-agent-not-registered: .*; fix: /);
    const nojoin = first.get(ids.nojoin[0])!;
    expect(nojoin.status).toBe("failed");
    expect(nojoin.reason).toMatch(/^installed-not-joined: installed but did not join; exit code 0; fix: /);

    const nodes = (await api("GET", "/v1/nodes")).body.nodes as { name: string; labels: Record<string, string> }[];
    for (const id of [...ids.agent, ...ids.agentless]) expect(nodes.map((n) => n.name)).toContain(`${ACCOUNT}-${id}`);
    expect(nodes.find((n) => n.name === `${ACCOUNT}-${ids.agentless[0]}`)?.labels["discovery/join-method"]).toBe("ec2");
    expect(nodes.find((n) => n.name === `${ACCOUNT}-${ids.agent[0]}`)?.labels["discovery/join-method"]).toBe("iam");

    // The runtime keeps the status of every enrollment, with the installer's output for the one that never joined.
    const records = (await api("GET", "/v1/enrollments")).body.enrollments as {
      instanceId: string;
      status: string;
      detail?: Record<string, unknown>;
    }[];
    const nj = records.find((r) => r.instanceId === ids.nojoin[0])!;
    expect(nj.status).toBe("failed");
    expect(String(nj.detail?.stderrTail)).toContain("no join today");
    expect(String(nj.detail?.stdoutTail)).toContain("pretending to install");
  });

  it("lets a user log in over SSH to an enrolled agentless instance with a short-lived user certificate", async () => {
    const state = readSandboxState(dir)!;
    const id = ids.agentless[0];
    const view = (await callControl(state, "GET", "/v1/instances")).body.instances.find(
      (i: { instanceId?: string; id?: string }) => (i.instanceId ?? i.id) === id,
    );
    const node = `${ACCOUNT}-${id}`;
    const client = clientKey();
    try {
      const cert = await api("POST", "/v1/certs/user", {
        public_key: client.publicKey,
        principals: ["root"],
        ttl: "5m",
      });
      const hostCaKeys = (await api("GET", "/v1/cas")).body.host.public_keys as string[];
      const login = sshLogin({
        port: view.sshPort,
        key: client.key,
        certificate: cert.body.certificate,
        hostName: node,
        hostCaKeys,
      });
      expect(login.out).toContain("logged-in");
      expect(login.status).toBe(0);
    } finally {
      fs.rmSync(client.dir, { recursive: true, force: true });
    }
  });

  it("sends no command on a second pass: enrolled instances are skipped, failing ones back off", async () => {
    const before = await commandsSent();
    const second = await pass();
    expect(await commandsSent()).toBe(before);
    for (const id of [...ids.agent, ...ids.agentless, ...ids.other])
      expect(second.get(id)?.status).toBe("already_enrolled");
    for (const id of [...ids.unregistered, ...ids.nojoin]) {
      expect(second.get(id)?.status).toBe("skipped");
      expect(second.get(id)?.reason).toMatch(/^[a-z-]+: backing off after 1 failed attempt\(s\) until /);
    }
  });
});
