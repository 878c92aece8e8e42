/** The regions a `regions: ["*"]` matcher scans in one account: those enabled for it. */
import { AccountClient, ListRegionsCommand } from "@aws-sdk/client-account";
import { DescribeRegionsCommand, EC2Client } from "@aws-sdk/client-ec2";
import { collectPages } from "./fetch-support";
import { awsErrorCode, EC2_UNFILTERED, GLOBAL_API, PacedCaller } from "./rate-limits";
import type { AwsCredentials } from "./sts-request";

/** Region listings are asked of us-east-1: both APIs answer there for every region. */
export const LISTING_REGION = "us-east-1";

/** How to build a client for one region with the account's credentials. */
export type ClientConfigFor = (region: string) => {
  region: string;
  maxAttempts: number;
  endpoint?: string;
  credentials?: AwsCredentials;
};

// ListRegions is missing where the Account API is not implemented (moto, some partitions) and denied to roles
// written before it existed; ec2:DescribeRegions gives the same answer, so either case falls back to it.
const FALL_BACK_CODES = new Set([
  "UnknownOperationException",
  "UnknownOperation",
  "NotImplemented",
  "InvalidAction",
  "AccessDenied",
  "AccessDeniedException",
  "UnauthorizedOperation",
]);

function listRegionsUnavailable(err: unknown): boolean {
  const status = (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
  return status === 404 || status === 501 || FALL_BACK_CODES.has(awsErrorCode(err));
}

/**
 * Regions enabled in an account (opt-in status ENABLED or ENABLED_BY_DEFAULT), from account:ListRegions, or from
 * ec2:DescribeRegions when ListRegions is unavailable. Sorted.
 */
export async function enabledRegions(account: string, config: ClientConfigFor, caller: PacedCaller): Promise<string[]> {
  const accountApi = new AccountClient(config(LISTING_REGION));
  try {
    const regions = await collectPages(async (NextToken) => {
      const out = await caller.call(`account/${account}`, GLOBAL_API, () =>
        accountApi.send(
          new ListRegionsCommand({
            RegionOptStatusContains: ["ENABLED", "ENABLED_BY_DEFAULT"],
            MaxResults: 50,
            NextToken,
          }),
        ),
      );
      return { items: out.Regions, next: out.NextToken };
    });
    return regions.flatMap((r) => (r.RegionName ? [r.RegionName] : [])).sort();
  } catch (err) {
    if (!listRegionsUnavailable(err)) throw err;
  } finally {
    accountApi.destroy();
  }
  const ec2 = new EC2Client(config(LISTING_REGION));
  try {
    const out = await caller.call(`ec2/${account}/${LISTING_REGION}`, EC2_UNFILTERED, () =>
      ec2.send(new DescribeRegionsCommand({})),
    );
    // AWS already leaves out regions the account has not opted into; moto does not, so check the status here too.
    return (out.Regions ?? [])
      .filter(
        (r) => r.OptInStatus === undefined || r.OptInStatus === "opt-in-not-required" || r.OptInStatus === "opted-in",
      )
      .flatMap((r) => (r.RegionName ? [r.RegionName] : []))
      .sort();
  } finally {
    ec2.destroy();
  }
}
