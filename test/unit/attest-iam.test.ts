import {
  attestIam,
  checkStsRequest,
  DescribeAccount,
  matchArnGlob,
  matchIamRule,
  OrganizationCache,
} from "../../provider/clouds/aws/attest-iam";
import {
  CallerIdentity,
  parseCallerIdentity,
  signedGetCallerIdentity,
  StsRequest,
} from "../../provider/clouds/aws/sts-request";
import { JoinRefusal } from "../../provider/join/errors";
import { Token, tokenDocument } from "../../provider/model";

const NOW = new Date("2025-06-01T12:00:00Z");
const CHALLENGE = "q3LwZ8u1cY0oJ7Xk2m9R4t6V";
const GLOBAL = "https://sts.amazonaws.com";
const CREDS = { accessKeyId: "ASIAEXAMPLEEXAMPLE00", secretAccessKey: "secret", sessionToken: "FwoGZXIvYXdzEXAMPLE" };

const sign = (over: { challenge?: string; stsEndpoint?: string; region?: string; signingDate?: Date } = {}) =>
  signedGetCallerIdentity({
    challenge: CHALLENGE,
    stsEndpoint: GLOBAL,
    region: "us-east-1",
    credentials: CREDS,
    signingDate: NOW,
    ...over,
  });

/** The refusal a call throws, so a table can compare code and status. */
function refusalOf(fn: () => unknown): { code: string; status: number } {
  try {
    fn();
  } catch (e) {
    if (e instanceof JoinRefusal) return { code: e.code, status: e.status };
    throw e;
  }
  throw new Error("expected a refusal, but the call was accepted");
}

async function asyncRefusalOf(p: Promise<unknown>): Promise<{ code: string; status: number; reason: string }> {
  const e = await p.then(
    () => new Error("expected a refusal, but the call was accepted"),
    (err: unknown) => err,
  );
  if (e instanceof JoinRefusal) return { code: e.code, status: e.status, reason: e.reason };
  throw e;
}

const withHeaders = (req: StsRequest, headers: Record<string, string>): StsRequest => ({ ...req, headers });
const without = (req: StsRequest, name: string): StsRequest => {
  const { [name]: _, ...rest } = req.headers;
  return withHeaders(req, rest);
};
const editAuth = (req: StsRequest, edit: (auth: string) => string): StsRequest =>
  withHeaders(req, { ...req.headers, authorization: edit(req.headers.authorization) });
const atUrl = (req: StsRequest, url: string, host = new URL(url).host): StsRequest => ({
  ...req,
  url,
  headers: { ...req.headers, host },
});

/** Mutations for the refusal table. */
const setHeader = (name: string, value: unknown) => (r: StsRequest) =>
  withHeaders(r, { ...r.headers, [name]: value as string });
const toUrl = (url: string, host?: string) => (r: StsRequest) => atUrl(r, url, host);

function token(allow: Record<string, string>[], name = "iam-token"): Token {
  return tokenDocument.parse({
    kind: "token",
    version: "v2",
    metadata: { name },
    spec: { roles: ["Node"], join_method: "iam", allow },
  });
}

describe("checkStsRequest: the allowlist for a forwarded GetCallerIdentity", () => {
  let base: StsRequest;
  beforeAll(async () => {
    base = await sign();
  });
  const check = (req: unknown, stsEndpoint = GLOBAL) =>
    checkStsRequest(req, { challenge: CHALLENGE, stsEndpoint, now: NOW });

  it("accepts the request the node client signs, with the session token and challenge signed", () => {
    const out = check(base);
    expect(out.url).toBe("https://sts.amazonaws.com/");
    expect(out.headers["x-amz-security-token"]).toBe(CREDS.sessionToken);
    expect(out.headers.authorization).toMatch(
      /SignedHeaders=[^,]*\bhost\b[^,]*x-amz-security-token[^,]*x-discovery-challenge/,
    );
  });

  it.each([
    ["a regional endpoint", "https://sts.eu-west-1.amazonaws.com", "eu-west-1", GLOBAL],
    ["a GovCloud endpoint", "https://sts.us-gov-west-1.amazonaws.com", "us-gov-west-1", GLOBAL],
    ["the configured loopback endpoint (moto)", "http://127.0.0.1:4566", "us-east-1", "http://127.0.0.1:4566"],
  ])("accepts %s", async (_, stsEndpoint, region, configured) => {
    const req = await sign({ stsEndpoint, region });
    expect(check(req, configured).url).toBe(`${stsEndpoint}/`);
  });

  it("takes a signed host from the url when no Host header is sent (botocore hands back none)", () => {
    const out = check(without(base, "host"));
    expect(out.headers.host).toBe("sts.amazonaws.com");
  });

  it("accepts a user-agent and a content-type without charset", () => {
    const req = withHeaders(base, {
      ...base.headers,
      "User-Agent": "discovery/0.1",
      "content-type": "application/x-www-form-urlencoded",
    });
    expect(check(req).headers["user-agent"]).toBe("discovery/0.1");
  });

  const cases: [string, (r: StsRequest) => unknown, string, 400 | 403][] = [
    ["not an object", () => "GET /", "sts_request_malformed", 400],
    ["headers as a list", (r) => ({ ...r, headers: [["host", "x"]] }), "sts_request_malformed", 400],
    ["a header value that is not a string", setHeader("user-agent", 1), "sts_request_malformed", 400],
    ["a header value with a line break", setHeader("user-agent", "a\r\nx-amz-target: y"), "sts_request_malformed", 400],
    ["a header value with a NUL", setHeader("user-agent", "a\u0000b"), "sts_request_malformed", 400],
    ["a header value with a control character", setHeader("user-agent", "a\u0007b"), "sts_request_malformed", 400],
    ["a header value with DEL", setHeader("user-agent", "a\u007fb"), "sts_request_malformed", 400],
    ["a header value with non-ASCII text", setHeader("user-agent", "café"), "sts_request_malformed", 400],
    ["a header value with an emoji", setHeader("x-amz-date", "\u{1F600}"), "sts_request_malformed", 400],
    [
      "no host header and host not signed",
      (r) => editAuth(without(r, "host"), (a) => a.replace("host;", "")),
      "sts_host_not_signed",
      403,
    ],
    ["a header over 8 KiB", setHeader("x-amz-security-token", "A".repeat(9000)), "sts_request_too_large", 400],
    ["a body over 1 KiB", (r) => ({ ...r, body: "A".repeat(2000) }), "sts_request_too_large", 400],
    ["a url over 2 KiB", toUrl(`https://sts.amazonaws.com/${"a".repeat(3000)}`), "sts_request_too_large", 400],
    ["wrong method GET", (r) => ({ ...r, method: "GET" }), "sts_method_not_allowed", 403],
    ["lower-case post", (r) => ({ ...r, method: "post" }), "sts_method_not_allowed", 403],
    ["a relative url", (r) => ({ ...r, url: "/" }), "sts_url_invalid", 400],
    ["path /x", toUrl("https://sts.amazonaws.com/x"), "sts_url_path", 403],
    [
      "a backslash before @",
      toUrl("https://evil.com\\@sts.amazonaws.com/", "sts.amazonaws.com"),
      "sts_url_userinfo",
      403,
    ],
    [
      "a query string",
      toUrl("https://sts.amazonaws.com/?Action=GetSessionToken&Version=2011-06-15"),
      "sts_url_query",
      403,
    ],
    ["an empty query string", toUrl("https://sts.amazonaws.com/?"), "sts_url_query", 403],
    ["a fragment", toUrl("https://sts.amazonaws.com/#frag"), "sts_url_not_canonical", 403],
    ["upper-case url", toUrl("HTTPS://STS.AMAZONAWS.COM/", "sts.amazonaws.com"), "sts_url_not_canonical", 403],
    ["body with an extra param", (r) => ({ ...r, body: `${r.body}&RoleArn=x` }), "sts_body_not_allowed", 403],
    [
      "body Action=GetSessionToken",
      (r) => ({ ...r, body: "Action=GetSessionToken&Version=2011-06-15" }),
      "sts_body_not_allowed",
      403,
    ],
    ["host evil.com", toUrl("https://evil.com/"), "sts_host_not_allowed", 403],
    ["host sts.amazonaws.com.evil.com", toUrl("https://sts.amazonaws.com.evil.com/"), "sts_host_not_allowed", 403],
    ["host with a trailing dot", toUrl("https://sts.amazonaws.com./"), "sts_host_not_allowed", 403],
    ["an unknown region", toUrl("https://sts.xx-fake-1.amazonaws.com/"), "sts_host_not_allowed", 403],
    ["another AWS service", toUrl("https://iam.amazonaws.com/"), "sts_host_not_allowed", 403],
    ["a port on an AWS host", toUrl("https://sts.amazonaws.com:8443/"), "sts_host_not_allowed", 403],
    ["an IPv4 literal", toUrl("https://127.0.0.1/"), "sts_host_not_allowed", 403],
    ["a decimal IPv4 literal", toUrl("https://2130706433/", "127.0.0.1"), "sts_host_not_allowed", 403],
    ["an IPv6 literal", toUrl("https://[::1]/"), "sts_host_not_allowed", 403],
    ["the metadata service", toUrl("http://169.254.169.254/"), "sts_host_not_allowed", 403],
    ["userinfo trick", toUrl("https://sts.amazonaws.com@evil.com/", "sts.amazonaws.com"), "sts_url_userinfo", 403],
    ["http to sts.amazonaws.com", toUrl("http://sts.amazonaws.com/"), "sts_scheme_not_allowed", 403],
    ["http to a regional endpoint", toUrl("http://sts.us-east-2.amazonaws.com/"), "sts_scheme_not_allowed", 403],
    ["extra header x-forwarded-host", setHeader("x-forwarded-host", "evil.com"), "sts_header_not_allowed", 403],
    [
      "x-amz-target (JSON protocol)",
      setHeader("X-Amz-Target", "AWSSecurityTokenServiceV20110615.GetSessionToken"),
      "sts_header_not_allowed",
      403,
    ],
    ["accept-encoding", setHeader("accept-encoding", "gzip"), "sts_header_not_allowed", 403],
    ["the same header twice", setHeader("Host", "evil.com"), "sts_header_duplicate", 400],
    [
      "host header mismatch",
      (r) => withHeaders(r, { ...r.headers, host: "sts.us-west-2.amazonaws.com" }),
      "sts_host_header_mismatch",
      403,
    ],
    [
      "a JSON content-type",
      setHeader("content-type", "application/x-amz-json-1.1"),
      "sts_content_type_not_allowed",
      403,
    ],
    ["a content-length that lies", setHeader("content-length", "999"), "sts_content_length_mismatch", 400],
    ["missing authorization", (r) => without(r, "authorization"), "sts_authorization_missing", 400],
    ["authorization of another scheme", (r) => editAuth(r, () => "Bearer abc"), "sts_authorization_malformed", 400],
    [
      "authorization scoped to s3",
      (r) => editAuth(r, (a) => a.replace("/sts/", "/s3/")),
      "sts_authorization_malformed",
      400,
    ],
    [
      "authorization without a signature",
      (r) => editAuth(r, (a) => a.replace(/, Signature=.*$/, "")),
      "sts_authorization_malformed",
      400,
    ],
    ["host not signed", (r) => editAuth(r, (a) => a.replace("host;", "")), "sts_host_not_signed", 403],
    [
      "challenge not signed",
      (r) => editAuth(r, (a) => a.replace(";x-discovery-challenge", "")),
      "sts_challenge_not_signed",
      403,
    ],
    ["x-amz-date missing", (r) => without(r, "x-amz-date"), "sts_date_invalid", 400],
    ["challenge header missing", (r) => without(r, "x-discovery-challenge"), "sts_challenge_missing", 400],
  ];
  it.each(cases)("refuses %s", (_, mutate, code, status) => {
    expect(refusalOf(() => check(mutate(base)))).toEqual({ code, status });
  });

  it("refuses a challenge mismatch: a request signed for an earlier challenge", async () => {
    const stale = await sign({ challenge: "an-earlier-challenge-0000" });
    expect(refusalOf(() => check(stale))).toEqual({ code: "sts_challenge_mismatch", status: 403 });
  });

  it("refuses a request signed an hour ago", async () => {
    const old = await sign({ signingDate: new Date(NOW.getTime() - 3600_000) });
    expect(refusalOf(() => check(old))).toEqual({ code: "sts_date_skewed", status: 403 });
  });

  it.each([
    ["https to the http loopback endpoint", "https://127.0.0.1:4566/", "sts_scheme_not_allowed"],
    ["another port on loopback", "http://127.0.0.1:4567/", "sts_host_not_allowed"],
    ["localhost instead of 127.0.0.1", "http://localhost:4566/", "sts_host_not_allowed"],
  ])("with a loopback endpoint configured, refuses %s", async (_, url, code) => {
    const req = atUrl(await sign({ stsEndpoint: "http://127.0.0.1:4566" }), url);
    expect(refusalOf(() => check(req, "http://127.0.0.1:4566"))).toEqual({ code, status: 403 });
  });
});

describe("checkStsRequest: a refused STS host says what to change, on the node and in the runtime config", () => {
  const reasonOf = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      if (err instanceof JoinRefusal) return err.reason;
      throw err;
    }
    throw new Error("expected a refusal, but the call was accepted");
  };
  const check = (req: unknown, stsEndpoint: string) =>
    checkStsRequest(req, { challenge: CHALLENGE, stsEndpoint, now: NOW });

  it("names join.aws.sts_endpoint, and the configured host when it is not AWS's global one", async () => {
    const req = atUrl(await sign({}), "https://sts.vpce.example/");
    expect(reasonOf(() => check(req, GLOBAL))).toBe(
      '"sts.vpce.example" is not an allowed STS host: sign the request for sts.amazonaws.com or ' +
        "sts.<region>.amazonaws.com (discovery join --sts-endpoint, or AWS_ENDPOINT_URL_STS); if " +
        '"sts.vpce.example" is your STS endpoint (a VPC endpoint or a proxy), set join.aws.sts_endpoint to its ' +
        "https URL in the runtime config",
    );
    expect(reasonOf(() => check(req, "https://sts.internal.example"))).toBe(
      '"sts.vpce.example" is not an allowed STS host: sign the request for sts.internal.example (the runtime\'s ' +
        "join.aws.sts_endpoint), sts.amazonaws.com or sts.<region>.amazonaws.com (discovery join --sts-endpoint, " +
        'or AWS_ENDPOINT_URL_STS); if "sts.vpce.example" is your STS endpoint (a VPC endpoint or a proxy), set ' +
        "join.aws.sts_endpoint to its https URL in the runtime config",
    );
  });

  it("names join.aws.sts_endpoint when the request uses another scheme for the configured host", async () => {
    const req = atUrl(await sign({ stsEndpoint: "http://127.0.0.1:4566" }), "https://127.0.0.1:4566/");
    expect(reasonOf(() => check(req, "http://127.0.0.1:4566"))).toBe(
      "127.0.0.1:4566 is the runtime's join.aws.sts_endpoint (http://127.0.0.1:4566), called over http only, " +
        "not https; sign the request for http://127.0.0.1:4566",
    );
  });
});

describe("parseCallerIdentity: only a GetCallerIdentityResponse names a caller", () => {
  const ok = (account: string, arn: string, userId = "AIDAEXAMPLE") =>
    `<?xml version="1.0"?><GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>${arn}</Arn><UserId>${userId}</UserId><Account>${account}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetCallerIdentityResponse>`;

  it("reads the identity and keeps an account's leading zero", () => {
    expect(parseCallerIdentity(ok("012345678901", "arn:aws:iam::012345678901:user/alice"))).toEqual({
      account: "012345678901",
      arn: "arn:aws:iam::012345678901:user/alice",
      userId: "AIDAEXAMPLE",
    });
  });

  it.each([
    ["not XML", "Arn=arn:aws:iam::123456789012:root", "sts_response_not_xml"],
    ["JSON", '{"Arn":"arn:aws:iam::123456789012:root"}', "sts_response_not_xml"],
    [
      "a DOCTYPE",
      `<!DOCTYPE x [<!ENTITY a "b">]>${ok("123456789012", "arn:aws:iam::123456789012:root")}`,
      "sts_response_not_xml",
    ],
    [
      "a reflected GetSessionTokenResponse",
      ok("123456789012", "arn:aws:iam::123456789012:root").replace(/GetCallerIdentity/g, "GetSessionToken"),
      "sts_response_unexpected",
    ],
    [
      "an ErrorResponse",
      "<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>",
      "sts_response_unexpected",
    ],
    ["a second root", `${ok("123456789012", "arn:aws:iam::123456789012:root")}<Extra/>`, "sts_response_unexpected"],
    [
      "two Arn elements",
      ok("123456789012", "arn:aws:iam::123456789012:root</Arn><Arn>arn:aws:iam::999999999999:root"),
      "sts_identity_invalid",
    ],
    ["an account of 11 digits", ok("12345678901", "arn:aws:iam::12345678901:root"), "sts_identity_invalid"],
    ["an ARN of another account", ok("123456789012", "arn:aws:iam::999999999999:root"), "sts_identity_invalid"],
    ["no result", "<GetCallerIdentityResponse></GetCallerIdentityResponse>", "sts_identity_invalid"],
  ])("refuses %s", (_, text, code) => {
    expect(refusalOf(() => parseCallerIdentity(text))).toEqual({ code, status: 403 });
  });
});

describe("matchArnGlob", () => {
  const role = "arn:aws:sts::123456789012:assumed-role/node/i-0123456789abcdef0";
  it.each([
    ["arn:aws:sts::123456789012:assumed-role/node/i-0123456789abcdef0", role, true],
    ["arn:aws:sts::123456789012:assumed-role/node/*", role, true],
    ["arn:aws:sts::*:assumed-role/node/*", role, true],
    ["*", role, true],
    ["arn:aws:sts::123456789012:assumed-role/node/i-0123456789abcdef?", role, true],
    ["arn:aws:sts::123456789012:assumed-role/*/i-*", role, true],
    ["arn:aws:iam::123456789012:user/a.b", "arn:aws:iam::123456789012:user/a.b", true],
    ["arn:aws:iam::123456789012:user/a+b", "arn:aws:iam::123456789012:user/a+b", true],
    ["arn:aws:sts::123456789012:assumed-role/node", role, false],
    ["sts::123456789012:assumed-role/node/*", role, false],
    ["arn:aws:sts::123456789012:assumed-role/nod?", role, false],
    ["arn:aws:sts::123456789012:assumed-role/node/i-0123456789abcdef0?", role, false],
    ["arn:aws:sts::210987654321:assumed-role/node/*", role, false],
    ["arn:aws:iam::123456789012:user/a.b", "arn:aws:iam::123456789012:user/aXb", false],
    ["arn:aws:iam::123456789012:user/a+", "arn:aws:iam::123456789012:user/aaa", false],
    ["arn:aws:iam::123456789012:user/[ab]", "arn:aws:iam::123456789012:user/a", false],
    ["arn:aws:iam::123456789012:user/(a|b)", "arn:aws:iam::123456789012:user/a", false],
    ["arn:aws:iam::123456789012:user/.*", "arn:aws:iam::123456789012:user/alice", false],
    ["^arn:aws:iam::123456789012:user/alice$", "arn:aws:iam::123456789012:user/alice", false],
  ])("%s against %s: %s", (pattern, arn, expected) => {
    expect(matchArnGlob(pattern, arn)).toBe(expected);
  });

  it("stays fast on a pattern that makes a backtracking regex explode", () => {
    const start = Date.now();
    expect(matchArnGlob(`${"*a".repeat(30)}b`, "a".repeat(5000))).toBe(false);
    expect(Date.now() - start).toBeLessThan(1000);
  });
});

describe("matchIamRule", () => {
  const caller = (account: string, name = "node/i-0123456789abcdef0"): CallerIdentity => ({
    account,
    arn: `arn:aws:sts::${account}:assumed-role/${name}`,
    userId: "AROAEXAMPLE:i-0123456789abcdef0",
  });

  it("returns the first rule the caller satisfies, every field of a rule counting", async () => {
    const t = token([
      { aws_account: "123456789012", aws_arn: "arn:aws:sts::123456789012:assumed-role/admin/*" },
      { aws_arn: "arn:aws:sts::*:assumed-role/node/i-*" },
      { aws_account: "123456789012" },
    ]);
    await expect(matchIamRule(caller("123456789012"), t)).resolves.toBe(t.spec.allow![1]);
    await expect(matchIamRule(caller("123456789012", "web/s1"), t)).resolves.toBe(t.spec.allow![2]);
  });

  it("refuses a caller no rule allows, naming the ARN and the token", async () => {
    const t = token([{ aws_account: "111122223333" }], "prod-iam");
    const r = await asyncRefusalOf(matchIamRule(caller("123456789012"), t));
    expect(r).toMatchObject({ code: "iam_no_matching_rule", status: 403 });
    expect(r.reason).toContain("arn:aws:sts::123456789012:assumed-role/node/i-0123456789abcdef0");
    expect(r.reason).toContain("prod-iam");
  });

  it("caches organization answers per (account, organization), so one account's answer never serves another", async () => {
    const orgs: Record<string, string> = { "111111111111": "o-aaaaaaaaaa", "222222222222": "o-bbbbbbbbbb" };
    const describe = jest.fn<ReturnType<DescribeAccount>, Parameters<DescribeAccount>>(async (id) => orgs[id]);
    const orgCache = new OrganizationCache(60_000);
    const inA = token([{ aws_organization_id: "o-aaaaaaaaaa" }]);
    const opts = { describeAccount: describe, orgCache, now: NOW };

    await expect(matchIamRule(caller("111111111111"), inA, opts)).resolves.toBeDefined();
    await expect(matchIamRule(caller("111111111111"), inA, opts)).resolves.toBeDefined();
    expect(describe.mock.calls).toEqual([["111111111111"]]);

    // Same role and session name in another account: asked afresh, and refused.
    const r = await asyncRefusalOf(matchIamRule(caller("222222222222"), inA, opts));
    expect(r.code).toBe("iam_no_matching_rule");
    expect(describe.mock.calls).toEqual([["111111111111"], ["222222222222"]]);

    const inB = token([{ aws_organization_id: "o-bbbbbbbbbb" }]);
    await expect(matchIamRule(caller("222222222222"), inB, opts)).resolves.toBeDefined();
    expect(describe).toHaveBeenCalledTimes(3);

    // After the TTL the answer is asked again.
    await matchIamRule(caller("111111111111"), inA, { ...opts, now: new Date(NOW.getTime() + 61_000) });
    expect(describe).toHaveBeenCalledTimes(4);
  });

  it("refuses when the organization cannot be looked up, and does not cache the failure", async () => {
    const t = token([{ aws_organization_id: "o-aaaaaaaaaa" }]);
    const failing = jest.fn<ReturnType<DescribeAccount>, Parameters<DescribeAccount>>(async () => {
      throw new Error("AccessDeniedException");
    });
    const orgCache = new OrganizationCache();
    for (let i = 0; i < 2; i++) {
      const r = await asyncRefusalOf(matchIamRule(caller("111111111111"), t, { describeAccount: failing, orgCache }));
      expect(r).toMatchObject({ code: "iam_organization_lookup_failed", status: 403 });
      expect(r.reason).toContain("AccessDeniedException");
    }
    expect(failing).toHaveBeenCalledTimes(2);
    const none = await asyncRefusalOf(matchIamRule(caller("111111111111"), t));
    expect(none.code).toBe("iam_organization_lookup_failed");
  });
});

describe("attestIam refuses before calling STS", () => {
  // Any AWS call would fail the test: these refusals come before STS, and so before EC2.
  const instances = jest.fn<never, []>(() => {
    throw new Error("no AWS call was expected");
  });
  const ctx = { token: token([{ aws_account: "123456789012" }]), challenge: CHALLENGE, stsEndpoint: GLOBAL, now: NOW, instances }; // prettier-ignore

  it.each([
    ["a body without sts_request", { challenge: CHALLENGE }, "iam_request_malformed", 400],
    ["a body that is not an object", "iam", "iam_request_malformed", 400],
    ["another challenge in the body", { challenge: "other", sts_request: {} }, "challenge_mismatch", 403],
    ["a malformed sts_request", { challenge: CHALLENGE, sts_request: { url: 1 } }, "sts_request_malformed", 400],
    [
      "an aws_region that is no region",
      { challenge: CHALLENGE, sts_request: {}, aws_region: "mars-1" },
      "iam_region_invalid",
      400,
    ],
    [
      "an aws_region with another challenge",
      { challenge: "other", sts_request: {}, aws_region: "x" },
      "iam_region_invalid",
      400,
    ],
  ])("%s", async (_, body, code, status) => {
    expect(await asyncRefusalOf(attestIam(body, ctx))).toMatchObject({ code, status });
    expect(instances).not.toHaveBeenCalled();
  });

  it("an aws_region that is no region, in a request signed correctly: refused before STS is called", async () => {
    const body = { challenge: CHALLENGE, sts_request: await sign(), aws_region: "us-east-1; rm -rf /" };
    expect(await asyncRefusalOf(attestIam(body, ctx))).toMatchObject({ code: "iam_region_invalid", status: 400 });
  });

  it("a token of another join method", async () => {
    const ec2 = tokenDocument.parse({
      kind: "token",
      version: "v2",
      metadata: { name: "ec2" },
      spec: { roles: ["Node"], join_method: "ec2", allow: [{ aws_account: "123456789012" }] },
    });
    const r = await asyncRefusalOf(
      attestIam({ challenge: CHALLENGE, sts_request: await sign() }, { ...ctx, token: ec2 }),
    );
    expect(r).toMatchObject({ code: "join_method_mismatch", status: 400 });
  });
});
