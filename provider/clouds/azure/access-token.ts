/**
 * The managed identity access token of an azure join: an Entra ID JWT for Azure Resource Manager, RS256 with a key
 * of Entra ID's key set (`join.azure.jwks_url`), whose `xms_az_rid` / `xms_mirid` names the VM. It tells what the
 * attested document does not: the VM's resource group and name, for the allow rules and the live check.
 */
import type { KeyObject } from "crypto";
import { JoinRefusal } from "../../join/errors";
import { JwksCache, JwksUnavailable } from "../jwks";

/** Longest access token accepted; Entra ID's are 1.5 to 3 KB. */
export const MAX_ACCESS_TOKEN_CHARS = 16 * 1024;
/** Clock skew allowed on `exp`, `nbf` and `iat`, in seconds. */
export const TOKEN_SKEW_S = 60;
/** Managed identity tokens live up to 24 hours; one claiming more is refused. */
const MAX_TOKEN_AGE_S = 24 * 3600;
/** The audiences of a token for Azure Resource Manager, as IMDS issues it for `resource=https://management.azure.com/`. */
export const ARM_AUDIENCES = ["https://management.azure.com/", "https://management.azure.com"];

/** What a verified access token says about its VM. */
export interface AccessTokenIdentity {
  tenantId: string;
  /** Lowercase, from the resource id. */
  subscriptionId: string;
  resourceGroup: string;
  /** The VM's name; for a scale set's VM only known when the token names the instance (`<set>_<instance id>`). */
  vmName: string;
  /** The uniform scale set the VM belongs to, when the token names a scale set (its identity is the set's). */
  scaleSet?: string;
  /** The VM's resource id as the token names it. */
  resourceId: string;
}

const refusal = (code: string, reason: string, status: 400 | 403 = 403) =>
  new JoinRefusal(code, `azure access token: ${reason}`, status);
const malformed = (reason: string) => refusal("azure_access_token_malformed", reason, 400);
const quote = (v: unknown) => (JSON.stringify(v) ?? String(v)).slice(0, 80);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// Azure resource ids are case-insensitive; names are those Azure allows (resource group 1-90, VM 1-64 characters).
const VM_RESOURCE_ID =
  /^\/subscriptions\/([0-9a-f-]{36})\/resourcegroups\/([-\w.()]{1,90})\/providers\/microsoft\.compute\/virtualmachines\/([-\w.]{1,64})$/i;
// A uniform scale set (a system-assigned identity of its VMs is the set's), or one VM of it.
const SCALE_SET_RESOURCE_ID =
  /^\/subscriptions\/([0-9a-f-]{36})\/resourcegroups\/([-\w.()]{1,90})\/providers\/microsoft\.compute\/virtualmachinescalesets\/([-\w.]{1,64})(?:\/virtualmachines\/(\d{1,10}))?$/i;

// A JWS segment as a JSON object, or undefined.
function decodeSegment(segment: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(Buffer.from(segment, "base64url").toString("utf8"));
    return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The unverified header and claims of a compact JWS; 400 for anything else. Runs before any lookup or fetch. */
export function parseAccessTokenShape(token: unknown): {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
} {
  if (typeof token !== "string" || token.length === 0)
    throw malformed(
      'request field "access_token" is required: the managed identity token from IMDS for https://management.azure.com/',
    );
  if (token.length > MAX_ACCESS_TOKEN_CHARS)
    throw malformed(`${token.length} characters, over ${MAX_ACCESS_TOKEN_CHARS}`);
  const parts = token.split(".");
  if (parts.length !== 3 || !parts.every((p, i) => /^[A-Za-z0-9_-]*$/.test(p) && (i === 2 || p.length > 0)))
    throw malformed("not a compact JWT (three base64url parts)");
  const [header, claims] = parts.slice(0, 2).map(decodeSegment);
  if (!header || !claims) throw malformed(`the ${header ? "payload" : "header"} is not a base64url JSON object`);
  if (typeof header.alg !== "string") throw malformed('the header has no "alg"');
  return { header, claims };
}

/** The VM a token's resource ids name: `xms_az_rid` (the VM even for a user-assigned identity), else `xms_mirid`. */
function vmOf(claims: Record<string, unknown>): Omit<AccessTokenIdentity, "tenantId"> {
  for (const claim of ["xms_az_rid", "xms_mirid"]) {
    const value = typeof claims[claim] === "string" ? (claims[claim] as string) : "";
    const m = VM_RESOURCE_ID.exec(value);
    if (m && UUID.test(m[1]))
      return { subscriptionId: m[1].toLowerCase(), resourceGroup: m[2], vmName: m[3], resourceId: m[0] };
    const s = SCALE_SET_RESOURCE_ID.exec(value);
    if (s && UUID.test(s[1]))
      return {
        subscriptionId: s[1].toLowerCase(),
        resourceGroup: s[2],
        scaleSet: s[3],
        vmName: s[4] ? `${s[3]}_${s[4]}` : "",
        resourceId: s[0],
      };
  }
  throw refusal(
    "azure_token_not_vm",
    `neither xms_az_rid nor xms_mirid names a virtual machine or scale set (xms_mirid ${quote(claims.xms_mirid)}); ` +
      "send the token of the VM's managed identity",
  );
}

// jose's error codes as refusals; anything unexpected is a signature refusal, never a 500.
const JOSE_REFUSALS: Record<string, [string, string]> = {
  ERR_JWT_EXPIRED: ["azure_token_expired", "fetch a fresh token from IMDS"],
  ERR_JOSE_ALG_NOT_ALLOWED: ["azure_algorithm_not_allowed", "only RS256 tokens of Entra ID are accepted"],
  "claim:iss": ["azure_issuer_invalid", "iss must be https://sts.windows.net/<tid>/ of the token's tenant"],
  "claim:aud": ["azure_audience_invalid", "ask IMDS for resource=https://management.azure.com/"],
  "claim:nbf": ["azure_token_not_yet_valid", `more than ${TOKEN_SKEW_S} s ahead of this server's clock`],
  "claim:iat": ["azure_token_not_yet_valid", `more than ${TOKEN_SKEW_S} s ahead of this server's clock`],
};

function joseRefusal(err: unknown): JoinRefusal {
  const e = err as { code?: string; claim?: string; message?: string };
  const msg = String(e?.message ?? "").slice(0, 120);
  const known =
    JOSE_REFUSALS[e?.code === "ERR_JWT_CLAIM_VALIDATION_FAILED" ? `claim:${e.claim}` : String(e?.code)] ??
    (e?.code === "ERR_JWT_CLAIM_VALIDATION_FAILED" ? ["azure_token_claims_invalid", ""] : undefined);
  if (known) return refusal(known[0], `${msg}${known[1] && `; ${known[1]}`}`);
  return refusal("azure_signature_invalid", "the signature does not verify with Entra ID's key");
}

/** Settings of {@link verifyAccessToken}. */
export interface VerifyAccessTokenOptions {
  jwks: JwksCache;
  now: Date;
}

/** Verifies an access token (RS256, Entra ID's key by kid, its tenant's issuer, ARM's audience, times). */
export async function verifyAccessToken(token: string, opts: VerifyAccessTokenOptions): Promise<AccessTokenIdentity> {
  const { header, claims } = parseAccessTokenShape(token);
  // Refused before any key is looked up: `none`, HS256 keyed with the public key, ES256... only RS256 is Entra ID's.
  if (header.alg !== "RS256")
    throw refusal("azure_algorithm_not_allowed", `alg ${quote(header.alg)}: only RS256 is accepted`);
  const kid = header.kid;
  if (typeof kid !== "string" || kid.length === 0 || kid.length > 128)
    throw refusal("azure_key_unknown", 'the header names no "kid" of Entra ID');
  const tid = claims.tid;
  if (typeof tid !== "string" || !UUID.test(tid))
    throw refusal("azure_issuer_invalid", `tid ${quote(tid)} is not a tenant id, so the issuer cannot be checked`);
  let key: KeyObject | undefined;
  try {
    key = await opts.jwks.key(kid);
  } catch (err) {
    if (err instanceof JwksUnavailable) throw refusal("azure_keys_unavailable", err.message);
    throw err;
  }
  if (!key) throw refusal("azure_key_unknown", `kid ${quote(kid)} is not one of Entra ID's current signing keys`);
  const { jwtVerify } = await import("jose");
  try {
    await jwtVerify(token, key, {
      algorithms: ["RS256"],
      issuer: `https://sts.windows.net/${tid}/`,
      audience: ARM_AUDIENCES,
      clockTolerance: TOKEN_SKEW_S,
      maxTokenAge: MAX_TOKEN_AGE_S,
      currentDate: opts.now,
      requiredClaims: ["exp", "nbf", "iat"],
    });
  } catch (err) {
    throw joseRefusal(err);
  }
  return { tenantId: tid.toLowerCase(), ...vmOf(claims) };
}
