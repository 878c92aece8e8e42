/**
 * Which EC2 instances still exist: the stale-node check of an enrollment pass. Ids are asked with an `instance-id`
 * filter rather than `InstanceIds`, so an id EC2 no longer knows is simply absent from the answer instead of failing
 * the whole call with InvalidInstanceID.NotFound.
 */
import { DescribeInstancesCommand, EC2Client } from "@aws-sdk/client-ec2";
import { leanDescribeInstances } from "./describe-instances-reader";
import type { ExistenceQuery } from "../../enroll/clouds";
import type { AwsMatcher } from "../../model";
import { accountCredentials } from "./credentials";
import { collectPages } from "./fetch-support";
import { BucketRegistry, EC2_NON_MUTATING, PacedCaller } from "./rate-limits";
import type { AwsCredentials } from "./sts-request";

/** Ids per DescribeInstances call: EC2 takes at most 200 values in one filter. */
export const EXISTENCE_BATCH = 200;

/** States of an instance that is gone for good (shutting-down always ends in terminated). */
const GONE = new Set(["terminated", "shutting-down"]);

/** How {@link existingInstances} reaches EC2. */
export interface ExistenceOptions {
  /** Credentials for the scope's account; default the matcher's role, else the SDK chain. */
  credentials?: (account: string, region: string) => Promise<AwsCredentials | undefined>;
  buckets?: BucketRegistry;
}

const rolesOf = new WeakMap<AwsMatcher, ReturnType<typeof accountCredentials>>();

/**
 * The ids of `query` that exist and are not terminated. Throws when any call fails (after the paced retries of
 * throttling), so a caller never mistakes a denied or throttled call for instances that are gone.
 */
export async function existingInstances(
  matcher: AwsMatcher,
  query: ExistenceQuery,
  opts: ExistenceOptions = {},
): Promise<Set<string>> {
  let roles = rolesOf.get(matcher);
  if (!roles) rolesOf.set(matcher, (roles = accountCredentials(matcher, "discovery-stale-check")));
  const credentials = await (opts.credentials ?? roles)(query.account, query.region);
  const ec2 = leanDescribeInstances(
    new EC2Client({ region: query.region, maxAttempts: 1, ...(credentials && { credentials }) }),
  );
  const caller = new PacedCaller(opts.buckets ?? new BucketRegistry());
  const found = new Set<string>();
  try {
    const ids = [...new Set(query.instanceIds)];
    for (let i = 0; i < ids.length; i += EXISTENCE_BATCH) {
      const Filters = [{ Name: "instance-id", Values: ids.slice(i, i + EXISTENCE_BATCH) }];
      await collectPages(async (NextToken) => {
        const page = await caller.call(`ec2/${query.account}/${query.region}`, EC2_NON_MUTATING, () =>
          ec2.send(new DescribeInstancesCommand({ Filters, MaxResults: 1000, NextToken })),
        );
        for (const r of page.Reservations ?? [])
          for (const inst of r.Instances ?? [])
            if (inst.InstanceId && !GONE.has(inst.State?.Name ?? "")) found.add(inst.InstanceId);
        return { next: page.NextToken };
      });
    }
  } finally {
    ec2.destroy();
  }
  return found;
}
