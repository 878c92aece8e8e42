import { createHash, timingSafeEqual } from "crypto";
import * as http from "http";
import * as https from "https";
import { JoinRefusal } from "../../join/errors";
import { AWS_PARTITION_REGIONS, type Token } from "../../model";
import { checkAwsRegionField, InstanceVerification, stsHostRegion, verifyIamInstance } from "./iam-instance";
import { matchIamRule, OrganizationCache } from "./iam-rules";
import { hostPrincipals, InstanceApiFactory } from "./instance-lookup";
import {
  CallerIdentity,
  CHALLENGE_HEADER,
  GET_CALLER_IDENTITY_BODY,
  parseCallerIdentity,
  stsErrorDetail,
  StsRequest,
} from "./sts-request";
import { ec2NodeName } from "./identity";

/**
 * Regions whose `sts.<region>.amazonaws.com` endpoint may be called: the model's fixed list of the aws and
 * aws-us-gov partitions (the others answer under other domains), so a name is never a lookup.
 */
export const STS_REGIONS: readonly string[] = [...AWS_PARTITION_REGIONS.aws, ...AWS_PARTITION_REGIONS["aws-us-gov"]];

const AWS_STS_HOSTS = new Set(["sts.amazonaws.com", ...STS_REGIONS.map((r) => `sts.${r}.amazonaws.com`)]);

/**
 * Headers a signed GetCallerIdentity may carry. Only SigV4's own `x-amz-*` headers: `x-amz-target` would switch
 * STS to its JSON protocol and another action. `user-agent`, `x-amz-user-agent` and the SDKs' retry bookkeeping
 * `amz-sdk-invocation-id`/`amz-sdk-request` are harmless and signed by the AWS SDKs for JS v3 and Go v2, so a
 * request built by their own STS clients passes; `accept-encoding` is refused because a compressed answer has no
 * use here and would have to be inflated.
 */
export const STS_ALLOWED_HEADERS: ReadonlySet<string> = new Set([
  "host", "content-type", "content-length", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256",
  "authorization", CHALLENGE_HEADER, "user-agent", "x-amz-user-agent", "amz-sdk-invocation-id", "amz-sdk-request",
]); // prettier-ignore

const MAX_URL = 2048;
const MAX_HEADER_VALUE = 8192; // session tokens run to a few KiB
const MAX_HEADERS_TOTAL = 16384;
const MAX_SIGNATURE_SKEW_MS = 5 * 60_000; // the challenge lives 60 s; more than this means a stale or forged date
/** Default cap on STS's answer; a real GetCallerIdentityResponse is well under 1 KiB. */
export const DEFAULT_STS_MAX_BYTES = 64 * 1024;
/** Default time allowed for the STS round trip; the whole join must finish within the 60 s challenge lifetime. */
export const DEFAULT_STS_TIMEOUT_MS = 10_000;

const AUTHORIZATION_RE =
  /^AWS4-HMAC-SHA256 Credential=[A-Za-z0-9]{1,128}\/\d{8}\/[a-z0-9-]{1,32}\/sts\/aws4_request, ?SignedHeaders=([a-z0-9-]+(?:;[a-z0-9-]+)*), ?Signature=[0-9a-f]{64}$/;

/** Resolves an account's organization id, undefined when the account belongs to no organization the runtime sees. */
export type DescribeAccount = (accountId: string) => Promise<string | undefined>;

/** An allow rule of a token. */
export type AwsAllowRule = NonNullable<Token["spec"]["allow"]>[number];

function refuse(code: string, reason: string, status: 400 | 403 = 403): never {
  throw new JoinRefusal(code, reason, status);
}

/** Quotes caller-supplied text in a reason so it cannot forge log lines or flood them. */
function show(value: string): string {
  return JSON.stringify(value.length > 120 ? `${value.slice(0, 120)}...` : value);
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Where a request for `url` may be sent: the configured endpoint's origin, or an AWS STS host over https. A
 * refusal names both sides of the fix: the node signs for another host, or the operator sets
 * `join.aws.sts_endpoint` in the runtime config to the host the node uses (a VPC endpoint or a proxy).
 */
function stsTarget(url: URL, stsEndpoint: string): URL {
  const configured = new URL(stsEndpoint);
  if (url.host === configured.host) {
    if (url.protocol !== configured.protocol)
      refuse(
        "sts_scheme_not_allowed",
        `${url.host} is the runtime's join.aws.sts_endpoint (${configured.origin}), called over ` +
          `${configured.protocol.slice(0, -1)} only, not ${url.protocol.slice(0, -1)}; sign the request for ${configured.origin}`,
      );
    return configured;
  }
  if (url.port === "" && AWS_STS_HOSTS.has(url.hostname)) {
    if (url.protocol !== "https:")
      refuse("sts_scheme_not_allowed", `AWS STS is called over https only, not ${url.protocol.slice(0, -1)}`);
    return new URL(`https://${url.hostname}`);
  }
  const aws = "sts.amazonaws.com or sts.<region>.amazonaws.com";
  const allowed =
    configured.host === "sts.amazonaws.com" ? aws : `${configured.host} (the runtime's join.aws.sts_endpoint), ${aws}`;
  return refuse(
    "sts_host_not_allowed",
    `${show(url.host)} is not an allowed STS host: sign the request for ${allowed} (discovery join ` +
      `--sts-endpoint, or AWS_ENDPOINT_URL_STS); if ${show(url.host)} is your STS endpoint (a VPC endpoint or a ` +
      `proxy), set join.aws.sts_endpoint to its https URL in the runtime config`,
  );
}

/** Options of {@link checkStsRequest}. */
export interface CheckStsRequestOptions {
  /** The challenge the server issued for this join. */
  challenge: string;
  /** The configured STS endpoint (`join.aws.sts_endpoint`); its host is allowed besides AWS's own. */
  stsEndpoint: string;
  /** Server time, to check the signature date. */
  now?: Date;
}

/**
 * The allowlist a forwarded request must pass before the server sends it anywhere: exactly a signed
 * GetCallerIdentity to an allowed STS host, carrying this join's challenge under the signature.
 * Returns the request with header names in lower case.
 */
export function checkStsRequest(req: unknown, opts: CheckStsRequestOptions): StsRequest {
  const r = req as Partial<Record<keyof StsRequest, unknown>> | null;
  if (
    typeof r !== "object" ||
    r === null ||
    typeof r.url !== "string" ||
    typeof r.method !== "string" ||
    typeof r.body !== "string"
  )
    return refuse("sts_request_malformed", "sts_request must be {url, method, headers, body} with string values", 400);
  if (typeof r.headers !== "object" || r.headers === null || Array.isArray(r.headers))
    refuse("sts_request_malformed", "sts_request.headers must map header names to values", 400);
  const raw = Object.entries(r.headers as Record<string, unknown>);
  const headerBytes = raw.reduce((n, [k, v]) => n + k.length + (typeof v === "string" ? v.length : 0), 0);
  if (r.url.length > MAX_URL || r.body.length > 1024 || raw.length > 16 || headerBytes > MAX_HEADERS_TOTAL)
    refuse("sts_request_too_large", "sts_request exceeds the size of a GetCallerIdentity request", 400);

  if (r.method !== "POST") refuse("sts_method_not_allowed", `method must be POST, not ${show(r.method)}`);
  let url: URL;
  try {
    url = new URL(r.url);
  } catch {
    return refuse("sts_url_invalid", `url ${show(r.url)} is not an absolute URL`, 400);
  }
  if (url.username || url.password || /@/.test(r.url))
    refuse("sts_url_userinfo", `url ${show(r.url)} carries user info; the host would not be what it seems`);
  if (r.url.includes("?")) refuse("sts_url_query", "url must have no query string: the action is in the body");
  if (url.pathname !== "/") refuse("sts_url_path", `url path must be /, not ${show(url.pathname)}`);
  stsTarget(url, opts.stsEndpoint);
  if (r.url !== `${url.protocol}//${url.host}/`)
    refuse("sts_url_not_canonical", `url must be written ${url.protocol}//${url.host}/, not ${show(r.url)}`);
  if (r.body !== GET_CALLER_IDENTITY_BODY)
    refuse("sts_body_not_allowed", `body must be exactly ${GET_CALLER_IDENTITY_BODY}, not ${show(r.body)}`);

  const headers: Record<string, string> = {};
  for (const [name, value] of raw) {
    const lower = name.toLowerCase();
    // Only printable ASCII and tab: Node refuses to send anything else in a header (a 500 if it got that far),
    // and no SigV4 header needs more.
    if (typeof value !== "string" || /[^\t\x20-\x7e]/.test(value))
      refuse("sts_request_malformed", `header ${show(name)} must be one line of printable ASCII`, 400);
    if (value.length > MAX_HEADER_VALUE) refuse("sts_request_too_large", `header ${show(name)} exceeds 8 KiB`, 400);
    if (lower in headers) refuse("sts_header_duplicate", `header ${show(name)} is given twice`, 400);
    if (!STS_ALLOWED_HEADERS.has(lower)) refuse("sts_header_not_allowed", `header ${show(name)} is not allowed`);
    headers[lower] = value;
  }
  if (headers.host !== undefined && headers.host !== url.host)
    refuse("sts_host_header_mismatch", `host header ${show(headers.host)} differs from the url host ${url.host}`);
  if (!/^application\/x-www-form-urlencoded(; ?charset=utf-8)?$/i.test(headers["content-type"] ?? ""))
    refuse("sts_content_type_not_allowed", "content-type must be application/x-www-form-urlencoded; charset=utf-8");
  if (headers["content-length"] !== undefined && headers["content-length"] !== String(Buffer.byteLength(r.body)))
    refuse("sts_content_length_mismatch", "content-length differs from the body's length", 400);

  if (headers.authorization === undefined)
    refuse("sts_authorization_missing", "the authorization header is missing", 400);
  const auth = AUTHORIZATION_RE.exec(headers.authorization);
  if (!auth) refuse("sts_authorization_malformed", "authorization is not an AWS4-HMAC-SHA256 signature for sts", 400);
  const signed = auth[1].split(";");
  if (!signed.includes("host")) refuse("sts_host_not_signed", "host must be among SignedHeaders");
  // botocore signs the host from the URL and hands back no Host header; the URL is already checked against the
  // allowlist, so the host it names is the one that was signed (a different one fails STS's signature check).
  headers.host ??= url.host;
  if (!signed.includes(CHALLENGE_HEADER))
    refuse("sts_challenge_not_signed", `${CHALLENGE_HEADER} must be signed, or a captured request could be replayed`);

  const date = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(headers["x-amz-date"] ?? "");
  if (!date) refuse("sts_date_invalid", "x-amz-date must be present as YYYYMMDDTHHMMSSZ", 400);
  const signedAt = Date.UTC(+date[1], +date[2] - 1, +date[3], +date[4], +date[5], +date[6]);
  if (Math.abs(signedAt - (opts.now ?? new Date()).getTime()) > MAX_SIGNATURE_SKEW_MS)
    refuse("sts_date_skewed", `signed at ${headers["x-amz-date"]}, more than 5 minutes from server time`);

  const carried = headers[CHALLENGE_HEADER];
  if (carried === undefined) refuse("sts_challenge_missing", `the ${CHALLENGE_HEADER} header is missing`, 400);
  if (!sameSecret(carried, opts.challenge))
    refuse("sts_challenge_mismatch", `${CHALLENGE_HEADER} is not the challenge issued for this join`);
  return { url: r.url, method: r.method, headers, body: r.body };
}

/** Options of {@link checkIamJoinRequest}. */
export interface CheckIamJoinRequestOptions {
  /** `join.aws.sts_endpoint`. */
  stsEndpoint: string;
  /** Server time. */
  now: Date;
}

/**
 * The iam fields of a join request, checked before the service loads the token or consumes the challenge: the
 * challenge the body names and a signed request that passes {@link checkStsRequest} for it. A malformed request
 * is refused here without burning the challenge; the attestor checks again against the consumed one.
 */
export function checkIamJoinRequest(body: Record<string, unknown>, opts: CheckIamJoinRequestOptions): void {
  const challenge = body.challenge;
  if (typeof challenge !== "string" || challenge.length === 0 || challenge.length > 128)
    refuse("missing_field", 'request field "challenge" is required: the string POST /v1/join/challenge returned', 400);
  if (body.sts_request === undefined)
    refuse("missing_field", 'request field "sts_request" is required: {url, method, headers, body}', 400);
  checkStsRequest(body.sts_request, { challenge, stsEndpoint: opts.stsEndpoint, now: opts.now });
  checkAwsRegionField(body);
}

/** Options of {@link callSts}. */
export interface CallStsOptions {
  /** The configured STS endpoint; requests to its host go to its origin, never elsewhere. */
  stsEndpoint: string;
  /** Time allowed for the whole exchange. */
  timeoutMs?: number;
  /** Largest answer read; a longer one is refused. */
  maxBytes?: number;
}

/**
 * Sends a checked request to STS and returns the caller it names. Follows no redirect, reads at most `maxBytes`,
 * and gives up after `timeoutMs`: the node chose the request, so nothing about the answer is trusted.
 */
export function callSts(req: StsRequest, opts: CallStsOptions): Promise<CallerIdentity> {
  const target = stsTarget(new URL(req.url), opts.stsEndpoint);
  const maxBytes = opts.maxBytes ?? DEFAULT_STS_MAX_BYTES;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_STS_TIMEOUT_MS;
  const transport = target.protocol === "https:" ? https : http;
  return new Promise<CallerIdentity>((resolve, reject) => {
    let done = false;
    const finish = (fn: () => CallerIdentity) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      outgoing.destroy();
      try {
        resolve(fn());
      } catch (e) {
        reject(e);
      }
    };
    const fail = (code: string, reason: string) => finish(() => refuse(code, reason));
    const outgoing = transport.request({
      protocol: target.protocol,
      hostname: target.hostname.replace(/^\[|\]$/g, ""),
      port: target.port || undefined,
      method: "POST",
      path: "/",
      headers: { ...req.headers, "content-length": String(Buffer.byteLength(req.body)) },
      agent: false, // a fresh connection: no pooled socket outlives the join
    });
    const timer = setTimeout(() => fail("sts_timeout", `STS did not answer within ${timeoutMs} ms`), timeoutMs);
    outgoing.on("error", (e) => fail("sts_unreachable", `STS at ${target.host} could not be reached: ${e.message}`));
    outgoing.on("response", (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400)
        return fail("sts_redirect_refused", `STS answered a ${status} redirect; redirects are never followed`);
      if (Number(res.headers["content-length"] ?? 0) > maxBytes)
        return fail("sts_response_too_large", `STS's answer exceeds ${maxBytes} bytes`);
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) return fail("sts_response_too_large", `STS's answer exceeds ${maxBytes} bytes`);
        chunks.push(chunk);
      });
      res.on("error", (e) => fail("sts_unreachable", `STS's answer broke off: ${e.message}`));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        if (status === 200) return finish(() => parseCallerIdentity(text));
        fail("sts_request_rejected", `STS refused the signed request (HTTP ${status}) ${show(stsErrorDetail(text))}`);
      });
    });
    outgoing.end(req.body);
  });
}

export { matchArnGlob, matchIamRule, OrganizationCache, type MatchIamRuleOptions } from "./iam-rules";

/** What the join service needs from a verified iam join. */
export interface IamAttestation {
  /** `<account>-<instance-id>` for a verified instance, else `<account>-iam-<caller name>-<hash of the ARN>`. */
  nodeName: string;
  /** `discovery/` labels of the node. */
  labels: Record<string, string>;
  /** SSH principals of the host certificate. */
  principals: string[];
  /** The caller STS vouched for. */
  identity: CallerIdentity;
}

/** Context the join service supplies for one iam join. */
export interface IamJoinContext {
  /** The token named in the request, already loaded and validated. */
  token: Token;
  /** The challenge issued for this join (its single use is the runtime's job). */
  challenge: string;
  /** `join.aws.sts_endpoint`. */
  stsEndpoint: string;
  /** Server time. */
  now: Date;
  /** EC2 and IAM access, to verify that a caller named after an instance is that instance. */
  instances: InstanceApiFactory;
  /** Where discovery found an instance (its enrollment record's region), if it did. */
  enrollmentRegion?: (account: string, instanceId: string) => Promise<string | undefined>;
  /** Organizations lookup for `aws_organization_id` rules. */
  describeAccount?: DescribeAccount;
  /** Organization answers shared across joins. */
  orgCache?: OrganizationCache;
  /** Time allowed for the STS call; default {@link DEFAULT_STS_TIMEOUT_MS}. */
  stsTimeoutMs?: number;
  /** Cap on STS's answer; default {@link DEFAULT_STS_MAX_BYTES}. */
  stsMaxBytes?: number;
}

/**
 * Node name, labels and principals for a caller. Only a verified instance is named after it; any other caller
 * gets `<account>-iam-...`, which no `<account>-i-...` instance name can equal, so it can't take or block one.
 */
export function iamNodeIdentity(
  identity: CallerIdentity,
  check: InstanceVerification,
): { nodeName: string; labels: Record<string, string>; principals: string[] } {
  const labels: Record<string, string> = { "discovery/origin": "cloud", "discovery/account-id": identity.account };
  if (check.verified) {
    const nodeName = ec2NodeName(identity.account, check.instanceId);
    labels["discovery/instance-id"] = check.instanceId;
    labels["discovery/region"] = check.region;
    labels["discovery/instance-verified"] = "true";
    return { nodeName, labels, principals: hostPrincipals(nodeName, check.addresses) };
  }
  const resource = identity.arn.split(":").slice(5).join(":");
  const name = resource.slice(resource.lastIndexOf("/") + 1);
  const clean = name.toLowerCase().replace(/[^a-z0-9._-]/g, "-").replace(/^[.-]+/, "").slice(0, 32) || "caller"; // prettier-ignore
  // The hash keeps two callers whose names clean up alike (roles of one session name, say) apart.
  const hash = createHash("sha256").update(identity.arn).digest("hex").slice(0, 12);
  const nodeName = `${identity.account}-iam-${clean}-${hash}`;
  labels["discovery/instance-verified"] = "false";
  labels["discovery/unverified-reason"] = check.reason;
  return { nodeName, labels, principals: [nodeName] };
}

/**
 * Verifies an `iam` join: the signed GetCallerIdentity passes the allowlist and carries this join's challenge,
 * STS names the caller, the caller matches an allow rule of the token, and a caller whose session is named
 * after an instance is checked against EC2 before it is named after that instance.
 */
export async function attestIam(body: unknown, ctx: IamJoinContext): Promise<IamAttestation> {
  if (ctx.token.spec.join_method !== "iam")
    refuse("join_method_mismatch", `token ${show(ctx.token.metadata.name)} is not an iam token`, 400);
  const b = body as { challenge?: unknown; sts_request?: unknown } | null;
  if (typeof b !== "object" || b === null || typeof b.challenge !== "string" || b.sts_request === undefined)
    refuse("iam_request_malformed", "an iam join needs challenge and sts_request {url, method, headers, body}", 400);
  const stated = checkAwsRegionField(b);
  if (!sameSecret(b.challenge, ctx.challenge))
    refuse("challenge_mismatch", "challenge is not the one issued for this join; ask /v1/join/challenge again");
  const req = checkStsRequest(b.sts_request, { challenge: ctx.challenge, stsEndpoint: ctx.stsEndpoint, now: ctx.now });
  const { stsEndpoint, stsTimeoutMs: timeoutMs, stsMaxBytes: maxBytes } = ctx;
  const identity = await callSts(req, { stsEndpoint, timeoutMs, maxBytes });
  const rule = await matchIamRule(identity, ctx.token, ctx);
  const check = await verifyIamInstance(identity, {
    instances: ctx.instances,
    roleArn: rule.aws_role,
    regions: [stated, stsHostRegion(req.url)],
    enrollmentRegion: ctx.enrollmentRegion,
  });
  return { ...iamNodeIdentity(identity, check), identity };
}
