import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import type { AwsMatcher } from "../../model";

/** Temporary or static AWS credentials. */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/**
 * Credentials for acting in a matcher's accounts: the role of `assume_role.role_arn`, or for an organization
 * `role/<role_name>` in each member account, assumed with the external id; undefined means the runtime's own
 * (the SDK chain). Assumed credentials are cached per account for 50 minutes.
 */
export function accountCredentials(
  matcher: AwsMatcher,
  sessionName = "discovery-install",
): (account: string, region: string) => Promise<AwsCredentials | undefined> {
  const cache = new Map<string, { creds: AwsCredentials; until: number }>();
  return async (account) => {
    const ar = matcher.assume_role;
    const roleArn =
      matcher.organization && ar?.role_name ? `arn:aws:iam::${account}:role/${ar.role_name}` : ar?.role_arn;
    if (!roleArn) return undefined;
    const hit = cache.get(roleArn);
    if (hit && hit.until > Date.now()) return hit.creds;
    const sts = new STSClient({ region: "us-east-1" });
    try {
      const r = await sts.send(
        new AssumeRoleCommand({
          RoleArn: roleArn,
          RoleSessionName: sessionName,
          ...(ar?.external_id ? { ExternalId: ar.external_id } : {}),
        }),
      );
      const c = r.Credentials;
      if (!c?.AccessKeyId || !c.SecretAccessKey) throw new Error(`AssumeRole ${roleArn} returned no credentials`);
      const creds = { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken };
      cache.set(roleArn, { creds, until: Date.now() + 50 * 60_000 });
      return creds;
    } finally {
      sts.destroy();
    }
  };
}
