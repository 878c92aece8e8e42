import { X509Certificate } from "crypto";
import * as http from "http";
import type { AddressInfo } from "net";
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import * as ec2 from "../../provider/clouds/aws/attest-ec2";
import { InstanceIdentity, MAX_IID_CHARS, verifyInstanceIdentity } from "../../provider/clouds/aws/attest-ec2";
import { AWS_RSA2048_REGION_CERTS, awsRegionCertificate } from "../../provider/clouds/aws/region-certs";
import { JoinRefusal } from "../../provider/join/errors";
import { Token, tokenDocument } from "../../provider/model";
import * as iidSigner from "../fixtures/iid-signer";
import { identityDocument as doc, ForgeOptions, signIdentityDocument, TestSigner } from "../fixtures/iid-signer";

const ACCOUNT = "123456789012";
const TTL_MS = 5 * 60_000;
const ID = "i-0123456789abcdef0";

function makeToken(join_method: string, allow: Record<string, unknown>[], ttl?: string): Token {
  const spec = { roles: ["Node"], join_method, ...(ttl && { aws_iid_ttl: ttl }), allow };
  return tokenDocument.parse({ kind: "token", version: "v2", metadata: { name: `${join_method}-token` }, spec });
}
const token = makeToken("ec2", [{ aws_account: ACCOUNT, aws_regions: ["us-east-1", "eu-west-1"] }], "5m");
const pendingAgo = (ms: number) => new Date(Math.floor((Date.now() - ms) / 1000) * 1000).toISOString();
const noAws = { endpoint: "http://127.0.0.1:9", credentials: { accessKeyId: "x", secretAccessKey: "y" } };

// AWS's own certificate for a region, paired with a key that is not AWS's: names the real signer, then forges.
function awsImpostor(region: string, key: TestSigner): TestSigner {
  const pem = AWS_RSA2048_REGION_CERTS[region];
  return { cert: pkijs.Certificate.fromBER(new X509Certificate(pem).raw), certPem: pem, privateKey: key.privateKey };
}

// A CMS ContentInfo of type data: valid PKCS7, but not SignedData.
function dataContentInfo(text: string): string {
  const content = new asn1js.OctetString({ valueHex: new Uint8Array(Buffer.from(text)) });
  const info = new pkijs.ContentInfo({ contentType: "1.2.840.113549.1.7.1", content });
  return Buffer.from(info.toSchema().toBER(false)).toString("base64");
}

type Built = { iid: string; extraCaPems?: string[]; token?: Token };
type Outcome = { refused: [string, number, ...string[]] } | { accepted: Partial<InstanceIdentity> };
const refuse = (code: string, status: 400 | 403, ...words: string[]): Outcome => ({
  refused: [code, status, ...words],
});
const accept = (fields: Partial<InstanceIdentity> = {}): Outcome => ({ accepted: fields });

describe("verifyInstanceIdentity and matchEc2Rule", () => {
  // Filled in beforeAll: RSA key generation is slow, and the cases below refer to these lazily.
  const s = {} as Record<"ca" | "stranger" | "leafOfCa" | "strangerLeaf", TestSigner>;
  beforeAll(async () => {
    s.ca = await iidSigner.testCa();
    s.stranger = await iidSigner.createSigner({ commonName: "stranger CA" });
    s.leafOfCa = await iidSigner.createSigner({ issuer: s.ca, commonName: "IID signer issued by the test CA" });
    s.strangerLeaf = await iidSigner.createSigner({ issuer: s.stranger, commonName: "IID signer of a stranger" });
  });

  // Thunks throughout: signers exist only after beforeAll, and pendingTime is taken when a case runs.
  const signed =
    (who: () => TestSigner, fields: () => object | string = () => doc(), forge: () => ForgeOptions = () => ({})) =>
    async (): Promise<Built> => ({ iid: await signIdentityDocument(fields(), who(), forge()) });
  const byCa = (fields: () => object | string = () => doc(), forge?: () => ForgeOptions) =>
    signed(() => s.ca, fields, forge);
  const tampered = (t: string) => t.replace(ACCOUNT, "210987654321");

  const cases: [string, () => Promise<Built>, Outcome][] = [
    [
      "signed by the trusted extra CA: accepted",
      byCa(),
      accept({ accountId: ACCOUNT, instanceId: ID, region: "us-east-1" }),
    ],
    ["PEM armour: accepted", byCa(undefined, () => ({ pemArmour: true })), accept({ instanceId: ID })],
    [
      "no signed attributes: accepted",
      byCa(undefined, () => ({ noSignedAttributes: true })),
      accept({ instanceId: ID }),
    ],
    [
      "signed by an untrusted key",
      signed(() => s.stranger),
      refuse("iid_untrusted_signer", 403, "neither AWS's for region us-east-1", "extra_ca_certs"),
    ],
    [
      "names the trusted CA, signed with another key",
      byCa(undefined, () => ({ signWith: s.stranger })),
      refuse("iid_signature_invalid", 403, "signature does not verify"),
    ],
    [
      "names AWS's us-east-1 certificate, signed with another key",
      signed(() => awsImpostor("us-east-1", s.stranger)),
      refuse("iid_signature_invalid", 403, "signature does not verify"),
    ],
    [
      "AWS's us-east-1 certificate cannot sign for eu-west-1",
      signed(
        () => awsImpostor("us-east-1", s.stranger),
        () => doc({ region: "eu-west-1" }),
      ),
      refuse("iid_untrusted_signer", 403, "region eu-west-1"),
    ],
    [
      "content tampered after signing",
      byCa(undefined, () => ({ tamperContent: tampered })),
      refuse("iid_signature_invalid", 403, "message digest does not match"),
    ],
    [
      "content tampered, no signed attributes",
      byCa(undefined, () => ({ noSignedAttributes: true, tamperContent: tampered })),
      refuse("iid_signature_invalid", 403, "signature does not verify"),
    ],
    [
      "an unsigned attribute carrying another identity is ignored",
      byCa(undefined, () => ({
        unsignedAttributes: { "1.3.6.1.4.1.99999.1": JSON.stringify(doc({ accountId: "999999999999" })) },
      })),
      accept({ accountId: ACCOUNT, instanceId: ID }),
    ],
    [
      "a certificate in the PKCS7 claiming another identity, which did not sign, is ignored",
      async () => {
        const impostor = await iidSigner.createSigner({ issuer: s.ca, commonName: "999999999999 i-0badbadbadbadbad0" });
        return { iid: await signIdentityDocument(doc(), s.ca, { embedCerts: [impostor] }) };
      },
      accept({ accountId: ACCOUNT, instanceId: ID }),
    ],
    [
      "a signer in the PKCS7 not issued by a trusted CA, though it verifies",
      signed(
        () => s.strangerLeaf,
        undefined,
        () => ({ embedCerts: [s.strangerLeaf, s.stranger] }),
      ),
      refuse("iid_untrusted_signer", 403, "not issued by a CA in join.aws.extra_ca_certs"),
    ],
    // SPIRE 1.14.7's Azure bug: the chain was checked on the bag's first certificate, the signature on another.
    [
      "a trusted certificate first in the bag does not vouch for the signer",
      signed(
        () => s.strangerLeaf,
        undefined,
        () => ({ embedCerts: [s.leafOfCa, s.strangerLeaf] }),
      ),
      refuse("iid_untrusted_signer", 403, "not issued by a CA"),
    ],
    [
      "a self-signed certificate in the PKCS7 does not anchor itself",
      signed(
        () => s.stranger,
        undefined,
        () => ({ embedCerts: [s.stranger] }),
      ),
      refuse("iid_untrusted_signer", 403, "not issued by a CA"),
    ],
    [
      "a signer in the PKCS7 chained to the extra CA: accepted",
      signed(
        () => s.leafOfCa,
        undefined,
        () => ({ embedCerts: [s.leafOfCa] }),
      ),
      accept({ accountId: ACCOUNT }),
    ],
    [
      "a signer issued by the extra CA but missing from the PKCS7",
      signed(() => s.leafOfCa),
      refuse("iid_untrusted_signer", 403, "neither AWS's"),
    ],
    [
      "no extra CAs: the test CA is not trusted",
      async () => ({ ...(await byCa()()), extraCaPems: [] }),
      refuse("iid_untrusted_signer", 403, "neither AWS's"),
    ],
    [
      "an unknown region, though signed by a trusted CA",
      byCa(() => doc({ region: "xx-nowhere-1" })),
      refuse("iid_unknown_region", 403, '"xx-nowhere-1"', "not an AWS region"),
    ],
    [
      "a region shaped as a path is unknown, never looked up",
      byCa(() => doc({ region: "../../etc/passwd" })),
      refuse("iid_unknown_region", 403, "../../etc/passwd"),
    ],
    [
      "a region not in the account's allow rule",
      byCa(() => doc({ region: "us-west-2" })),
      refuse("ec2_region_not_allowed", 403, ACCOUNT, "us-west-2", 'token "ec2-token"'),
    ],
    [
      "an account no rule allows",
      byCa(() => doc({ accountId: "210987654321" })),
      refuse("ec2_account_not_allowed", 403, "210987654321", 'token "ec2-token"'),
    ],
    [
      "a rule without aws_regions allows every region of its account",
      async () => ({
        ...(await byCa(() => doc({ region: "ap-southeast-2" }))()),
        token: makeToken("ec2", [{ aws_account: "210987654321" }, { aws_account: ACCOUNT }]),
      }),
      accept({ region: "ap-southeast-2" }),
    ],
    [
      "pendingTime older than the TTL",
      byCa(() => doc({ pendingTime: pendingAgo(TTL_MS + 60_000) })),
      refuse("iid_expired", 403, "s old", "aws_iid_ttl of 300 s"),
    ],
    [
      "pendingTime just inside the TTL: accepted",
      byCa(() => doc({ pendingTime: pendingAgo(TTL_MS - 10_000) })),
      accept(),
    ],
    [
      "pendingTime 2 minutes in the future",
      byCa(() => doc({ pendingTime: pendingAgo(-120_000) })),
      refuse("iid_from_future", 403, "ahead of this server's clock"),
    ],
    [
      "pendingTime 30 s in the future (clock skew): accepted",
      byCa(() => doc({ pendingTime: pendingAgo(-30_000) })),
      accept(),
    ],
    [
      "malformed base64",
      async () => ({ iid: "MIAGCSqGSIb3DQEHAqCAMIACAQEx***not base64***" }),
      refuse("iid_malformed", 400, "not base64"),
    ],
    [
      "base64 of something that is not ASN.1",
      async () => ({ iid: Buffer.from("hello, I am an EC2 instance").toString("base64") }),
      refuse("iid_malformed", 400, "PKCS7"),
    ],
    [
      "trailing bytes after the PKCS7",
      async () => ({
        iid: Buffer.concat([Buffer.from((await byCa()()).iid, "base64"), Buffer.from("trailer")]).toString("base64"),
      }),
      refuse("iid_malformed", 400, "not a BER-encoded PKCS7"),
    ],
    [
      "oversized input, refused before parsing",
      async () => ({ iid: "A".repeat(MAX_IID_CHARS + 4) }),
      refuse("iid_too_large", 400, `over the ${MAX_IID_CHARS} accepted`),
    ],
    [
      "a PKCS7 that is not SignedData",
      async () => ({ iid: dataContentInfo(JSON.stringify(doc())) }),
      refuse("iid_not_signed_data", 400, "1.2.840.113549.1.7.1", "not SignedData"),
    ],
    [
      "two signers",
      byCa(undefined, () => ({ extraSigners: [s.leafOfCa] })),
      refuse("iid_signer_count", 400, "2 signers", "exactly one"),
    ],
    ["signed content that is not JSON", byCa(() => "accountId=123456789012"), refuse("iid_malformed", 400, "not JSON")],
    [
      "a missing instanceId",
      byCa(() => doc({ instanceId: undefined })),
      refuse("iid_field_invalid", 400, "instanceId is missing"),
    ],
    [
      "a malformed instanceId",
      byCa(() => doc({ instanceId: "i-XYZ" })),
      refuse("iid_field_invalid", 400, 'instanceId "i-XYZ"'),
    ],
    [
      "an account id of 11 digits",
      byCa(() => doc({ accountId: "12345678901" })),
      refuse("iid_field_invalid", 400, 'accountId "12345678901"', "12-digit"),
    ],
    [
      "an account id given as a number",
      byCa(() => doc({ accountId: 123456789012 })),
      refuse("iid_field_invalid", 400, "accountId 123456789012", "12-digit"),
    ],
    ["a missing region", byCa(() => doc({ region: undefined })), refuse("iid_field_invalid", 400, "region is missing")],
    [
      "a pendingTime that is not a time",
      byCa(() => doc({ pendingTime: "yesterday" })),
      refuse("iid_field_invalid", 400, 'pendingTime "yesterday"'),
    ],
  ];

  it.each(cases)("%s", async (_name, build, outcome) => {
    const built = await build();
    const check = () => {
      const opts = { extraCaPems: built.extraCaPems ?? [s.ca.certPem], now: new Date(), ttlMs: TTL_MS };
      const identity = verifyInstanceIdentity(built.iid, opts);
      ec2.matchEc2Rule(identity, built.token ?? token);
      return identity;
    };
    if ("accepted" in outcome) return expect(check()).toMatchObject(outcome.accepted);
    const [code, status, ...words] = outcome.refused;
    const err = (() => {
      try {
        check();
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(JoinRefusal);
    const r = err as JoinRefusal;
    expect({ code: r.code, status: r.status }).toEqual({ code, status });
    for (const w of words) expect(r.reason).toContain(w);
  });

  it("returns every field of the signed document", async () => {
    const fields = doc({ pendingTime: pendingAgo(1000) });
    const opts = { extraCaPems: [s.ca.certPem], now: new Date(), ttlMs: TTL_MS };
    expect(verifyInstanceIdentity(await signIdentityDocument(fields, s.ca), opts)).toEqual({
      ...{ accountId: fields.accountId, region: fields.region, instanceId: fields.instanceId },
      ...{ pendingTime: new Date(fields.pendingTime), privateIp: fields.privateIp, imageId: fields.imageId },
      ...{ availabilityZone: fields.availabilityZone, instanceType: fields.instanceType },
      architecture: fields.architecture,
    });
  });

  it("a test CA exported to PEM and imported elsewhere signs documents the original's certificate accepts", async () => {
    const pems = await iidSigner.exportSigner(s.ca);
    expect(pems.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const iid = await signIdentityDocument(doc(), await iidSigner.importSigner(pems));
    const opts = { extraCaPems: [s.ca.certPem], now: new Date(), ttlMs: TTL_MS };
    expect(verifyInstanceIdentity(iid, opts).accountId).toBe(ACCOUNT);
  });

  it("attestEc2 refuses before any AWS call: wrong join method, disallowed region, the token's own TTL", async () => {
    const attest = async (fields: object, t: Token) =>
      ec2.attestEc2(await signIdentityDocument(fields, s.ca), {
        token: t,
        extraCaPems: [s.ca.certPem],
        now: new Date(),
        aws: noAws,
      });
    // Nothing listens at noAws's endpoint: had AWS been called, the refusal would be ec2_describe_failed.
    const iam = makeToken("iam", [{ aws_account: ACCOUNT }]);
    await expect(attest(doc(), iam)).rejects.toMatchObject({ code: "join_method_mismatch", status: 403 });
    await expect(attest(doc({ region: "us-west-2" }), token)).rejects.toMatchObject({ code: "ec2_region_not_allowed" });
    const short = makeToken("ec2", [{ aws_account: ACCOUNT }], "1m");
    await expect(attest(doc({ pendingTime: pendingAgo(90_000) }), short)).rejects.toMatchObject({
      code: "iid_expired",
      reason: expect.stringContaining("aws_iid_ttl of 60 s"),
    });
  });
});

describe("checkInstanceRunning when AWS fails", () => {
  const identity: InstanceIdentity = {
    ...{ accountId: ACCOUNT, region: "us-east-1", instanceId: ID, pendingTime: new Date() },
    ...{ availabilityZone: "us-east-1a", imageId: "ami-0abcdef1234567890", instanceType: "t3.micro" },
    architecture: "x86_64",
  };
  let server: http.Server;
  let endpoint: string;
  let answer: { status: number; body: string };

  beforeAll(async () => {
    // Stands in for EC2 and STS: answers every call with the error a test sets.
    server = http.createServer((req, res) => {
      req.resume();
      req.on("end", () => res.writeHead(answer.status, { "content-type": "text/xml" }).end(answer.body));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const ec2Error = (code: string) =>
    `<Response><Errors><Error><Code>${code}</Code><Message>${code} happened</Message></Error></Errors></Response>`;
  const stsError = (code: string) =>
    `<ErrorResponse><Error><Type>Sender</Type><Code>${code}</Code><Message>${code} happened</Message></Error></ErrorResponse>`;
  const role = `arn:aws:iam::${ACCOUNT}:role/missing`;

  it.each([
    ["EC2 throttling", {}, 503, ec2Error("RequestLimitExceeded"), "aws_throttled", 429],
    ["an EC2 permission error", {}, 403, ec2Error("UnauthorizedOperation"), "ec2_describe_failed", 403],
    ["a role that cannot be assumed", { aws_role: role }, 403, stsError("AccessDenied"), "ec2_assume_role_failed", 403],
  ] as const)("maps %s to a refusal", async (_what, extra, status, body, code, refusalStatus) => {
    answer = { status, body };
    const rule = { aws_account: ACCOUNT, ...extra };
    const err = await ec2
      // Throttling is retried after a backoff first (kept short here); only then is it a refusal.
      .checkInstanceRunning(identity, rule, {
        endpoint,
        credentials: noAws.credentials,
        retry: { maxAttempts: 2, baseMs: 1, capMs: 2 },
      }) // prettier-ignore
      .catch((e) => e);
    expect(err).toBeInstanceOf(JoinRefusal);
    expect(err).toMatchObject({ code, status: refusalStatus });
    // The AWS error code is kept; AWS's message, which can name the runtime's own role, is not.
    expect((err as JoinRefusal).reason).not.toContain("happened");
  });

  it("refuses, naming the call, when EC2 cannot be reached", async () => {
    const err = await ec2.checkInstanceRunning(identity, { aws_account: ACCOUNT }, noAws).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ec2_describe_failed", status: 403 });
    expect((err as JoinRefusal).reason).toBe(
      `DescribeInstances for ${ID} in us-east-1 failed: Error: connect ECONNREFUSED 127.0.0.1:9`,
    );
  });
});

describe("AWS RSA-2048 region certificates", () => {
  // prettier-ignore
  const COMMERCIAL = [
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "ca-west-1", "mx-central-1", "sa-east-1",
    "eu-central-1", "eu-central-2", "eu-west-1", "eu-west-2", "eu-west-3", "eu-south-1", "eu-south-2", "eu-north-1",
    "il-central-1", "me-south-1", "me-central-1", "af-south-1", "ap-east-1", "ap-east-2", "ap-south-1", "ap-south-2",
    "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
    "ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
  ];

  it("covers every commercial region, GovCloud and China", () => {
    const all = [...COMMERCIAL, "us-gov-east-1", "us-gov-west-1", "cn-north-1", "cn-northwest-1"];
    expect(Object.keys(AWS_RSA2048_REGION_CERTS)).toEqual(expect.arrayContaining(all));
  });

  it.each(Object.entries(AWS_RSA2048_REGION_CERTS))("%s parses, self-signed, with an RSA 2048-bit key", (_r, pem) => {
    const cert = new X509Certificate(pem);
    expect(cert.publicKey.asymmetricKeyType).toBe("rsa");
    expect(cert.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    // A self-signature that verifies proves the copy is byte-exact.
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.subject).toContain("O=Amazon Web Services LLC");
    expect(new Date(cert.validTo).getUTCFullYear()).toBeGreaterThan(2190);
  });

  it("looks up only own keys, so a region named like an object property finds nothing", () => {
    for (const name of ["__proto__", "constructor", "toString", "hasOwnProperty", ""]) {
      expect(awsRegionCertificate(name)).toBeUndefined();
    }
    expect(awsRegionCertificate("us-east-1")).toBe(AWS_RSA2048_REGION_CERTS["us-east-1"]);
  });
});
