/**
 * Whether an iam caller is the EC2 instance its session name claims. Anyone allowed to assume a role can name a
 * session `i-...`, and an IAM user can be called `i-...`: only EC2 itself, asked about the instance, can say the
 * instance runs with that role as its instance profile.
 */
import { JoinRefusal } from "../../join/errors";
import type { CallerIdentity } from "./sts-request";
import { AwsCallError, awsFailure, InstanceAddresses, InstanceApiFactory } from "./instance-lookup";
import { awsRegionCertificate } from "./region-certs";

// AWS publishes an identity-document certificate for every region, so that fixed list is the list of regions.
const isKnownRegion = (region: string) => awsRegionCertificate(region) !== undefined;

// An instance profile's session: the role's name (paths are not in assumed-role ARNs) and the instance id.
const INSTANCE_SESSION_RE =
  /^arn:aws(?:-[a-z]+)*:sts::(\d{12}):assumed-role\/([\w+=,.@-]{1,64})\/(i-[0-9a-f]{8}(?:[0-9a-f]{9})?)$/;

/** Why an iam caller was not tied to an instance; the node's `discovery/unverified-reason` label. */
export type UnverifiedReason =
  | "not-instance-session"
  | "region-unknown"
  | "instance-not-found"
  | "account-mismatch"
  | "instance-not-running"
  | "role-mismatch";

/** The outcome of {@link verifyIamInstance}. */
export type InstanceVerification =
  | { verified: true; instanceId: string; region: string; addresses: InstanceAddresses }
  | { verified: false; reason: UnverifiedReason };

/** The role name and instance id of an `assumed-role/<role>/<i-...>` caller: a candidate instance, not yet verified. */
export function instanceSession(identity: CallerIdentity): { role: string; instanceId: string } | undefined {
  const m = INSTANCE_SESSION_RE.exec(identity.arn);
  return m && m[1] === identity.account ? { role: m[2], instanceId: m[3] } : undefined;
}

/**
 * The optional `aws_region` of an iam join body (the node's IMDS placement region), checked before STS or EC2 is
 * called (and fit for a join method's pre-validation of the body). A value that is not a known region is refused
 * (400), never looked up.
 */
export function checkAwsRegionField(body: Record<string, unknown>): string | undefined {
  const region = body.aws_region;
  if (region === undefined) return undefined;
  if (typeof region !== "string" || !isKnownRegion(region)) {
    const shown = JSON.stringify(region)?.slice(0, 40) ?? String(region);
    throw new JoinRefusal(
      "iam_region_invalid",
      `aws_region ${shown} is not a known AWS region; send IMDS /latest/meta-data/placement/region, or leave it out`,
      400,
    );
  }
  return region;
}

/** The region of a regional STS endpoint URL (`https://sts.<region>.amazonaws.com/`), else undefined. */
export function stsHostRegion(url: string): string | undefined {
  const region = /^https:\/\/sts\.([a-z0-9-]+)\.amazonaws\.com\/$/.exec(url)?.[1];
  return region && isKnownRegion(region) ? region : undefined;
}

/** Inputs of {@link verifyIamInstance}. */
export interface VerifyIamInstanceOptions {
  /** AWS access per region and role. */
  instances: InstanceApiFactory;
  /**
   * The role to assume in the instance's account (the matched allow rule's `aws_role`; a `*` account is the
   * caller's); default the runtime's own credentials.
   */
  roleArn?: string;
  /** Regions to look in, in order (stated by the node, recorded by discovery, of the STS host); gaps skipped. */
  regions: (string | undefined)[];
  /** Where discovery found the instance, if it did; asked only for a candidate, and put after `regions[0]`. */
  enrollmentRegion?: (account: string, instanceId: string) => Promise<string | undefined>;
}

// A failed call refuses the join, never downgrades it to unverified: a missing permission must not pass for a
// missing instance, or the real instance would lose its name to whoever joined first.
function checkFailed(err: AwsCallError, account: string, region: string, roleArn?: string): JoinRefusal {
  const where = `account ${account}, region ${region}`;
  const fix =
    err.action === "sts:AssumeRole"
      ? `let the runtime assume ${roleArn}`
      : `grant ${err.action} to ${roleArn ? `the role ${roleArn}` : "the runtime's own credentials"}`;
  return awsFailure(err.cause, "iam_instance_check_failed", `${err.action} in ${where}`, fix);
}

/**
 * Whether the caller is the instance its session names: EC2 (in the caller's account, assuming `roleArn` if set)
 * shows the instance in one of the candidate regions, owned by the caller's account and running, and its
 * instance profile (IAM) holds the caller's role, same name, account and role id. Region candidates are tried in
 * order, each once, until EC2 knows the instance: at most three calls, never a sweep of every region.
 */
export async function verifyIamInstance(
  identity: CallerIdentity,
  opts: VerifyIamInstanceOptions,
): Promise<InstanceVerification> {
  const session = instanceSession(identity);
  if (!session) return { verified: false, reason: "not-instance-session" };
  const [stated, ...rest] = opts.regions;
  const recorded = await opts.enrollmentRegion?.(identity.account, session.instanceId);
  const regions = [...new Set([stated, recorded, ...rest].filter((r): r is string => !!r))];
  if (regions.length === 0) return { verified: false, reason: "region-unknown" };
  const roleArn = opts.roleArn?.replace(/^(arn:[\w-]+:iam::)\*:/, `$1${identity.account}:`);
  for (const region of regions) {
    const api = opts.instances({ region, roleArn });
    try {
      const found = await api.describeInstance(session.instanceId);
      if (!found) continue;
      if (found.ownerId !== identity.account) return { verified: false, reason: "account-mismatch" };
      if (found.state !== "running") return { verified: false, reason: "instance-not-running" };
      const profile = found.instanceProfileArn;
      if (!profile || arnAccount(profile) !== identity.account) return { verified: false, reason: "role-mismatch" };
      const roles = (await api.instanceProfileRoles(profile)) ?? [];
      const roleId = identity.userId.split(":")[0];
      // Role names are unique in an account whatever their path, so name and account name the role; the id
      // also tells a role from a deleted namesake whose sessions are still valid.
      const same = roles.some(
        (r) => r.name === session.role && arnAccount(r.arn) === identity.account && r.id === roleId,
      );
      if (!same) return { verified: false, reason: "role-mismatch" };
      return { verified: true, instanceId: session.instanceId, region, addresses: found.addresses };
    } catch (err) {
      if (err instanceof AwsCallError) throw checkFailed(err, identity.account, region, roleArn);
      throw err;
    }
  }
  return { verified: false, reason: "instance-not-found" };
}

function arnAccount(arn: string): string | undefined {
  return /^arn:aws(?:-[a-z]+)*:iam::(\d{12}):/.exec(arn)?.[1];
}
