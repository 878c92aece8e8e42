import { spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import type { AddressInfo } from "net";
import * as path from "path";
import type { GcpInstance } from "../../provider/clouds/gcp/instances";
import { discoveryAsync } from "../fixtures/cli";
import {
  computeClaims,
  fakeAdcCredentials,
  FakeGoogleKey,
  fakeGoogleKey,
  liveVm,
  LocalServer,
  signToken,
  startFakeCompute,
  startJwksServer,
  VM,
} from "../fixtures/gcp-tokens";
import { expectRefused, newHostKey } from "../fixtures/joins";
import { startTestRuntime, TestRuntime } from "../fixtures/runtime";

/**
 * The gcp join over HTTPS against a real runtime: Google's key set is a local JWKS server (`join.gcp.jwks_url`)
 * and Compute a local fake reached through `GOOGLE_COMPUTE_ENDPOINT` by the real `@google-cloud/compute` client.
 * Forged, misdirected, stale and replayed tokens are refused with their exact codes; one VM joins once.
 */
const CLUSTER = "discovery.test";
const TOKENS = `
kind: token
version: v2
metadata: {name: gcp-token}
spec: {roles: [Node], join_method: gcp, gcp: {allow: [{project_ids: [${VM.project}], locations: [us-central1]}]}}
---
kind: token
version: v2
metadata: {name: gcp-other-project}
spec: {roles: [Node], join_method: gcp, gcp: {allow: [{project_ids: [acme-dev]}]}}
`;

describe("join API red team: gcp", () => {
  let rt: TestRuntime;
  let jwks: LocalServer;
  let compute: LocalServer;
  const keys = {} as Record<"google" | "forger" | "serviceAccount", FakeGoogleKey>;
  const vms = new Map<string, GcpInstance>();
  const deny = { on: false };
  const savedEnv = { ...process.env };
  let credentials: string | undefined;
  const vmKey = `${VM.project}/${VM.zone}/${VM.name}`;
  const join = (idToken: unknown, token = "gcp-token") =>
    rt.call("POST", "/v1/join", { method: "gcp", token, host_public_key: newHostKey(), id_token: idToken });
  const google = (over: Record<string, unknown> = {}, header?: Record<string, unknown>) =>
    signToken({ ...computeClaims(CLUSTER), ...over }, keys.google, { header });

  beforeAll(async () => {
    keys.google = fakeGoogleKey("google-2026-11");
    keys.forger = fakeGoogleKey("google-2026-11");
    keys.serviceAccount = fakeGoogleKey("0123456789abcdef0123456789abcdef01234567");
    jwks = await startJwksServer(() => [keys.google.jwk]);
    compute = await startFakeCompute(vms, deny);
    process.env.GOOGLE_COMPUTE_ENDPOINT = compute.url;
    // The runtime's live check authenticates as any Google client does: application default credentials.
    credentials = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pd-gcp-adc-")), "adc.json");
    fs.writeFileSync(credentials, JSON.stringify(fakeAdcCredentials(compute.url)));
    process.env.GOOGLE_APPLICATION_CREDENTIALS = credentials;
    rt = await startTestRuntime({
      join: { gcp: { jwks_url: `${jwks.url}/oauth2/v3/certs` }, rate_limit: { requests_per_minute: 100000, burst: 100000 } }, // prettier-ignore
    });
    const put = await rt.call("PUT", "/v1/resources", TOKENS, { admin: true, contentType: "application/yaml" });
    expect(put.status).toBe(200);
  });
  afterAll(async () => {
    await rt?.stop();
    await jwks?.close();
    await compute?.close();
    process.env = savedEnv;
    if (credentials) fs.rmSync(path.dirname(credentials), { recursive: true, force: true });
  });
  beforeEach(() => {
    vms.set(vmKey, liveVm());
    deny.on = false;
  });

  it("a malformed token: 400, before the key set or Compute is asked", async () => {
    const before = jwks.hits.length + compute.hits.length;
    expectRefused(await join("not-a-jwt"), 400, "gcp_token_malformed");
    expectRefused(await join(undefined), 400, "gcp_token_malformed");
    expect(jwks.hits.length + compute.hits.length).toBe(before);
  });

  const denials: [string, () => string, string, string?][] = [
    ["signed with a forged key under Google's kid", () => signToken(computeClaims(CLUSTER), keys.forger), "gcp_signature_invalid"], // prettier-ignore
    ["self-signed by a service account with forged compute claims (CVE-2020-16251)", () => signToken({ ...computeClaims(CLUSTER), iss: VM.email }, keys.serviceAccount), "gcp_key_unknown"], // prettier-ignore
    ["alg none", () => google({}, { alg: "none" }), "gcp_algorithm_not_allowed"],
    [
      "HS256 keyed with Google's public key",
      () => signToken(computeClaims(CLUSTER), keys.google, { header: { alg: "HS256" }, hmacSecret: Buffer.from(JSON.stringify(keys.google.jwk)) }), // prettier-ignore
      "gcp_algorithm_not_allowed",
    ],
    ["another issuer", () => google({ iss: "https://accounts.example.com" }), "gcp_issuer_invalid"],
    ["another audience", () => google({ aud: "other.cluster" }), "gcp_audience_invalid"],
    ["expired", () => google({ exp: Math.floor(Date.now() / 1000) - 120 }), "gcp_token_expired"],
    ["issued in the future", () => signToken(computeClaims(CLUSTER, -300), keys.google), "gcp_token_from_future"],
    ["no compute claims", () => google({ google: undefined }), "gcp_compute_claims_missing"],
    ["project not allowed", () => google(), "gcp_project_not_allowed", "gcp-other-project"],
    ["location not allowed", () => google({ google: { compute_engine: { ...(computeClaims(CLUSTER).google as { compute_engine: object }).compute_engine, zone: "europe-west1-b" } } }), "gcp_location_not_allowed"], // prettier-ignore
  ];
  it.each(denials)("%s: 403", async (...[, make, reason, token]) => {
    expectRefused(await join(make(), token), 403, reason);
  });

  it("a stopped VM, a recreated VM, a deleted VM, and no compute.instances.get: 403", async () => {
    vms.set(vmKey, liveVm({ status: "TERMINATED" }));
    expectRefused(await join(google()), 403, "gcp_instance_not_running");
    vms.set(vmKey, liveVm({ id: "5550001112223334445", creationTimestamp: "2026-11-30T09:00:00.000-08:00" }));
    expectRefused(await join(google()), 403, "gcp_instance_recreated");
    vms.delete(vmKey);
    expectRefused(await join(google()), 403, "gcp_instance_not_found");
    vms.set(vmKey, liveVm());
    deny.on = true;
    const r = await join(google());
    expectRefused(r, 403, "gcp_instance_check_failed");
    expect(r.body.error.message).toContain("compute.instances.get");
  });

  it("accepts the VM once, named and labelled from its verified claims; a replay is already_joined", async () => {
    const r = await join(google());
    expect(r.status).toBe(200);
    expect(r.body.node_name).toBe(`${VM.project}-${VM.zone}-${VM.id}`);
    expect(r.body.labels).toMatchObject({
      "discovery/project-id": VM.project,
      "discovery/zone": VM.zone,
      "discovery/instance-id": VM.id,
      "discovery/name": VM.name,
      "discovery/join-method": "gcp",
    });
    expect(compute.hits).toContain(`/compute/v1/projects/${VM.project}/zones/${VM.zone}/instances/${VM.name}`);
    expectRefused(await join(google()), 403, "already_joined");
    // The key set was fetched once and then served from cache (max-age=3600).
    expect(jwks.hits.length).toBe(1);
  });

  describe("node side: the token comes from the metadata server", () => {
    let metadata: http.Server;
    let metadataHost: string;
    // The metadata server mints a token for whichever VM `vmOf` names, for the audience asked, only with format=full.
    let vmOf = "web-2";
    beforeAll(async () => {
      metadata = http.createServer((req, res) => {
        const u = new URL(req.url ?? "/", "http://metadata");
        const ok =
          req.headers["metadata-flavor"] === "Google" &&
          u.pathname === "/computeMetadata/v1/instance/service-accounts/default/identity" &&
          u.searchParams.get("format") === "full";
        if (!ok) return res.writeHead(403).end("forbidden");
        const c = computeClaims(u.searchParams.get("audience") ?? "");
        const ce = (c.google as { compute_engine: Record<string, unknown> }).compute_engine;
        Object.assign(ce, { instance_name: vmOf, instance_id: vmOf === "web-2" ? "1002" : "1003" });
        res.writeHead(200, { "content-type": "application/text" }).end(signToken(c, keys.google));
      });
      await new Promise<void>((resolve) => metadata.listen(0, "127.0.0.1", resolve));
      metadataHost = `127.0.0.1:${(metadata.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((resolve) => metadata.close(() => resolve())));

    it("discovery join --method gcp joins with the metadata server's token", async () => {
      vmOf = "web-2";
      vms.set(`${VM.project}/${VM.zone}/web-2`, liveVm({ id: "1002", name: "web-2" }));
      const dir = fs.mkdtempSync(path.join(rt.dir, "node-"));
      const r = await discoveryAsync(
        ["join", "--method", "gcp", "--token", "gcp-token", "--server", rt.url]
          .concat(["--ca-cert", path.join(rt.dir, "data", "tls.crt")])
          .concat(["--data-dir", dir, "--host-key", path.join(dir, "hk")]),
        { env: { GCE_METADATA_HOST: metadataHost } },
      );
      expect(r.stderr).toBe("");
      expect(r.stdout).toContain(`joined as ${VM.project}-${VM.zone}-1002`);
    });

    it("the default installer (DISCOVERY_JOIN_METHOD=gcp) joins the same way, under sh", async () => {
      vmOf = "web-3";
      vms.set(`${VM.project}/${VM.zone}/web-3`, liveVm({ id: "1003", name: "web-3" }));
      const dir = fs.mkdtempSync(path.join(rt.dir, "node-"));
      const env = {
        PATH: "/usr/sbin:/usr/bin:/bin",
        DISCOVERY_TOKEN: "gcp-token",
        DISCOVERY_JOIN_METHOD: "gcp",
        DISCOVERY_CA_PIN: rt.runtime.tls.publicKeyPin,
        DISCOVERY_DATA_DIR: dir,
        GCE_METADATA_HOST: metadataHost,
      };
      const cmd = `curl -sS --fail -k --pinnedpubkey "$DISCOVERY_CA_PIN" ${rt.url}/webapi/scripts/installer/default-installer | sh`; // prettier-ignore
      const r = await new Promise<{ status: number | null; out: string }>((resolve) => {
        const child = spawn("bash", ["-c", `set -o pipefail; ${cmd}`], { env, stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        child.stdout.on("data", (d) => (out += d));
        child.stderr.on("data", (d) => (out += d));
        child.on("exit", (status) => resolve({ status, out }));
      });
      expect(r).toMatchObject({ status: 0 });
      expect(fs.readFileSync(path.join(dir, "node"), "utf8").trim()).toBe(`${VM.project}-${VM.zone}-1003`);
    });
  });
});
