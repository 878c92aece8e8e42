import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DescribeImagesCommand, EC2Client, RunInstancesCommand, StopInstancesCommand } from "@aws-sdk/client-ec2";
import { createSigner, identityDocument, signIdentityDocument, testCa, TestSigner } from "../fixtures/iid-signer";
import { MOTO_CREDENTIALS, startMoto, Moto } from "../fixtures/moto";
import { startTestRuntime, TestRuntime } from "../fixtures/runtime";
import { signedGetCallerIdentity } from "../../provider/clouds/aws/sts-request";
import {
  botocoreSignedGetCallerIdentity,
  expectRefused,
  iamJoinBody,
  instanceCredentials,
  newHostKey,
  sdkSignedGetCallerIdentity,
} from "../fixtures/joins";

/**
 * The join API under attack: every request below is forged, replayed, malformed or out of policy, and must be
 * refused with the exact status and reason code; the accepted joins show the checks are not refusing everything.
 */
const ACCOUNT = "123456789012";
const SECRET = "tok-3f9c2a7e51d04b8c9e6a";
const TOKENS = `
kind: token
version: v2
metadata: {name: ${SECRET}}
spec: {roles: [Node], join_method: token}
---
kind: token
version: v2
metadata: {name: expired-secret-7c1d9e, expires: "2020-01-01T00:00:00Z"}
spec: {roles: [Node], join_method: token}
---
kind: token
version: v2
metadata: {name: iam-token}
spec: {roles: [Node], join_method: iam, allow: [{aws_account: "${ACCOUNT}"}]}
---
kind: token
version: v2
metadata: {name: iam-other-account}
spec: {roles: [Node], join_method: iam, allow: [{aws_account: "999999999999"}]}
---
kind: token
version: v2
metadata: {name: iam-arn}
spec: {roles: [Node], join_method: iam, allow: [{aws_arn: "arn:aws:sts::${ACCOUNT}:assumed-role/discovery-node/*"}]}
---
kind: token
version: v2
metadata: {name: ec2-token}
spec: {roles: [Node], join_method: ec2, allow: [{aws_account: "${ACCOUNT}", aws_regions: [us-east-1]}]}
`;

type Answer = Awaited<ReturnType<TestRuntime["call"]>>;
const rsaHostKey = () => newHostKey("rsa");
const ecdsaHostKey = () => newHostKey("ecdsa");
function refused(r: Answer, status: number, reason: string): void {
  expectRefused(r, status, reason);
  expect(typeof r.body.error.message).toBe("string");
}

describe("join API red team: generic, token and iam refusals", () => {
  let moto: Moto;
  let rt: TestRuntime;
  const join = (body: unknown) => rt.call("POST", "/v1/join", body);
  const freshChallenge = async () =>
    (await rt.call("POST", "/v1/join/challenge", { method: "iam", token: "iam-token" })).body.challenge as string;
  const iamBody = async (token: string, instance: string, role = "node", region?: string) => ({
    ...(await iamJoinBody(rt, {
      token,
      motoEndpoint: moto.endpoint,
      credentials: await instanceCredentials(moto.endpoint, ACCOUNT, instance, role),
    })),
    ...(region && { aws_region: region }),
  });

  const savedEnv = { ...process.env };

  beforeAll(async () => {
    moto = await startMoto();
    // The runtime's EC2 and IAM checks of iam callers go to moto, whose account has none of these instances.
    Object.assign(process.env, { AWS_ENDPOINT_URL: moto.endpoint, AWS_ACCESS_KEY_ID: "testing", AWS_SECRET_ACCESS_KEY: "testing" }); // prettier-ignore
    rt = await startTestRuntime({
      join: { aws: { sts_endpoint: moto.endpoint }, rate_limit: { requests_per_minute: 100000, burst: 100000 } },
    });
    const put = await rt.call("PUT", "/v1/resources", TOKENS, { admin: true, contentType: "application/yaml" });
    expect(put.status).toBe(200);
  });
  afterAll(async () => {
    await rt?.stop();
    await moto?.stop();
    process.env = savedEnv;
  });

  describe("malformed requests (400)", () => {
    it("a body that is not JSON", async () =>
      refused(await rt.call("POST", "/v1/join", undefined, { raw: "{not json" }), 400, "malformed_request"));
    it("a JSON list instead of an object", async () => refused(await join([1, 2]), 400, "malformed_body"));
    it("no method", async () =>
      refused(await join({ token: "x", host_public_key: newHostKey() }), 400, "missing_field"));
    it("an unknown method", async () =>
      refused(await join({ method: "saml", token: "x", host_public_key: newHostKey() }), 400, "unknown_method"));
    it("no token", async () =>
      refused(await join({ method: "token", host_public_key: newHostKey() }), 400, "missing_field"));
    it("a token name of 300 characters", async () =>
      refused(
        await join({ method: "token", token: "a".repeat(300), host_public_key: newHostKey() }),
        400,
        "field_too_long",
      ));
    it("no host key", async () => refused(await join({ method: "token", token: SECRET }), 400, "missing_field"));
    it("a host key that is not an OpenSSH key", async () =>
      refused(await join({ method: "token", token: SECRET, host_public_key: "hello" }), 400, "bad_host_key"));
    it("two host keys smuggled on two lines", async () =>
      refused(
        await join({ method: "token", token: SECRET, host_public_key: `${newHostKey()}\n${newHostKey()}` }),
        400,
        "bad_host_key",
      ));
    it("a body over 64 KiB", async () =>
      refused(
        await join({ method: "token", token: SECRET, host_public_key: newHostKey(), pad: "x".repeat(70_000) }),
        400,
        "body_too_large",
      ));
    it("a challenge for a method that uses none", async () =>
      refused(
        await rt.call("POST", "/v1/join/challenge", { method: "ec2", token: "ec2-token" }),
        400,
        "challenge_not_used",
      ));
  });

  describe("token method", () => {
    it("a wrong secret is refused without saying whether the token exists", async () =>
      refused(
        await join({ method: "token", token: "guess-1234", host_public_key: newHostKey() }),
        403,
        "token_not_allowed",
      ));
    it("the name of an ec2 token used as a shared secret", async () =>
      refused(
        await join({ method: "token", token: "ec2-token", host_public_key: newHostKey() }),
        403,
        "token_not_allowed",
      ));
    it("a secret token used with another method", async () =>
      refused(
        await join({ method: "ec2", token: SECRET, host_public_key: newHostKey(), iid: "x" }),
        403,
        "token_not_allowed",
      ));
    it("an expired token", async () =>
      refused(
        await join({ method: "token", token: "expired-secret-7c1d9e", host_public_key: newHostKey() }),
        403,
        "token_expired",
      ));
    it("names the node after the decoded key: the same key spelled otherwise is the same node", async () => {
      const key = ecdsaHostKey();
      const [type, blob] = key.split(" ");
      const ok = await join({ method: "token", token: SECRET, host_public_key: `${type} ${blob} first-comment` });
      expect(ok.status).toBe(200);
      // The last base64 character before the padding carries two unused bits: set them, same bytes.
      const last = blob.replace(/=+$/, "").slice(-1);
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      const respelled = `${blob.replace(/=+$/, "").slice(0, -1)}${alphabet[alphabet.indexOf(last) | 3]}=`;
      expect(respelled).not.toBe(blob);
      expect(Buffer.from(respelled, "base64")).toEqual(Buffer.from(blob, "base64"));
      refused(
        await join({ method: "token", token: SECRET, host_public_key: `${type} ${respelled} another-comment` }),
        403,
        "already_joined",
      );
    });
    it.each([
      ["a truncated key", "ssh-ed25519 AAAA"],
      ["an rsa key labelled ed25519", () => `ssh-ed25519 ${rsaHostKey().split(" ")[1]}`],
    ])("%s is refused as bad_host_key and nothing is stored", async (_, key) => {
      const host_public_key = typeof key === "function" ? key() : key;
      const before = (await rt.call("GET", "/v1/nodes", undefined, { admin: true })).body.nodes.length;
      refused(await join({ method: "token", token: SECRET, host_public_key }), 400, "bad_host_key");
      expect((await rt.call("GET", "/v1/nodes", undefined, { admin: true })).body.nodes.length).toBe(before);
    });
    it("joins once; the same host joining again is refused and audited", async () => {
      const key = newHostKey();
      const ok = await join({ method: "token", token: SECRET, host_public_key: key });
      expect(ok.status).toBe(200);
      expect(ok.body.host_certificate).toMatch(/^ssh-ed25519-cert-v01@openssh.com /);
      expect(ok.body.labels).toEqual({ "discovery/origin": "token", "discovery/join-method": "token" });
      refused(await join({ method: "token", token: SECRET, host_public_key: key }), 403, "already_joined");
    });
  });

  describe("iam method", () => {
    // Naming after instances is join-redteam-iam-names.test.ts's; these sessions name instances EC2 doesn't know.
    it("accepts a signed GetCallerIdentity, but not as the instance its session names, which EC2 does not know", async () => {
      const r = await join(await iamBody("iam-token", "i-0a1b2c3d4e5f60001", "node", "us-east-1"));
      expect(r.status).toBe(200);
      expect(r.body.node_name).toMatch(new RegExp(`^${ACCOUNT}-iam-i-0a1b2c3d4e5f60001-[0-9a-f]{12}$`));
      expect(r.body.labels).toEqual({
        "discovery/origin": "cloud",
        "discovery/account-id": ACCOUNT,
        "discovery/instance-verified": "false",
        "discovery/unverified-reason": "instance-not-found",
        "discovery/join-method": "iam",
      });
    });
    it("the same caller joining again with a fresh challenge", async () =>
      refused(await join(await iamBody("iam-token", "i-0a1b2c3d4e5f60001")), 403, "already_joined"));
    it("a replayed challenge", async () => {
      const body = await iamBody("iam-token", "i-0a1b2c3d4e5f60002");
      expect((await join(body)).status).toBe(200);
      refused(await join({ ...body, host_public_key: newHostKey() }), 403, "challenge_invalid");
    });
    it("a challenge never issued, signed into the request", async () => {
      const challenge = "A".repeat(43);
      const sts_request = await signedGetCallerIdentity({
        challenge,
        stsEndpoint: moto.endpoint,
        region: "us-east-1",
        credentials: await instanceCredentials(moto.endpoint, ACCOUNT, "i-0a1b2c3d4e5f60003"),
      });
      const body = { method: "iam", token: "iam-token", host_public_key: newHostKey(), challenge, sts_request };
      refused(await join(body), 403, "challenge_invalid");
    });
    it("a body naming another challenge than the one signed", async () => {
      const body = await iamBody("iam-token", "i-0a1b2c3d4e5f60003");
      refused(await join({ ...body, challenge: "A".repeat(43) }), 403, "sts_challenge_mismatch");
    });
    it("no challenge at all", async () => {
      const { challenge: _c, ...body } = await iamBody("iam-token", "i-0a1b2c3d4e5f60004");
      refused(await join(body), 400, "missing_field");
    });
    it("a challenge issued for another token", async () => {
      const body = await iamBody("iam-arn", "i-0a1b2c3d4e5f60005");
      refused(await join({ ...body, token: "iam-token" }), 403, "challenge_mismatch");
    });
    it("a challenge for a token that does not exist", async () =>
      refused(
        await rt.call("POST", "/v1/join/challenge", { method: "iam", token: "no-such-token" }),
        403,
        "token_not_allowed",
      ));
    it("a signed request carrying another challenge than the one presented", async () => {
      const a = await iamBody("iam-token", "i-0a1b2c3d4e5f60006");
      const b = await iamBody("iam-token", "i-0a1b2c3d4e5f60006");
      refused(await join({ ...a, challenge: b.challenge }), 403, "sts_challenge_mismatch");
    });
    it("a request steered to another host (Vault CVE-2020-16250 class)", async () => {
      const body = await iamBody("iam-token", "i-0a1b2c3d4e5f60007");
      refused(
        await join({ ...body, sts_request: { ...body.sts_request, url: "https://evil.example.com/" } }),
        403,
        "sts_host_not_allowed",
      );
    });
    it("a request for another STS action (GetSessionToken)", async () => {
      const body = await iamBody("iam-token", "i-0a1b2c3d4e5f60008");
      const sts = { ...body.sts_request, body: "Action=GetSessionToken&Version=2011-06-15" };
      refused(await join({ ...body, sts_request: sts }), 403, "sts_body_not_allowed");
    });
    it("a request with a query string", async () => {
      const body = await iamBody("iam-token", "i-0a1b2c3d4e5f60009");
      refused(
        await join({
          ...body,
          sts_request: { ...body.sts_request, url: `${moto.endpoint}/?Action=GetCallerIdentity` },
        }),
        403,
        "sts_url_query",
      );
    });
    it("a GET instead of a POST", async () => {
      const body = await iamBody("iam-token", "i-0a1b2c3d4e5f60010");
      refused(
        await join({ ...body, sts_request: { ...body.sts_request, method: "GET" } }),
        403,
        "sts_method_not_allowed",
      );
    });
    it("an extra header the signature does not need", async () => {
      const body = await iamBody("iam-token", "i-0a1b2c3d4e5f60011");
      const headers = { ...body.sts_request.headers, "x-forwarded-host": "evil.example.com" };
      refused(await join({ ...body, sts_request: { ...body.sts_request, headers } }), 403, "sts_header_not_allowed");
    });
    it("a challenge header left out of the signature", async () => {
      const body = await iamBody("iam-token", "i-0a1b2c3d4e5f60012");
      const headers = { ...body.sts_request.headers };
      headers.authorization = headers.authorization.replace(";x-discovery-challenge", "");
      refused(await join({ ...body, sts_request: { ...body.sts_request, headers } }), 403, "sts_challenge_not_signed");
    });
    it("an unsigned request", async () => {
      const body = await iamBody("iam-token", "i-0a1b2c3d4e5f60013");
      const { authorization: _a, ...headers } = body.sts_request.headers;
      refused(await join({ ...body, sts_request: { ...body.sts_request, headers } }), 400, "sts_authorization_missing");
    });
    it.each([
      ["botocore's SigV4Auth (Python), which hands back no Host header", "botocore", "i-0a1b2c3d4e5f60101"],
      ["the AWS SDK for JS v3's own STSClient (user-agent and retry headers)", "js-sdk", "i-0a1b2c3d4e5f60102"],
    ])("accepts a request signed by %s", async (_, signer, instance) => {
      const challenge = await freshChallenge();
      const creds = await instanceCredentials(moto.endpoint, ACCOUNT, instance);
      const sts_request =
        signer === "botocore"
          ? botocoreSignedGetCallerIdentity(moto.endpoint, challenge, creds)
          : await sdkSignedGetCallerIdentity(moto.endpoint, challenge, creds);
      const names = Object.keys(sts_request.headers).map((h) => h.toLowerCase());
      if (signer === "botocore") expect(names).not.toContain("host");
      else expect(names).toEqual(expect.arrayContaining(["amz-sdk-invocation-id", "x-amz-user-agent"]));
      const r = await join({
        method: "iam",
        token: "iam-token",
        host_public_key: newHostKey(),
        challenge,
        sts_request,
      });
      expect([r.status, r.body.labels?.["discovery/account-id"]]).toEqual([200, ACCOUNT]);
    });
    it("a botocore request whose added Host header names another host", async () => {
      const challenge = await freshChallenge();
      const creds = await instanceCredentials(moto.endpoint, ACCOUNT, "i-0a1b2c3d4e5f60103");
      const signed = botocoreSignedGetCallerIdentity(moto.endpoint, challenge, creds);
      const sts_request = { ...signed, headers: { ...signed.headers, Host: "sts.amazonaws.com" } };
      refused(
        await join({ method: "iam", token: "iam-token", host_public_key: newHostKey(), challenge, sts_request }),
        403,
        "sts_host_header_mismatch",
      );
    });
    it.each([
      ["a control character", "agent\u0007", "i-0a1b2c3d4e5f60104"],
      ["non-ASCII text", "agent-café", "i-0a1b2c3d4e5f60105"],
      ["a NUL", "agent\u0000x", "i-0a1b2c3d4e5f60106"],
    ])("a header value with %s is a 400 that leaves the challenge unused", async (_, value, instance) => {
      const body = await iamBody("iam-token", instance);
      const headers = { ...body.sts_request.headers, "user-agent": value };
      refused(await join({ ...body, sts_request: { ...body.sts_request, headers } }), 400, "sts_request_malformed");
      expect((await join(body)).status).toBe(200);
    });
    it.each([
      ["a truncated ed25519 key", "ssh-ed25519 AAAA", "i-0a1b2c3d4e5f60107"],
      ["a cut-off ed25519 blob", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI", "i-0a1b2c3d4e5f60108"],
      [
        "an ssh-rsa blob labelled ssh-ed25519",
        () => `ssh-ed25519 ${rsaHostKey().split(" ")[1]}`,
        "i-0a1b2c3d4e5f60109",
      ],
    ])("%s is a 400 bad_host_key before attestation: the challenge is still unused", async (_, key, instance) => {
      const body = await iamBody("iam-token", instance);
      const host_public_key = typeof key === "function" ? key() : key;
      refused(await join({ ...body, host_public_key }), 400, "bad_host_key");
      expect((await join(body)).status).toBe(200);
    });
    it("a caller in an account the token does not allow", async () =>
      refused(await join(await iamBody("iam-other-account", "i-0a1b2c3d4e5f60014")), 403, "iam_no_matching_rule"));
    it("a caller whose role does not match the token's ARN glob", async () =>
      refused(await join(await iamBody("iam-arn", "i-0a1b2c3d4e5f60015", "other-role")), 403, "iam_no_matching_rule"));
    it("a caller whose role matches the ARN glob is accepted", async () =>
      expect((await join(await iamBody("iam-arn", "i-0a1b2c3d4e5f60016", "discovery-node"))).status).toBe(200));
  });

  it("records every refusal in the audit log with its reason", async () => {
    const audit = await rt.call("GET", "/v1/audit", undefined, { admin: true });
    const refusals = audit.body.events.filter((e: { type: string }) => e.type.endsWith(".refused"));
    expect(refusals.length).toBeGreaterThanOrEqual(25);
    for (const e of refusals)
      expect(e).toEqual(expect.objectContaining({ code: expect.any(String), reason: expect.any(String) }));
    expect(audit.text).not.toContain(SECRET);
    const metrics = await rt.call("GET", "/metrics");
    expect(metrics.text).toMatch(
      /discovery_join_requests_total\{method="iam",result="join_refused",reason="already_joined"\} 1/,
    );
  });
});

describe("join API red team: rate limits", () => {
  let rt: TestRuntime;
  beforeAll(async () => {
    rt = await startTestRuntime({ join: { rate_limit: { requests_per_minute: 1, burst: 3 } } });
  });
  afterAll(async () => rt?.stop());

  it("answers 429 once a source exceeds its burst, before looking at the request", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++)
      statuses.push(
        (await rt.call("POST", "/v1/join", { method: "token", token: "x", host_public_key: newHostKey() })).status,
      );
    expect(statuses).toEqual([403, 403, 403]);
    refused(
      await rt.call("POST", "/v1/join", { method: "token", token: "x", host_public_key: newHostKey() }),
      429,
      "rate_limited",
    );
    refused(await rt.call("POST", "/v1/join/challenge", { method: "iam", token: "x" }), 429, "rate_limited");
  });
});

describe("join API red team: ec2 identity documents", () => {
  let moto: Moto;
  let rt: TestRuntime;
  let signer: TestSigner;
  let running: string[];
  let stopped: string;
  const savedEndpoint = process.env.AWS_ENDPOINT_URL;
  const join = (iid: string, token = "ec2-token") =>
    rt.call("POST", "/v1/join", { method: "ec2", token, host_public_key: newHostKey(), iid });
  const doc = (instance: string, overrides: Record<string, unknown> = {}) =>
    identityDocument({ instanceId: instance, ...overrides });
  let next = 0;
  const fresh = () => running[next++];

  beforeAll(async () => {
    moto = await startMoto();
    // The runtime runs in this process: its EC2 client reaches moto through the standard variable.
    process.env.AWS_ENDPOINT_URL = moto.endpoint;
    process.env.AWS_ACCESS_KEY_ID = "testing";
    process.env.AWS_SECRET_ACCESS_KEY = "testing";
    signer = await testCa();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-ec2-"));
    fs.writeFileSync(path.join(dir, "test-ca.pem"), signer.certPem);
    rt = await startTestRuntime(
      {
        join: {
          aws: { extra_ca_certs: ["./test-ca.pem"] },
          rate_limit: { requests_per_minute: 100000, burst: 100000 },
        },
      },
      { dir },
    );
    const tokens = `kind: token\nversion: v2\nmetadata: {name: ec2-token}\nspec: {roles: [Node], join_method: ec2, allow: [{aws_account: "${ACCOUNT}", aws_regions: [us-east-1]}]}\n`;
    expect(
      (await rt.call("PUT", "/v1/resources", tokens, { admin: true, contentType: "application/yaml" })).status,
    ).toBe(200);
    const ec2 = new EC2Client({ region: "us-east-1", endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS });
    const image = (await ec2.send(new DescribeImagesCommand({}))).Images![0].ImageId;
    const launched = await ec2.send(
      new RunInstancesCommand({ ImageId: image, MinCount: 20, MaxCount: 20, InstanceType: "t3.micro" }),
    );
    const ids = launched.Instances!.map((i) => i.InstanceId!);
    stopped = ids.pop()!;
    await ec2.send(new StopInstancesCommand({ InstanceIds: [stopped] }));
    running = ids;
  });
  afterAll(async () => {
    await rt?.stop();
    if (rt) fs.rmSync(rt.dir, { recursive: true, force: true });
    await moto?.stop();
    if (savedEndpoint === undefined) delete process.env.AWS_ENDPOINT_URL;
    else process.env.AWS_ENDPOINT_URL = savedEndpoint;
  });

  it("accepts a document signed by a trusted CA for a running instance, once", async () => {
    const id = fresh();
    const iid = await signIdentityDocument(doc(id), signer);
    const ok = await join(iid);
    expect(ok.status).toBe(200);
    expect(ok.body.node_name).toBe(`${ACCOUNT}-${id}`);
    expect(ok.body.labels).toEqual({
      "discovery/origin": "cloud",
      "discovery/account-id": ACCOUNT,
      "discovery/instance-id": id,
      "discovery/region": "us-east-1",
      "discovery/join-method": "ec2",
    });
    refused(await join(iid), 403, "already_joined");
  });
  it("accepts PEM armour around the PKCS7", async () =>
    expect((await join(await signIdentityDocument(doc(fresh()), signer, { pemArmour: true }))).status).toBe(200));
  it("takes the identity only from the signed content, never from an unsigned attribute (SPIRE 1.14.6 class)", async () => {
    const id = fresh();
    const iid = await signIdentityDocument(doc(id), signer, {
      unsignedAttributes: { "1.2.3.4": JSON.stringify({ instanceId: "i-0fffffffffffffff0" }) },
    });
    const r = await join(iid);
    expect([r.status, r.body.node_name]).toEqual([200, `${ACCOUNT}-${id}`]);
  });
  it("a document signed by a key nobody trusts", async () => {
    const stranger = await createSigner({ commonName: "stranger" });
    refused(await join(await signIdentityDocument(doc(fresh()), stranger)), 403, "iid_untrusted_signer");
  });
  it("a signature made with another key than the named signer's", async () => {
    const stranger = await createSigner({ commonName: "impostor" });
    refused(
      await join(await signIdentityDocument(doc(fresh()), signer, { signWith: stranger })),
      403,
      "iid_signature_invalid",
    );
  });
  it("content changed after signing (another instance id)", async () => {
    const iid = await signIdentityDocument(doc(fresh()), signer, {
      tamperContent: (t) => t.replace(/i-[0-9a-f]+/, running[running.length - 1]),
    });
    refused(await join(iid), 403, "iid_signature_invalid");
  });
  it("a certificate embedded in the PKCS7 that no trusted CA issued", async () => {
    const rogue = await createSigner({ commonName: "rogue CA" });
    const leaf = await createSigner({ commonName: "rogue leaf", issuer: rogue });
    refused(
      await join(await signIdentityDocument(doc(fresh()), leaf, { embedCerts: [leaf, rogue] })),
      403,
      "iid_untrusted_signer",
    );
  });
  it("two signers", async () => {
    const other = await createSigner({ commonName: "second" });
    refused(
      await join(await signIdentityDocument(doc(fresh()), signer, { extraSigners: [other] })),
      400,
      "iid_signer_count",
    );
  });
  it("a region that is not an AWS region", async () =>
    refused(
      await join(await signIdentityDocument(doc(fresh(), { region: "xx-fake-9" }), signer)),
      403,
      "iid_unknown_region",
    ));
  it("a region the token does not allow", async () =>
    refused(
      await join(await signIdentityDocument(doc(fresh(), { region: "eu-west-1" }), signer)),
      403,
      "ec2_region_not_allowed",
    ));
  it("an account the token does not allow", async () =>
    refused(
      await join(await signIdentityDocument(doc(fresh(), { accountId: "210987654321" }), signer)),
      403,
      "ec2_account_not_allowed",
    ));
  it("a stale document (pending 10 minutes ago, TTL 5m)", async () =>
    refused(
      await join(
        await signIdentityDocument(
          doc(fresh(), { pendingTime: new Date(Date.now() - 600_000).toISOString().replace(/\.\d+Z$/, "Z") }),
          signer,
        ),
      ),
      403,
      "iid_expired",
    ));
  it("a document from the future (pending in 5 minutes)", async () =>
    refused(
      await join(
        await signIdentityDocument(
          doc(fresh(), { pendingTime: new Date(Date.now() + 300_000).toISOString().replace(/\.\d+Z$/, "Z") }),
          signer,
        ),
      ),
      403,
      "iid_from_future",
    ));
  it("an instance that is stopped", async () =>
    refused(await join(await signIdentityDocument(doc(stopped), signer)), 403, "ec2_instance_not_running"));
  it("an instance that does not exist", async () =>
    refused(await join(await signIdentityDocument(doc("i-0deadbeefdeadbeef"), signer)), 403, "ec2_instance_not_found"));
  it("an instance id that is not one", async () =>
    refused(await join(await signIdentityDocument(doc("../../etc"), signer)), 400, "iid_field_invalid"));
  it("base64 that is not base64", async () => refused(await join("%%%not-base64%%%"), 400, "iid_malformed"));
  it("a PKCS7 larger than 16 KiB", async () => refused(await join("A".repeat(20_000)), 400, "iid_too_large"));
  it("no identity document at all", async () =>
    refused(
      await rt.call("POST", "/v1/join", { method: "ec2", token: "ec2-token", host_public_key: newHostKey() }),
      400,
      "missing_field",
    ));
});

/** The series of one metric in a /metrics text: `name{labels} value` lines. */
const seriesOf = (text: string, name: string) => text.split("\n").filter((l) => l.startsWith(`${name}{`));

describe("join API red team: floods cost the runtime nothing lasting", () => {
  let rt: TestRuntime;
  beforeAll(async () => {
    rt = await startTestRuntime({ join: { rate_limit: { requests_per_minute: 1, burst: 2 } } });
  });
  afterAll(async () => rt?.stop());

  it("a flood of rate-limited requests writes no audit row and one log line, yet every 429 is counted", async () => {
    const body = { method: "token", token: "guess", host_public_key: newHostKey() };
    for (let i = 0; i < 2; i++) refused(await rt.call("POST", "/v1/join", body), 403, "token_not_allowed");
    for (let i = 0; i < 40; i++) refused(await rt.call("POST", "/v1/join", body), 429, "rate_limited");
    for (let i = 0; i < 10; i++)
      refused(await rt.call("POST", "/v1/join/challenge", { method: "iam", token: "x" }), 429, "rate_limited");

    const audit = await rt.call("GET", "/v1/audit", undefined, { admin: true });
    expect(audit.body.events.map((e: { code?: string }) => e.code)).toEqual(["token_not_allowed", "token_not_allowed"]);
    const logged = rt
      .log()
      .split("\n")
      .filter((l) => l.includes("rate limited"));
    expect(logged).toHaveLength(1);
    expect(JSON.parse(logged[0])).toMatchObject({ level: 40, source: "127.0.0.1" });
    const metrics = (await rt.call("GET", "/metrics")).text;
    expect(metrics).toContain(
      'discovery_join_requests_total{method="unknown",result="join_refused",reason="rate_limited"} 40',
    );
    expect(metrics).toContain(
      'discovery_join_requests_total{method="unknown",result="challenge_refused",reason="rate_limited"} 10',
    );
  });
});

describe("join API red team: client-chosen values cannot add series to /metrics", () => {
  let rt: TestRuntime;
  beforeAll(async () => {
    rt = await startTestRuntime({ join: { rate_limit: { requests_per_minute: 100000, burst: 100000 } } });
  });
  afterAll(async () => rt?.stop());

  const probe = async (method: string) => {
    refused(
      await rt.call("POST", "/v1/join", { method, token: "x", host_public_key: newHostKey() }),
      400,
      "unknown_method",
    );
    refused(await rt.call("POST", "/v1/join/challenge", { method, token: "x" }), 400, "challenge_not_used");
  };

  it("counts every unknown join method under the one label value invalid", async () => {
    await probe("saml-0");
    const before = seriesOf((await rt.call("GET", "/metrics")).text, "discovery_join_requests_total");
    const methods = Array.from({ length: 60 }, (_, i) => `saml-${i + 1}`);
    // Label syntax in a method must not break out of the label either.
    methods.push('x"} 1\nforged_metric{a="', "ToKeN", "token ", "ec2\u0000");
    for (const m of methods) await probe(m);

    const text = (await rt.call("GET", "/metrics")).text;
    const after = seriesOf(text, "discovery_join_requests_total");
    expect(after.map((l) => l.replace(/ \d+$/, ""))).toEqual(before.map((l) => l.replace(/ \d+$/, "")));
    expect(text).not.toMatch(/saml-|forged_metric|ToKeN/);
    const n = methods.length + 1;
    expect(after).toEqual(
      expect.arrayContaining([
        `discovery_join_requests_total{method="invalid",result="join_refused",reason="unknown_method"} ${n}`,
        `discovery_join_requests_total{method="invalid",result="challenge_refused",reason="challenge_not_used"} ${n}`,
      ]),
    );
  });
});

describe("join API red team: /metrics behind the admin token", () => {
  let rt: TestRuntime;
  beforeAll(async () => {
    rt = await startTestRuntime({ metrics: { require_admin_token: true } });
  });
  afterAll(async () => rt?.stop());

  it("answers 401 without the token or with a wrong one, and the metrics with it", async () => {
    for (const bearer of [undefined, "x".repeat(43), "short"]) {
      const r = await rt.call("GET", "/metrics", undefined, { bearer });
      expect([r.status, r.body.error?.code]).toEqual([401, "unauthorized"]);
      expect(r.text).not.toContain("discovery_");
    }
    const ok = await rt.call("GET", "/metrics", undefined, { admin: true });
    expect(ok.status).toBe(200);
    expect(ok.text).toContain("discovery_nodes 0");
    // The probes a load balancer makes stay open.
    expect((await rt.call("GET", "/readyz")).status).toBe(200);
    expect((await rt.call("GET", "/webapi/ping")).status).toBe(200);
  });
});
