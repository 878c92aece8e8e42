import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { InstancesClient, ZoneOperationsClient } from "@google-cloud/compute";
import { ProjectsClient } from "@google-cloud/resource-manager";
import { parse } from "yaml";
import { discoveryAsync } from "../fixtures/cli";
import { ensureBuilt, parseEnvFile, launchJson, portOpen } from "../fixtures/sandbox";

/**
 * The sandbox's GCP world as a user and the official clients see it: VMs launched with the CLI, listed and
 * changed through `@google-cloud/compute` with nothing but env.sh, logged into with real ssh as the guest agent
 * allows, and identity tokens from their metadata servers verified with jose against the issuer's JWKS.
 */
const REPO = path.resolve(__dirname, "../..");
const PROJECT = "sandbox-proj-1";
const ZONE = "us-central1-a";
const USER = os.userInfo().username;

interface LaunchedVm {
  cloud: string;
  id: string;
  project: string;
  zone: string;
  name: string;
  created_at: string;
  ssh_port: number;
  service_account: string;
}

/** How production code builds a client from GOOGLE_COMPUTE_ENDPOINT (unset: Google's own endpoint). */
function endpointOptions(url: string) {
  const u = new URL(url);
  return {
    apiEndpoint: u.hostname,
    port: Number(u.port),
    protocol: u.protocol.replace(":", ""),
    // Jest only: gaxios loads node-fetch with a dynamic import, which jest's CommonJS sandbox refuses.
    clientOptions: { transporterOptions: { fetchImplementation: fetch } },
  };
}

describe("discovery sandbox: the GCP world", () => {
  let dir: string;
  let env: Record<string, string>;
  let compute: InstancesClient;
  let operations: ZoneOperationsClient;
  let vms: LaunchedVm[];
  let osLoginVm: LaunchedVm;
  let stopped = false;
  const savedCredentials = process.env.GOOGLE_APPLICATION_CREDENTIALS;

  const launch = (...flags: string[]) => launchJson<LaunchedVm>(dir, "gcp", flags);

  /** A fresh ed25519 key pair in DIR; the public key as `type base64`. */
  function keyPair(name: string): { file: string; pub: string } {
    const file = path.join(dir, name);
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", file]);
    return { file, pub: fs.readFileSync(`${file}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" ") };
  }

  /** Appends a google-ssh line to the VM's ssh-keys with the current fingerprint and waits on the operation. */
  async function addKey(vm: LaunchedVm, pub: string, expireOn: Date) {
    const [inst] = await compute.get({ project: vm.project, zone: vm.zone, instance: vm.name });
    const items = (inst.metadata?.items ?? []).map((i) => ({ key: i.key!, value: i.value! }));
    const line = `${USER}:${pub} google-ssh ${JSON.stringify({ userName: USER, expireOn: expireOn.toISOString() })}`;
    const old = items.find((i) => i.key === "ssh-keys");
    if (old) old.value = `${old.value}\n${line}`;
    else items.push({ key: "ssh-keys", value: line });
    const [op] = await compute.setMetadata({
      project: vm.project,
      zone: vm.zone,
      instance: vm.name,
      metadataResource: { fingerprint: inst.metadata!.fingerprint, items },
    });
    // Compute's LRO wrapper has no promise(): callers wait on the zone operation, as Teleport does.
    const [done] = await operations.wait({ project: vm.project, zone: vm.zone, operation: op.name! });
    expect(done.status).toBe("DONE");
  }

  /** Real ssh with the host key taken from the VM's guest attributes (StrictHostKeyChecking yes). */
  async function ssh(vm: LaunchedVm, key: string, command: string) {
    const [attrs] = await compute.getGuestAttributes({
      project: vm.project,
      zone: vm.zone,
      instance: vm.name,
      queryPath: "hostkeys/",
    });
    const knownHosts = path.join(dir, `known_hosts-${vm.id}`);
    const lines = (attrs.queryValue?.items ?? []).map((i) => `[127.0.0.1]:${vm.ssh_port} ${i.value}`);
    fs.writeFileSync(knownHosts, lines.join("\n") + "\n");
    const r = spawnSync(
      "ssh",
      [
        ...["-i", key, "-p", String(vm.ssh_port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"],
        ...["-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "ConnectTimeout=10"],
        `${USER}@127.0.0.1`,
        command,
      ],
      { encoding: "utf8", timeout: 30_000 },
    );
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  beforeAll(async () => {
    ensureBuilt();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-sandbox-gcp-"));
    const started = await discoveryAsync(["sandbox", "start", "--dir", dir]);
    expect(started.stderr).toBe("");
    expect(started.status).toBe(0);
    env = parseEnvFile(path.join(dir, "env.sh"));
    // ADC as any Google client does it: nothing but the file env.sh names.
    process.env.GOOGLE_APPLICATION_CREDENTIALS = env.GOOGLE_APPLICATION_CREDENTIALS;
    compute = new InstancesClient(endpointOptions(env.GOOGLE_COMPUTE_ENDPOINT));
    operations = new ZoneOperationsClient(endpointOptions(env.GOOGLE_COMPUTE_ENDPOINT));
    vms = await launch("--project", PROJECT, "--zone", ZONE, "--labels", "env=dev,team=core", "--count", "2");
    [osLoginVm] = await launch("--project", PROJECT, "--zone", "us-central1-b", "--labels", "env=dev", "--oslogin");
  });
  afterAll(async () => {
    await compute?.close();
    await operations?.close();
    if (savedCredentials === undefined) delete process.env.GOOGLE_APPLICATION_CREDENTIALS;
    else process.env.GOOGLE_APPLICATION_CREDENTIALS = savedCredentials;
    if (dir && !stopped) await discoveryAsync(["sandbox", "stop", "--dir", dir]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("launch --json prints SPEC's fields; env.sh points Google clients at the fake", async () => {
    expect(vms).toHaveLength(2);
    for (const vm of vms) {
      expect(vm).toMatchObject({ cloud: "gcp", project: PROJECT, zone: ZONE });
      expect(vm.id).toMatch(/^\d{19}$/);
      expect(vm.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}-08:00$/);
      expect(vm.service_account).toMatch(/^\d+-compute@developer\.gserviceaccount\.com$/);
      expect(vm.ssh_port).toBeGreaterThan(0);
    }
    expect(env.GOOGLE_COMPUTE_ENDPOINT).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(JSON.parse(fs.readFileSync(env.DISCOVERY_GCP_SSH_PORTS_FILE, "utf8"))).toMatchObject({
      [vms[0].id]: vms[0].ssh_port,
    });
    const sa = await launch("--project", "other-proj-2", "--zone", "europe-west1-b", "--labels", "a=b");
    expect(sa[0].service_account).not.toBe(vms[0].service_account);
    const ids = await discoveryAsync(
      ["sandbox", "launch", "--dir", dir, "--cloud", "gcp", "--project", "other-proj-2", "--zone", "europe-west1-b"]
        .concat(["--labels", "a=b", "--service-account", "node@other-proj-2.iam.gserviceaccount.com"])
        .concat(["--state", "terminated"]),
    );
    expect(ids.stdout).toMatch(/^\d{19}\n$/);
    const aws = await discoveryAsync(
      ["sandbox", "launch", "--dir", dir, "--account", "123456789012", "--region", "us-east-1"].concat([
        "--tags",
        "Name=web",
        "--agentless",
        "--json",
      ]),
    );
    expect(aws.stderr).toBe("");
    expect(JSON.parse(aws.stdout)).toMatchObject({
      cloud: "aws",
      id: expect.stringMatching(/^i-/),
      account: "123456789012",
      region: "us-east-1",
      name: "web",
      created_at: expect.stringMatching(/^\d{4}-/),
      ssh_port: expect.any(Number),
    });
    const bad = await discoveryAsync([
      "sandbox",
      "launch",
      "--dir",
      dir,
      "--cloud",
      "gcp",
      "--project",
      "X",
      "--zone",
      ZONE,
    ]);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain("--project");
  });

  it("the official InstancesClient lists, aggregates and gets the VMs; Resource Manager searches projects", async () => {
    const [listed] = await compute.list({ project: PROJECT, zone: ZONE });
    expect(listed.map((i) => i.name).sort()).toEqual(vms.map((v) => v.name).sort());
    expect(listed[0]).toMatchObject({ status: "RUNNING", labels: { env: "dev", team: "core" } });
    expect(listed[0].serviceAccounts?.[0]?.email).toBe(vms[0].service_account);
    expect(listed[0].networkInterfaces?.[0]?.networkIP).toBe("127.0.0.1");
    const paged = await compute.list({ project: PROJECT, zone: ZONE, maxResults: 1 }, { autoPaginate: false });
    expect(paged[0]).toHaveLength(1);
    expect(paged[2]?.nextPageToken).toBeTruthy();
    const zones: string[] = [];
    for await (const [zone, scoped] of compute.aggregatedListAsync({ project: PROJECT }))
      for (const inst of scoped.instances ?? []) zones.push(`${zone}/${inst.name}`);
    expect(zones.sort()).toEqual(
      [...vms.map((v) => `zones/${ZONE}/${v.name}`), `zones/us-central1-b/${osLoginVm.name}`].sort(),
    );
    const [one] = await compute.get({ project: PROJECT, zone: ZONE, instance: vms[0].name });
    expect(String(one.id)).toBe(vms[0].id);
    expect(one.creationTimestamp).toBe(vms[0].created_at);
    const projects = new ProjectsClient({ ...endpointOptions(env.GOOGLE_RESOURCE_MANAGER_ENDPOINT), fallback: true });
    const [found] = await projects.searchProjects({ query: "" });
    expect(found.map((p) => p.projectId)).toEqual(expect.arrayContaining([PROJECT, "other-proj-2"]));
    await projects.close();
  });

  it("a google-ssh key added with the fingerprint logs in over real ssh; the VM's paths are its own", async () => {
    const key = keyPair("ephemeral");
    await addKey(vms[0], key.pub, new Date(Date.now() + 10 * 60_000));
    const r = await ssh(
      vms[0],
      key.file,
      "mkdir -p /var/lib/discovery && echo probe > /var/lib/discovery/p && echo ok",
    );
    expect(r.stderr).not.toMatch(/REMOTE HOST IDENTIFICATION|Host key verification failed/);
    expect(r.stdout).toBe("ok\n");
    expect(r.status).toBe(0);
    expect(fs.readFileSync(path.join(dir, "instances", vms[0].id, "var-lib-discovery", "p"), "utf8")).toBe("probe\n");
    // The other VM never got the key.
    expect((await ssh(vms[1], key.file, "true")).status).not.toBe(0);
  });

  it("refuses an expired key, and an OS Login VM ignores metadata keys", async () => {
    const expired = keyPair("expired");
    await addKey(vms[1], expired.pub, new Date(Date.now() - 60_000));
    expect((await ssh(vms[1], expired.file, "true")).status).toBe(255);
    const fresh = keyPair("oslogin");
    await addKey(osLoginVm, fresh.pub, new Date(Date.now() + 10 * 60_000));
    const [inst] = await compute.get({ project: PROJECT, zone: osLoginVm.zone, instance: osLoginVm.name });
    expect(inst.metadata?.items?.find((i) => i.key === "ssh-keys")?.value).toContain(fresh.pub);
    expect((await ssh(osLoginVm, fresh.file, "true")).status).toBe(255);
  });

  it("setMetadata with a stale fingerprint gets 412 and changes nothing", async () => {
    const [before] = await compute.get({ project: PROJECT, zone: ZONE, instance: vms[1].name });
    const stale = { fingerprint: "c3RhbGUtZnA=", items: [{ key: "ssh-keys", value: "" }] };
    await expect(
      compute.setMetadata({ project: PROJECT, zone: ZONE, instance: vms[1].name, metadataResource: stale }),
    ).rejects.toMatchObject({ code: 412 });
    const [after] = await compute.get({ project: PROJECT, zone: ZONE, instance: vms[1].name });
    expect(after.metadata?.fingerprint).toBe(before.metadata?.fingerprint);
  });

  it("the VM's metadata server issues identity tokens that verify against the issuer's JWKS (jose)", async () => {
    const runtime = parse(fs.readFileSync(path.join(dir, "runtime.yaml"), "utf8"));
    expect(runtime.join.gcp.issuer).toBe("https://accounts.google.com");
    const aud = runtime.cluster_name as string;
    const q = `audience=${aud}&format=full`;
    const url = `http://$GCE_METADATA_HOST/computeMetadata/v1/instance/service-accounts/default/identity?${q}`;
    const got = await ssh(vms[0], path.join(dir, "ephemeral"), `curl -sS -H 'Metadata-Flavor: Google' "${url}"`);
    expect(got.status).toBe(0);
    const refused = await ssh(vms[0], path.join(dir, "ephemeral"), `curl -s -o /dev/null -w '%{http_code}' "${url}"`);
    expect(refused.stdout).toBe("403");
    // jose is ESM-only: verified in a child Node, as a verifier in production would.
    const script = `
      import { createRemoteJWKSet, jwtVerify, calculateJwkThumbprint, exportJWK } from "jose";
      import { createPublicKey } from "crypto";
      import { readFileSync } from "fs";
      const [token, jwksUrl, aud, keyFile] = process.argv.slice(1);
      const { payload, protectedHeader } = await jwtVerify(token, createRemoteJWKSet(new URL(jwksUrl)), {
        issuer: "https://accounts.google.com", audience: aud, algorithms: ["RS256"] });
      const thumb = await calculateJwkThumbprint(await exportJWK(createPublicKey(readFileSync(keyFile, "utf8"))));
      console.log(JSON.stringify({ payload, kid: protectedHeader.kid, thumb }));`;
    const out = JSON.parse(
      execFileSync(
        process.execPath,
        [
          "--input-type=module",
          "-e",
          script,
          got.stdout.trim(),
          runtime.join.gcp.jwks_url,
          aud,
          path.join(dir, "gcp-issuer.key"),
        ],
        { cwd: REPO, encoding: "utf8" },
      ),
    );
    expect(out.kid).toBe(out.thumb);
    expect(out.payload).toMatchObject({
      aud,
      email: vms[0].service_account,
      google: {
        compute_engine: {
          project_id: PROJECT,
          zone: ZONE,
          instance_id: vms[0].id,
          instance_name: vms[0].name,
          instance_creation_timestamp: Math.floor(Date.parse(vms[0].created_at) / 1000),
        },
      },
    });
    expect(out.payload.exp).toBeGreaterThan(out.payload.iat);
  });

  it("a google-ssh key stops working once its expireOn passes", async () => {
    const short = keyPair("short-lived");
    await addKey(vms[1], short.pub, new Date(Date.now() + 4_000));
    expect((await ssh(vms[1], short.file, "true")).status).toBe(0);
    await new Promise((r) => setTimeout(r, 7_000));
    expect((await ssh(vms[1], short.file, "true")).status).toBe(255);
  });

  it("logs every API call with the IAM permission it needs", async () => {
    const state = JSON.parse(fs.readFileSync(path.join(dir, "sandbox.json"), "utf8"));
    const res = await fetch(`${state.control.url}/v1/gcp/calls`, {
      headers: { authorization: `Bearer ${state.control.token}` },
    });
    const { calls } = (await res.json()) as { calls: { permission: string; status: number; path: string }[] };
    expect(new Set(calls.map((c) => c.permission))).toEqual(
      new Set([
        "compute.instances.list",
        "compute.instances.get",
        "compute.instances.setMetadata",
        "compute.instances.getGuestAttributes",
        "compute.zoneOperations.get",
        "resourcemanager.projects.get",
      ]),
    );
    expect(calls.filter((c) => c.status === 412)).toHaveLength(1);
    expect(calls.every((c) => c.status !== 401)).toBe(true);
  });

  it("refuses, as IAM would, calls outside the permission set the control API names", async () => {
    const state = JSON.parse(fs.readFileSync(path.join(dir, "sandbox.json"), "utf8"));
    const restrict = (permissions: string[] | null) =>
      fetch(`${state.control.url}/v1/gcp/permissions`, {
        method: "PUT",
        headers: { authorization: `Bearer ${state.control.token}`, "content-type": "application/json" },
        body: JSON.stringify({ permissions }),
      });
    expect((await restrict(["compute.instances.list"])).status).toBe(200);
    try {
      const [listed] = await compute.list({ project: PROJECT, zone: ZONE });
      expect(listed).toHaveLength(2);
      await expect(compute.get({ project: PROJECT, zone: ZONE, instance: vms[0].name })).rejects.toMatchObject({
        code: 403,
      });
    } finally {
      expect((await restrict(null)).status).toBe(200);
    }
    await compute.get({ project: PROJECT, zone: ZONE, instance: vms[0].name });
  });

  it("sandbox stop ends the fake APIs and every VM's sshd", async () => {
    const ports = [...vms, osLoginVm].map((v) => v.ssh_port);
    ports.push(Number(new URL(env.GOOGLE_COMPUTE_ENDPOINT).port));
    const r = await discoveryAsync(["sandbox", "stop", "--dir", dir]);
    expect(r.status).toBe(0);
    stopped = true;
    for (const port of ports) expect(await portOpen(port)).toBe(false);
  });
});
