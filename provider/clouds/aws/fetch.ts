/**
 * The EC2 fetcher: lists the running instances an AWS matcher selects, over every account (one, an assumed role's,
 * or an organization's) and region, all scans at once within EC2's per-account, per-region request limits. A
 * failing account or region is reported in its ScopeReport and never stops the others.
 */
import { DescribeInstancesCommand, EC2Client, Filter, Instance } from "@aws-sdk/client-ec2";
import { leanDescribeInstances } from "./describe-instances-reader";
import { OrganizationsClient } from "@aws-sdk/client-organizations";
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import type { AwsMatcher } from "../../model";
import type { Candidate, FetchResult, ScopeReport } from "../../enroll/types";
import { AcquireScope, type ExistenceQuery, scopeLeftToOthers } from "../../enroll/clouds";
import { listOrganizationAccounts } from "./fetch-organizations";
import { enabledRegions, LISTING_REGION } from "./fetch-regions";
import { concurrencyLimit } from "../../util/concurrency";
import { collectPages, scopeError, ScopeFailure, sortFetchResult } from "./fetch-support";
import { BucketRegistry, EC2_NON_MUTATING, GLOBAL_API, PacedCaller, RetryOptions } from "./rate-limits";
import type { AwsCredentials } from "./sts-request";
import { ec2NodeName } from "./identity";

/** How {@link fetchEc2} reaches AWS and reports progress. */
export interface FetchOptions {
  /** Static credentials (tests, the sandbox); default the SDK provider chain (env, profile, instance role). */
  credentials?: AwsCredentials;
  /** One endpoint for every AWS API (tests); otherwise the SDK reads `AWS_ENDPOINT_URL` itself. */
  endpoint?: string;
  /** Scans (account × region) in flight at once; default 32. */
  concurrency?: number;
  /** Token buckets to draw from; pass one long-lived registry so repeated and parallel fetches share AWS's budget. */
  buckets?: BucketRegistry;
  /** Backoff on throttling (tests inject sleep and random); defaults: 6 attempts, 100 ms base, 5 s cap. */
  retry?: RetryOptions;
  /** Called as each scope finishes, successful or not, e.g. for progress output. */
  onScope?: (report: ScopeReport) => void;
  /** RoleSessionName of assumed roles, shown in the member account's CloudTrail; default `pulumi-discovery`. */
  roleSessionName?: string;
  /** Asked before each region's DescribeInstances: a region another replica holds is reported, not listed. */
  acquireScope?: AcquireScope;
  /**
   * Only these instances of one account and region (an event named them): the scan is the matcher's own, narrowed
   * by an `instance-id` filter, and nothing when the matcher does not cover that account or region.
   */
  only?: ExistenceQuery;
}

/** A {@link FetchResult} with the total of API calls, including those no single scope owns (organization walk). */
export interface Ec2FetchResult extends FetchResult {
  /** Every attempt made, retries included: AssumeRole, region listing, organization walk and DescribeInstances. */
  apiCalls: number;
}

/** The most instances one DescribeInstances page may return. */
export const DESCRIBE_INSTANCES_PAGE = 1000;
/** Scans in flight at once unless told otherwise. */
export const DEFAULT_FETCH_CONCURRENCY = 32;

/**
 * DescribeInstances filters for a matcher's tags: running instances only, plus one filter per tag (filters AND
 * together, values within one OR). A value `*` becomes a `tag-key` filter (any value); the key `*` adds none.
 */
export function ec2InstanceFilters(tags: Record<string, unknown>): Filter[] {
  const filters: Filter[] = [{ Name: "instance-state-name", Values: ["running"] }];
  for (const [key, raw] of Object.entries(tags)) {
    if (key === "*") continue;
    const values = (Array.isArray(raw) ? raw : [raw]).map(String);
    filters.push(values.includes("*") ? { Name: "tag-key", Values: [key] } : { Name: `tag:${key}`, Values: values });
  }
  return filters;
}

/** The account id in an IAM role ARN (`arn:<partition>:iam::<account>:role/<name>`). */
export function roleArnAccount(roleArn: string): string | undefined {
  return /^arn:[^:]+:iam::(\d{12}):role\//.exec(roleArn)?.[1];
}

/** A candidate for one running instance. */
export function ec2Candidate(account: string, region: string, i: Instance): Candidate {
  const id = i.InstanceId as string;
  const tags: Record<string, string> = {};
  for (const t of i.Tags ?? []) if (t.Key !== undefined) tags[t.Key] = t.Value ?? "";
  const platform = i.PlatformDetails || i.Platform;
  return {
    cloud: "aws",
    account,
    region,
    instanceId: id,
    nodeName: ec2NodeName(account, id),
    state: i.State?.Name ?? "unknown",
    tags,
    ...(i.PrivateIpAddress ? { privateIp: i.PrivateIpAddress } : {}),
    ...(i.PrivateDnsName ? { privateDnsName: i.PrivateDnsName } : {}),
    ...(platform ? { platform } : {}),
    ...(i.LaunchTime ? { launchTime: new Date(i.LaunchTime).toISOString() } : {}),
  };
}

/** An account to scan and, when a role must be assumed to enter it, that role. */
interface AccountTarget {
  account: string;
  roleArn?: string;
}

/** What one fetch shares among its scans. */
class FetchRun {
  readonly buckets: BucketRegistry;
  readonly limit: <T>(task: () => Promise<T>) => Promise<T>;
  readonly candidates: Candidate[] = [];
  readonly scopes: ScopeReport[] = [];
  private readonly callers: PacedCaller[] = [];

  constructor(readonly opts: FetchOptions) {
    this.buckets = opts.buckets ?? new BucketRegistry();
    this.limit = concurrencyLimit(opts.concurrency ?? DEFAULT_FETCH_CONCURRENCY);
  }

  /** Client settings for a region. The SDK's own retries are off: withRetries paces every attempt instead. */
  config(region: string, credentials?: AwsCredentials) {
    const c = credentials ?? this.opts.credentials;
    return {
      region,
      maxAttempts: 1,
      ...(this.opts.endpoint && { endpoint: this.opts.endpoint }),
      ...(c && { credentials: c }),
    };
  }

  caller(): PacedCaller {
    const c = new PacedCaller(this.buckets, this.opts.retry);
    this.callers.push(c);
    return c;
  }

  report(r: ScopeReport, found: Candidate[] = []): void {
    this.scopes.push(r);
    this.candidates.push(...found);
    this.opts.onScope?.(r);
  }

  apiCalls(): number {
    return this.callers.reduce((n, c) => n + c.calls, 0);
  }
}

/**
 * Lists the running EC2 instances a matcher selects. Scopes are account × region; a failure before any region of
 * an account is scanned (assuming its role, listing its regions) is reported once with region `*`, and a failure to
 * find the accounts at all (the caller's identity, the organization) once with region `*` and, as account, the
 * organization id or `unknown`.
 */
export async function fetchEc2(matcher: AwsMatcher, opts: FetchOptions = {}): Promise<Ec2FetchResult> {
  const run = new FetchRun(opts);
  const only = opts.only;
  const covered = !only || matcher.regions.includes("*") || matcher.regions.includes(only.region);
  if (!covered || only?.instanceIds.length === 0) return { candidates: [], scopes: [], apiCalls: 0 };
  const targets = (await accountTargets(matcher, run)).filter((t) => !only || t.account === only.account);
  const filters = ec2InstanceFilters(matcher.tags);
  if (only) filters.push({ Name: "instance-id", Values: [...new Set(only.instanceIds)] });
  await Promise.all(targets.map((t) => scanAccount(t, matcher, filters, run)));
  sortFetchResult(run);
  return { candidates: run.candidates, scopes: run.scopes, apiCalls: run.apiCalls() };
}

/** The accounts a matcher covers; on failure, reports it and returns none. */
async function accountTargets(matcher: AwsMatcher, run: FetchRun): Promise<AccountTarget[]> {
  const caller = run.caller();
  const org = matcher.organization;
  if (org) {
    const client = new OrganizationsClient(run.config(LISTING_REGION));
    try {
      const found = await listOrganizationAccounts(client, org, (fn) =>
        caller.call(`organizations/${org.organization_id}`, GLOBAL_API, fn),
      );
      const roleName = matcher.assume_role?.role_name as string;
      return found.accounts.map((account) => ({
        account,
        roleArn: `arn:${found.partition}:iam::${account}:role/${roleName}`,
      }));
    } catch (err) {
      const error = scopeError(err, `listing the accounts of organization ${org.organization_id}`);
      run.report({
        cloud: "aws",
        account: org.organization_id,
        region: "*",
        instances: 0,
        apiCalls: caller.calls,
        error,
      });
      return [];
    } finally {
      client.destroy();
    }
  }
  const roleArn = matcher.assume_role?.role_arn;
  if (roleArn) return [{ account: roleArnAccount(roleArn) ?? "unknown", roleArn }];
  const sts = new STSClient(run.config(LISTING_REGION));
  try {
    const me = await caller.call("sts/caller", GLOBAL_API, () => sts.send(new GetCallerIdentityCommand({})));
    if (!me.Account) throw new ScopeFailure("NoCallerAccount", "sts:GetCallerIdentity named no account");
    return [{ account: me.Account }];
  } catch (err) {
    const error = scopeError(err, "finding the discovery credentials' account with sts:GetCallerIdentity");
    run.report({ cloud: "aws", account: "unknown", region: "*", instances: 0, apiCalls: caller.calls, error });
    return [];
  } finally {
    sts.destroy();
  }
}

/** Enters an account (assuming its role), resolves its regions, then scans every region concurrently. */
async function scanAccount(target: AccountTarget, matcher: AwsMatcher, filters: Filter[], run: FetchRun) {
  const { account } = target;
  const caller = run.caller();
  let doing = `entering account ${account}`;
  // The slot is held only while entering the account, so region scans never wait on their own account's setup.
  const entered = await run.limit(async () => {
    try {
      let credentials: AwsCredentials | undefined;
      if (target.roleArn) {
        doing = `assuming role ${target.roleArn}${matcher.assume_role?.external_id ? " with the external id" : ""}`;
        credentials = await assumeRole(target.roleArn, matcher.assume_role?.external_id, caller, run);
      }
      const wildcard = matcher.regions.length === 1 && matcher.regions[0] === "*";
      doing = `listing the enabled regions of account ${account}`;
      // An event's region is the one to scan: the cloud just reported an instance there.
      const regions = run.opts.only
        ? [run.opts.only.region]
        : wildcard
          ? await enabledRegions(account, (r) => run.config(r, credentials), caller)
          : [...new Set(matcher.regions)];
      return { credentials, regions };
    } catch (err) {
      const error = scopeError(err, doing);
      run.report({ cloud: "aws", account, region: "*", instances: 0, apiCalls: caller.calls, error });
      return undefined;
    }
  });
  if (!entered) return;
  await Promise.all(
    entered.regions.map((region) => run.limit(() => scanRegion(account, region, entered.credentials, filters, run))),
  );
}

async function assumeRole(
  roleArn: string,
  externalId: string | undefined,
  caller: PacedCaller,
  run: FetchRun,
): Promise<AwsCredentials> {
  const sts = new STSClient(run.config(LISTING_REGION));
  try {
    const out = await caller.call(`sts/${roleArnAccount(roleArn) ?? roleArn}`, GLOBAL_API, () =>
      sts.send(
        new AssumeRoleCommand({
          RoleArn: roleArn,
          RoleSessionName: run.opts.roleSessionName ?? "pulumi-discovery",
          ...(externalId ? { ExternalId: externalId } : {}),
        }),
      ),
    );
    const c = out.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey)
      throw new ScopeFailure("NoCredentials", "AssumeRole returned no credentials");
    return { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken };
  } finally {
    sts.destroy();
  }
}

/** Lists one region's running, matching instances, page by page, and reports the scope. */
async function scanRegion(
  account: string,
  region: string,
  credentials: AwsCredentials | undefined,
  filters: Filter[],
  run: FetchRun,
): Promise<void> {
  const left = await scopeLeftToOthers(run.opts.acquireScope, { cloud: "aws", account, region });
  if (left) return run.report(left);
  const caller = run.caller();
  const ec2 = leanDescribeInstances(new EC2Client(run.config(region, credentials)));
  const found: Candidate[] = [];
  let error: ScopeReport["error"];
  try {
    // Filtered and paginated, so DescribeInstances counts against the non-mutating bucket, not the smaller one.
    await collectPages(async (NextToken) => {
      const page = await caller.call(`ec2/${account}/${region}`, EC2_NON_MUTATING, () =>
        ec2.send(new DescribeInstancesCommand({ Filters: filters, MaxResults: DESCRIBE_INSTANCES_PAGE, NextToken })),
      );
      for (const r of page.Reservations ?? [])
        for (const i of r.Instances ?? [])
          if (i.InstanceId && i.State?.Name === "running") found.push(ec2Candidate(account, region, i));
      return { next: page.NextToken };
    });
  } catch (err) {
    // Instances from pages already read stay candidates: discovery only adds, so a partial listing is still useful.
    error = scopeError(err, `DescribeInstances in account ${account}, region ${region}`);
  } finally {
    ec2.destroy();
  }
  run.report(
    { cloud: "aws", account, region, instances: found.length, apiCalls: caller.calls, ...(error ? { error } : {}) },
    found,
  );
}
