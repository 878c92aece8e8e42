import {
  DescribeImagesCommand,
  DescribeInstancesCommand,
  EC2Client,
  Instance,
  RunInstancesCommand,
  StopInstancesCommand,
} from "@aws-sdk/client-ec2";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import { fromInstanceMetadata } from "@aws-sdk/credential-providers";
import { attestEc2, AwsCredentials } from "../../provider/clouds/aws/attest-ec2";
import { JoinRefusal } from "../../provider/join/errors";
import { Token, tokenDocument } from "../../provider/model";
import {
  identityDocument,
  IdentityDocumentJson,
  signIdentityDocument,
  testCa,
  TestSigner,
} from "../fixtures/iid-signer";
import { startImds } from "../fixtures/imds";
import { Moto, MOTO_CREDENTIALS, MOTO_DEFAULT_ACCOUNT, startMoto } from "../fixtures/moto";

const SECOND_ACCOUNT = "210987654321";
const SECOND_ROLE = `arn:aws:iam::${SECOND_ACCOUNT}:role/discovery-describe`;

function ec2Token(allow: Record<string, unknown>[]): Token {
  return tokenDocument.parse({
    kind: "token",
    version: "v2",
    metadata: { name: "ec2-token" },
    spec: { roles: ["Node"], join_method: "ec2", aws_iid_ttl: "5m", allow },
  });
}

// What IMDS would put in the document of an instance moto launched.
function documentOf(instance: Instance, accountId: string, region: string): IdentityDocumentJson {
  return identityDocument({
    accountId,
    region,
    availabilityZone: instance.Placement?.AvailabilityZone,
    instanceId: instance.InstanceId,
    imageId: instance.ImageId,
    instanceType: instance.InstanceType,
    privateIp: instance.PrivateIpAddress,
    pendingTime: new Date(Math.floor(Date.now() / 1000) * 1000 - 2000).toISOString().replace(".000Z", "Z"),
  });
}

describe("ec2 join method against moto", () => {
  let moto: Moto;
  let ca: TestSigner;
  const savedEndpoint = process.env.AWS_ENDPOINT_URL;

  beforeAll(async () => {
    [moto, ca] = await Promise.all([startMoto(), testCa()]);
    // The attestor is given no endpoint: the SDK must pick moto up from the environment, as the runtime's does.
    process.env.AWS_ENDPOINT_URL = moto.endpoint;
  });
  afterAll(async () => {
    if (savedEndpoint === undefined) delete process.env.AWS_ENDPOINT_URL;
    else process.env.AWS_ENDPOINT_URL = savedEndpoint;
    await moto?.stop();
  });

  async function launch(region: string, credentials: AwsCredentials): Promise<Instance> {
    const ec2 = new EC2Client({ region, credentials });
    const images = await ec2.send(new DescribeImagesCommand({}));
    const out = await ec2.send(
      new RunInstancesCommand({
        ImageId: images.Images?.[0]?.ImageId,
        MinCount: 1,
        MaxCount: 1,
        InstanceType: "t3.micro",
      }),
    );
    const id = out.Instances?.[0]?.InstanceId as string;
    // DescribeInstances rather than RunInstances' answer: it is what the attestor sees (DNS names included).
    const described = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    return described.Reservations?.[0]?.Instances?.[0] as Instance;
  }

  const attest = async (doc: object, token: Token) =>
    attestEc2(await signIdentityDocument(doc, ca), {
      token,
      extraCaPems: [ca.certPem],
      now: new Date(),
      aws: { credentials: MOTO_CREDENTIALS },
    });

  async function refusal(p: Promise<unknown>): Promise<JoinRefusal> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    if (err instanceof JoinRefusal) return err;
    throw err ?? new Error("the join was accepted; a refusal was expected");
  }

  const homeToken = ec2Token([{ aws_account: MOTO_DEFAULT_ACCOUNT, aws_regions: ["us-east-1"] }]);

  it("accepts a running instance and names it <account>-<instance-id>", async () => {
    const instance = await launch("us-east-1", MOTO_CREDENTIALS);
    const result = await attest(documentOf(instance, MOTO_DEFAULT_ACCOUNT, "us-east-1"), homeToken);
    const nodeName = `${MOTO_DEFAULT_ACCOUNT}-${instance.InstanceId}`;
    expect(result.nodeName).toBe(nodeName);
    expect(result.labels).toEqual({
      "discovery/origin": "cloud",
      "discovery/account-id": MOTO_DEFAULT_ACCOUNT,
      "discovery/instance-id": instance.InstanceId,
      "discovery/region": "us-east-1",
    });
    expect(instance.PrivateIpAddress).toBeTruthy();
    expect(instance.PrivateDnsName).toBeTruthy();
    const expected = [
      nodeName,
      instance.PrivateIpAddress,
      instance.PrivateDnsName,
      instance.PublicDnsName || undefined,
    ];
    expect(result.principals).toEqual(expected.filter(Boolean));
    expect(result.identity).toMatchObject({ accountId: MOTO_DEFAULT_ACCOUNT, instanceId: instance.InstanceId });
  });

  it("refuses a stopped instance", async () => {
    const instance = await launch("us-east-1", MOTO_CREDENTIALS);
    const ec2 = new EC2Client({ region: "us-east-1", credentials: MOTO_CREDENTIALS });
    await ec2.send(new StopInstancesCommand({ InstanceIds: [instance.InstanceId as string] }));
    const r = await refusal(attest(documentOf(instance, MOTO_DEFAULT_ACCOUNT, "us-east-1"), homeToken));
    expect({ code: r.code, status: r.status }).toEqual({ code: "ec2_instance_not_running", status: 403 });
    expect(r.reason).toMatch(new RegExp(`instance ${instance.InstanceId} is stopp(ed|ing), not running`));
  });

  it("refuses an instance id EC2 does not know, though its document is validly signed", async () => {
    const instance = await launch("us-east-1", MOTO_CREDENTIALS);
    const doc = { ...documentOf(instance, MOTO_DEFAULT_ACCOUNT, "us-east-1"), instanceId: "i-0fedcba9876543210" };
    const r = await refusal(attest(doc, homeToken));
    expect({ code: r.code, status: r.status }).toEqual({ code: "ec2_instance_not_found", status: 403 });
    expect(r.reason).toContain(
      `i-0fedcba9876543210 does not exist in account ${MOTO_DEFAULT_ACCOUNT}, region us-east-1`,
    );
  });

  describe("an instance of a second account", () => {
    let instance: Instance;

    beforeAll(async () => {
      // moto attributes AssumeRole credentials to the account in the role ARN: launching with them seeds account 2.
      const sts = new STSClient({ region: "us-west-2", credentials: MOTO_CREDENTIALS });
      const assumed = await sts.send(new AssumeRoleCommand({ RoleArn: SECOND_ROLE, RoleSessionName: "seed" }));
      const c = assumed.Credentials!;
      instance = await launch("us-west-2", {
        accessKeyId: c.AccessKeyId!,
        secretAccessKey: c.SecretAccessKey!,
        sessionToken: c.SessionToken,
      });
    });

    it("is accepted when the rule's aws_role reaches that account", async () => {
      const token = ec2Token([
        { aws_account: MOTO_DEFAULT_ACCOUNT },
        { aws_account: SECOND_ACCOUNT, aws_regions: ["us-west-2"], aws_role: SECOND_ROLE },
      ]);
      const result = await attest(documentOf(instance, SECOND_ACCOUNT, "us-west-2"), token);
      expect(result.nodeName).toBe(`${SECOND_ACCOUNT}-${instance.InstanceId}`);
      expect(result.labels["discovery/account-id"]).toBe(SECOND_ACCOUNT);
      expect(result.labels["discovery/region"]).toBe("us-west-2");
    });

    it("is not found with the runtime's own credentials when the rule names no role", async () => {
      const token = ec2Token([{ aws_account: SECOND_ACCOUNT, aws_regions: ["us-west-2"] }]);
      const r = await refusal(attest(documentOf(instance, SECOND_ACCOUNT, "us-west-2"), token));
      expect({ code: r.code, status: r.status }).toEqual({ code: "ec2_instance_not_found", status: 403 });
    });
  });

  it("serves the document and rsa2048 from the fake IMDS only with an IMDSv2 token, and they attest", async () => {
    const instance = await launch("us-east-1", MOTO_CREDENTIALS);
    const document = documentOf(instance, MOTO_DEFAULT_ACCOUNT, "us-east-1");
    const role = {
      name: "node-role",
      credentials: { accessKeyId: "AKIDNODE", secretAccessKey: "s3cret", sessionToken: "tok" },
    };
    const imds = await startImds({ document, rsa2048: await signIdentityDocument(document, ca), role });
    try {
      const paths = ["/latest/dynamic/instance-identity/document", "/latest/dynamic/instance-identity/rsa2048"];
      for (const path of paths) expect((await fetch(imds.endpoint + path)).status).toBe(401);
      expect((await fetch(imds.endpoint + paths[1], { headers: { "x-aws-ec2-metadata-token": "guess" } })).status).toBe(
        401,
      );
      expect((await fetch(`${imds.endpoint}/latest/api/token`, { method: "PUT" })).status).toBe(400);

      const tokenRes = await fetch(`${imds.endpoint}/latest/api/token`, {
        method: "PUT",
        headers: { "x-aws-ec2-metadata-token-ttl-seconds": "60" },
      });
      expect(tokenRes.status).toBe(200);
      const headers = { "x-aws-ec2-metadata-token": await tokenRes.text() };
      const get = async (path: string) => {
        const res = await fetch(imds.endpoint + path, { headers });
        expect(res.status).toBe(200);
        return res.text();
      };
      expect(JSON.parse(await get(paths[0]))).toEqual(document);
      expect(await get("/latest/meta-data/instance-id")).toBe(instance.InstanceId);
      expect(await get("/latest/meta-data/local-ipv4")).toBe(instance.PrivateIpAddress);
      expect(await get("/latest/meta-data/placement/region")).toBe("us-east-1");

      const iid = await get(paths[1]);
      const result = await attestEc2(iid, {
        token: homeToken,
        extraCaPems: [ca.certPem],
        now: new Date(),
        aws: { credentials: MOTO_CREDENTIALS },
      });
      expect(result.nodeName).toBe(`${MOTO_DEFAULT_ACCOUNT}-${instance.InstanceId}`);

      // The AWS SDK's own IMDS client (what an iam-joining node uses) gets the instance role's credentials.
      const saved = process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
      process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.endpoint;
      try {
        const creds = await fromInstanceMetadata({ maxRetries: 0, timeout: 5000 })();
        expect(creds).toMatchObject({ accessKeyId: "AKIDNODE", secretAccessKey: "s3cret", sessionToken: "tok" });
      } finally {
        if (saved === undefined) delete process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
        else process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = saved;
      }
      expect(
        imds.requests.filter((r) => r.method === "GET" && r.path.includes("security-credentials/node-role")),
      ).not.toEqual([]);
      expect(imds.requests.filter((r) => r.method === "GET" && !r.withToken).length).toBe(paths.length);
    } finally {
      await imds.stop();
    }
  });
});
