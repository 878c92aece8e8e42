import { execFile, spawnSync } from "child_process";
import { createHash, webcrypto } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import * as pkijs from "pkijs";
import { parse } from "yaml";
import { request } from "../../provider/http/client";
import type { AzureVmView } from "../../provider/sandbox/azure-world";
import { isolatedEnv } from "../../provider/sandbox/sandbox";
import { discoveryAsync } from "../fixtures/cli";
import { ensureBuilt, parseEnvFile, launchJson, portOpen } from "../fixtures/sandbox";

/**
 * The sandbox's Azure world as a user and Microsoft's own clients see it: VMs launched with the CLI, listed and
 * run commands sent through @azure/arm-compute with DefaultAzureCredential (through `azureClients()`) and nothing
 * but env.sh, each VM's IMDS serving attested documents that verify under DIR/azure-ca.pem and managed identity
 * tokens that verify against the fake Entra ID's key set.
 */
const REPO = path.resolve(__dirname, "../..");
const SUB = "5f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f";
const RG = "rg-sandbox";
const HOST_SSHD_CONFIG = "/etc/ssh/sshd_config";

type LaunchedVm = Pick<AzureVmView, "cloud" | "id" | "subscription" | "resource_group" | "region" | "name" | "created_at" | "ssh_port">; // prettier-ignore

const engine = new pkijs.CryptoEngine({ name: "node", crypto: webcrypto as never });
const sha = (file: string) =>
  fs.existsSync(file) ? createHash("sha256").update(fs.readFileSync(file)).digest("hex") : "(none)";

describe("discovery sandbox: the Azure world", () => {
  let dir: string;
  let env: Record<string, string>;
  let running: LaunchedVm[];
  let deallocated: LaunchedVm;
  let noAgent: LaunchedVm;
  let agentless: LaunchedVm;
  let stopped = false;
  const hostSshdBefore = sha(HOST_SSHD_CONFIG);

  const launch = (...flags: string[]) => launchJson<LaunchedVm>(dir, "azure", flags);

  /**
   * Runs `body` in a child Node with env.sh's environment (NODE_EXTRA_CA_CERTS is read at start, so not in this
   * process): `clients` is `azureClients()` of the built provider, `sub` the subscription; it returns JSON.
   */
  async function withAzure(body: string, extra: Record<string, string> = {}): Promise<any> {
    const script = `
      const { azureClients, azureCredential } = require(${JSON.stringify(path.join(REPO, "dist/provider/clouds/azure/clients.js"))});
      const clients = azureClients(); const compute = clients.compute(${JSON.stringify(SUB)});
      const fail = (e) => ({ failed: true, code: e.code, statusCode: e.statusCode, message: e.message });
      (async () => { ${body} })().then((out) => console.log(JSON.stringify(out ?? null)), (e) => { console.error(e); process.exit(1); });`;
    const { stdout } = await promisify(execFile)(process.execPath, ["-e", script], {
      cwd: REPO,
      env: { ...isolatedEnv(), ...env, ...extra },
      encoding: "utf8",
      timeout: 60_000,
    });
    return JSON.parse(stdout);
  }

  async function control(method: string, route: string, body?: unknown) {
    const state = JSON.parse(fs.readFileSync(path.join(dir, "sandbox.json"), "utf8"));
    const res = await fetch(state.control.url + route, {
      method,
      headers: { authorization: `Bearer ${state.control.token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as any };
  }

  const runCommand = (vm: LaunchedVm, name: string, script: string, timeoutInSeconds = 60) =>
    withAzure(`
      const params = { location: ${JSON.stringify(vm.region)}, source: { script: ${JSON.stringify(script)} }, asyncExecution: false, timeoutInSeconds: ${timeoutInSeconds} };
      const put = await compute.virtualMachineRunCommands.createOrUpdate(${JSON.stringify(vm.resource_group)}, ${JSON.stringify(vm.name)}, ${JSON.stringify(name)}, params).then((r) => ({ state: r.provisioningState }), fail);
      if (put.failed && put.statusCode) return { put };
      const got = await compute.virtualMachineRunCommands.getByVirtualMachine(${JSON.stringify(vm.resource_group)}, ${JSON.stringify(vm.name)}, ${JSON.stringify(name)}, { expand: "instanceView" });
      return { put, view: got.instanceView, state: got.provisioningState };`);

  beforeAll(async () => {
    ensureBuilt();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-sandbox-azure-"));
    const started = await discoveryAsync(["sandbox", "start", "--dir", dir]);
    expect(started.stderr).toBe("");
    expect(started.status).toBe(0);
    env = parseEnvFile(path.join(dir, "env.sh"));
    const common = ["--subscription", SUB, "--resource-group", RG, "--region", "eastus"];
    running = await launch(...common, "--tags", "env=dev,team=core", "--count", "3");
    [deallocated] = await launch(...common, "--tags", "env=dev", "--state", "deallocated");
    [noAgent] = await launch(...common, "--tags", "env=dev", "--no-agent");
    [agentless] = await launch(
      ...common.slice(0, 2),
      "--resource-group",
      "rg-other",
      "--region",
      "westeurope",
      "--agentless",
    );
  });
  afterAll(async () => {
    if (dir && !stopped) await discoveryAsync(["sandbox", "stop", "--dir", dir]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("launch --json prints SPEC's fields; env.sh points Azure clients at the fake; flags are checked", async () => {
    for (const vm of [...running, deallocated, noAgent]) {
      expect(vm).toMatchObject({ cloud: "azure", subscription: SUB, resource_group: RG, region: "eastus" });
      expect(vm.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(vm.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}\+00:00$/);
      expect(vm.ssh_port).toBeUndefined();
    }
    expect(agentless).toMatchObject({ resource_group: "rg-other", region: "westeurope", ssh_port: expect.any(Number) });
    expect(env.AZURE_RESOURCE_MANAGER_ENDPOINT).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(env.AZURE_AUTHORITY_HOST).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    for (const k of ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"]) expect(env[k]).toBeTruthy();
    // NODE_EXTRA_CA_CERTS is a bundle now, and still does as the runtime's CA file.
    expect(fs.readFileSync(env.NODE_EXTRA_CA_CERTS, "utf8").match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    const ready = await request({ server: env.DISCOVERY_SERVER, caFile: env.NODE_EXTRA_CA_CERTS }, "GET", "/readyz");
    expect(ready.status).toBe(200);
    const runtime = parse(fs.readFileSync(path.join(dir, "runtime.yaml"), "utf8"));
    expect(runtime.join.azure).toEqual({
      extra_ca_certs: [path.join(dir, "azure-ca.pem")],
      jwks_url: `${env.AZURE_AUTHORITY_HOST}/common/discovery/keys`,
    });
    const bad = await discoveryAsync(
      ["sandbox", "launch", "--dir", dir, "--cloud", "azure", "--subscription", SUB, "--resource-group", "bad/rg"].concat(["--region", "eastus"]), // prettier-ignore
    );
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain("--resource-group");
    const state = await discoveryAsync(
      ["sandbox", "launch", "--dir", dir, "--cloud", "azure", "--subscription", SUB, "--resource-group", RG].concat(["--region", "eastus", "--state", "stopped"]), // prettier-ignore
    );
    expect(state.stderr).toContain("--state");
  });

  it("DefaultAzureCredential gets a token from the fake Entra ID; ComputeManagementClient lists the VMs with power states", async () => {
    const out = await withAzure(`
      const token = await azureCredential().getToken(process.env.AZURE_RESOURCE_MANAGER_ENDPOINT + "/.default");
      const all = [];
      for await (const vm of compute.virtualMachines.listAll({ statusOnly: "true" }))
        all.push({ name: vm.name, vmId: vm.vmId, power: vm.instanceView.statuses.map((s) => s.code).find((c) => c.startsWith("PowerState/")), agent: vm.instanceView.vmAgent?.statuses?.[0]?.displayStatus, tags: vm.tags });
      const inGroup = [];
      for await (const vm of compute.virtualMachines.list(${JSON.stringify(RG)})) inGroup.push(vm.name);
      const one = await compute.virtualMachines.get(${JSON.stringify(RG)}, ${JSON.stringify(running[0].name)}, { expand: "instanceView" });
      const missing = await compute.virtualMachines.get(${JSON.stringify(RG)}, "nope").catch(fail);
      return { token: token.token.split(".").length, all, inGroup, one: { vmId: one.vmId, os: one.storageProfile.osDisk.osType }, missing };`);
    expect(out.token).toBe(3);
    // Six VMs: more than one page of five, so the client followed nextLink.
    expect(out.all).toHaveLength(6);
    const byName = Object.fromEntries(out.all.map((v: any) => [v.name, v]));
    for (const vm of running) expect(byName[vm.name]).toMatchObject({ vmId: vm.id, power: "PowerState/running", agent: "Ready" }); // prettier-ignore
    expect(byName[running[0].name].tags).toEqual({ env: "dev", team: "core" });
    expect(byName[deallocated.name].power).toBe("PowerState/deallocated");
    expect(byName[noAgent.name]).toMatchObject({ power: "PowerState/running", agent: "Not Ready" });
    expect(out.inGroup.sort()).toEqual([...running, deallocated, noAgent].map((v) => v.name).sort());
    expect(out.one).toEqual({ vmId: running[0].id, os: "Linux" });
    expect(out.missing).toMatchObject({ failed: true, statusCode: 404, code: "ResourceNotFound" });
  });

  it("a run command really runs its script on the VM, synchronously, with its exit code and output", async () => {
    const ok = await runCommand(running[0], "probe", "echo imds=$AZURE_IMDS_ENDPOINT; mkdir -p /var/lib/discovery && echo p > /var/lib/discovery/probe; echo warn >&2"); // prettier-ignore
    expect(ok.state).toBe("Succeeded");
    expect(ok.view).toMatchObject({ executionState: "Succeeded", exitCode: 0, error: "warn\n" });
    expect(ok.view.output).toMatch(/^imds=http:\/\/127\.0\.0\.1:\d+\n$/);
    expect(fs.readFileSync(path.join(dir, "instances", running[0].id, "var-lib-discovery", "probe"), "utf8")).toBe("p\n"); // prettier-ignore
    const failed = await runCommand(running[1], "fails", "echo before; exit 7");
    expect(failed.put).toMatchObject({ failed: true }); // the long-running operation ends Failed
    expect(failed.state).toBe("Failed");
    expect(failed.view).toMatchObject({ executionState: "Failed", exitCode: 7, output: "before\n" });
    const slow = await runCommand(running[1], "slow", "sleep 30", 1);
    expect(slow.view.executionState).toBe("TimedOut");
  });

  it("an agentless VM's run command edits its own sshd_config, never the host's; its real sshd then logs in", async () => {
    const key = path.join(dir, "user-key");
    spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", key]);
    const ak = path.join(dir, "instances", agentless.id, "authorized");
    fs.copyFileSync(`${key}.pub`, ak);
    const script = [
      `printf 'Match all\\n    AuthorizedKeysFile ${ak}\\n' >> /etc/ssh/sshd_config`,
      'sh -c "$DISCOVERY_SSHD_RESTART"',
      "grep -c AuthorizedKeysFile /etc/ssh/sshd_config",
    ].join("\n");
    const out = await runCommand(agentless, "sshd", script);
    expect(out.view).toMatchObject({ executionState: "Succeeded", exitCode: 0 });
    expect(sha(HOST_SSHD_CONFIG)).toBe(hostSshdBefore);
    expect(fs.readFileSync(path.join(dir, "instances", agentless.id, "sshd_config"), "utf8")).toContain(ak);
    await new Promise((r) => setTimeout(r, 500));
    const r = spawnSync(
      "ssh",
      [
        ...["-i", key, "-p", String(agentless.ssh_port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"],
        ...["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10"],
        `${os.userInfo().username}@127.0.0.1`,
        "echo $AZURE_IMDS_ENDPOINT; grep -c 'Match all' /etc/ssh/sshd_config",
      ],
      { encoding: "utf8", timeout: 30_000 },
    );
    expect(r.stderr).not.toMatch(/Permission denied/);
    expect(r.stdout).toMatch(/^http:\/\/127\.0\.0\.1:\d+\n1\n$/);
    expect(sha(HOST_SSHD_CONFIG)).toBe(hostSshdBefore);
  });

  it("refuses run commands on a VM without an agent, a deallocated VM and an unknown one, as Azure does", async () => {
    const none = await runCommand(noAgent, "x", "true");
    expect(none.put).toMatchObject({ statusCode: 409, code: "VMAgentStatusCommunicationError" });
    expect(none.put.message).toContain(`VM '${noAgent.name}' has not reported status for VM agent or extensions.`);
    const off = await runCommand(deallocated, "x", "true");
    expect(off.put).toMatchObject({ statusCode: 409, code: "OperationNotAllowed" });
    expect(off.put.message).toBe(`Operation 'runCommand' is not allowed on VM '${deallocated.name}' since the VM is deallocated.`); // prettier-ignore
    const gone = await runCommand({ ...running[0], name: "no-such-vm" }, "x", "true");
    expect(gone.put).toMatchObject({ statusCode: 404, code: "ResourceNotFound" });
  });

  it("refuses, as RBAC would, actions outside the set the control API names, and logs every call's action", async () => {
    expect((await control("PUT", "/v1/azure/actions", { actions: ["Microsoft.Compute/virtualMachines/read"] })).status).toBe(200); // prettier-ignore
    try {
      const out = await runCommand(running[2], "denied", "true");
      expect(out.put).toMatchObject({ statusCode: 403, code: "AuthorizationFailed" });
      expect(out.put.message).toContain("'Microsoft.Compute/virtualMachines/runCommands/write'");
      expect(out.put.message).toContain(`over scope '/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Compute/virtualMachines/${running[2].name}/runCommands/denied'`); // prettier-ignore
    } finally {
      expect((await control("PUT", "/v1/azure/actions", { actions: null })).status).toBe(200);
    }
    const { body } = await control("GET", "/v1/azure/calls");
    const actions = new Set(body.calls.map((c: { action: string }) => c.action));
    expect(actions).toEqual(
      new Set([
        "Microsoft.Compute/virtualMachines/read",
        "Microsoft.Compute/virtualMachines/runCommands/write",
        "Microsoft.Compute/virtualMachines/runCommands/read",
      ]),
    );
    expect(body.calls.filter((c: { status: number }) => c.status === 403)).toHaveLength(1);
    expect(body.calls.every((c: { status: number }) => c.status !== 401)).toBe(true);
  });

  it("the VM's IMDS serves an attested document that verifies (pkijs) under azure-ca.pem and holds the nonce", async () => {
    const imds = (await runCommand(running[0], "imds", "printf %s $AZURE_IMDS_ENDPOINT")).view.output as string;
    const nonce = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3Jh"; // 32 characters, as the runtime's challenges
    const url = `${imds}/metadata/attested/document?api-version=2020-09-01&nonce=${nonce}`;
    expect((await fetch(url)).status).toBe(400); // no Metadata: true
    expect((await fetch(`${url}x`, { headers: { Metadata: "true" } })).status).toBe(400); // nonce too long
    const doc = (await (await fetch(url, { headers: { Metadata: "true" } })).json()) as any;
    expect(doc.encoding).toBe("pkcs7");
    const info = pkijs.ContentInfo.fromBER(Buffer.from(doc.signature, "base64"));
    const signed = new pkijs.SignedData({ schema: info.content });
    const caPem = fs.readFileSync(path.join(dir, "azure-ca.pem"), "utf8");
    const ca = pkijs.Certificate.fromBER(Buffer.from(caPem.replace(/-----[A-Z ]+-----|\s/g, ""), "base64"));
    const verified = await signed.verify({ signer: 0, trustedCerts: [ca], checkChain: true, extendedMode: true }, engine); // prettier-ignore
    expect(verified.signatureVerified).toBe(true);
    const cn = verified.signerCertificate!.subject.typesAndValues.find((t) => t.type === "2.5.4.3")!.value.valueBlock.value; // prettier-ignore
    expect(cn).toBe("metadata.azure.com");
    const content = JSON.parse(Buffer.from(signed.encapContentInfo.eContent!.getValue()).toString("utf8"));
    expect(content).toMatchObject({ nonce, vmId: running[0].id, subscriptionId: SUB, sku: "22_04-lts-gen2" });
    expect(content.timeStamp.createdOn).toMatch(/^\d\d\/\d\d\/\d\d \d\d:\d\d:\d\d -0000$/);
    const instance = (await (await fetch(`${imds}/metadata/instance?api-version=2021-02-01`, { headers: { Metadata: "true" } })).json()) as any; // prettier-ignore
    expect(instance.compute).toMatchObject({ vmId: running[0].id, subscriptionId: SUB, resourceGroupName: RG, name: running[0].name, location: "eastus" }); // prettier-ignore
  });

  it("the VM's managed identity token verifies against the fake Entra ID's JWKS and has the contract's claims", async () => {
    const imds = (await runCommand(running[1], "imds", "printf %s $AZURE_IMDS_ENDPOINT")).view.output as string;
    const resource = "https://management.azure.com/";
    const res = await fetch(`${imds}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${resource}`, {
      headers: { Metadata: "true" },
    });
    const token = (await res.json()) as any;
    expect(token).toMatchObject({ token_type: "Bearer", resource });
    const runtime = parse(fs.readFileSync(path.join(dir, "runtime.yaml"), "utf8"));
    // jose is ESM-only: verified in a child Node that trusts the fake Entra ID's certificate through env.sh.
    const script = `
      import { createRemoteJWKSet, jwtVerify } from "jose";
      const [token, jwksUrl, iss] = process.argv.slice(1);
      const { payload, protectedHeader } = await jwtVerify(token, createRemoteJWKSet(new URL(jwksUrl)), {
        issuer: iss, audience: "https://management.azure.com/", algorithms: ["RS256"] });
      console.log(JSON.stringify({ payload, kid: protectedHeader.kid }));`;
    const tenant = env.AZURE_TENANT_ID;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--input-type=module", "-e", script, token.access_token, runtime.join.azure.jwks_url, `https://sts.windows.net/${tenant}/`], // prettier-ignore
      { cwd: REPO, encoding: "utf8", env: { ...isolatedEnv(), NODE_EXTRA_CA_CERTS: env.NODE_EXTRA_CA_CERTS } },
    );
    const out = JSON.parse(stdout);
    const mirid = `/subscriptions/${SUB}/resourcegroups/${RG}/providers/Microsoft.Compute/virtualMachines/${running[1].name}`;
    expect(out.payload).toMatchObject({ tid: tenant, xms_mirid: mirid, xms_az_rid: mirid });
    for (const claim of ["oid", "sub", "appid", "iat", "nbf", "exp"]) expect(out.payload[claim]).toBeDefined();
    expect(out.payload.exp - out.payload.iat).toBe(3600);
    expect(out.kid).toBeTruthy();
  });

  it("the control API deallocates, starts and deletes VMs", async () => {
    const vm = running[2];
    expect((await control("PATCH", `/v1/azure/vms/${vm.id}`, { state: "deallocated" })).body.state).toBe("deallocated"); // prettier-ignore
    const off = await runCommand(vm, "x", "true");
    expect(off.put).toMatchObject({ statusCode: 409, code: "OperationNotAllowed" });
    expect((await control("PATCH", `/v1/azure/vms/${vm.id}`, { state: "running" })).body.state).toBe("running");
    expect((await runCommand(vm, "x", "true")).view.exitCode).toBe(0);
    expect((await control("DELETE", `/v1/azure/vms/${vm.id}`)).status).toBe(200);
    const gone = await withAzure(`return compute.virtualMachines.get(${JSON.stringify(RG)}, ${JSON.stringify(vm.name)}).catch(fail);`); // prettier-ignore
    expect(gone).toMatchObject({ statusCode: 404, code: "ResourceNotFound" });
  });

  it("sandbox stop ends the fake ARM, Entra ID and every VM's sshd; the host's sshd_config is untouched", async () => {
    const ports = [agentless.ssh_port!, ...["AZURE_RESOURCE_MANAGER_ENDPOINT", "AZURE_AUTHORITY_HOST"].map((k) => Number(new URL(env[k]).port))]; // prettier-ignore
    const r = await discoveryAsync(["sandbox", "stop", "--dir", dir]);
    expect(r.status).toBe(0);
    stopped = true;
    for (const port of ports) expect(await portOpen(port)).toBe(false);
    expect(sha(HOST_SSHD_CONFIG)).toBe(hostSshdBefore);
  });
});
