/**
 * The allow rules of an iam token: which callers STS named may join, by account, ARN glob or organization.
 */
import { JoinRefusal } from "../../join/errors";
import type { Token } from "../../model";
import type { AwsAllowRule, DescribeAccount } from "./attest-iam";
import type { CallerIdentity } from "./sts-request";

/**
 * Whether `arn` matches a glob where `*` is any run and `?` one character, anchored at both ends. Matched
 * character by character, never through a regular expression, so a pattern's `.` or `+` are literal.
 */
export function matchArnGlob(pattern: string, arn: string): boolean {
  let p = 0;
  let a = 0;
  let star = -1;
  let resume = 0;
  while (a < arn.length) {
    if (p < pattern.length && (pattern[p] === "?" || pattern[p] === arn[a])) {
      p++;
      a++;
    } else if (p < pattern.length && pattern[p] === "*") {
      star = p++;
      resume = a;
    } else if (star >= 0) {
      p = star + 1;
      a = ++resume;
    } else return false;
  }
  while (pattern[p] === "*") p++;
  return p === pattern.length;
}

/**
 * Remembers whether an account belongs to an organization. The key is the pair (account, organization):
 * Vault's CVE-2025-11621 keyed such a cache by role name only, so one account's answer served another.
 */
export class OrganizationCache {
  private readonly entries = new Map<string, { member: boolean; expires: number }>();

  /** Builds a cache whose answers live `ttlMs` and which holds at most `maxEntries`. */
  constructor(
    private readonly ttlMs = 5 * 60_000,
    private readonly maxEntries = 10_000,
  ) {}

  /** Whether `account` is in `organizationId`, asking `describe` unless a fresh answer is cached. */
  async isMember(account: string, organizationId: string, describe: DescribeAccount, now: Date): Promise<boolean> {
    const key = `${account}/${organizationId}`;
    const hit = this.entries.get(key);
    if (hit && hit.expires > now.getTime()) return hit.member;
    const member = (await describe(account)) === organizationId; // errors propagate and are never cached
    this.entries.delete(key);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(key, { member, expires: now.getTime() + this.ttlMs });
    return member;
  }
}

/** Options of {@link matchIamRule}. */
export interface MatchIamRuleOptions {
  /** Organizations lookup for `aws_organization_id` rules. */
  describeAccount?: DescribeAccount;
  /** Cache of organization answers shared across joins; without one every join asks. */
  orgCache?: OrganizationCache;
  /** Server time, for the cache. */
  now?: Date;
}

/**
 * The first allow rule the caller satisfies. Within a rule every field set must match (account, ARN glob,
 * organization), as in Teleport; the organization is looked up only when the rule's other fields match.
 */
export async function matchIamRule(
  identity: CallerIdentity,
  token: Token,
  opts: MatchIamRuleOptions = {},
): Promise<AwsAllowRule> {
  const cache = opts.orgCache ?? new OrganizationCache();
  let lookupError: string | undefined;
  for (const rule of token.spec.allow ?? []) {
    // An empty rule would allow everyone; the model refuses it, and so does this loop.
    if (rule.aws_account === undefined && rule.aws_arn === undefined && rule.aws_organization_id === undefined)
      continue;
    if (rule.aws_account !== undefined && rule.aws_account !== identity.account) continue;
    if (rule.aws_arn !== undefined && !matchArnGlob(rule.aws_arn, identity.arn)) continue;
    if (rule.aws_organization_id !== undefined) {
      if (!opts.describeAccount) {
        lookupError = "the runtime has no Organizations access configured";
        continue;
      }
      try {
        const now = opts.now ?? new Date();
        if (!(await cache.isMember(identity.account, rule.aws_organization_id, opts.describeAccount, now))) continue;
      } catch (e) {
        lookupError = `organizations:DescribeAccount failed: ${(e as Error).message}`;
        continue;
      }
    }
    return rule;
  }
  const why = lookupError ? `; an organization rule could not be checked: ${lookupError}` : "";
  // Token names are validated names; the ARN is STS's, checked by parseCallerIdentity.
  throw new JoinRefusal(
    lookupError ? "iam_organization_lookup_failed" : "iam_no_matching_rule",
    `caller ${identity.arn} (account ${identity.account}) matches no allow rule of token ${JSON.stringify(token.metadata.name)}${why}`,
    403,
  );
}
