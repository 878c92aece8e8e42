/**
 * The gcp join: a Compute Engine identity token (metadata server, `format=full`, audience = the cluster name),
 * verified as RS256 against Google's key set only, matched against the token's `gcp.allow` rules, then checked
 * live with `instances.get` (running, same creation time and id), so a deleted and recreated VM of the same name
 * cannot spend a token its predecessor fetched.
 */
import type { KeyObject } from "crypto";
import type { JWTPayload } from "jose";
import { JoinRefusal } from "../../join/errors";
import type { Token } from "../../model";
import { GcpCallError, GcpInstances } from "./instances";
import { JwksCache, JwksUnavailable } from "../jwks";
import type { AllowProblem } from "../plugin";

/** Longest `id_token` accepted; Google's `format=full` tokens are about 1.2 KB. */
export const MAX_ID_TOKEN_CHARS = 8 * 1024;
/** Clock skew allowed on `exp` and `iat`, in seconds. */
export const CLOCK_SKEW_S = 60;
/** Google's identity tokens live one hour; one claiming a longer life is refused as expired. */
const MAX_TOKEN_AGE_S = 3600;

/** What a verified token says about its VM; every field comes from the signed `google.compute_engine` claims. */
export interface GceIdentity {
  projectId: string;
  zone: string;
  instanceId: string;
  instanceName: string;
  /** `instance_creation_timestamp`: seconds since the epoch. */
  createdAt: number;
  /** The service account the token was minted for, if the token names it. */
  email?: string;
}

const refusal = (code: string, reason: string, status: 400 | 403 | 429 = 403) =>
  new JoinRefusal(code, `gcp identity token: ${reason}`, status);
const malformed = (reason: string) => refusal("gcp_token_malformed", reason, 400);
// Values from the request end up in reasons and logs: quoted and cut short.
const quote = (v: unknown) => (JSON.stringify(v) ?? String(v)).slice(0, 80);

function segmentJson(segment: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(segment, "base64url").toString("utf8"));
  } catch {
    throw malformed(`the ${what} is not base64url JSON`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw malformed(`the ${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

/** The unverified header of a compact JWS; 400 for anything that is not one. Runs before any lookup or fetch. */
export function parseIdTokenShape(token: unknown): { alg: string; kid: string } {
  if (typeof token !== "string" || token.length === 0)
    throw malformed('request field "id_token" is required: the metadata server identity token, format=full');
  if (token.length > MAX_ID_TOKEN_CHARS) throw malformed(`${token.length} characters, over ${MAX_ID_TOKEN_CHARS}`);
  const parts = token.split(".");
  if (
    parts.length !== 3 ||
    !parts.slice(0, 2).every((p) => /^[A-Za-z0-9_-]+$/.test(p)) ||
    !/^[A-Za-z0-9_-]*$/.test(parts[2])
  )
    throw malformed("not a compact JWT (three base64url parts)");
  const header = segmentJson(parts[0], "header");
  segmentJson(parts[1], "payload");
  if (typeof header.alg !== "string") throw malformed('the header has no "alg"');
  if (typeof header.kid !== "string" || header.kid.length === 0 || header.kid.length > 128)
    throw malformed('the header has no "kid" (Google names its signing key)');
  return { alg: header.alg, kid: header.kid };
}

/** The join method's static check: the token's shape, before the token is loaded or anything fetched. */
export function checkGcpJoinRequest(body: Record<string, unknown>): void {
  parseIdTokenShape(body.id_token);
}

/** Settings of {@link verifyIdToken}. */
export interface VerifyIdTokenOptions {
  jwks: JwksCache;
  issuer: string;
  /** The cluster name: the audience the node asked the metadata server for. */
  audience: string;
  now: Date;
}

/** Maps jose's errors to refusals; anything unexpected becomes a signature refusal, never a 500. */
function joseRefusal(err: unknown): JoinRefusal {
  if (err instanceof JoinRefusal) return err;
  const e = err as { code?: string; claim?: string; message?: string };
  const msg = String(e?.message ?? "").slice(0, 120);
  switch (e?.code) {
    case "ERR_JWT_EXPIRED":
      return refusal("gcp_token_expired", `${msg}; fetch a fresh token from the metadata server`);
    case "ERR_JOSE_ALG_NOT_ALLOWED":
      return refusal("gcp_algorithm_not_allowed", "only RS256 tokens signed by Google are accepted");
    case "ERR_JWT_CLAIM_VALIDATION_FAILED":
      if (e.claim === "iss") return refusal("gcp_issuer_invalid", `iss is not the configured issuer (${msg})`);
      if (e.claim === "aud")
        return refusal("gcp_audience_invalid", "aud is not this cluster's name; ask for audience=<cluster_name>");
      if (e.claim === "iat" || e.claim === "nbf")
        return refusal("gcp_token_from_future", `${msg}; more than ${CLOCK_SKEW_S} s ahead of this server's clock`);
      return refusal("gcp_claims_invalid", msg);
    case "ERR_JWS_INVALID":
    case "ERR_JWT_INVALID":
      return malformed(msg);
    default:
      return refusal("gcp_signature_invalid", "the signature does not verify with Google's key");
  }
}

const CLAIM_FORMATS: Record<string, RegExp> = {
  project_id: /^[a-z][a-z0-9-]{0,28}[a-z0-9]$/,
  zone: /^[a-z]+-[a-z0-9]+-[a-z]$/,
  instance_id: /^\d{1,20}$/,
  instance_name: /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/,
};

/** The `google.compute_engine` claims of a verified payload; a token without them is not a VM's. */
function computeIdentity(payload: JWTPayload): GceIdentity {
  const ce = (payload.google as { compute_engine?: unknown } | undefined)?.compute_engine;
  if (ce === null || typeof ce !== "object")
    throw refusal(
      "gcp_compute_claims_missing",
      "no google.compute_engine claims: only a VM's metadata-server token with format=full is accepted",
    );
  const c = ce as Record<string, unknown>;
  const claim = (name: string): string => {
    const v = c[name];
    if (typeof v !== "string" || !CLAIM_FORMATS[name].test(v))
      throw refusal("gcp_compute_claims_invalid", `google.compute_engine.${name} ${quote(v)} is not valid`);
    return v;
  };
  const created = c.instance_creation_timestamp;
  if (typeof created !== "number" || !Number.isSafeInteger(created) || created <= 0)
    throw refusal("gcp_compute_claims_invalid", "google.compute_engine.instance_creation_timestamp is not a time");
  const email = typeof payload.email === "string" && payload.email.length <= 254 ? payload.email : undefined;
  return {
    projectId: claim("project_id"),
    zone: claim("zone"),
    instanceId: claim("instance_id"),
    instanceName: claim("instance_name"),
    createdAt: created,
    ...(email && { email: email.toLowerCase() }),
  };
}

/** Verifies an identity token (RS256, Google's keys, issuer, audience, exp/iat) and returns its VM's identity. */
export async function verifyIdToken(token: string, opts: VerifyIdTokenOptions): Promise<GceIdentity> {
  const { alg, kid } = parseIdTokenShape(token);
  // Refused before any key is looked up: `none`, HS256 keyed with the public key, ES256... only RS256 is Google's.
  if (alg !== "RS256") throw refusal("gcp_algorithm_not_allowed", `alg ${quote(alg)}: only RS256 is accepted`);
  let key: KeyObject | undefined;
  try {
    key = await opts.jwks.key(kid);
  } catch (err) {
    if (err instanceof JwksUnavailable) throw refusal("gcp_keys_unavailable", err.message);
    throw err;
  }
  if (!key) throw refusal("gcp_key_unknown", `kid ${quote(kid)} is not one of Google's current signing keys`);
  const { jwtVerify } = await import("jose");
  try {
    const { payload } = await jwtVerify(token, key, {
      algorithms: ["RS256"],
      issuer: opts.issuer,
      audience: opts.audience,
      clockTolerance: CLOCK_SKEW_S,
      maxTokenAge: MAX_TOKEN_AGE_S,
      currentDate: opts.now,
      requiredClaims: ["exp", "iat"],
    });
    return computeIdentity(payload);
  } catch (err) {
    throw joseRefusal(err);
  }
}

/** A gcp allow rule of a token. */
export type GcpAllowRule = NonNullable<Token["spec"]["gcp"]>["allow"][number];

/** The region of a zone: `us-central1-a` is in `us-central1`. */
export const zoneRegion = (zone: string) => zone.slice(0, zone.lastIndexOf("-"));

/**
 * The first rule that allows the VM: its project, its zone or the zone's region (exactly, never a prefix:
 * `us-central1` must not allow `us-central10-a`), and its service account when the rule lists some.
 */
export function matchGcpRule(id: GceIdentity, token: Token): GcpAllowRule {
  const rules = token.spec.gcp?.allow ?? [];
  const inProject = rules.filter((r) => r.project_ids.includes(id.projectId));
  const region = zoneRegion(id.zone);
  const located = inProject.filter((r) => !r.locations || r.locations.some((l) => l === id.zone || l === region));
  const email = id.email;
  const rule = located.find(
    (r) => !r.service_accounts || (!!email && r.service_accounts.some((s) => s.toLowerCase() === email)),
  );
  if (rule) return rule;
  const name = quote(token.metadata.name);
  if (!inProject.length)
    throw refusal("gcp_project_not_allowed", `project ${quote(id.projectId)}: no rule of token ${name} allows it`);
  const [code, what] = !located.length
    ? ["gcp_location_not_allowed", `zone ${quote(id.zone)} of project ${id.projectId}`]
    : ["gcp_service_account_not_allowed", `service account ${quote(email ?? "(none)")}`];
  throw refusal(code, `${what}: no rule of token ${name} allows it`);
}

/**
 * Checked before installing: whether a rule of `token` names the VM's project and its zone (or the zone's region,
 * or no locations). Service accounts are left to the join, which sees the VM's.
 */
export function gcpAllowProblem(token: Token, at: { account: string; region: string }): AllowProblem | undefined {
  const inProject = (token.spec.gcp?.allow ?? []).filter((r) => r.project_ids.includes(at.account));
  const region = zoneRegion(at.region);
  if (inProject.some((r) => !r.locations || r.locations.some((l) => l === at.region || l === region))) return undefined;
  const name = quote(token.metadata.name);
  return inProject.length
    ? {
        reason: `zone ${quote(at.region)} of project ${at.account}: no rule of token ${name} allows it`,
        fix: `add ${at.region} (or ${region}) to locations of the rule for project ${at.account} in token ${name}`,
      }
    : {
        reason: `project ${quote(at.account)}: no rule of token ${name} allows it`,
        fix:
          `add a rule {project_ids: [${at.account}]} to spec.gcp.allow of token ${name} (\`discovery apply -f\`), ` +
          "or name a token that allows the project in the matcher's install.join_params.token_name",
      };
}

/**
 * Asks Compute whether the VM still is the one the token was minted for: it exists, runs, and has the token's id
 * and creation time (a VM deleted and recreated under the same name has neither). A failed call refuses the join.
 */
export async function checkInstanceLive(id: GceIdentity, instances: GcpInstances): Promise<void> {
  const where = `projects/${id.projectId}/zones/${id.zone}/instances/${id.instanceName}`;
  let vm;
  try {
    vm = await instances.get(id.projectId, id.zone, id.instanceName);
  } catch (err) {
    if (!(err instanceof GcpCallError)) throw err;
    if (err.status === "RESOURCE_EXHAUSTED")
      throw refusal("gcp_throttled", `Compute throttled instances.get for ${where}; retry shortly`, 429);
    throw refusal(
      "gcp_instance_check_failed",
      `instances.get for ${where} failed (${err.message}); the runtime's service account needs ${err.permission}`,
    );
  }
  if (!vm) throw refusal("gcp_instance_not_found", `${where} does not exist`);
  const created = Math.floor(Date.parse(vm.creationTimestamp) / 1000);
  if (vm.id !== id.instanceId || created !== id.createdAt)
    throw refusal(
      "gcp_instance_recreated",
      `${where} is instance ${quote(vm.id)} created ${quote(vm.creationTimestamp)}, ` +
        `not the token's ${id.instanceId} created at ${new Date(id.createdAt * 1000).toISOString()}`,
    );
  if (vm.status !== "RUNNING")
    throw refusal("gcp_instance_not_running", `${where} is ${quote(vm.status)}, not RUNNING`);
  if (id.email && vm.serviceAccounts.length && !vm.serviceAccounts.some((s) => s.toLowerCase() === id.email))
    throw refusal("gcp_service_account_mismatch", `${where} no longer runs as ${id.email}`);
}

/** Inputs of {@link attestGcp} besides the token. */
export interface GcpAttestContext {
  token: Token;
  jwks: JwksCache;
  issuer: string;
  clusterName: string;
  now: Date;
  instances: GcpInstances;
}

/** What the join service needs of a gcp join. */
export interface GcpAttestation {
  /** `<project>-<zone>-<instance-id>`: unique per VM, so one join per VM. */
  nodeName: string;
  labels: Record<string, string>;
  principals: string[];
  identity: GceIdentity;
}

/** The whole gcp join check: Google's signature, the allow rule, and the live VM. */
export async function attestGcp(idToken: string, ctx: GcpAttestContext): Promise<GcpAttestation> {
  if (ctx.token.spec.join_method !== "gcp")
    throw new JoinRefusal("join_method_mismatch", `token ${quote(ctx.token.metadata.name)} is not a gcp token`, 403);
  const identity = await verifyIdToken(idToken, {
    jwks: ctx.jwks,
    issuer: ctx.issuer,
    audience: ctx.clusterName,
    now: ctx.now,
  });
  matchGcpRule(identity, ctx.token);
  await checkInstanceLive(identity, ctx.instances);
  const nodeName = `${identity.projectId}-${identity.zone}-${identity.instanceId}`;
  return {
    nodeName,
    labels: {
      "discovery/origin": "cloud",
      "discovery/project-id": identity.projectId,
      "discovery/zone": identity.zone,
      "discovery/instance-id": identity.instanceId,
      "discovery/name": identity.instanceName,
    },
    // The VPC's zonal DNS name, unique per project; the bare instance name is not (any project may reuse it).
    principals: [nodeName, `${identity.instanceName}.${identity.zone}.c.${identity.projectId}.internal`],
    identity,
  };
}
