/**
 * The AWS calls a join makes to check a live instance: DescribeInstances and, for iam joins, the role behind an
 * instance profile (IAM GetInstanceProfile), in the instance's account (assuming a rule's role) and region.
 */
import { DescribeInstancesCommand, DescribeInstancesCommandInput, EC2Client } from "@aws-sdk/client-ec2";
import { leanDescribeInstances } from "./describe-instances-reader";
import { GetInstanceProfileCommand, IAMClient, Role } from "@aws-sdk/client-iam";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import { JoinRefusal } from "../../join/errors";
import type { AwsCredentials } from "./credentials";
import { Coalescer } from "../../util/coalesce";
import {
  awsErrorCode,
  BucketRegistry,
  EC2_NON_MUTATING,
  EC2_UNFILTERED,
  isThrottling,
  PacedCaller,
  type RetryOptions,
} from "./rate-limits";

/** How the runtime reaches AWS for instance checks; everything defaults to the SDK's own environment handling. */
export interface Ec2CheckOptions {
  /** The runtime's credentials; default the SDK provider chain (env, profile, instance role). */
  credentials?: AwsCredentials;
  /** One endpoint for EC2, IAM and STS (tests); default `AWS_ENDPOINT_URL`, read by the SDK, or AWS itself. */
  endpoint?: string;
  /** Session name for AssumeRole, shown in the foreign account's CloudTrail. */
  roleSessionName?: string;
  /**
   * The token buckets DescribeInstances draws from, per role (account) and region; share one registry between the
   * scopes' APIs so joins from one account and region spend one budget, as AWS counts it. Default: one per API.
   */
  buckets?: BucketRegistry;
  /** Retries of a throttled DescribeInstances; default 8 attempts, backoff up to 2 s. */
  retry?: RetryOptions;
}

/** Instance ids as EC2 writes them; anything else cannot exist, and is answered without a call. */
const INSTANCE_ID = /^i-[0-9a-f]{8}([0-9a-f]{9})?$/;
/** DescribeInstances takes at most 1000 InstanceIds, and at most 200 values in one filter. */
const IDS_PER_CALL = 1000;
const VALUES_PER_FILTER = 200;
/** Tokens a scope's joins leave in each EC2 bucket (see TokenBucket.take). */
const RESERVE = 2;

/** How a DescribeInstances call names its ids: `InstanceIds` (unpaginated bucket) or an `instance-id` filter. */
export type DescribeLane = "ids" | "filter";

/**
 * The lane of the next DescribeInstances call of a scope, given the ids waiting and how long each lane's bucket
 * would make the call wait. EC2 counts the two in separate buckets (by filter: non-mutating, 100 and 20/s; by
 * InstanceIds: unpaginated, 50 and 10/s), so using both gives a scope about 30 calls a second: the lane whose
 * token comes first, and when both are ready, a filter for up to its 200 values and InstanceIds for more.
 */
export function describeLane(waiting: number, filterWaitMs: number, idsWaitMs: number): DescribeLane {
  if (filterWaitMs !== idsWaitMs) return filterWaitMs < idsWaitMs ? "filter" : "ids";
  return waiting <= VALUES_PER_FILTER ? "filter" : "ids";
}

/** Names and addresses of a running instance, for the host certificate's principals. */
export type InstanceAddresses = Partial<Record<"privateDnsName" | "publicDnsName" | "privateIp" | "publicIp", string>>;

/** What DescribeInstances says about one instance. */
export interface DescribedInstance {
  instanceId: string;
  /** Account of the reservation. */
  ownerId?: string;
  /** `running`, `stopped`, ... */
  state: string;
  /** `IamInstanceProfile.Arn`: the instance profile attached, if any. */
  instanceProfileArn?: string;
  addresses: InstanceAddresses;
}

/** A role of an instance profile, as IAM GetInstanceProfile names it. */
export interface ProfileRole {
  arn: string;
  name: string;
  /** The role's unique id (`AROA...`), the prefix of its sessions' user ids. */
  id: string;
}

/** Where instances are looked up: a region, and the role to assume first (a foreign account) if any. */
export interface InstanceScope {
  region: string;
  roleArn?: string;
}

/** The AWS calls of an instance check in one scope; small, so unit tests fake it in memory. */
export interface InstanceApi {
  /** The instance, or undefined when EC2 does not know it in this scope. Other failures throw {@link AwsCallError}. */
  describeInstance(instanceId: string): Promise<DescribedInstance | undefined>;
  /** The roles of an instance profile, or undefined when IAM does not know it. Failures throw {@link AwsCallError}. */
  instanceProfileRoles(profileArn: string): Promise<ProfileRole[] | undefined>;
}

/** Gives the {@link InstanceApi} of a scope. */
export type InstanceApiFactory = (scope: InstanceScope) => InstanceApi;

/** An AWS call of an instance check that failed: which permission it needed, and the SDK's error. */
export class AwsCallError extends Error {
  /** Wraps `cause`, the error of the call that needs `action`. */
  constructor(
    /** The IAM action of the failed call, e.g. `ec2:DescribeInstances`. */
    readonly action: "sts:AssumeRole" | "ec2:DescribeInstances" | "iam:GetInstanceProfile",
    /** The SDK's error. */
    override readonly cause: unknown,
  ) {
    super(`${action} failed: ${(cause as Error)?.message}`);
    this.name = "AwsCallError";
  }
}

/**
 * A refusal for a failed AWS call: 429 when AWS throttled it, else `code` (403). When AWS answered, only its
 * error code reaches the reason: its message can name the runtime's own role. A network failure has no code,
 * and its message names nothing but the endpoint.
 */
export function awsFailure(err: unknown, code: string, doing: string, fix = ""): JoinRefusal {
  if (isThrottling(err)) return new JoinRefusal("aws_throttled", `AWS throttled ${doing}; retry shortly`, 429);
  const answered = (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode !== undefined;
  const unreachable = String((err as Error)?.message).replace(/^AWS SDK error wrapper for /, "");
  const why = answered ? awsErrorCode(err) : unreachable.slice(0, 160);
  return new JoinRefusal(code, `${doing} failed: ${why}${fix && `; ${fix}`}`, 403);
}

/** An {@link InstanceApi} over the AWS SDK, that keeps its clients (and assumed credentials) for reuse. */
export interface SdkInstanceApi extends InstanceApi {
  /** Closes the clients' connections. */
  destroy(): void;
  /** DescribeInstances attempts made so far, retries included. */
  readonly describeCalls: number;
}

/** The SDK-backed {@link InstanceApi} of a scope. */
export function sdkInstanceApi(scope: InstanceScope, opts: Ec2CheckOptions = {}): SdkInstanceApi {
  const base = { region: scope.region, maxAttempts: 2, ...(opts.endpoint && { endpoint: opts.endpoint }) };
  let assumed: (AwsCredentials & { expiration: Date }) | undefined;
  const credentials = async (): Promise<AwsCredentials | undefined> => {
    if (!scope.roleArn) return opts.credentials;
    // Kept until 5 minutes before expiry, so a burst of joins assumes the role once.
    if (assumed && assumed.expiration.getTime() - 5 * 60_000 > Date.now()) return assumed;
    const sts = new STSClient({ ...base, ...(opts.credentials && { credentials: opts.credentials }) });
    try {
      const session = opts.roleSessionName ?? "discovery-join";
      const out = await sts.send(new AssumeRoleCommand({ RoleArn: scope.roleArn, RoleSessionName: session }));
      const c = out.Credentials;
      if (!c?.AccessKeyId || !c.SecretAccessKey) throw new Error("AssumeRole returned no credentials");
      const expiration = c.Expiration ?? new Date(Date.now() + 15 * 60_000);
      assumed = { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken, expiration }; // prettier-ignore
      return assumed;
    } catch (err) {
      throw new AwsCallError("sts:AssumeRole", err);
    } finally {
      sts.destroy();
    }
  };
  // The clients ask for credentials on each call; the assumed ones come from the cache above.
  const auth = scope.roleArn
    ? { credentials: async () => (await credentials())! }
    : opts.credentials && { credentials: opts.credentials };
  let ec2: EC2Client | undefined;
  let iam: IAMClient | undefined;
  // Joins of one scope share their DescribeInstances calls (see Coalescer): a storm of N joins costs about N / 1000
  // calls, paced by the scope's buckets, with throttling retried after a backoff instead of refusing the joins.
  const buckets = opts.buckets ?? new BucketRegistry();
  const pacer = new PacedCaller(buckets, opts.retry ?? { maxAttempts: 8, capMs: 2000 });
  const bucketScope = `ec2/${scope.roleArn ?? "runtime"}/${scope.region}`;
  const byFilter = buckets.get(bucketScope, EC2_NON_MUTATING);
  const byId = buckets.get(bucketScope, EC2_UNFILTERED);
  const describe = async (input: DescribeInstancesCommandInput, profile: typeof EC2_NON_MUTATING, prepaid = false) => {
    ec2 ??= leanDescribeInstances(new EC2Client({ ...base, ...auth }));
    const client = ec2;
    return pacer.call(bucketScope, profile, () => client.send(new DescribeInstancesCommand(input)), prepaid);
  };
  const lookup = new Coalescer<string, DescribedInstance, DescribeLane>(
    async (ids, lane) => {
      const found = new Map<string, DescribedInstance>();
      const wanted = new Set(ids);
      const collect = (out: Awaited<ReturnType<typeof describe>>) => {
        for (const r of out.Reservations ?? [])
          for (const i of r.Instances ?? [])
            if (i.InstanceId && wanted.has(i.InstanceId))
              found.set(i.InstanceId, {
                instanceId: i.InstanceId,
                ownerId: r.OwnerId,
                state: i.State?.Name ?? "unknown",
                instanceProfileArn: i.IamInstanceProfile?.Arn || undefined,
                addresses: {
                  privateDnsName: i.PrivateDnsName || undefined,
                  publicDnsName: i.PublicDnsName || undefined,
                  privateIp: i.PrivateIpAddress || undefined,
                  publicIp: i.PublicIpAddress || undefined,
                },
              });
      };
      // By filter: paginated, so counted against EC2's non-mutating bucket; unknown ids are left out of the answer.
      const byFilters = async (firstPrepaid: boolean) => {
        let prepaid = firstPrepaid;
        for (let i = 0; i < ids.length; i += VALUES_PER_FILTER) {
          const Filters = [{ Name: "instance-id", Values: ids.slice(i, i + VALUES_PER_FILTER) }];
          let NextToken: string | undefined;
          do {
            const out = await describe({ Filters, MaxResults: 1000, NextToken }, EC2_NON_MUTATING, prepaid);
            prepaid = false;
            collect(out);
            NextToken = out.NextToken;
          } while (NextToken);
        }
      };
      try {
        if (lane === "filter") await byFilters(true);
        else
          try {
            // By id: up to 1000 at once, unpaginated, so counted against EC2's smaller bucket.
            collect(await describe({ InstanceIds: ids }, EC2_UNFILTERED, true));
          } catch (err) {
            // One unknown id fails the whole call; a filter leaves unknown ids out instead (200 values a filter).
            if (!/^InvalidInstanceID\./.test(awsErrorCode(err))) throw err;
            await byFilters(false);
          }
      } catch (err) {
        throw new AwsCallError("ec2:DescribeInstances", err);
      }
      return found;
    },
    {
      maxBatch: IDS_PER_CALL,
      maxInFlight: 4,
      // The token is taken before the batch is formed: ids that arrive while the call waits for it go with it. A
      // token is kept in reserve, so calls sent at the full rate still find one at AWS when they arrive unevenly.
      admit: async (waiting) => {
        const lane = describeLane(waiting, byFilter.waitMs(RESERVE), byId.waitMs(RESERVE));
        await (lane === "filter" ? byFilter : byId).take(RESERVE);
        return { lane, maxBatch: lane === "filter" ? VALUES_PER_FILTER : IDS_PER_CALL };
      },
    },
  );
  return {
    async describeInstance(instanceId) {
      if (!INSTANCE_ID.test(instanceId)) return undefined;
      await credentials(); // an AssumeRole failure is reported as one, not as a DescribeInstances failure
      return lookup.get(instanceId);
    },
    get describeCalls() {
      return pacer.calls;
    },
    async instanceProfileRoles(profileArn) {
      await credentials();
      iam ??= new IAMClient({ ...base, ...auth });
      // GetInstanceProfile takes the name: the ARN's last segment (profile names are unique whatever the path).
      const name = profileArn.slice(profileArn.lastIndexOf("/") + 1);
      try {
        const out = await iam.send(new GetInstanceProfileCommand({ InstanceProfileName: name }));
        if (out.InstanceProfile?.Arn !== profileArn) return undefined;
        return (out.InstanceProfile.Roles ?? []).map((r: Role) => ({ arn: r.Arn ?? "", name: r.RoleName ?? "", id: r.RoleId ?? "" })); // prettier-ignore
      } catch (err) {
        if (awsErrorCode(err) === "NoSuchEntityException" || awsErrorCode(err) === "NoSuchEntity") return undefined;
        throw new AwsCallError("iam:GetInstanceProfile", err);
      }
    },
    destroy() {
      ec2?.destroy();
      iam?.destroy();
    },
  };
}

/**
 * A factory that keeps one {@link SdkInstanceApi} per region and role, so joins share clients and assumed
 * credentials. Clients hold no answers, only connections, so sharing them across accounts is safe.
 */
export function cachedInstanceApis(opts: Ec2CheckOptions = {}, maxEntries = 256): InstanceApiFactory {
  const apis = new Map<string, SdkInstanceApi>();
  // One budget per role and region, kept when an API is dropped from the cache.
  const buckets = opts.buckets ?? new BucketRegistry();
  return (scope) => {
    // The SDK reads AWS_ENDPOINT_URL when a client is made: a changed variable (tests) needs fresh clients.
    const key = `${scope.region} ${scope.roleArn ?? ""} ${opts.endpoint ?? process.env.AWS_ENDPOINT_URL ?? ""}`;
    let api = apis.get(key);
    if (!api) {
      // The oldest is dropped, not destroyed: a join may still be using it, and its idle sockets close on their own.
      if (apis.size >= maxEntries) apis.delete(apis.keys().next().value as string);
      api = sdkInstanceApi(scope, { ...opts, buckets });
      apis.set(key, api);
    }
    return api;
  };
}

/** The host certificate's principals of an instance: its node name, then its private IP and DNS names. */
export function hostPrincipals(nodeName: string, a: InstanceAddresses): string[] {
  return [...new Set([nodeName, a.privateIp, a.privateDnsName, a.publicDnsName].filter((p): p is string => !!p))];
}
