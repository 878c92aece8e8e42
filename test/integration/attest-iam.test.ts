import * as http from "http";
import { AddressInfo } from "net";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import { attestIam, IamJoinContext } from "../../provider/clouds/aws/attest-iam";
import { AwsCredentials, signedGetCallerIdentity } from "../../provider/clouds/aws/sts-request";
import { JoinRefusal } from "../../provider/join/errors";
import { Token, tokenDocument } from "../../provider/model";
import { Moto, MOTO_CREDENTIALS, MOTO_DEFAULT_ACCOUNT, startMoto } from "../fixtures/moto";

const SECOND_ACCOUNT = "210987654321";
const INSTANCE_ID = "i-0123456789abcdef0";
const CHALLENGE = "integration-challenge-7f3a9c";

function token(allow: Record<string, string>[]): Token {
  return tokenDocument.parse({
    kind: "token",
    version: "v2",
    metadata: { name: "aws-iam" },
    spec: { roles: ["Node"], join_method: "iam", allow },
  });
}

/** A join body as the node CLI sends it, signed for `stsEndpoint`. */
async function joinBody(stsEndpoint: string, credentials: AwsCredentials = MOTO_CREDENTIALS) {
  const sts_request = await signedGetCallerIdentity({
    challenge: CHALLENGE,
    stsEndpoint,
    region: "us-east-1",
    credentials,
  });
  return { method: "iam", token: "aws-iam", challenge: CHALLENGE, sts_request };
}

function context(stsEndpoint: string, t: Token, over: Partial<IamJoinContext> = {}): IamJoinContext {
  return { token: t, challenge: CHALLENGE, stsEndpoint, now: new Date(), ...over };
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

describe("iam join against moto as STS", () => {
  let moto: Moto;
  beforeAll(async () => {
    moto = await startMoto();
  });
  afterAll(async () => {
    await moto?.stop();
  });

  it("accepts a request signed by the node client, and names the caller", async () => {
    const out = await attestIam(
      await joinBody(moto.endpoint),
      context(moto.endpoint, token([{ aws_account: MOTO_DEFAULT_ACCOUNT }])),
    );
    // moto names the caller of its default credentials user/moto.
    expect(out.identity).toMatchObject({ account: MOTO_DEFAULT_ACCOUNT, arn: "arn:aws:sts::123456789012:user/moto" });
    expect(out.nodeName).toBe("123456789012-moto");
    expect(out.principals).toEqual([out.nodeName]);
    expect(out.labels).toEqual({ "discovery/origin": "cloud", "discovery/account-id": MOTO_DEFAULT_ACCOUNT });
  });

  describe("an instance-profile style assumed role in another account", () => {
    let assumed: AwsCredentials;
    beforeAll(async () => {
      const sts = new STSClient({ region: "us-east-1", endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS });
      const out = await sts.send(
        new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${SECOND_ACCOUNT}:role/x`, RoleSessionName: INSTANCE_ID }),
      );
      const c = out.Credentials!;
      assumed = { accessKeyId: c.AccessKeyId!, secretAccessKey: c.SecretAccessKey!, sessionToken: c.SessionToken };
    });

    it("is matched by an aws_arn glob and named after the instance", async () => {
      const t = token([
        { aws_account: MOTO_DEFAULT_ACCOUNT },
        { aws_arn: `arn:aws:sts::${SECOND_ACCOUNT}:assumed-role/x/i-*` },
      ]);
      const out = await attestIam(await joinBody(moto.endpoint, assumed), context(moto.endpoint, t));
      expect(out.identity).toMatchObject({
        account: SECOND_ACCOUNT,
        arn: `arn:aws:sts::${SECOND_ACCOUNT}:assumed-role/x/${INSTANCE_ID}`,
      });
      expect(out.nodeName).toBe(`${SECOND_ACCOUNT}-${INSTANCE_ID}`);
      expect(out.labels).toEqual({
        "discovery/origin": "cloud",
        "discovery/account-id": SECOND_ACCOUNT,
        "discovery/instance-id": INSTANCE_ID,
      });
    });

    it("is refused when its account is not allowed", async () => {
      const t = token([{ aws_account: MOTO_DEFAULT_ACCOUNT }, { aws_arn: "arn:aws:sts::*:assumed-role/other/*" }]);
      const e = await refusal(attestIam(await joinBody(moto.endpoint, assumed), context(moto.endpoint, t)));
      expect([e.code, e.status]).toEqual(["iam_no_matching_rule", 403]);
      expect(e.reason).toContain(`arn:aws:sts::${SECOND_ACCOUNT}:assumed-role/x/${INSTANCE_ID}`);
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
    expect(out.nodeName).toBe("123456789012-alice");
    expect(seen).toMatchObject({ method: "POST", url: "/", body: "Action=GetCallerIdentity&Version=2011-06-15" });
    expect(seen.headers?.host).toBe(new URL(sts.endpoint).host);
    expect(seen.headers?.authorization).toBe(body.sts_request.headers.authorization);
    expect(seen.headers?.["x-discovery-challenge"]).toBe(CHALLENGE);
  });
});
