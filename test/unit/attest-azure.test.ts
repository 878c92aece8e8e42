import { execFileSync } from "child_process";
import { X509Certificate } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { AzureVirtualMachines, AzureVm } from "../../provider/clouds/azure/attest-azure";
import { AZURE_ROOT_PEMS } from "../../provider/clouds/azure/attested-document";
import { azureJoinMethod } from "../../provider/clouds/azure/join";
import type { FakeGoogleKey } from "../fixtures/gcp-tokens";
import { signToken } from "../fixtures/gcp-tokens";
import { JoinRefusal } from "../../provider/join/errors";
import type { JoinSettings } from "../../provider/join/methods";
import { JoinService } from "../../provider/join/service";
import { openStore, Store } from "../../provider/runtime/store";
import { createSigner, TestSigner } from "../../provider/sandbox/iid-signer";
import { generateCertAuthority } from "../../provider/ssh";
import {
  AZ,
  AZ_LABELS,
  AZ_VM_KEY,
  accessToken,
  accessTokenClaims,
  attestedContent,
  attestedDocument,
  AttestedForge,
  azureTrust,
  AzureTrust,
  entraKey,
  imdsTime,
  liveAzureVm,
  memoryVms,
} from "../fixtures/azure-tokens";
import { newHostKey } from "../fixtures/joins";

/**
 * The azure join through the real join service (SQLite store), with Entra ID's key set and ARM faked in memory:
 * every check refuses with its own code and stores nothing; a malformed request burns no challenge and calls
 * nothing; a VM joins once, named `<subscription>-<vmId>`.
 */
const JWKS_URL = "https://login.microsoftonline.com/common/discovery/keys";
const NODE = `${AZ.subscription}-${AZ.vmId}`;
const azureToken = (name: string, allow: Record<string, unknown>[]) => ({
  kind: "token",
  key: name,
  doc: { kind: "token", version: "v2", metadata: { name }, spec: { roles: ["Node"], join_method: "azure", azure: { allow } } }, // prettier-ignore
});
const TOKENS = [
  azureToken("azure", [{ subscription: AZ.subscription, resource_groups: ["RG-WEB"] }]),
  azureToken("azure-b", [{ subscription: AZ.subscription }]),
  azureToken("azure-other-sub", [{ subscription: AZ.otherSubscription }]),
  azureToken("azure-other-rg", [{ subscription: AZ.subscription, resource_groups: ["rg-db"] }]),
];

const keys = {} as Record<"entra" | "forger" | "unlisted", FakeGoogleKey>;
const net = { jwksFetches: 0 };
const vmMap = new Map<string, AzureVm>();
const vms = memoryVms(vmMap);
// Entra ID's key set, counted: a malformed request must not fetch it.
const entraJwks = { fetch: async () => (net.jwksFetches++, Response.json({ keys: [keys.entra.jwk] })) };

/** A join service over a fresh SQLite store with the test tokens, trusting the test Azure root, reading `reader`. */
async function joinServiceWith(
  reader: AzureVirtualMachines,
): Promise<{ dir: string; store: Store; service: JoinService }> {
  const t = await azureTrust();
  const settings: JoinSettings = {
    aws: { extraCaPems: [], stsEndpoint: "https://sts.amazonaws.com" },
    gcp: { issuer: "https://accounts.google.com", jwksUrl: "https://www.googleapis.com/oauth2/v3/certs" },
    azure: { extraCaPems: [t.root.certPem], jwksUrl: JWKS_URL },
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-azure-"));
  const store = await openStore({ type: "sqlite", path: path.join(dir, "state.db") });
  await store.initCertAuthority(generateCertAuthority("host"));
  await store.initCertAuthority(generateCertAuthority("user"));
  await store.putResources(TOKENS);
  const service = new JoinService({
    store,
    clusterName: "discovery.test",
    settings,
    rateLimit: { requestsPerMinute: 10_000, burst: 10_000 },
    certificateTtlSeconds: 3600,
    methods: { azure: azureJoinMethod({ vms: reader, jwks: entraJwks }) },
  });
  return { dir, store, service };
}

describe("azure join: attestation through the join service", () => {
  let dir: string;
  let store: Store;
  let service: JoinService;
  let t: AzureTrust;
  const strangers = {} as Record<"root" | "intermediate" | "signer" | "selfSigned" | "wrongName", TestSigner>;

  beforeAll(async () => {
    t = await azureTrust();
    keys.entra = entraKey("entra-1");
    keys.forger = entraKey("entra-1"); // Entra ID's kid, someone else's key
    keys.unlisted = entraKey("not-entra");
    strangers.root = await createSigner({ commonName: "Evil Root CA" });
    strangers.intermediate = await createSigner({ commonName: "Evil Issuing CA", issuer: strangers.root, isCa: true }); // prettier-ignore
    strangers.signer = await createSigner({ commonName: "metadata.azure.com", issuer: strangers.intermediate });
    strangers.selfSigned = await createSigner({ commonName: "metadata.azure.com", isCa: false });
    strangers.wrongName = await createSigner({ commonName: "evil.example.com", issuer: t.intermediate });
    ({ dir, store, service } = await joinServiceWith(vms));
  });
  afterAll(async () => {
    await store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    vmMap.clear();
    vmMap.set(AZ_VM_KEY, liveAzureVm());
    for (const n of await store.listNodes()) await store.deleteNode(n.name);
  });

  const challenge = async (token = "azure") => (await service.challenge({ method: "azure", token }, "unit")).challenge;
  const join = (fields: Record<string, unknown>, token = "azure") =>
    service.join({ method: "azure", token, host_public_key: newHostKey(), ...fields }, "unit");
  async function refusal(p: Promise<unknown>): Promise<[string, number]> {
    const e = await p.then(
      () => new Error("expected a refusal"),
      (err: unknown) => err,
    );
    if (e instanceof JoinRefusal) return [e.code, e.status];
    throw e;
  }
  /** A valid request for a fresh challenge; `over` replaces fields (functions get the challenge). */
  async function request(
    opts: {
      token?: string;
      content?: (c: string) => object;
      forge?: AttestedForge & { signer?: TestSigner };
      accessToken?: () => string;
    } = {},
  ) {
    const c = await challenge(opts.token);
    const attested_data = await attestedDocument(opts.content?.(c) ?? attestedContent(c), opts.forge);
    return { challenge: c, attested_data, access_token: opts.accessToken?.() ?? accessToken(keys.entra) };
  }

  describe("malformed requests: 400 before the token is loaded, the challenge consumed or anything fetched", () => {
    const cases: [string, Record<string, unknown>, string][] = [
      ["no attested_data", { attested_data: undefined }, "azure_attested_data_malformed"],
      ["attested_data not base64", { attested_data: { encoding: "pkcs7", signature: "@@@@" } }, "azure_attested_data_malformed"], // prettier-ignore
      ["attested_data another encoding", { attested_data: { encoding: "jwt", signature: "AAAA" } }, "azure_attested_data_malformed"], // prettier-ignore
      ["attested_data not PKCS7", { attested_data: Buffer.from("hello world!").toString("base64") }, "azure_attested_data_malformed"], // prettier-ignore
      ["no access_token", { access_token: undefined }, "azure_access_token_malformed"],
      ["access_token not a JWT", { access_token: "a.b" }, "azure_access_token_malformed"],
      ["access_token over 16 KiB", { access_token: `${"a".repeat(17000)}.e30.c2ln` }, "azure_access_token_malformed"],
    ];
    it.each(cases)("%s", async (_name, over, code) => {
      const good = await request();
      const before = { jwks: net.jwksFetches, vms: vms.calls };
      // An unknown token name too: the shape is checked first, so the answer says nothing about names.
      expect(await refusal(join({ ...good, ...over }, "no-such-token"))).toEqual([code, 400]);
      expect({ jwks: net.jwksFetches, vms: vms.calls }).toEqual(before);
      // The challenge was not burnt: the same request, well formed, joins with it.
      expect((await join(good)).node_name).toBe(NODE);
    });
  });

  describe("denied documents, tokens and VMs: 403 with the failed check's code, nothing stored", () => {
    const now = () => Math.floor(Date.now() / 1000);
    const cases: [string, () => Promise<Record<string, unknown>>, string, string?][] = [
      // The attested document.
      ["signer CN is not metadata.azure.com", () => request({ forge: { signer: strangers.wrongName } }), "azure_signer_not_metadata"], // prettier-ignore
      ["signer chains to an untrusted root", () => request({ forge: { signer: strangers.signer, bag: [strangers.signer, strangers.intermediate] } }), "azure_untrusted_signer"], // prettier-ignore
      ["self-signed metadata.azure.com", () => request({ forge: { signer: strangers.selfSigned, bag: [strangers.selfSigned] } }), "azure_untrusted_signer"], // prettier-ignore
      ["bag anchoring: trusted signer first in the bag, content signed by an untrusted certificate", () => request({ forge: { signer: strangers.selfSigned, bag: [t.signer, t.intermediate, strangers.selfSigned] } }), "azure_untrusted_signer"], // prettier-ignore
      ["bag anchoring: SignerInfo names the trusted signer, an untrusted key signed", () => request({ forge: { signWith: strangers.selfSigned, bag: [t.signer, t.intermediate] } }), "azure_signature_invalid"], // prettier-ignore
      ["signer certificate expired", async () => request({ forge: { signer: await createSigner({ commonName: "metadata.azure.com", issuer: t.intermediate, notBefore: new Date(Date.now() - 2 * 86400_000), notAfter: new Date(Date.now() - 86400_000) }) } }), "azure_untrusted_signer"], // prettier-ignore
      ["signer issued by a leaf of the trusted chain", async () => { const leafCa = await createSigner({ commonName: "metadata.azure.com", issuer: t.intermediate }); return request({ forge: { signer: await createSigner({ commonName: "metadata.azure.com", issuer: leafCa }), bag: [leafCa] } }); }, "azure_untrusted_signer"], // prettier-ignore
      ["no certificates in the bag", () => request({ forge: { bag: [] } }), "azure_untrusted_signer"],
      ["tampered content", () => request({ forge: { tamperContent: (s) => s.replace(AZ.vmId, "00000000-0000-4000-8000-000000000000") } }), "azure_signature_invalid"], // prettier-ignore
      ["no signed attributes", () => request({ forge: { noSignedAttributes: true } }), "azure_signature_invalid"],
      ["expired document", () => request({ content: (c) => attestedContent(c, { timeStamp: { createdOn: imdsTime(new Date(Date.now() - 8 * 3600_000)), expiresOn: imdsTime(new Date(Date.now() - 2 * 3600_000)) } }) }), "azure_attested_data_expired"], // prettier-ignore
      ["vmId not a UUID", () => request({ content: (c) => attestedContent(c, { vmId: "web-1" }) }), "azure_attested_data_invalid"], // prettier-ignore
      // The nonce.
      ["a foreign nonce", () => request({ content: () => attestedContent("A".repeat(32)) }), "azure_nonce_mismatch"],
      ["no nonce", () => request({ content: (c) => attestedContent(c, { nonce: undefined }) }), "azure_nonce_mismatch"], // prettier-ignore
      ["the nonce of another token's challenge", async () => { const other = await challenge("azure-b"); return request({ content: () => attestedContent(other) }); }, "azure_nonce_mismatch"], // prettier-ignore
      // The access token.
      ["token for another subscription", () => request({ accessToken: () => accessToken(keys.entra, { xms_az_rid: undefined, xms_mirid: `/subscriptions/${AZ.otherSubscription}/resourcegroups/${AZ.resourceGroup}/providers/Microsoft.Compute/virtualMachines/${AZ.vmName}` }) }), "azure_subscription_mismatch"], // prettier-ignore
      ["token of a user-assigned identity, no VM named", () => request({ accessToken: () => accessToken(keys.entra, { xms_az_rid: undefined, xms_mirid: `/subscriptions/${AZ.subscription}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1` }) }), "azure_token_not_vm"], // prettier-ignore
      ["expired token", () => request({ accessToken: () => accessToken(keys.entra, { exp: now() - 120 }) }), "azure_token_expired"], // prettier-ignore
      ["token not yet valid", () => request({ accessToken: () => accessToken(keys.entra, { nbf: now() + 600, iat: now() + 600 }) }), "azure_token_not_yet_valid"], // prettier-ignore
      ["token for Microsoft Graph", () => request({ accessToken: () => accessToken(keys.entra, { aud: "https://graph.microsoft.com" }) }), "azure_audience_invalid"], // prettier-ignore
      ["issuer of another tenant", () => request({ accessToken: () => accessToken(keys.entra, { iss: `https://sts.windows.net/${AZ.otherSubscription}/` }) }), "azure_issuer_invalid"], // prettier-ignore
      ["issuer login.microsoftonline.com v2 of an attacker", () => request({ accessToken: () => accessToken(keys.entra, { iss: "https://login.microsoftonline.com/evil/v2.0" }) }), "azure_issuer_invalid"], // prettier-ignore
      ["alg none", () => request({ accessToken: () => accessToken(keys.entra, {}, { header: { alg: "none" } }) }), "azure_algorithm_not_allowed"], // prettier-ignore
      ["HS256 keyed with Entra ID's public key", () => request({ accessToken: () => accessToken(keys.entra, {}, { header: { alg: "HS256" }, hmacSecret: Buffer.from(JSON.stringify(keys.entra.jwk)) }) }), "azure_algorithm_not_allowed"], // prettier-ignore
      ["unknown kid", () => request({ accessToken: () => accessToken(keys.unlisted) }), "azure_key_unknown"],
      ["forged key under Entra ID's kid", () => request({ accessToken: () => accessToken(keys.forger) }), "azure_signature_invalid"], // prettier-ignore
      // The allow rules.
      ["subscription not allowed", () => request({ token: "azure-other-sub" }), "azure_subscription_not_allowed", "azure-other-sub"], // prettier-ignore
      ["resource group not allowed", () => request({ token: "azure-other-rg" }), "azure_resource_group_not_allowed", "azure-other-rg"], // prettier-ignore
    ];
    it.each(cases)("%s", async (...[, make, code, token]) => {
      expect(await refusal(join(await make(), token))).toEqual([code, 403]);
      expect(await store.getNode(NODE)).toBeUndefined();
    });

    const vmCases: [string, AzureVm | undefined, string][] = [
      ["VM deallocated", liveAzureVm({ powerState: "PowerState/deallocated" }), "azure_vm_not_running"],
      ["VM recreated under the same name (another vmId)", liveAzureVm({ vmId: "11111111-2222-4333-8444-555555555555" }), "azure_vm_recreated"], // prettier-ignore
      ["VM missing", undefined, "azure_vm_not_found"],
    ];
    it.each(vmCases)("%s", async (_name, vm, code) => {
      if (vm) vmMap.set(AZ_VM_KEY, vm);
      else vmMap.delete(AZ_VM_KEY);
      expect(await refusal(join(await request()))).toEqual([code, 403]);
      expect(await store.getNode(NODE)).toBeUndefined();
    });

    it("two signers: 400, as Azure signs with exactly one", async () => {
      const body = await request({ forge: { extraSigners: [t.signer] } });
      expect(await refusal(join(body))).toEqual(["azure_attested_data_malformed", 400]);
    });

    it("a reused nonce: a document for a spent challenge does not sign a new one", async () => {
      const first = await request();
      await join(first);
      await store.deleteNode(NODE);
      const c = await challenge();
      expect(await refusal(join({ ...first, challenge: c }))).toEqual(["azure_nonce_mismatch", 403]);
      expect(await refusal(join(first))).toEqual(["challenge_invalid", 403]);
    });
  });

  it("accepts the VM once, named and labelled from its verified fields; a replay is already_joined", async () => {
    const hostKey = newHostKey();
    const r = await service.join({ method: "azure", token: "azure", host_public_key: hostKey, ...(await request()) }, "unit"); // prettier-ignore
    expect(r.node_name).toBe(NODE);
    expect(r.labels).toEqual(AZ_LABELS);
    // The host certificate as OpenSSH reads it: the node's key, named for the VM.
    const certFile = path.join(dir, "host-cert.pub");
    fs.writeFileSync(certFile, r.host_certificate + "\n");
    const shown = execFileSync("ssh-keygen", ["-L", "-f", certFile], { encoding: "utf8" });
    expect(shown).toMatch(/Type: ssh-ed25519-cert-v01@openssh.com host certificate/);
    expect(shown).toContain(`Key ID: "${NODE}"`);
    expect(shown).toMatch(new RegExp(`Principals:\\s*\\n\\s+${NODE}\\n\\s+${AZ.vmName}\\n`));
    expect((await store.getNode(NODE))?.joinMethod).toBe("azure");
    // Another challenge, a fresh document and token of the same VM: still one join per VM.
    expect(await refusal(join(await request()))).toEqual(["already_joined", 403]);
    // A sovereign cloud's metadata signer is one of Azure's too.
    await store.deleteNode(NODE);
    const us = await createSigner({ commonName: "metadata.azure.us", issuer: t.intermediate });
    expect((await join(await request({ forge: { signer: us } }))).node_name).toBe(NODE);
    // The token may name the VM only by xms_mirid, and the audience without its trailing slash.
    await store.deleteNode(NODE);
    const alt = await request({ token: "azure-b", accessToken: () => signToken(accessTokenClaims({ xms_az_rid: undefined, aud: "https://management.azure.com" }), keys.entra) }); // prettier-ignore
    expect((await join(alt, "azure-b")).node_name).toBe(NODE);
  });
});

describe("azure join: VMs of a uniform scale set", () => {
  // Their system-assigned identity is the scale set's: the token names the set (xms_mirid), perhaps the instance
  // (xms_az_rid), and the attested vmId says which of its VMs this is.
  const SET = `/subscriptions/${AZ.subscription}/resourcegroups/${AZ.resourceGroup}/providers/Microsoft.Compute/virtualMachineScaleSets/ss-web`; // prettier-ignore
  const KEY = `${AZ.subscription}/${AZ.resourceGroup}/ss-web/ss-web_3`.toLowerCase();
  let ctx: { service: JoinService; store: Store; dir: string };
  const setVms = new Map<string, AzureVm>();

  beforeAll(async () => {
    ctx = await joinServiceWith(memoryVms(setVms));
  });
  afterAll(async () => {
    await ctx.store.close();
    fs.rmSync(ctx.dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    setVms.clear();
    setVms.set(KEY, liveAzureVm({ name: "ss-web_3" }));
    for (const n of await ctx.store.listNodes()) await ctx.store.deleteNode(n.name);
  });

  const joinWith = async (claims: Record<string, unknown>) => {
    const c = (await ctx.service.challenge({ method: "azure", token: "azure-b" }, "unit")).challenge;
    const body = {
      challenge: c,
      attested_data: await attestedDocument(attestedContent(c)),
      access_token: signToken(accessTokenClaims(claims), keys.entra),
    };
    return ctx.service.join({ method: "azure", token: "azure-b", host_public_key: newHostKey(), ...body }, "unit");
  };
  const refusedWith = async (claims: Record<string, unknown>) =>
    joinWith(claims).then(
      () => ["joined", 200],
      (e: unknown) => (e instanceof JoinRefusal ? [e.code, e.status] : Promise.reject(e)),
    );

  it("a token naming only the scale set: the VM is found in the set by its attested vmId", async () => {
    const r = await joinWith({ xms_az_rid: undefined, xms_mirid: SET });
    expect(r.node_name).toBe(NODE);
    expect(r.labels).toMatchObject({ "discovery/scale-set": "ss-web", "discovery/name": "ss-web_3", "discovery/vm-id": AZ.vmId }); // prettier-ignore
  });

  it("a token naming the set's instance: that instance must be the attested VM", async () => {
    expect((await joinWith({ xms_az_rid: `${SET}/virtualMachines/3`, xms_mirid: SET })).node_name).toBe(NODE);
    await ctx.store.deleteNode(NODE);
    expect(await refusedWith({ xms_az_rid: `${SET}/virtualMachines/4`, xms_mirid: SET })).toEqual(["azure_vm_recreated", 403]); // prettier-ignore
  });

  it("refused when the set has no VM with the attested vmId, or it is not running", async () => {
    setVms.set(KEY, liveAzureVm({ name: "ss-web_3", vmId: "00000000-0000-4000-8000-000000000000" }));
    expect(await refusedWith({ xms_az_rid: undefined, xms_mirid: SET })).toEqual(["azure_vm_not_found", 403]);
    setVms.set(KEY, liveAzureVm({ name: "ss-web_3", powerState: "PowerState/deallocated" }));
    expect(await refusedWith({ xms_az_rid: undefined, xms_mirid: SET })).toEqual(["azure_vm_not_running", 403]);
  });
});

describe("azure trust anchors", () => {
  it("pins DigiCert Global Root G2 and Microsoft RSA Root Certificate Authority 2017 by their published thumbprints", () => {
    const thumbprints = AZURE_ROOT_PEMS.map((pem) =>
      new X509Certificate(pem).fingerprint.replace(/:/g, "").toLowerCase(),
    );
    // learn.microsoft.com, Azure Certificate Authority details: the roots' SHA-1 thumbprints.
    expect(thumbprints).toEqual([
      "df3c24f9bfd666761b268073fe06d1cc8d4f82a4",
      "73a5e64a3bff8316ff0edccc618a906e4eae4d74",
    ]);
  });
});
