import * as http from "http";
import { AddressInfo } from "net";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import { attestIam, IamJoinContext } from "../../provider/clouds/aws/attest-iam";
import { cachedInstanceApis, InstanceApiFactory } from "../../provider/clouds/aws/instance-lookup";
import { AwsCredentials, signedGetCallerIdentity } from "../../provider/clouds/aws/sts-request";
import { JoinRefusal } from "../../provider/join/errors";
import { Token, tokenDocument } from "../../provider/model";
import { instanceCredentials, launchWithRole } from "../fixtures/joins";
import { Moto, MOTO_CREDENTIALS, MOTO_DEFAULT_ACCOUNT, startMoto } from "../fixtures/moto";

const SECOND_ACCOUNT = "210987654321";
const CHECK_ROLE = `arn:aws:iam::${SECOND_ACCOUNT}:role/discovery-join-check`;
const CHALLENGE = "integration-challenge-7f3a9c";

function token(allow: Record<string, string>[]): Token {
  return tokenDocument.parse({
    kind: "token",
    version: "v2",
    metadata: { name: "aws-iam" },
    spec: { roles: ["Node"], join_method: "iam", allow },
  });
}

/** A join body as the node CLI sends it, signed for `stsEndpoint`, with `extra` fields (aws_region). */
async function joinBody(
  stsEndpoint: string,
  credentials: AwsCredentials = MOTO_CREDENTIALS,
  extra: Record<string, unknown> = {},
) {
  const sts_request = await signedGetCallerIdentity({
    challenge: CHALLENGE,
    stsEndpoint,
    region: "us-east-1",
    credentials,
  });
  return { method: "iam", token: "aws-iam", challenge: CHALLENGE, sts_request, ...extra };
}

/** For callers that are no instance session: any AWS call is a failure of the test. */
const noAws: InstanceApiFactory = () => {
  throw new Error("no EC2 or IAM call was expected");
};

function context(stsEndpoint: string, t: Token, over: Partial<IamJoinContext> = {}): IamJoinContext {
  return { token: t, challenge: CHALLENGE, stsEndpoint, now: new Date(), instances: noAws, ...over };
}

async function refusal(p: Promise<unknown>): Promise<JoinRefusal> {
  const e = await p.then(
    () => new Error("expected a refusal, but the join was accepted"),
    (err: unknown) => err,
  );
  if (e instanceof JoinRefusal) return e;
  throw e;
}

/** A loopback HTTP server that counts the requests it receives. */
interface FakeSts {
  endpoint: string;
  hits: number;
  close(): Promise<void>;
}

async function fakeSts(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<FakeSts> {
  const server = http.createServer((req, res) => {
    fake.hits++;
    req.resume();
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const fake: FakeSts = {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return fake;
}

describe("iam join against moto as STS, EC2 and IAM", () => {
  let moto: Moto;
  let instances: InstanceApiFactory;
  beforeAll(async () => {
    moto = await startMoto();
    // The runtime's clients: moto's default account is the runtime's own.
    instances = cachedInstanceApis({ endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS });
  });
  afterAll(async () => {
    await moto?.stop();
  });

  it("accepts a request signed by the node client, and names an IAM user apart from every instance", async () => {
    const out = await attestIam(
      await joinBody(moto.endpoint),
      context(moto.endpoint, token([{ aws_account: MOTO_DEFAULT_ACCOUNT }])),
    );
    // moto names the caller of its default credentials user/moto.
    expect(out.identity).toMatchObject({ account: MOTO_DEFAULT_ACCOUNT, arn: "arn:aws:sts::123456789012:user/moto" });
    expect(out.nodeName).toMatch(/^123456789012-iam-moto-[0-9a-f]{12}$/);
    expect(out.principals).toEqual([out.nodeName]);
    expect(out.labels).toEqual({
      "discovery/origin": "cloud",
      "discovery/account-id": MOTO_DEFAULT_ACCOUNT,
      "discovery/instance-verified": "false",
      "discovery/unverified-reason": "not-instance-session",
    });
  });

  describe("an instance of another account, with the instance profile of role node", () => {
    let id: string;
    let ip: string;
    let creds: AwsCredentials;
    const join = async (t: Token, extra: Record<string, unknown>, over: Partial<IamJoinContext> = {}) =>
      attestIam(await joinBody(moto.endpoint, creds, extra), context(moto.endpoint, t, { instances, ...over }));
    const glob = `arn:aws:sts::${SECOND_ACCOUNT}:assumed-role/node/i-*`;

    beforeAll(async () => {
      // moto attributes AssumeRole credentials to the account in the role ARN: launching with them seeds account 2.
      const sts = new STSClient({ region: "us-east-1", endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS });
      const seed = (await sts.send(new AssumeRoleCommand({ RoleArn: CHECK_ROLE, RoleSessionName: "seed" })))
        .Credentials!;
      sts.destroy();
      const account2 = { accessKeyId: seed.AccessKeyId!, secretAccessKey: seed.SecretAccessKey!, sessionToken: seed.SessionToken }; // prettier-ignore
      [{ id, ip }] = await launchWithRole(moto.endpoint, "node", 1, { credentials: account2, region: "us-west-2" });
      creds = await instanceCredentials(moto.endpoint, SECOND_ACCOUNT, id, "node");
    });

    it.each([
      ["the rule's aws_role", CHECK_ROLE],
      ["the rule's aws_role with the account left to the caller's (*)", "arn:aws:iam::*:role/discovery-join-check"],
    ])("is verified through %s and named after the instance", async (_, role) => {
      const out = await join(token([{ aws_arn: glob, aws_role: role }]), { aws_region: "us-west-2" });
      expect(out.identity).toMatchObject({
        account: SECOND_ACCOUNT,
        arn: `arn:aws:sts::${SECOND_ACCOUNT}:assumed-role/node/${id}`,
      });
      expect(out.nodeName).toBe(`${SECOND_ACCOUNT}-${id}`);
      expect(out.labels).toEqual({
        "discovery/origin": "cloud",
        "discovery/account-id": SECOND_ACCOUNT,
        "discovery/instance-id": id,
        "discovery/region": "us-west-2",
        "discovery/instance-verified": "true",
      });
      expect(out.principals).toEqual(expect.arrayContaining([`${SECOND_ACCOUNT}-${id}`, ip]));
    });

    it("is found in the region discovery recorded when the node states none", async () => {
      const enrollmentRegion = jest.fn(async () => "us-west-2");
      const out = await join(token([{ aws_arn: glob, aws_role: CHECK_ROLE }]), {}, { enrollmentRegion });
      expect([out.nodeName, out.labels["discovery/region"]]).toEqual([`${SECOND_ACCOUNT}-${id}`, "us-west-2"]);
      expect(enrollmentRegion).toHaveBeenCalledWith(SECOND_ACCOUNT, id);
    });

    it.each([
      ["the rule names no role: the runtime's own account has no such instance", {}, "us-west-2", "instance-not-found"],
      ["the node states another region", { aws_role: CHECK_ROLE }, "eu-west-1", "instance-not-found"],
    ])("is not named after the instance when %s", async (_, rule, region, reason) => {
      const out = await join(token([{ aws_arn: glob, ...rule }]), { aws_region: region });
      expect(out.nodeName).toMatch(new RegExp(`^${SECOND_ACCOUNT}-iam-${id}-[0-9a-f]{12}$`));
      expect(out.labels["discovery/instance-id"]).toBeUndefined();
      expect(out.labels).toMatchObject({
        "discovery/instance-verified": "false",
        "discovery/unverified-reason": reason,
      });
    });

    it("is refused when its account is not allowed", async () => {
      const t = token([{ aws_account: MOTO_DEFAULT_ACCOUNT }, { aws_arn: "arn:aws:sts::*:assumed-role/other/*" }]);
      const e = await refusal(join(t, { aws_region: "us-west-2" }));
      expect([e.code, e.status]).toEqual(["iam_no_matching_rule", 403]);
      expect(e.reason).toContain(`arn:aws:sts::${SECOND_ACCOUNT}:assumed-role/node/${id}`);
    });
  });
});

describe("iam join against a hostile or broken STS endpoint", () => {
  const allowAll = token([{ aws_account: MOTO_DEFAULT_ACCOUNT }]);
  const servers: FakeSts[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });
  const serve = async (handler: (req: http.IncomingMessage, res: http.ServerResponse) => void) => {
    const s = await fakeSts(handler);
    servers.push(s);
    return s;
  };
  const join = async (sts: FakeSts, over: Partial<IamJoinContext> = {}) =>
    refusal(attestIam(await joinBody(sts.endpoint), context(sts.endpoint, allowAll, over)));

  it.each([301, 302, 307, 308])("refuses a %i redirect and never contacts its target", async (status) => {
    const target = await serve((_, res) =>
      res.end(
        "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:root</Arn><UserId>1</UserId><Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>",
      ),
    );
    const redirector = await serve((_, res) => res.writeHead(status, { location: `${target.endpoint}/` }).end());
    const e = await join(redirector);
    expect([e.code, e.status]).toEqual(["sts_redirect_refused", 403]);
    expect(redirector.hits).toBe(1);
    expect(target.hits).toBe(0);
  });

  it("refuses a 5 MB answer, streamed without a length", async () => {
    const sts = await serve((_, res) => {
      res.writeHead(200, { "content-type": "text/xml" });
      const chunk = Buffer.alloc(64 * 1024, "a");
      let sent = 0;
      const pump = () => {
        while (sent < 5 * 1024 * 1024) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
        res.end();
      };
      res.write("<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>");
      pump();
    });
    const e = await join(sts);
    expect([e.code, e.status]).toEqual(["sts_response_too_large", 403]);
  });

  it("refuses an answer whose content-length is over the cap before reading it", async () => {
    const sts = await serve((_, res) => res.writeHead(200, { "content-length": String(5 * 1024 * 1024) }).write("<"));
    const e = await join(sts);
    expect([e.code, e.status]).toEqual(["sts_response_too_large", 403]);
  });

  it("refuses a 200 with a reflected GetSessionTokenResponse (CVE-2020-16250)", async () => {
    const sts = await serve((_, res) =>
      res
        .writeHead(200, { "content-type": "text/xml" })
        .end(
          "<GetSessionTokenResponse><GetSessionTokenResult><Credentials><AccessKeyId>ASIA</AccessKeyId></Credentials><Arn>arn:aws:iam::123456789012:root</Arn><UserId>1</UserId><Account>123456789012</Account></GetSessionTokenResult></GetSessionTokenResponse>",
        ),
    );
    const e = await join(sts);
    expect([e.code, e.status]).toEqual(["sts_response_unexpected", 403]);
    expect(e.reason).toContain("GetSessionTokenResponse");
  });

  it("refuses a 200 that is not XML", async () => {
    const sts = await serve((_, res) =>
      res
        .writeHead(200, { "content-type": "application/json" })
        .end('{"Account":"123456789012","Arn":"arn:aws:iam::123456789012:root"}'),
    );
    const e = await join(sts);
    expect([e.code, e.status]).toEqual(["sts_response_not_xml", 403]);
  });

  it("refuses an STS ErrorResponse, naming STS's error code", async () => {
    const sts = await serve((_, res) =>
      res
        .writeHead(403, { "content-type": "text/xml" })
        .end(
          '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error><RequestId>r-1</RequestId></ErrorResponse>',
        ),
    );
    const e = await join(sts);
    expect([e.code, e.status]).toEqual(["sts_request_rejected", 403]);
    expect(e.reason).toContain("SignatureDoesNotMatch");
    expect(e.reason).toContain("403");
  });

  it("refuses after the timeout when STS never answers", async () => {
    const sts = await serve(() => undefined);
    const started = Date.now();
    const e = await join(sts, { stsTimeoutMs: 300 });
    expect([e.code, e.status]).toEqual(["sts_timeout", 403]);
    expect(sts.hits).toBe(1);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("refuses when nothing listens on the endpoint", async () => {
    const gone = await serve(() => undefined);
    const body = await joinBody(gone.endpoint);
    await gone.close();
    const e = await refusal(attestIam(body, context(gone.endpoint, allowAll)));
    expect([e.code, e.status]).toEqual(["sts_unreachable", 403]);
  });

  it("refuses an aws_region that is not a region before STS is ever called", async () => {
    const sts = await serve((_, res) => res.writeHead(500).end());
    const body = await joinBody(sts.endpoint, MOTO_CREDENTIALS, { aws_region: "eu-fake-9" });
    const e = await refusal(attestIam(body, context(sts.endpoint, allowAll)));
    expect([e.code, e.status]).toEqual(["iam_region_invalid", 400]);
    expect(sts.hits).toBe(0);
  });

  it("sends exactly the signed request to the configured endpoint", async () => {
    let seen: { method?: string; url?: string; headers?: http.IncomingHttpHeaders; body: string } = { body: "" };
    const sts = await serve((req, res) => {
      seen = { method: req.method, url: req.url, headers: req.headers, body: "" };
      req.on("data", (d: Buffer) => (seen.body += d.toString()));
      req.on("end", () =>
        res.end(
          "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/alice</Arn><UserId>AIDA1</UserId><Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>",
        ),
      );
    });
    const body = await joinBody(sts.endpoint);
    const out = await attestIam(body, context(sts.endpoint, allowAll));
    expect(out.nodeName).toMatch(/^123456789012-iam-alice-[0-9a-f]{12}$/);
    expect(seen).toMatchObject({ method: "POST", url: "/", body: "Action=GetCallerIdentity&Version=2011-06-15" });
    expect(seen.headers?.host).toBe(new URL(sts.endpoint).host);
    expect(seen.headers?.authorization).toBe(body.sts_request.headers.authorization);
    expect(seen.headers?.["x-discovery-challenge"]).toBe(CHALLENGE);
  });
});
