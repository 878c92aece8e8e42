import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { gcpJoinMethod } from "../../provider/clouds/gcp";
import { verifyIdToken } from "../../provider/clouds/gcp/attest-gcp";
import { GcpCallError, GcpInstance, GcpInstances } from "../../provider/clouds/gcp/instances";
import { cacheLifetimeMs, JwksCache, rsaSigningKeys } from "../../provider/clouds/jwks";
import { JoinRefusal } from "../../provider/join/errors";
import type { JoinSettings } from "../../provider/join/methods";
import { JoinService } from "../../provider/join/service";
import { openStore, Store } from "../../provider/runtime/store";
import { generateCertAuthority } from "../../provider/ssh";
import { computeClaims, FakeGoogleKey, fakeGoogleKey, liveVm, signToken, VM } from "../fixtures/gcp-tokens";
import { newHostKey } from "../fixtures/joins";

/**
 * The gcp join through the real join service (SQLite store), with Google's key set and Compute faked in memory:
 * every check refuses with its own code, and nothing is fetched or looked up for a malformed token.
 */
const CLUSTER = "discovery.test";
const JWKS_URL = "https://www.googleapis.com/oauth2/v3/certs";
const SETTINGS: JoinSettings = {
  aws: { extraCaPems: [], stsEndpoint: "https://sts.amazonaws.com" },
  gcp: { issuer: "https://accounts.google.com", jwksUrl: JWKS_URL },
  azure: { extraCaPems: [], jwksUrl: "https://login.microsoftonline.com/common/discovery/keys" },
};
const gcpToken = (name: string, allow: Record<string, unknown>[]) => ({
  kind: "token",
  key: name,
  doc: { kind: "token", version: "v2", metadata: { name }, spec: { roles: ["Node"], join_method: "gcp", gcp: { allow } } }, // prettier-ignore
});
const TOKENS = [
  gcpToken("gcp", [{ project_ids: [VM.project], locations: ["us-central1"], service_accounts: [VM.email] }]),
  gcpToken("gcp-zone", [{ project_ids: [VM.project], locations: [VM.zone] }]),
  gcpToken("gcp-other-project", [{ project_ids: ["acme-dev"] }]),
  // A prefix of the region is not the region: us-central must not allow us-central1-a.
  gcpToken("gcp-other-location", [{ project_ids: [VM.project], locations: ["us-central", "us-east1"] }]),
  gcpToken("gcp-other-sa", [{ project_ids: [VM.project], service_accounts: ["ci@acme-prod.iam.gserviceaccount.com"] }]), // prettier-ignore
];

const keys = {} as Record<"google" | "forger" | "unlisted", FakeGoogleKey>;
const net = { jwksFetches: 0, instanceGets: 0 };
const vms = new Map<string, GcpInstance | "deny">();
const instances: GcpInstances = {
  async get(project, zone, name) {
    net.instanceGets++;
    const vm = vms.get(`${project}/${zone}/${name}`);
    if (vm === "deny") throw new GcpCallError("compute.instances.get", "PERMISSION_DENIED", new Error("denied"));
    return vm;
  },
};
const jwksFetch = async () => {
  net.jwksFetches++;
  return new Response(JSON.stringify({ keys: [keys.google.jwk] }), { headers: { "cache-control": "max-age=3600" } });
};

describe("gcp join: attestation through the join service", () => {
  let dir: string;
  let store: Store;
  let service: JoinService;

  beforeAll(async () => {
    keys.google = fakeGoogleKey("google-1");
    keys.forger = fakeGoogleKey("google-1"); // Google's kid, someone else's key
    keys.unlisted = fakeGoogleKey("sa-key-7f3e"); // e.g. a service account's own key (CVE-2020-16251)
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-gcp-"));
    store = await openStore({ type: "sqlite", path: path.join(dir, "state.db") });
    await store.initCertAuthority(generateCertAuthority("host"));
    await store.initCertAuthority(generateCertAuthority("user"));
    await store.putResources(TOKENS);
    service = new JoinService({
      store,
      clusterName: CLUSTER,
      settings: SETTINGS,
      rateLimit: { requestsPerMinute: 10_000, burst: 10_000 },
      certificateTtlSeconds: 3600,
      methods: { gcp: gcpJoinMethod({ instances, jwks: { fetch: jwksFetch } }) },
    });
  });
  afterAll(async () => {
    await store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    vms.clear();
    vms.set(`${VM.project}/${VM.zone}/${VM.name}`, liveVm());
  });

  const join = (idToken: unknown, token = "gcp") =>
    service.join({ method: "gcp", token, host_public_key: newHostKey(), id_token: idToken }, "unit");
  async function refusal(p: Promise<unknown>): Promise<[string, number]> {
    const e = await p.then(
      () => new Error("expected a refusal"),
      (err: unknown) => err,
    );
    if (e instanceof JoinRefusal) return [e.code, e.status];
    throw e;
  }
  const claims = (over: Record<string, unknown> = {}) => ({ ...computeClaims(CLUSTER), ...over });
  const google = (c = claims(), header?: Record<string, unknown>) => signToken(c, keys.google, { header });
  const setVm = (over: Partial<GcpInstance> | "deny" | undefined) => {
    const key = `${VM.project}/${VM.zone}/${VM.name}`;
    if (over === undefined) vms.delete(key);
    else vms.set(key, over === "deny" ? "deny" : liveVm(over));
  };

  describe("malformed tokens: 400 before the token is loaded or anything fetched", () => {
    const cases: [string, unknown][] = [
      ["no id_token", undefined],
      ["a number", 42],
      ["two parts", "a.b"],
      ["not base64url JSON", "!!.e30.c2ln"],
      ["a payload that is a list", `${Buffer.from('{"alg":"RS256","kid":"k"}').toString("base64url")}.WzFd.c2ln`],
      ["no kid", `${Buffer.from('{"alg":"RS256"}').toString("base64url")}.e30.c2ln`],
      ["over 8 KiB", `${"a".repeat(9000)}.e30.c2ln`],
    ];
    it.each(cases)("%s", async (_name, idToken) => {
      const before = { ...net };
      // An unknown token name too: the shape is checked first, so the answer says nothing about names.
      expect(await refusal(join(idToken, "no-such-token"))).toEqual(["gcp_token_malformed", 400]);
      expect(net).toEqual(before);
    });
  });

  describe("denied tokens and VMs: 403 with the failed check's code", () => {
    const now = Date.now();
    const cases: [string, () => string | Promise<string>, string, (Partial<GcpInstance> | "deny")?, string?][] = [
      ["signed by a forged key under Google's kid", () => signToken(claims(), keys.forger), "gcp_signature_invalid"],
      ["a kid not in Google's key set (a service account's key)", () => signToken(claims(), keys.unlisted), "gcp_key_unknown"], // prettier-ignore
      ["alg none", () => google(claims(), { alg: "none" }), "gcp_algorithm_not_allowed"],
      [
        "HS256 keyed with Google's public key",
        () => signToken(claims(), keys.google, { header: { alg: "HS256" }, hmacSecret: keys.google.publicKey.export({ type: "spki", format: "pem" }) as Buffer }), // prettier-ignore
        "gcp_algorithm_not_allowed",
      ],
      ["RS512", () => google(claims(), { alg: "RS512" }), "gcp_algorithm_not_allowed"],
      ["issuer of a service account", () => google(claims({ iss: VM.email })), "gcp_issuer_invalid"],
      ["issuer accounts.google.com without https", () => google(claims({ iss: "accounts.google.com" })), "gcp_issuer_invalid"], // prettier-ignore
      ["audience of another cluster", () => google(claims({ aud: "other.cluster" })), "gcp_audience_invalid"],
      ["expired (2 min ago)", () => google(claims({ exp: Math.floor(now / 1000) - 120 })), "gcp_token_expired"],
      ["minted over an hour ago", () => google(computeClaims(CLUSTER, 3700 + 120)), "gcp_token_expired"],
      ["iat 2 min in the future", () => google(computeClaims(CLUSTER, -120)), "gcp_token_from_future"],
      ["no google.compute_engine claims (a user's or service account's token)", () => google(claims({ google: undefined })), "gcp_compute_claims_missing"], // prettier-ignore
      [
        "compute claims with a path in the zone",
        () => google(claims({ google: { compute_engine: { ...(computeClaims(CLUSTER).google as any).compute_engine, zone: "../x" } } })), // prettier-ignore
        "gcp_compute_claims_invalid",
      ],
      ["project not allowed", () => google(), "gcp_project_not_allowed", undefined, "gcp-other-project"],
      ["location not allowed (a region prefix is no region)", () => google(), "gcp_location_not_allowed", undefined, "gcp-other-location"], // prettier-ignore
      ["service account not allowed", () => google(), "gcp_service_account_not_allowed", undefined, "gcp-other-sa"],
      ["VM stopped", () => google(), "gcp_instance_not_running", { status: "TERMINATED" }],
      ["VM recreated: same name, other creation time", () => google(), "gcp_instance_recreated", { creationTimestamp: "2024-05-01T10:00:00.000-07:00" }], // prettier-ignore
      ["VM recreated: same name, other id", () => google(), "gcp_instance_recreated", { id: "999" }],
      ["VM deleted", () => google(), "gcp_instance_not_found", "gone" as never],
      ["Compute refuses instances.get", () => google(), "gcp_instance_check_failed", "deny"],
      ["VM now runs as another service account", () => google(), "gcp_service_account_mismatch", { serviceAccounts: ["x@y.iam.gserviceaccount.com"] }], // prettier-ignore
    ];
    // Rest parameters: jest takes a function with more parameters than a row has cells to want `done`.
    it.each(cases)("%s", async (...[, make, code, vm, token = "gcp"]) => {
      setVm((vm as unknown) === "gone" ? undefined : (vm ?? {}));
      expect(await refusal(join(await make(), token))).toEqual([code, 403]);
      expect(await store.listNodes()).toEqual([]);
    });
    it("names the permission when Compute refuses", async () => {
      setVm("deny");
      const e = await join(google()).catch((err: JoinRefusal) => err);
      expect((e as JoinRefusal).reason).toContain("compute.instances.get");
    });
  });

  it("accepts a VM's token once: node name and labels from the verified claims, then already_joined", async () => {
    const r = await service.join(
      { method: "gcp", token: "gcp-zone", host_public_key: newHostKey(), id_token: google() },
      "unit",
    );
    expect(r.node_name).toBe(`${VM.project}-${VM.zone}-${VM.id}`);
    expect(r.labels).toMatchObject({
      "discovery/project-id": VM.project,
      "discovery/zone": VM.zone,
      "discovery/instance-id": VM.id,
      "discovery/name": VM.name,
      "discovery/join-method": "gcp",
    });
    expect(await refusal(join(google()))).toEqual(["already_joined", 403]);
  });
});

describe("verifyIdToken: clock skew and an unreachable key set", () => {
  let k: FakeGoogleKey;
  beforeAll(() => (k = fakeGoogleKey("k")));
  const verify = (token: string, fetchOk = true) =>
    verifyIdToken(token, {
      jwks: new JwksCache("https://keys.test/certs", {
        fetch: async () =>
          fetchOk ? new Response(JSON.stringify({ keys: [k.jwk] })) : Promise.reject(new Error("ECONNREFUSED")),
      }),
      issuer: "https://accounts.google.com",
      audience: CLUSTER,
      now: new Date(),
    });
  const code = (p: Promise<unknown>) =>
    p.then(
      () => "accepted",
      (e: JoinRefusal) => `${e.code} ${e.status}`,
    );
  const at = (ageS: number, over: Record<string, unknown> = {}) =>
    signToken({ ...computeClaims(CLUSTER, ageS), ...over }, k);

  it("accepts within 60 s of skew on exp and iat, refuses beyond", async () => {
    const nowS = Math.floor(Date.now() / 1000);
    expect(await code(verify(at(10, { exp: nowS - 30 })))).toBe("accepted");
    expect(await code(verify(at(10, { exp: nowS - 90 })))).toBe("gcp_token_expired 403");
    expect(await code(verify(at(-30)))).toBe("accepted");
    expect(await code(verify(at(-90)))).toBe("gcp_token_from_future 403");
  });

  it("refuses when Google's key set cannot be fetched", async () => {
    expect(await code(verify(at(10), false))).toBe("gcp_keys_unavailable 403");
  });
});

describe("JwksCache", () => {
  const doc = (...ks: FakeGoogleKey[]) => JSON.stringify({ keys: ks.map((k) => k.jwk) });
  let a: FakeGoogleKey, b: FakeGoogleKey;
  beforeAll(() => {
    a = fakeGoogleKey("a");
    b = fakeGoogleKey("b");
  });

  it("honours max-age, then Expires, and treats no-store as the minimum", () => {
    const h = (o: Record<string, string>) => new Headers(o);
    expect(cacheLifetimeMs(h({ "cache-control": "public, max-age=21600, must-revalidate" }), 0)).toBe(21_600_000);
    const date = "Mon, 30 Nov 2026 10:00:00 GMT";
    expect(cacheLifetimeMs(h({ expires: "Mon, 30 Nov 2026 11:00:00 GMT", date }), 0)).toBe(3_600_000);
    expect(cacheLifetimeMs(h({ "cache-control": "no-store, max-age=60" }), 0)).toBe(0);
    expect(cacheLifetimeMs(h({}), 0)).toBeUndefined();
  });

  it("keeps only RSA signature keys of 2048 bits or more", () => {
    const weak = { ...a.jwk, kid: "hs", kty: "oct", k: "c2VjcmV0" };
    const enc = { ...a.jwk, kid: "enc", use: "enc" };
    const es = { ...a.jwk, kid: "es", alg: "ES256" };
    const got = rsaSigningKeys({ keys: [a.jwk, weak, enc, es] });
    expect([...got.keys()]).toEqual(["a"]);
  });

  it("caches by expiry, refetches an unknown kid at most once per interval, and refuses a dead key set", async () => {
    let t = 0;
    let body = doc(a);
    let status = 200;
    let fetches = 0;
    const cache = new JwksCache("https://keys.test/certs", {
      now: () => t,
      refetchIntervalMs: 30_000,
      fetch: async () => {
        fetches++;
        return new Response(body, { status, headers: { "cache-control": "max-age=600" } });
      },
    });
    expect(await cache.key("a")).toBeDefined();
    expect(await cache.key("a")).toBeDefined();
    expect(fetches).toBe(1);
    body = doc(a, b); // Google rotates a key in before our copy expires
    t = 1_000;
    expect(await cache.key("b")).toBeUndefined(); // within the interval of the last fetch: no refetch
    t = 31_000;
    expect(await cache.key("b")).toBeDefined();
    expect(await cache.key("zzz")).toBeUndefined();
    expect(fetches).toBe(2);
    status = 500;
    t = 31_000 + 601_000; // expired, and Google fails: refused, not accepted on stale keys
    await expect(cache.key("a")).rejects.toThrow(/HTTP 500/);
    await expect(cache.key("a")).rejects.toThrow(/HTTP 500/);
    expect(fetches).toBe(3); // the failure is not retried for every join
  });
});
