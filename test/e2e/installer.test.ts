import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { editSshdConfig } from "../../provider/ssh";
import { AwsWorld, startAwsWorld, WORLD_ACCOUNT } from "../fixtures/aws-world";
import { identityDocument, signIdentityDocument, TestSigner } from "../fixtures/iid-signer";
import { FakeImds, startImds } from "../fixtures/imds";
import { instanceCredentials } from "../fixtures/joins";
import type { Moto } from "../fixtures/moto";
import type { TestRuntime } from "../fixtures/runtime";
import { sshLogin } from "../fixtures/ssh-client";
import { startVm, TestVm } from "../fixtures/vm";

/**
 * The built-in installers run for real: fetched with curl from the runtime and piped into `sh`, on a simulated
 * VM whose metadata service serves a signed identity, with a real sshd that ends up trusting the runtime's CAs.
 */
const ACCOUNT = WORLD_ACCOUNT;

describe("the default installers under sh, against a real sshd", () => {
  let world: AwsWorld;
  let moto: Moto;
  let rt: TestRuntime;
  let signer: TestSigner;
  let instances: { id: string; ip: string }[];
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    world = await startAwsWorld(8);
    ({ moto, rt, signer, instances } = world);
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
    await world?.stop();
  });

  async function vmWithImds(
    instance: { id: string; ip: string },
    withRole = false,
  ): Promise<{ vm: TestVm; imds: FakeImds }> {
    const vm = await startVm();
    const doc = identityDocument({ instanceId: instance.id, privateIp: instance.ip });
    const role = withRole
      ? { name: "node", credentials: await instanceCredentials(moto.endpoint, ACCOUNT, instance.id) }
      : undefined;
    const imds = await startImds({ document: doc, rsa2048: await signIdentityDocument(doc, signer), role });
    cleanups.push(
      () => imds.stop(),
      () => vm.stop(),
    );
    return { vm, imds };
  }

  /** `curl .../installer/NAME | DISCOVERY_TOKEN=TOKEN sh`, as the SSM command runs it (or `sh -s TOKEN`). */
  function install(
    script: string,
    token: string,
    vm: TestVm,
    imds: FakeImds,
    method: string,
    tokenAs: "env" | "argument" = "env",
  ): Promise<{ status: number | null; stdout: string; stderr: string }> {
    const env = {
      ...(tokenAs === "env" && { DISCOVERY_TOKEN: token }),
      PATH: `/usr/sbin:/usr/bin:/bin`,
      DISCOVERY_JOIN_METHOD: method,
      DISCOVERY_CA_PIN: rt.runtime.tls.publicKeyPin,
      DISCOVERY_DATA_DIR: vm.dataDir,
      DISCOVERY_SSHD_CONFIG: vm.sshdConfig,
      DISCOVERY_HOST_KEY: vm.hostKey,
      DISCOVERY_SSHD_RESTART: vm.restartCommand,
      AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.endpoint,
      AWS_ENDPOINT_URL: moto.endpoint,
    };
    const sh = tokenAs === "env" ? "sh" : `sh -s ${token}`;
    const cmd = `curl -sS --fail -k --pinnedpubkey "$DISCOVERY_CA_PIN" ${rt.url}/webapi/scripts/installer/${script} | ${sh}`;
    return new Promise((resolve) => {
      const child = spawn("bash", ["-c", `set -o pipefail; ${cmd}`], { env, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => (stdout += d));
      child.stderr.on("data", (d) => (stderr += d));
      child.on("exit", (status) => resolve({ status, stdout, stderr }));
    });
  }

  /** ssh root@127.0.0.1 verifying the host certificate for `hostName` with the host CAs the installer wrote. */
  function login(vm: TestVm, certificate: string, key: string, hostName: string) {
    const hostCaKeys = fs
      .readFileSync(path.join(vm.dataDir, "known_hosts"), "utf8")
      .trim()
      .split("\n")
      .map((l) => l.replace(/^@cert-authority \* /, ""));
    return sshLogin({ port: vm.sshPort, key, certificate, hostName, hostCaKeys });
  }

  async function userCertificate(): Promise<{ key: string; certificate: string }> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-user-"));
    cleanups.push(async () => fs.rmSync(dir, { recursive: true, force: true }));
    const key = path.join(dir, "id");
    spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
    const r = await rt.call(
      "POST",
      "/v1/certs/user",
      { public_key: fs.readFileSync(key + ".pub", "utf8"), principals: ["root"], ttl: "10m" },
      { admin: true },
    );
    expect(r.status).toBe(200);
    return { key, certificate: r.body.certificate };
  }

  it("agentless, ec2: joins, rewrites sshd_config like `discovery join` would, and an SSH login with a user certificate works", async () => {
    const instance = instances[0];
    const { vm, imds } = await vmWithImds(instance);
    const original = fs.readFileSync(vm.sshdConfig, "utf8");
    const user = await userCertificate();

    const r = await install("default-agentless-installer", "ec2-token", vm, imds, "ec2");
    expect(r.stderr).toContain(`joined as ${ACCOUNT}-${instance.id}`);
    expect(r.status).toBe(0);
    // The shell edit and the TypeScript edit of sshd_config agree byte for byte.
    expect(fs.readFileSync(vm.sshdConfig, "utf8")).toBe(
      editSshdConfig(original, {
        hostKeyPath: vm.hostKey,
        hostCertificatePath: `${vm.hostKey}-cert.pub`,
        trustedUserCaKeysPath: path.join(vm.dataDir, "user_ca.pub"),
      }),
    );
    expect(imds.requests.every((q) => q.method === "PUT" || q.withToken)).toBe(true);
    const cert = spawnSync("ssh-keygen", ["-L", "-f", `${vm.hostKey}-cert.pub`], { encoding: "utf8" }).stdout;
    expect(cert).toContain("host certificate");
    expect(cert).toContain(instance.ip);

    const nodes = await rt.call("GET", "/v1/nodes", undefined, { admin: true });
    expect(nodes.body.nodes.find((n: { name: string }) => n.name === `${ACCOUNT}-${instance.id}`).labels).toMatchObject(
      {
        "discovery/instance-id": instance.id,
        "discovery/region": "us-east-1",
      },
    );

    await vm.ready();
    const session = login(vm, user.certificate, user.key, `${ACCOUNT}-${instance.id}`);
    expect(session.out).toContain("logged-in");
    expect(session.status).toBe(0);
    // The host certificate names this node only: the client refuses it for another name.
    expect(login(vm, user.certificate, user.key, `${ACCOUNT}-i-0ffffffffffffffff`).out).toContain(
      "not a listed principal",
    );
  });

  it("is idempotent: a second run changes nothing and sends no second join", async () => {
    const instance = instances[1];
    const { vm, imds } = await vmWithImds(instance);
    expect((await install("default-agentless-installer", "ec2-token", vm, imds, "ec2")).status).toBe(0);
    const config = fs.readFileSync(vm.sshdConfig, "utf8");
    const before = (await rt.call("GET", "/v1/audit", undefined, { admin: true })).body.events.length;
    await vm.ready();
    const again = await install("default-agentless-installer", "ec2-token", vm, imds, "ec2");
    expect(again.status).toBe(0);
    expect(again.stderr).toContain(`already joined as ${ACCOUNT}-${instance.id}`);
    expect(fs.readFileSync(vm.sshdConfig, "utf8")).toBe(config);
    expect((await rt.call("GET", "/v1/audit", undefined, { admin: true })).body.events.length).toBe(before);
  });

  it("holds a lock: two runs at once never interleave and the node joins once", async () => {
    const instance = instances[2];
    const { vm, imds } = await vmWithImds(instance);
    const [a, b] = await Promise.all([
      install("default-agentless-installer", "ec2-token", vm, imds, "ec2"),
      install("default-agentless-installer", "ec2-token", vm, imds, "ec2"),
    ]);
    expect([a.status, b.status]).toEqual([0, 0]);
    expect([a.stderr, b.stderr].filter((e) => e.includes("already joined as"))).toHaveLength(1);
    const audit = (await rt.call("GET", "/v1/audit", undefined, { admin: true })).body.events;
    expect(audit.filter((e: { node?: string }) => e.node === `${ACCOUNT}-${instance.id}`)).toEqual([
      expect.objectContaining({ type: "join.accepted" }),
    ]);
  });

  it("agent mode, iam: signs GetCallerIdentity with openssl from instance-profile credentials and leaves sshd alone", async () => {
    const instance = instances[3];
    const { vm, imds } = await vmWithImds(instance, true);
    const original = fs.readFileSync(vm.sshdConfig, "utf8");
    const r = await install("default-installer", "iam-token", vm, imds, "iam");
    expect(r.stderr).toContain(`joined as ${ACCOUNT}-${instance.id}`);
    expect(r.status).toBe(0);
    expect(fs.readFileSync(vm.sshdConfig, "utf8")).toBe(original);
    expect(fs.readFileSync(`${vm.hostKey}-cert.pub`, "utf8")).toMatch(/^ssh-ed25519-cert-v01@openssh.com /);
    expect(fs.readFileSync(path.join(vm.dataDir, "user_ca.pub"), "utf8")).toMatch(/^ssh-ed25519 /);
  });

  it("fails with the runtime's reason, and leaves sshd_config untouched, when the token is wrong", async () => {
    const { vm, imds } = await vmWithImds(instances[4]);
    const original = fs.readFileSync(vm.sshdConfig, "utf8");
    const r = await install("default-agentless-installer", "iam-token", vm, imds, "ec2");
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("discovery-installer: error: the runtime refused the join:");
    expect(r.stderr).toContain("no token of that name allows join method ec2");
    expect(fs.readFileSync(vm.sshdConfig, "utf8")).toBe(original);
  });

  it("keeps sshd_config's mode and owner: a 0600 config is still 0600 after the edit", async () => {
    const { vm, imds } = await vmWithImds(instances[6]);
    fs.chmodSync(vm.sshdConfig, 0o600);
    const original = fs.readFileSync(vm.sshdConfig, "utf8");
    const before = fs.statSync(vm.sshdConfig);
    const r = await install("default-agentless-installer", "ec2-token", vm, imds, "ec2");
    expect(r.stderr).toContain(`updated ${vm.sshdConfig}`);
    expect(r.status).toBe(0);
    const after = fs.statSync(vm.sshdConfig);
    expect((after.mode & 0o7777).toString(8)).toBe("600");
    expect([after.uid, after.gid]).toEqual([before.uid, before.gid]);
    expect(fs.readFileSync(vm.sshdConfig, "utf8")).not.toBe(original);
    expect(fs.readdirSync(vm.dir).filter((f) => f.includes(".discovery."))).toEqual([]);
  });

  it("leaves a config that fails `sshd -t` untouched, saying why and how to check it", async () => {
    const { vm, imds } = await vmWithImds(instances[7]);
    fs.appendFileSync(vm.sshdConfig, "NoSuchOption yes\n");
    fs.chmodSync(vm.sshdConfig, 0o640);
    const original = fs.readFileSync(vm.sshdConfig, "utf8");
    const r = await install("default-agentless-installer", "ec2-token", vm, imds, "ec2");
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(
      `discovery-installer: error: ${vm.sshdConfig} with the discovery block does not pass 'sshd -t', so it is ` +
        `unchanged: fix what sshd reports (check with: sshd -t -f ${vm.sshdConfig}) and rerun:`,
    );
    expect(r.stderr).toContain("NoSuchOption");
    expect(fs.readFileSync(vm.sshdConfig, "utf8")).toBe(original);
    expect((fs.statSync(vm.sshdConfig).mode & 0o7777).toString(8)).toBe("640");
    expect(fs.readdirSync(vm.dir).filter((f) => f.includes(".discovery."))).toEqual([]);
  });

  it("takes a non-secret token name as `sh -s NAME`, but refuses a token-method secret there (ps shows it)", async () => {
    const { vm, imds } = await vmWithImds(instances[5]);
    const byArgument = await install("default-agentless-installer", "ec2-token", vm, imds, "ec2", "argument");
    expect(byArgument.stderr).toContain(`joined as ${ACCOUNT}-${instances[5].id}`);
    expect(byArgument.status).toBe(0);
    const secret = await install("default-installer", "a-token-secret", vm, imds, "token", "argument");
    expect(secret.status).not.toBe(0);
    // Only the installer's own lines: curl may add "(23) Failed writing body" when sh stops reading early.
    expect(secret.stderr.split("\n").filter((l) => l.startsWith("discovery-installer:"))).toEqual([
      "discovery-installer: error: the token method's token is a secret: pass it in DISCOVERY_TOKEN " +
        "(curl ... | DISCOVERY_TOKEN=<token> sh), not as an argument, and rotate it: it was visible in ps",
    ]);
  });

  it("fails clearly when there is no metadata service", async () => {
    const vm = await startVm();
    cleanups.push(() => vm.stop());
    const r = await install(
      "default-agentless-installer",
      "ec2-token",
      vm,
      { endpoint: "http://127.0.0.1:9", requests: [], issuedTokens: [], stop: async () => {} },
      "ec2",
    );
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("cannot get an IMDSv2 token from http://127.0.0.1:9");
  });
});

describe("discovery join (the Node client) on a simulated VM", () => {
  let world: AwsWorld;
  let moto: Moto;
  let rt: TestRuntime;
  let signer: TestSigner;
  let instances: string[];
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    world = await startAwsWorld(2);
    ({ moto, rt, signer } = world);
    instances = world.instances.map((i) => i.id);
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
    await world?.stop();
  });

  it.each([
    ["ec2", 0],
    ["iam", 1],
  ])("joins with --method %s, edits sshd_config and restarts sshd", async (method, index) => {
    const id = instances[index as number];
    const vm = await startVm();
    const doc = identityDocument({ instanceId: id });
    const role = { name: "node", credentials: await instanceCredentials(moto.endpoint, ACCOUNT, id) };
    const imds = await startImds({ document: doc, rsa2048: await signIdentityDocument(doc, signer), role });
    cleanups.push(
      () => imds.stop(),
      () => vm.stop(),
    );
    const { discoveryAsync } = await import("../fixtures/cli");
    const r = await discoveryAsync(
      [
        "join",
        "--method",
        String(method),
        "--token",
        `${method}-token`,
        "--server",
        rt.url,
        "--ca-cert",
        rt.runtime.tls.certFile,
        "--openssh-config",
        vm.sshdConfig,
        "--host-key",
        vm.hostKey,
        "--data-dir",
        vm.dataDir,
        "--restart-sshd",
        "--sts-endpoint",
        moto.endpoint,
      ],
      { env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.endpoint, DISCOVERY_SSHD_RESTART: vm.restartCommand } },
    );
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain(`joined as ${ACCOUNT}-${id}`);
    expect(fs.readFileSync(vm.sshdConfig, "utf8")).toContain(
      `# managed by pulumi-discovery\nHostKey ${vm.hostKey}\nHostCertificate ${vm.hostKey}-cert.pub\n`,
    );
    await vm.ready();
    expect(spawnSync("/usr/sbin/sshd", ["-t", "-f", vm.sshdConfig]).status).toBe(0);
  });
});
