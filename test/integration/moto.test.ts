import {
  DescribeImagesCommand,
  DescribeInstancesCommand,
  EC2Client,
  RunInstancesCommand,
  Tag,
} from "@aws-sdk/client-ec2";
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { Moto, MOTO_CREDENTIALS, MOTO_DEFAULT_ACCOUNT, startMoto } from "../fixtures/moto";

type Creds = { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
const SECOND_ACCOUNT = "210987654321";

describe("moto as the AWS control plane, reached through the AWS SDK v3 and AWS_ENDPOINT_URL", () => {
  let moto: Moto;
  const savedEndpoint = process.env.AWS_ENDPOINT_URL;

  beforeAll(async () => {
    moto = await startMoto();
    // The SDK reads the endpoint from the environment, as our runtime will.
    process.env.AWS_ENDPOINT_URL = moto.endpoint;
  });
  afterAll(async () => {
    if (savedEndpoint === undefined) delete process.env.AWS_ENDPOINT_URL;
    else process.env.AWS_ENDPOINT_URL = savedEndpoint;
    await moto?.stop();
  });

  const ec2 = (region: string, credentials: Creds) => new EC2Client({ region, credentials });

  async function launch(client: EC2Client, count: number, tags: Record<string, string>): Promise<string[]> {
    const images = await client.send(new DescribeImagesCommand({}));
    const imageId = images.Images?.[0]?.ImageId;
    expect(imageId).toBeDefined();
    const Tags: Tag[] = Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
    const out = await client.send(
      new RunInstancesCommand({
        ImageId: imageId,
        MinCount: count,
        MaxCount: count,
        InstanceType: "t3.micro",
        TagSpecifications: [{ ResourceType: "instance", Tags }],
      }),
    );
    return (out.Instances ?? []).map((i) => i.InstanceId as string);
  }

  async function listByTag(client: EC2Client, key: string, value: string) {
    const out = await client.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: `tag:${key}`, Values: [value] },
          { Name: "instance-state-name", Values: ["running"] },
        ],
      }),
    );
    return (out.Reservations ?? []).flatMap((r) =>
      (r.Instances ?? []).map((i) => ({ id: i.InstanceId, owner: r.OwnerId })),
    );
  }

  it("seeds two accounts, the second reached by assuming a role, and lists each account's tagged instances", async () => {
    const home = ec2("us-east-1", MOTO_CREDENTIALS);
    const prodA = await launch(home, 2, { env: "prod", team: "a" });
    await launch(home, 1, { env: "dev" });

    const sts = new STSClient({ region: "us-east-1", credentials: MOTO_CREDENTIALS });
    const assumed = await sts.send(
      new AssumeRoleCommand({
        RoleArn: `arn:aws:iam::${SECOND_ACCOUNT}:role/discovery`,
        RoleSessionName: "seed",
        ExternalId: "ext-1",
      }),
    );
    const c = assumed.Credentials!;
    const second: Creds = {
      accessKeyId: c.AccessKeyId!,
      secretAccessKey: c.SecretAccessKey!,
      sessionToken: c.SessionToken,
    };
    const who = await new STSClient({ region: "us-east-1", credentials: second }).send(
      new GetCallerIdentityCommand({}),
    );
    expect(who.Account).toBe(SECOND_ACCOUNT);
    expect(who.Arn).toBe(`arn:aws:sts::${SECOND_ACCOUNT}:assumed-role/discovery/seed`);

    const away = ec2("us-west-2", second);
    const prodB = await launch(away, 3, { env: "prod" });

    const seenA = await listByTag(home, "env", "prod");
    expect(seenA.map((i) => i.id).sort()).toEqual([...prodA].sort());
    expect(new Set(seenA.map((i) => i.owner))).toEqual(new Set([MOTO_DEFAULT_ACCOUNT]));

    const seenB = await listByTag(away, "env", "prod");
    expect(seenB.map((i) => i.id).sort()).toEqual([...prodB].sort());
    expect(new Set(seenB.map((i) => i.owner))).toEqual(new Set([SECOND_ACCOUNT]));

    // Accounts and regions are isolated: the home account sees none of the second account's instances.
    expect(await listByTag(ec2("us-west-2", MOTO_CREDENTIALS), "env", "prod")).toEqual([]);
    expect(await listByTag(home, "env", "staging")).toEqual([]);
  });
});
