import { spawn } from "child_process";
import { randomBytes } from "crypto";
import { AwsWorld, startAwsWorld, WORLD_ACCOUNT } from "../fixtures/aws-world";
import { ExecTrace, startExecTrace } from "../fixtures/exec-trace";
import { identityDocument, signIdentityDocument } from "../fixtures/iid-signer";
import { startImds } from "../fixtures/imds";
import { instanceCredentials } from "../fixtures/joins";
import { startVm } from "../fixtures/vm";

/**
 * `ps` shows every process's arguments to every user of the VM. The installers run with a PATH of shims that log
 * the argv of every command they exec, and the log must hold none of the secrets the join handles.
 */
const TOKEN_SECRET = `pd-secret-${randomBytes(12).toString("hex")}`;

describe("the default installers keep secrets out of process arguments", () => {
  let world: AwsWorld;
  const cleanups: (() => Promise<unknown> | void)[] = [];

  beforeAll(async () => {
    world = await startAwsWorld(4);
    const doc = `kind: token\nversion: v2\nmetadata: {name: ${TOKEN_SECRET}}\nspec: {roles: [Node], join_method: token}\n`;
    const applied = await world.rt.call("PUT", "/v1/resources", doc, { admin: true, contentType: "application/yaml" });
    expect(applied.status).toBe(200);
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
    await world?.stop();
  });

  /** Runs `curl .../installer/NAME | sh` with the token in DISCOVERY_TOKEN and PATH = the trace's shims only. */
  function run(trace: ExecTrace, script: string, env: Record<string, string>) {
    const url = `${world.rt.url}/webapi/scripts/installer/${script}`;
    const cmd = `set -o pipefail; /usr/bin/curl -sS --fail -k --pinnedpubkey "$DISCOVERY_CA_PIN" '${url}' | sh`;
    return new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const child = spawn("/bin/bash", ["-c", cmd], { env: { ...env, PATH: trace.bin }, stdio: "pipe" });
      let stderr = "";
      child.stderr.on("data", (d) => (stderr += d));
      child.on("exit", (status) => resolve({ status, stderr }));
    });
  }

  it.each([
    ["agentless", "ec2", 0],
    ["agentless", "iam", 1],
    ["agentless", "token", -1],
    ["agent", "ec2", 2],
    ["agent", "iam", 3],
    ["agent", "token", -1],
  ])("%s mode, %s method: joins, and no command line holds a key, token or signature", async (mode, method, i) => {
    const index = i as number;
    const vm = await startVm();
    const instance = world.instances[index] ?? { id: "i-0123456789abcdef0", ip: "10.0.0.9" };
    const doc = identityDocument({ instanceId: instance.id, privateIp: instance.ip });
    const credentials = await instanceCredentials(world.moto.endpoint, WORLD_ACCOUNT, instance.id);
    const imds = await startImds({
      document: doc,
      rsa2048: await signIdentityDocument(doc, world.signer),
      role: { name: "node", credentials },
    });
    const trace = startExecTrace();
    cleanups.push(
      () => imds.stop(),
      () => vm.stop(),
      () => trace.remove(),
    );
    const token = method === "token" ? TOKEN_SECRET : `${method}-token`;
    const r = await run(trace, mode === "agent" ? "default-installer" : "default-agentless-installer", {
      DISCOVERY_TOKEN: token,
      DISCOVERY_JOIN_METHOD: String(method),
      DISCOVERY_CA_PIN: world.rt.runtime.tls.publicKeyPin,
      DISCOVERY_DATA_DIR: vm.dataDir,
      DISCOVERY_SSHD_CONFIG: vm.sshdConfig,
      DISCOVERY_HOST_KEY: vm.hostKey,
      DISCOVERY_SSHD_RESTART: vm.restartCommand,
      AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.endpoint,
      AWS_ENDPOINT_URL: world.moto.endpoint,
    });
    expect(r.stderr).toContain("discovery-installer: joined as");
    expect(r.status).toBe(0);

    const log = trace.log();
    // The trace saw the installer's commands: a test that saw nothing could not fail.
    expect(log).toMatch(/^curl .*\/v1\/join$/m);
    if (method === "iam") expect(log).toMatch(/^openssl dgst/m);
    if (method !== "token") expect(imds.issuedTokens.length).toBeGreaterThan(0);
    const secrets: [string, string][] = [
      ["the token-method secret", TOKEN_SECRET],
      ["the instance role's secret access key", credentials.secretAccessKey],
      ["the instance role's session token", credentials.sessionToken ?? ""],
      ...imds.issuedTokens.map((t): [string, string] => ["an IMDSv2 session token", t]),
    ];
    const leaks = secrets.filter(([, value]) => value && log.includes(value)).map(([what]) => what);
    const hex = log.match(/[0-9a-fA-F]{64}/g) ?? [];
    expect({ leaks, hex }).toEqual({ leaks: [], hex: [] });
  });
});
