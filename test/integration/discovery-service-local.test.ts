/**
 * DiscoveryService target local: through the real engine, a program runs the runtime on this machine and
 * declares a token in it through the service's outputs; and the LocalRuntime provider on its own (self-signed
 * certificate, restarts, drift, stop).
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as https from "https";
import * as os from "os";
import * as path from "path";
import * as zlib from "zlib";
import { Stack } from "@pulumi/pulumi/automation";
import { isAlive, pinnedGet } from "../../provider/deploy/local-process";
import { localRuntimeProvider, LocalRuntimeOutputs } from "../../provider/pulumi/local-runtime";
import { describeCertificate } from "../../provider/runtime/tls";
import { copyProgram, IN_REPO_WORK, linkPackage, localStack } from "../fixtures/pulumi";

const PROGRAM = path.resolve(__dirname, "../fixtures/pulumi-service-program");

/** Every file under `dir`. */
function walk(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

/** The pin of the key the server at `address` presents, read from the TLS handshake itself. */
function servedPin(address: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.get(address + "/healthz", { rejectUnauthorized: false }, (res) => {
      const cert = (res.socket as import("tls").TLSSocket).getPeerCertificate();
      const spki = new crypto.X509Certificate(cert.raw).publicKey.export({ type: "spki", format: "der" });
      res.resume();
      resolve(`sha256//${crypto.createHash("sha256").update(spki).digest("base64")}`);
    });
    req.on("error", reject);
  });
}

const cmdline = (pid: number) => fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");

async function waitGone(pid: number): Promise<void> {
  for (let i = 0; i < 100 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  expect(isAlive(pid)).toBe(false);
}

describe("DiscoveryService target local, through the real engine", () => {
  let dir: string;
  let stack: Stack;
  let stateDir: string;
  let cert: string;
  let pid: number;
  let address: string;
  let adminToken: string;

  beforeAll(async () => {
    dir = copyProgram(PROGRAM, IN_REPO_WORK);
    linkPackage(dir);
    stateDir = path.join(dir, "runtime-state");
    // No NODE_EXTRA_CA_CERTS: the token trusts the runtime's self-signed certificate through caCert.
    stack = await localStack(dir, "service");
    await stack.setConfig("stateDir", { value: stateDir });
  });
  afterAll(async () => {
    // Whatever a failed test left running is stopped by a destroy; the state dir goes with the program copy.
    await stack?.destroy().catch(() => undefined);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("starts the runtime, and a token declared with its outputs lands in it", async () => {
    const up = await stack.up();
    expect(up.summary.result).toBe("succeeded");
    expect(up.summary.resourceChanges).toEqual({ create: 4 }); // stack, component, LocalRuntime, ProvisionToken
    expect((up.outputs.urns.value as string[]).map((u) => u.split("::")[2])).toEqual([
      "discovery:index:DiscoveryService",
      "pulumi-nodejs:dynamic/discovery:ProvisionToken",
    ]);
    address = up.outputs.address.value;
    pid = up.outputs.pid.value;
    adminToken = up.outputs.adminToken.value;
    expect(up.outputs.adminToken.secret).toBe(true);
    expect(address).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(isAlive(pid)).toBe(true);
    expect(cmdline(pid)).toContain(path.join(stateDir, "runtime.yaml"));

    // The pin is the key of the certificate the runtime made, and the one it presents.
    cert = up.outputs.tlsCert.value;
    const pin = describeCertificate(cert).publicKeyPin;
    expect(up.outputs.tlsPin.value).toBe(pin);
    expect(await servedPin(address)).toBe(pin);

    // The runtime answers on the address, TLS checked by the pin, and holds the token.
    const ping = await pinnedGet(address, "/webapi/ping", cert, pin);
    expect(ping.body).toEqual(expect.objectContaining({ cluster_name: "discovery.test", public_addr: address }));
    const token = await pinnedGet(address, "/v1/resources/token/ec2-token", cert, pin, adminToken);
    expect(token.status).toBe(200);
    expect((token.body as any).spec.allow).toEqual([{ aws_account: "123456789012", aws_regions: ["us-east-1"] }]);
    expect((await pinnedGet(address, "/v1/resources/token/ec2-token", cert, pin, "wrong-token")).status).toBe(401);
    const cas = (await pinnedGet(address, "/v1/cas", cert, pin, adminToken)).body as any;
    expect(up.outputs.caPins.value).toEqual({ host: cas.host.public_keys, user: cas.user.public_keys });
    expect(up.outputs.caPins.value.host[0]).toMatch(/^ssh-ed25519 /);
    expect(fs.readFileSync(path.join(stateDir, "data", "admin.token"), "utf8").trim()).toBe(adminToken);
  });

  it("keeps the admin token out of the state in clear", () => {
    for (const file of walk(path.join(dir, ".backend"))) {
      const raw = fs.readFileSync(file);
      expect((file.endsWith(".gz") ? zlib.gunzipSync(raw) : raw).toString("utf8")).not.toContain(adminToken);
    }
  });

  it("changes nothing on a second up", async () => {
    const up = await stack.up();
    expect(up.summary.resourceChanges).toEqual({ same: 4 });
    expect(up.outputs.pid.value).toBe(pid);
  });

  it("starts a runtime stopped outside Pulumi again, on the same address with the same store", async () => {
    process.kill(pid, "SIGTERM");
    await waitGone(pid);
    // The preview shows the runtime replaced because its process is gone. (The token shows as a replacement
    // too: its server input is unknown until the new runtime has its address.)
    const steps: { type: string; op: string; keys?: string[] }[] = [];
    await stack.preview({
      onEvent: (e) => {
        const m = e.resourcePreEvent?.metadata;
        if (m) steps.push({ type: m.type, op: m.op, keys: m.keys });
      },
    });
    expect(steps).toContainEqual({
      type: "pulumi-nodejs:dynamic/discovery:LocalRuntime",
      op: "replace",
      keys: ["pid"],
    });
    const up = await stack.up();
    expect(up.summary.resourceChanges).toEqual({ same: 3, replace: 1 }); // the token's inputs did not change
    expect(up.outputs.address.value).toBe(address);
    expect(up.outputs.adminToken.value).toBe(adminToken);
    expect(up.outputs.pid.value).not.toBe(pid);
    pid = up.outputs.pid.value;
    const token = await pinnedGet(address, "/v1/resources/token/ec2-token", cert, up.outputs.tlsPin.value, adminToken);
    expect(token.status).toBe(200);
  });

  it("stops the runtime on destroy", async () => {
    const destroy = await stack.destroy();
    expect(destroy.summary.result).toBe("succeeded");
    expect(destroy.summary.resourceChanges).toEqual({ delete: 4 });
    await waitGone(pid);
    await expect(pinnedGet(address, "/healthz", cert, describeCertificate(cert).publicKeyPin)).rejects.toThrow(
      /connection refused, nothing listens on port/,
    );
  });
});

describe("LocalRuntime provider", () => {
  let stateDir: string;
  let state: LocalRuntimeOutputs | undefined;
  const inputs = (over: Record<string, unknown> = {}) => ({
    stateDir,
    config: { version: "v1", cluster_name: "discovery.local" },
    host: "127.0.0.1",
    requestedPort: 0,
    ...over,
  });
  const create = async (over: Record<string, unknown> = {}) =>
    (state = (await localRuntimeProvider.create!(inputs(over))).outs as LocalRuntimeOutputs);

  beforeEach(() => {
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-local-"));
  });
  afterEach(async () => {
    if (state) await localRuntimeProvider.delete!("id", state);
    state = undefined;
    fs.rmSync(stateDir, { recursive: true, force: true });
  });

  it("runs with the runtime's self-signed certificate, and outputs its pin", async () => {
    const s = await create();
    const certFile = path.join(stateDir, "data", "tls.crt");
    expect(s.tlsCert).toBe(fs.readFileSync(certFile, "utf8"));
    expect(s.tlsPin).toBe(describeCertificate(s.tlsCert).publicKeyPin);
    expect(await servedPin(s.address)).toBe(s.tlsPin);
    expect(s.publicAddr).toBe(s.address);
    expect(fs.statSync(path.join(stateDir, "runtime.yaml")).mode & 0o777).toBe(0o600);
    expect(Number(fs.readFileSync(path.join(stateDir, "runtime.pid"), "utf8"))).toBe(s.pid);
    expect(await localRuntimeProvider.diff!("id", s, inputs())).toEqual({
      changes: false,
      replaces: [],
      deleteBeforeReplace: false,
    });
    expect(
      await localRuntimeProvider.diff!("id", s, inputs({ config: { version: "v1", cluster_name: "other.local" } })),
    ).toEqual({ changes: true, replaces: ["config"], deleteBeforeReplace: false });
    expect(await localRuntimeProvider.diff!("id", s, inputs({ stateDir: stateDir + "-2" }))).toEqual({
      changes: true,
      replaces: ["stateDir"],
      deleteBeforeReplace: true,
    });
  });

  it("replaces a running runtime: the new one takes over the state dir and port, deleting the old leaves it", async () => {
    const old = await create();
    const changed = { config: { version: "v1", cluster_name: "other.local" } };
    const replacement = (await localRuntimeProvider.create!(inputs(changed))).outs as LocalRuntimeOutputs;
    try {
      await waitGone(old.pid);
      expect(replacement.port).toBe(old.port);
      await localRuntimeProvider.delete!("id", old); // what the engine does after creating the replacement
      expect(isAlive(replacement.pid)).toBe(true);
      const ping = await pinnedGet(replacement.address, "/webapi/ping", replacement.tlsCert, replacement.tlsPin);
      expect((ping.body as { cluster_name: string }).cluster_name).toBe("other.local");
    } finally {
      state = replacement;
    }
  });

  it("reports a stopped process as gone on refresh, and restarts on the port it had with the same CAs", async () => {
    const first = await create();
    expect((await localRuntimeProvider.read!("id", first)).id).toBe("id");
    process.kill(first.pid, "SIGKILL");
    await waitGone(first.pid);
    expect(await localRuntimeProvider.read!("id", first)).toEqual({ id: "", props: {} });
    expect((await localRuntimeProvider.diff!("id", first, inputs())).replaces).toEqual(["pid"]);
    const second = await create();
    expect(second.port).toBe(first.port);
    expect(second.caPins).toEqual(first.caPins);
    expect(second.adminToken).toBe(first.adminToken);
    expect(second.tlsPin).toBe(first.tlsPin);
  });

  it("refuses a config the runtime refuses, naming the field, before starting anything", async () => {
    const check = await localRuntimeProvider.check!(
      inputs(),
      inputs({ config: { version: "v1", cluster_name: "discovery.local", storage: { type: "mysql" } } }),
    );
    expect(check.failures).toEqual([{ property: "config", reason: expect.stringMatching(/config\.storage\.type/) }]);
    const relative = await localRuntimeProvider.check!(inputs(), inputs({ stateDir: "relative/dir" }));
    expect(relative.failures).toEqual([{ property: "stateDir", reason: "must be an absolute directory path" }]);
  });

  it("fails with the runtime's log when it cannot start", async () => {
    const taken = await create();
    const other = fs.mkdtempSync(path.join(os.tmpdir(), "pd-local-"));
    try {
      await expect(
        localRuntimeProvider.create!({ ...inputs(), stateDir: other, requestedPort: taken.port }),
      ).rejects.toThrow(/discovery serve exited \(code 1\) before it was ready:[\s\S]*EADDRINUSE/);
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });
});
