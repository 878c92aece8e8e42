/**
 * Instance profiles in moto, so simulated instances carry the role their credentials are sessions of: the iam
 * join names a node after an instance only when DescribeInstances shows that role's profile on it.
 */
import { AssociateIamInstanceProfileCommand, EC2Client } from "@aws-sdk/client-ec2";
import {
  AddRoleToInstanceProfileCommand,
  CreateInstanceProfileCommand,
  CreateRoleCommand,
  GetInstanceProfileCommand,
  IAMClient,
} from "@aws-sdk/client-iam";
import { concurrencyLimit } from "../util/concurrency";
import { awsErrorCode } from "../clouds/aws/rate-limits";
import type { SandboxCredentials } from "./moto-accounts";

const EC2_TRUST = JSON.stringify({
  Version: "2012-10-17",
  Statement: [{ Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }],
});

// Made by an earlier call: fine, the profile's role is checked below.
function existing(err: unknown): undefined {
  if (!/^EntityAlreadyExists/.test(awsErrorCode(err))) throw err;
  return undefined;
}

/**
 * The instance profile `<role>-profile` holding role `<role>` in the account of `credentials`, made if missing
 * (a second call, or a sandbox restart on the same moto, finds them). Returns the profile's ARN.
 */
export async function ensureInstanceProfile(
  endpoint: string,
  credentials: SandboxCredentials,
  role: string,
): Promise<string> {
  const iam = new IAMClient({ region: "us-east-1", endpoint, credentials, maxAttempts: 3 });
  const InstanceProfileName = `${role}-profile`;
  try {
    await iam.send(new CreateRoleCommand({ RoleName: role, AssumeRolePolicyDocument: EC2_TRUST })).catch(existing);
    const created = await iam.send(new CreateInstanceProfileCommand({ InstanceProfileName })).catch(existing);
    if (created) await iam.send(new AddRoleToInstanceProfileCommand({ InstanceProfileName, RoleName: role }));
    const profile = await iam.send(new GetInstanceProfileCommand({ InstanceProfileName }));
    if (!profile.InstanceProfile?.Roles?.some((r) => r.RoleName === role))
      throw new Error(`instance profile ${InstanceProfileName} exists without role ${role}`);
    return profile.InstanceProfile.Arn!;
  } finally {
    iam.destroy();
  }
}

/**
 * Attaches the profile to each instance. One association per instance: moto's RunInstances attaches an
 * `IamInstanceProfile` to the first instance of a batch only.
 */
export async function attachInstanceProfile(ec2: EC2Client, instanceIds: string[], profileArn: string): Promise<void> {
  const limit = concurrencyLimit(16);
  await Promise.all(
    instanceIds.map((InstanceId) =>
      limit(() =>
        ec2.send(new AssociateIamInstanceProfileCommand({ InstanceId, IamInstanceProfile: { Arn: profileArn } })),
      ),
    ),
  );
}
