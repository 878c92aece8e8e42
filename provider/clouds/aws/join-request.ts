/** The node side of the ec2 and iam join methods: the request fields that prove this EC2 instance's identity. */
import type { NodeJoinContext } from "../plugin";
import { InstanceMetadata } from "./imds";
import { signedGetCallerIdentity } from "./sts-request";

/** ec2: the instance identity document's rsa2048 PKCS7, from IMDS. */
export async function ec2JoinFields(): Promise<Record<string, unknown>> {
  const imds = new InstanceMetadata();
  return { iid: (await imds.get("/latest/dynamic/instance-identity/rsa2048")).replace(/\s+/g, "") };
}

/** iam: sts:GetCallerIdentity signed with the instance profile's credentials over the server's challenge. */
export async function iamJoinFields(ctx: NodeJoinContext): Promise<Record<string, unknown>> {
  if (!ctx.challenge) throw new Error("an iam join needs the runtime's challenge");
  const imds = new InstanceMetadata();
  const stsEndpoint =
    ctx.stsEndpoint ?? process.env.AWS_ENDPOINT_URL_STS ?? process.env.AWS_ENDPOINT_URL ?? "https://sts.amazonaws.com";
  const body: Record<string, unknown> = {
    challenge: ctx.challenge,
    sts_request: await signedGetCallerIdentity({
      challenge: ctx.challenge,
      stsEndpoint,
      region: "us-east-1",
      credentials: await imds.credentials(),
    }),
  };
  // Where the runtime looks this instance up (STS does not say); without it, it tries what discovery recorded.
  const region = await imds.get("/latest/meta-data/placement/region").catch(() => "");
  if (region.trim()) body.aws_region = region.trim();
  return body;
}
