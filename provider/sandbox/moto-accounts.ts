import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { MOTO_CREDENTIALS, MOTO_DEFAULT_ACCOUNT } from "./moto";

/** Static AWS credentials as the SDK takes them. */
export interface SandboxCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** The role the sandbox assumes to act in an account other than moto's default one. */
export const SANDBOX_ROLE = "discovery-sandbox";

/**
 * Who is who in moto. moto attributes requests to an account by access key alone (it does not check signatures),
 * so credentials for any account come from AssumeRole, and the account behind a caller's key is one
 * GetCallerIdentity away.
 */
export class MotoAccounts {
  private readonly credentialsByAccount = new Map<string, Promise<SandboxCredentials>>();
  private readonly accountByKey = new Map<string, Promise<string>>();

  constructor(readonly endpoint: string) {}

  /** Credentials moto attributes to `account`: its own for the default account, else an assumed role there. */
  credentials(account: string): Promise<SandboxCredentials> {
    if (account === MOTO_DEFAULT_ACCOUNT) return Promise.resolve(MOTO_CREDENTIALS);
    let found = this.credentialsByAccount.get(account);
    if (!found) {
      found = this.assumeRole(`arn:aws:iam::${account}:role/${SANDBOX_ROLE}`, "discovery-sandbox");
      // A failure is not cached: moto may just have been busy.
      found.catch(() => this.credentialsByAccount.delete(account));
      this.credentialsByAccount.set(account, found);
    }
    return found;
  }

  /** AssumeRole with moto's default credentials, e.g. an instance profile's session. */
  async assumeRole(roleArn: string, sessionName: string): Promise<SandboxCredentials> {
    const sts = this.sts(MOTO_CREDENTIALS);
    try {
      const out = await sts.send(new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: sessionName }));
      const c = out.Credentials;
      if (!c?.AccessKeyId || !c.SecretAccessKey) throw new Error(`moto returned no credentials for ${roleArn}`);
      return { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken };
    } finally {
      sts.destroy();
    }
  }

  /** The account moto attributes an access key to (its default account for keys it never issued). */
  callerAccount(accessKeyId: string): Promise<string> {
    let found = this.accountByKey.get(accessKeyId);
    if (!found) {
      // The secret is unknown here, and moto does not need it: any signature made with the key id will do.
      const sts = this.sts({ accessKeyId, secretAccessKey: "unknown-to-the-sandbox" });
      found = sts
        .send(new GetCallerIdentityCommand({}))
        .then((out) => out.Account ?? MOTO_DEFAULT_ACCOUNT)
        .finally(() => sts.destroy());
      found.catch(() => this.accountByKey.delete(accessKeyId));
      this.accountByKey.set(accessKeyId, found);
    }
    return found;
  }

  private sts(credentials: SandboxCredentials): STSClient {
    return new STSClient({ region: "us-east-1", endpoint: this.endpoint, credentials, maxAttempts: 3 });
  }
}
