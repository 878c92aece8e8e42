import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { AddressInfo } from "net";
import { Server, utils } from "ssh2";
import { gcpMatcher } from "../../provider/model";
import type { Candidate } from "../../provider/enroll/types";
import type { GceMetadata, GcpClients } from "../../provider/clouds/gcp/clients";
import { installViaGceSsh, sshPortFor } from "../../provider/clouds/gcp/install-ssh";
import { writeFakeCurl } from "../fixtures/fake-curl";
import { newEd25519KeyPair } from "../../provider/ssh/keys";

const NOW = new Date("2026-11-30T12:00:00.000Z");
const PROJECT = "proj-a";
const ZONE = "us-central1-a";

/** One simulated VM: its control-plane state and a real ssh2 server that runs commands with sh in a temp dir. */
interface Vm {
  id: string;
  name: string;
  metadata: GceMetadata;
  /** Published host keys (base64 blobs); null: guest attributes disabled. */
  guestKeys: string[] | null;
  dir: string;
  port: number;
  server: Server;
  /** Every ssh-keys value set through setMetadata. */
  history: string[];
  setMetadataError?: { code: number; message: string };
  /** Someone else changes the metadata just before our next setMetadata lands. */
  raceOnce?: boolean;
  logins: number;
}

const pub = (k: { publicKey: string }) => k.publicKey.split(/\s+/)[1];
const sshKeys = (md: GceMetadata) => (md.items ?? []).find((i) => i.key === "ssh-keys")?.value ?? "";

async function startVm(id: string, o: { installer: string; wrongHostKey?: boolean; metadata?: GceMetadata["items"] }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `gcp-vm-${id}-`));
  writeFakeCurl(dir);
  fs.writeFileSync(path.join(dir, "installer.sh"), o.installer);
  const hostKey = newEd25519KeyPair();
  const published = o.wrongHostKey ? newEd25519KeyPair() : hostKey;
  const vm = {
    id,
    name: `vm-${id}`,
    metadata: { items: [...(o.metadata ?? [])], fingerprint: "f0" },
    guestKeys: [pub(published)],
    dir,
    history: [],
    logins: 0,
  } as unknown as Vm;
  vm.server = new Server({ hostKeys: [hostKey.privateKey] }, (client) => {
    client.on("authentication", (ctx) => {
      if (ctx.method !== "publickey") return ctx.reject(["publickey"]);
      // Only a key the metadata holds right now, for this user, as the guest agent would have installed it.
      const ok = sshKeys(vm.metadata)
        .split("\n")
        .some((l) => {
          const m = /^([^:]+):(\S+) (\S+) google-ssh /.exec(l);
          return m?.[1] === ctx.username && Buffer.from(m[3], "base64").equals(ctx.key.data);
        });
      if (!ok) return ctx.reject();
      if (ctx.signature) {
        const key = utils.parseKey(`${ctx.key.algo} ${ctx.key.data.toString("base64")}`);
        if (key instanceof Error || key.verify(ctx.blob as Buffer, ctx.signature, ctx.hashAlgo) !== true)
          return ctx.reject();
        vm.logins++;
      }
      ctx.accept();
    });
    client.on("session", (accept) =>
      accept().on("exec", (acceptExec, _reject, info) => {
        const stream = acceptExec();
        const child = spawn("sh", ["-c", info.command], {
          cwd: dir,
          env: { ...process.env, PATH: `${path.join(dir, "bin")}:${process.env.PATH}`, RECORD: dir },
        });
        stream.pipe(child.stdin);
        child.stdout.pipe(stream, { end: false });
        child.stderr.pipe(stream.stderr);
        child.on("close", (code) => {
          stream.exit(code ?? 1);
          stream.end();
        });
      }),
    );
    client.on("error", () => undefined);
  });
  await new Promise<void>((r) => vm.server.listen(0, "127.0.0.1", () => r()));
  vm.port = (vm.server.address() as AddressInfo).port;
  return vm;
}

/** A fake Compute control plane over the VMs: metadata with fingerprints, guest attributes, project metadata. */
function fakeClients(vms: Vm[], projectMetadata: GceMetadata = {}) {
  const byName = (n: string) => {
    const vm = vms.find((v) => v.name === n || v.id === n);
    if (!vm) throw Object.assign(new Error(`instance ${n} not found`), { code: 5 });
    return vm;
  };
  let fp = 0;
  const clients: GcpClients = {
    instances: () => ({
      list: () => Promise.reject(new Error("unused")),
      aggregatedListAsync: () => {
        throw new Error("unused");
      },
      get: async (req) => {
        const vm = byName(req.instance);
        const metadata = JSON.parse(JSON.stringify(vm.metadata));
        return [
          { id: vm.id, name: vm.name, status: "RUNNING", metadata, networkInterfaces: [{ networkIP: "127.0.0.1" }] },
        ];
      },
      getGuestAttributes: async (req) => {
        const vm = byName(req.instance);
        expect(req.queryPath).toBe("hostkeys/");
        if (!vm.guestKeys) throw Object.assign(new Error("The resource guest attributes was not found"), { code: 5 });
        return [
          {
            queryValue: { items: vm.guestKeys.map((value) => ({ namespace: "hostkeys", key: "ssh-ed25519", value })) },
          },
        ];
      },
      setMetadata: async (req) => {
        const vm = byName(req.instance);
        if (vm.setMetadataError) throw Object.assign(new Error(vm.setMetadataError.message), vm.setMetadataError);
        if (vm.raceOnce) {
          vm.raceOnce = false;
          vm.metadata = {
            items: [...(vm.metadata.items ?? []), { key: "other", value: "x" }],
            fingerprint: `f${++fp}`,
          };
        }
        if (req.metadataResource.fingerprint !== vm.metadata.fingerprint)
          throw Object.assign(new Error("Supplied fingerprint does not match current metadata fingerprint."), {
            code: 9,
          });
        vm.metadata = { items: req.metadataResource.items, fingerprint: `f${++fp}` };
        vm.history.push(sshKeys(vm.metadata));
        // Still running when accepted: the installer must wait on the zone operation.
        return [{ latestResponse: { name: `op-${fp}`, status: "RUNNING" } }];
      },
    }),
    zoneOperations: () => ({
      wait: async (req) => {
        waits.push(req.operation);
        return [{ name: req.operation, status: "DONE" }];
      },
    }),
    zones: () => ({
      listAsync: () => ({ [Symbol.asyncIterator]: () => ({ next: async () => ({ done: true, value: undefined }) }) }),
    }),
    projects: () => ({
      searchProjectsAsync: () => ({
        [Symbol.asyncIterator]: () => ({ next: async () => ({ done: true, value: undefined }) }),
      }),
    }),
    computeProjects: () => ({ get: async () => [{ commonInstanceMetadata: projectMetadata }] }),
    close: async () => undefined,
  };
  return clients;
}

const candidate = (vm: Vm): Candidate => ({
  cloud: "gcp",
  account: PROJECT,
  region: ZONE,
  instanceId: vm.id,
  nodeName: `${PROJECT}-${ZONE}-${vm.id}`,
  state: "RUNNING",
  tags: {},
  privateIp: "127.0.0.1",
  privateDnsName: `${vm.name}.${ZONE}.c.${PROJECT}.internal`,
});

const OK_INSTALLER = `echo "token=$DISCOVERY_TOKEN method=$DISCOVERY_JOIN_METHOD" >"$RECORD/ran"\necho installed\n`;
const FAILING_INSTALLER = `echo "step one" >&2\necho "boom: cannot reach the runtime" >&2\nexit 3\n`;

let vms: Vm[] = [];
/** Zone operations waited on, in order. */
let waits: string[] = [];
afterEach(async () => {
  for (const vm of vms) {
    await new Promise((r) => vm.server.close(r));
    fs.rmSync(vm.dir, { recursive: true, force: true });
  }
  vms = [];
  waits = [];
});

async function install(targets: Vm[], projectMetadata: GceMetadata = {}) {
  const clients = fakeClients(vms, projectMetadata);
  return installViaGceSsh(targets.map(candidate), {
    matcher: gcpMatcher.parse({ project_ids: [PROJECT], locations: [ZONE] }),
    endpoint: { proxyAddr: "127.0.0.1:3080" },
    clients,
    sudo: false,
    sshPort: (c) => vms.find((v) => v.id === c.instanceId)!.port,
    // Room for a slow handshake on a loaded machine; no test here waits the window out.
    connectWindowMs: 15_000,
    connectRetryMs: 100,
    now: () => NOW,
  });
}

const vm = async (id: string, o: Parameters<typeof startVm>[1] = { installer: OK_INSTALLER }) => {
  const v = await startVm(id, o);
  vms.push(v);
  return v;
};

describe("GCE install over SSH with an ephemeral metadata key", () => {
  it("adds the key in Google's format, logs in verifying the host key, runs the installer with env settings, removes the key", async () => {
    const v = await vm("1001", {
      installer: OK_INSTALLER,
      metadata: [{ key: "ssh-keys", value: "alice:ssh-rsa AAAA alice" }],
    });
    const [out] = await install([v]);
    expect(out).toMatchObject({ instanceId: "1001", status: "succeeded", exitCode: 0, stdoutTail: "installed" });
    expect(v.history).toHaveLength(2);
    const added = v.history[0].split("\n");
    expect(added[0]).toBe("alice:ssh-rsa AAAA alice");
    expect(added[1]).toMatch(
      /^discovery:ssh-ed25519 [A-Za-z0-9+/=]+ google-ssh \{"userName":"discovery","expireOn":"2026-11-30T12:10:00Z"\}$/,
    );
    expect(sshKeys(v.metadata)).toBe("alice:ssh-rsa AAAA alice");
    expect(v.logins).toBe(1);
    expect(waits).toHaveLength(2); // the add and the removal each waited on their zone operation
    expect(fs.readFileSync(path.join(v.dir, "ran"), "utf8").trim()).toBe("token=gcp-discovery-token method=gcp");
    const curlArgs = fs.readFileSync(path.join(v.dir, "curl.args"), "utf8").split("\0");
    expect(curlArgs).toContain("https://127.0.0.1:3080/webapi/scripts/installer/default-installer");
  });

  it("refuses a host key not in guest attributes (host-key-mismatch) and still removes the key", async () => {
    const v = await vm("1002", { installer: OK_INSTALLER, wrongHostKey: true });
    const [out] = await install([v]);
    expect(out).toMatchObject({ status: "failed", failureClass: "host-key-mismatch" });
    expect(out.remediation).toMatch(/guest agent/);
    expect(v.logins).toBe(0);
    expect(fs.existsSync(path.join(v.dir, "ran"))).toBe(false);
    expect(sshKeys(v.metadata)).toBe("");
  });

  it("without host keys in guest attributes: no-host-keys, metadata untouched", async () => {
    const v = await vm("1003");
    v.guestKeys = null;
    const [out] = await install([v]);
    expect(out).toMatchObject({ status: "failed", failureClass: "no-host-keys" });
    expect(out.remediation).toMatch(/enable-guest-attributes=TRUE/);
    expect(v.history).toEqual([]);
  });

  it("OS Login on the instance or the project: oslogin-enabled before any change", async () => {
    const inst = await vm("1004", { installer: OK_INSTALLER, metadata: [{ key: "enable-oslogin", value: "TRUE" }] });
    const [a] = await install([inst]);
    expect(a).toMatchObject({ failureClass: "oslogin-enabled" });
    const proj = await vm("1005");
    const [b] = await install([proj], { items: [{ key: "enable-oslogin", value: "true" }] });
    expect(b).toMatchObject({ failureClass: "oslogin-enabled" });
    // The instance's own FALSE wins over the project's TRUE.
    const off = await vm("1006", { installer: OK_INSTALLER, metadata: [{ key: "enable-oslogin", value: "FALSE" }] });
    const [c] = await install([off], { items: [{ key: "enable-oslogin", value: "TRUE" }] });
    expect([c.status, c.failureClass, c.reason]).toEqual(["succeeded", undefined, undefined]);
    expect(inst.history.concat(proj.history)).toEqual([]);
  });

  it("setMetadata denied: permission-denied naming compute.instances.setMetadata", async () => {
    const v = await vm("1007");
    v.setMetadataError = { code: 7, message: "Required 'compute.instances.setMetadata' permission" };
    const [out] = await install([v]);
    expect(out).toMatchObject({ status: "failed", failureClass: "permission-denied" });
    expect(out.remediation).toMatch(/grant compute\.instances\.setMetadata on project proj-a/);
  });

  it("a stale fingerprint is read again and retried once; the other writer's change survives", async () => {
    const v = await vm("1008");
    v.raceOnce = true;
    const [out] = await install([v]);
    expect(out.status).toBe("succeeded");
    expect(v.metadata.items).toEqual([{ key: "other", value: "x" }]);
  });

  it("a failing installer: script-failure with exit code and stderr tail, key removed", async () => {
    const v = await vm("1009", { installer: FAILING_INSTALLER });
    const [out] = await install([v]);
    expect(out).toMatchObject({ status: "failed", failureClass: "script-failure", exitCode: 3 });
    expect(out.stderrTail).toBe("step one\nboom: cannot reach the runtime");
    expect(out.reason).toMatch(/exited with code 3: boom/);
    expect(sshKeys(v.metadata)).toBe("");
  });

  it("one VM's failure does not stop the others; outcomes come back in order", async () => {
    const good1 = await vm("2001");
    const bad = await vm("2002", { installer: FAILING_INSTALLER });
    const noKeys = await vm("2003");
    noKeys.guestKeys = null;
    const good2 = await vm("2004");
    const out = await install([good1, bad, noKeys, good2]);
    // The failing installer's own class is the next test's subject; here: isolation and order.
    expect(out.map((o) => [o.instanceId, o.status])).toEqual([
      ["2001", "succeeded"],
      ["2002", "failed"],
      ["2003", "failed"],
      ["2004", "succeeded"],
    ]);
    expect(out[2].failureClass).toBe("no-host-keys");
    for (const v of [good1, bad, good2]) expect(sshKeys(v.metadata)).toBe("");
  });

  it("at most perProject VMs of a project at once; a VM no longer RUNNING is skipped", async () => {
    const fleet: Vm[] = [];
    for (let i = 0; i < 14; i++) {
      const v = await vm(`30${String(i).padStart(2, "0")}`);
      v.guestKeys = null; // each stops after reading guest attributes: no SSH needed to count
      fleet.push(v);
    }
    const clients = fakeClients(vms);
    let inFlight = 0;
    let most = 0;
    const inner = clients.instances();
    clients.instances = () => ({
      ...inner,
      getGuestAttributes: async (req) => {
        most = Math.max(most, ++inFlight);
        await new Promise((r) => setTimeout(r, 20));
        inFlight--;
        return inner.getGuestAttributes(req);
      },
      get: async (req) => {
        const [i] = await inner.get(req);
        return [req.instance === "vm-3013" ? { ...i, status: "TERMINATED" } : i];
      },
    });
    const out = await installViaGceSsh(fleet.map(candidate), {
      matcher: gcpMatcher.parse({ project_ids: [PROJECT], locations: [ZONE] }),
      endpoint: { proxyAddr: "127.0.0.1:3080" },
      clients,
      perProject: 4,
    });
    expect(most).toBe(4);
    expect(out.filter((o) => o.failureClass === "no-host-keys")).toHaveLength(13);
    expect(out[13]).toMatchObject({ status: "skipped", reason: expect.stringMatching(/TERMINATED/) });
  });

  it("the SSH port seam is test-only: DISCOVERY_GCP_SSH_PORTS_FILE maps ids to ports, else 22", () => {
    const c = { instanceId: "42" } as Candidate;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-gcp-ports-"));
    const file = path.join(dir, "ports.json");
    fs.writeFileSync(file, JSON.stringify({ "42": 2222, "43": "nope" }));
    const at = (instanceId: string) => sshPortFor({ ...c, instanceId }, { DISCOVERY_GCP_SSH_PORTS_FILE: file });
    expect([at("42"), at("43"), at("44")]).toEqual([2222, 22, 22]);
    expect(sshPortFor(c, {})).toBe(22);
    expect(sshPortFor(c, { DISCOVERY_GCP_SSH_PORTS_FILE: path.join(dir, "missing.json") })).toBe(22);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
