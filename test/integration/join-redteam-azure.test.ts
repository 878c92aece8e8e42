import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { AzureVm } from "../../provider/clouds/azure/attest-azure";
import { azureJoinMethod } from "../../provider/clouds/azure/join";
import { createSigner } from "../../provider/sandbox/iid-signer";
import { discoveryAsync } from "../fixtures/cli";
import {
  AZ,
  AZ_LABELS,
  AZ_VM_KEY,
  accessToken,
  attestedContent,
  attestedDocument,
  azureTrust,
  AzureTrust,
  entraKey,
  liveAzureVm,
  memoryVms,
  startFakeImds,
} from "../fixtures/azure-tokens";
import { FakeGoogleKey, LocalServer, startJwksServer } from "../fixtures/gcp-tokens";
import { expectRefused, newHostKey } from "../fixtures/joins";
import { startTestRuntime, TestRuntime } from "../fixtures/runtime";

/**
 * The azure join over HTTPS against a real runtime: the test Azure root is `join.azure.extra_ca_certs`, Entra ID's
 * key set a local JWKS server (`join.azure.jwks_url`), the VM read an in-memory seam. Forged, misdirected, stale and
 * replayed proofs are refused with their exact codes and store nothing; one VM joins once; the node side (the
 * default installer, and `discovery join --method azure` once the cloud is registered) reaches a local IMDS.
 */
const TOKENS = `
kind: token
version: v2
metadata: {name: azure-token}
spec: {roles: [Node], join_method: azure, azure: {allow: [{subscription: ${AZ.subscription}, resource_groups: [rg-web]}]}}
---
kind: token
version: v2
metadata: {name: azure-other-sub}
spec: {roles: [Node], join_method: azure, azure: {allow: [{subscription: ${AZ.otherSubscription}}]}}
`;
const NODE = `${AZ.subscription}-${AZ.vmId}`;

describe("join API red team: azure", () => {
  let rt: TestRuntime;
  let jwks: LocalServer;
  let trust: AzureTrust;
  const keys = {} as Record<"entra" | "forger", FakeGoogleKey>;
  const vmMap = new Map<string, AzureVm>();
  const vms = memoryVms(vmMap);
  const challenge = async (token = "azure-token") => {
    const r = await rt.call("POST", "/v1/join/challenge", { method: "azure", token });
    expect(r.status).toBe(200);
    return r.body.challenge as string;
  };
  const join = (fields: Record<string, unknown>, token = "azure-token") =>
    rt.call("POST", "/v1/join", { method: "azure", token, host_public_key: newHostKey(), ...fields });
  const proof = async (c: string, content = attestedContent(c), at = accessToken(keys.entra)) => ({
    challenge: c,
    attested_data: await attestedDocument(content),
    access_token: at,
  });
  const nodes = async () =>
    ((await rt.call("GET", "/v1/nodes", undefined, { admin: true })).body.nodes as { name: string }[]).map(
      (n) => n.name,
    );

  beforeAll(async () => {
    trust = await azureTrust();
    keys.entra = entraKey("entra-2026");
    keys.forger = entraKey("entra-2026");
    jwks = await startJwksServer(() => [keys.entra.jwk]);
    // The CA file comes first: the runtime reads join.azure.extra_ca_certs when it starts.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-azure-rt-"));
    fs.writeFileSync(path.join(dir, "azure-ca.pem"), trust.root.certPem);
    rt = await startTestRuntime(
      {
        join: {
          azure: { extra_ca_certs: ["./azure-ca.pem"], jwks_url: `${jwks.url}/common/discovery/keys` },
          rate_limit: { requests_per_minute: 100000, burst: 100000 },
        },
      },
      { dir, runtime: { joinMethods: { azure: azureJoinMethod({ vms }) } } },
    );
    const put = await rt.call("PUT", "/v1/resources", TOKENS, { admin: true, contentType: "application/yaml" });
    expect(put.status).toBe(200);
  });
  afterAll(async () => {
    await rt?.stop();
    await jwks?.close();
    if (rt) fs.rmSync(rt.dir, { recursive: true, force: true });
  });
  beforeEach(() => vmMap.set(AZ_VM_KEY, liveAzureVm()));

  it("the challenge is 32 base64url characters, the longest nonce Azure IMDS signs", async () => {
    expect(await challenge()).toMatch(/^[A-Za-z0-9_-]{32}$/);
  });

  it("malformed proofs: 400 before the key set or ARM is asked, and the challenge survives", async () => {
    const before = { jwks: jwks.hits.length, vms: vms.calls };
    const good = await proof(await challenge());
    expectRefused(await join({ ...good, attested_data: "not base64!" }), 400, "azure_attested_data_malformed");
    expectRefused(await join({ ...good, access_token: "a.b" }), 400, "azure_access_token_malformed");
    expect({ jwks: jwks.hits.length, vms: vms.calls }).toEqual(before);
    // The same challenge still carries the proof to the last check: the 400s did not consume it.
    vmMap.delete(AZ_VM_KEY);
    expectRefused(await join(good), 403, "azure_vm_not_found");
  });

  const denials: [string, (c: string) => Promise<Record<string, unknown>>, string, string?][] = [
    ["signer is not metadata.azure.com", async (c) => ({ ...(await proof(c)), attested_data: await attestedDocument(attestedContent(c), { signer: await createSigner({ commonName: "evil.example.com", issuer: trust.intermediate }) }) }), "azure_signer_not_metadata"], // prettier-ignore
    ["bag anchoring: Azure's certificates first, signed by a stranger", async (c) => { const rogue = await createSigner({ commonName: "metadata.azure.com", isCa: false }); return { ...(await proof(c)), attested_data: await attestedDocument(attestedContent(c), { signer: rogue, bag: [trust.signer, trust.intermediate, rogue] }) }; }, "azure_untrusted_signer"], // prettier-ignore
    ["tampered content", async (c) => ({ ...(await proof(c)), attested_data: await attestedDocument(attestedContent(c), { tamperContent: (s) => s.replace(AZ.subscription, AZ.otherSubscription) }) }), "azure_signature_invalid"], // prettier-ignore
    ["a foreign nonce", async (c) => proof(c, attestedContent("x".repeat(32))), "azure_nonce_mismatch"],
    ["forged token under Entra ID's kid", async (c) => proof(c, undefined, accessToken(keys.forger)), "azure_signature_invalid"], // prettier-ignore
    ["token of another tenant's issuer", async (c) => proof(c, undefined, accessToken(keys.entra, { iss: "https://sts.windows.net/00000000-0000-4000-8000-000000000000/" })), "azure_issuer_invalid"], // prettier-ignore
    ["token for another subscription", async (c) => proof(c, undefined, accessToken(keys.entra, { xms_az_rid: `/subscriptions/${AZ.otherSubscription}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/web-1` })), "azure_subscription_mismatch"], // prettier-ignore
    ["expired token", async (c) => proof(c, undefined, accessToken(keys.entra, { exp: Math.floor(Date.now() / 1000) - 300 })), "azure_token_expired"], // prettier-ignore
    ["wrong audience", async (c) => proof(c, undefined, accessToken(keys.entra, { aud: "https://vault.azure.net" })), "azure_audience_invalid"], // prettier-ignore
    ["alg none", async (c) => proof(c, undefined, accessToken(keys.entra, {}, { header: { alg: "none" } })), "azure_algorithm_not_allowed"], // prettier-ignore
    ["subscription not allowed", async (c) => proof(c), "azure_subscription_not_allowed", "azure-other-sub"],
  ];
  it.each(denials)("%s: 403, nothing stored", async (...[, make, reason, token]) => {
    expectRefused(await join(await make(await challenge(token)), token), 403, reason);
    expect(await nodes()).toEqual([]);
  });

  it("a deallocated, a recreated and a deleted VM: 403", async () => {
    vmMap.set(AZ_VM_KEY, liveAzureVm({ powerState: "PowerState/deallocated" }));
    expectRefused(await join(await proof(await challenge())), 403, "azure_vm_not_running");
    vmMap.set(AZ_VM_KEY, liveAzureVm({ vmId: "22222222-3333-4444-8555-666666666666" }));
    expectRefused(await join(await proof(await challenge())), 403, "azure_vm_recreated");
    vmMap.delete(AZ_VM_KEY);
    expectRefused(await join(await proof(await challenge())), 403, "azure_vm_not_found");
    expect(await nodes()).toEqual([]);
  });

  it("accepts the VM once, named and labelled from its verified proofs; a replay is already_joined", async () => {
    const first = await proof(await challenge());
    const r = await join(first);
    expect(r.status).toBe(200);
    expect(r.body.node_name).toBe(NODE);
    expect(r.body.labels).toEqual(AZ_LABELS);
    expect(r.body.host_certificate).toMatch(/^ssh-ed25519-cert-v01@openssh.com /);
    // The same proof again: its challenge is spent. A fresh proof of the same VM: one join per VM.
    expectRefused(await join(first), 403, "challenge_invalid");
    expectRefused(await join(await proof(await challenge())), 403, "already_joined");
    // Entra ID's key set was fetched once and then served from cache.
    expect(jwks.hits.length).toBe(1);
  });

  describe("node side: the proofs come from IMDS", () => {
    let imds: Awaited<ReturnType<typeof startFakeImds>>;
    let vmName = "web-2";
    const vmIds: Record<string, string> = {
      "web-2": "a2a2a2a2-0000-4000-8000-000000000002",
      "web-3": "a3a3a3a3-0000-4000-8000-000000000003",
    };
    const rid = (name: string) =>
      `/subscriptions/${AZ.subscription}/resourcegroups/rg-web/providers/Microsoft.Compute/virtualMachines/${name}`;
    beforeAll(async () => {
      imds = await startFakeImds({
        attest: (nonce) => attestedDocument(attestedContent(nonce, { vmId: vmIds[vmName] })),
        token: () => accessToken(keys.entra, { xms_az_rid: rid(vmName), xms_mirid: rid(vmName) }),
      });
    });
    afterAll(() => imds?.close());
    const setVm = (name: string) => {
      vmName = name;
      vmMap.set(`${AZ.subscription}/rg-web/${name}`, liveAzureVm({ vmId: vmIds[name] }));
    };

    // The CLI offers the join methods of registered clouds; azure is registered in provider/clouds/index.ts.
    it("discovery join --method azure joins with IMDS's document and token", async () => {
      setVm("web-2");
      // The CA file comes first: the runtime reads join.azure.extra_ca_certs when it starts.
      const dir = fs.mkdtempSync(path.join(rt.dir, "node-"));
      const r = await discoveryAsync(
        ["join", "--method", "azure", "--token", "azure-token", "--server", rt.url]
          .concat(["--ca-cert", path.join(rt.dir, "data", "tls.crt")])
          .concat(["--data-dir", dir, "--host-key", path.join(dir, "hk")]),
        { env: { AZURE_IMDS_ENDPOINT: imds.url } },
      );
      expect(r.stderr).toBe("");
      expect(r.stdout).toContain(`joined as ${AZ.subscription}-${vmIds["web-2"]}`);
    });

    it("the default installer (DISCOVERY_JOIN_METHOD=azure) joins the same way, under sh", async () => {
      setVm("web-3");
      // The CA file comes first: the runtime reads join.azure.extra_ca_certs when it starts.
      const dir = fs.mkdtempSync(path.join(rt.dir, "node-"));
      const env = {
        PATH: "/usr/sbin:/usr/bin:/bin",
        DISCOVERY_TOKEN: "azure-token",
        DISCOVERY_JOIN_METHOD: "azure",
        DISCOVERY_CA_PIN: rt.runtime.tls.publicKeyPin,
        DISCOVERY_DATA_DIR: dir,
        AZURE_IMDS_ENDPOINT: imds.url,
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
      expect(fs.readFileSync(path.join(dir, "node"), "utf8").trim()).toBe(`${AZ.subscription}-${vmIds["web-3"]}`);
      // Every IMDS request carried the Metadata header (the fake refuses others) and a nonce of 32 characters.
      const nonces = imds.hits.filter((h) => h.startsWith("/metadata/attested/document"));
      expect(nonces.length).toBeGreaterThan(0);
      expect(nonces.every((h) => /nonce=[A-Za-z0-9_-]{32}(&|$)/.test(h))).toBe(true);
    });
  });
});
