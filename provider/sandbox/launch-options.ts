import { awsRegionCertificate } from "../clouds/aws/region-certs";
import type { GcpLaunchOptions } from "./gcp-launch-options";

/** What the simulated SSM agent reports: online, lost (e.g. the agent died), or never registered with SSM. */
export type SsmStatus = "Online" | "ConnectionLost" | "unregistered";
/** The operating system family SSM reports (`PlatformType`). */
export type SsmPlatform = "Linux" | "Windows";
/** Instance states the sandbox launches into. */
export type LaunchState = "running" | "stopped";

/** What to launch: instances in moto, each with its own metadata service (and sshd when agentless). */
export interface LaunchOptions {
  /** 12-digit account; any other than moto's default is reached by assuming a role in it. */
  account: string;
  region: string;
  tags: Record<string, string>;
  /** Default 1. */
  count: number;
  /** Give each instance a real sshd for the agentless (OpenSSH) mode. */
  agentless: boolean;
  state: LaunchState;
  platform: SsmPlatform;
  ssmStatus: SsmStatus;
}

/** What a caller passes: account and region, the rest defaulted by {@link parseLaunchOptions}. */
export type LaunchRequest = Pick<LaunchOptions, "account" | "region"> & Partial<LaunchOptions>;

/** Most instances one launch makes: each holds a metadata server (and maybe an sshd) in the sandbox process. */
export const MAX_LAUNCH_COUNT = 200;

/** A launch argument that is not acceptable; `field` names it as the API spells it (`account`, `ssmStatus`). */
export class LaunchOptionError extends Error {
  constructor(
    readonly field: keyof LaunchOptions | keyof GcpLaunchOptions,
    message: string,
  ) {
    super(message);
    this.name = "LaunchOptionError";
  }
}

const STATES: readonly LaunchState[] = ["running", "stopped"];
const PLATFORMS: readonly SsmPlatform[] = ["Linux", "Windows"];
const SSM_STATUSES: readonly SsmStatus[] = ["Online", "ConnectionLost", "unregistered"];

function oneOf<T extends string>(field: keyof LaunchOptions, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value === "string" && (allowed as readonly string[]).includes(value)) return value as T;
  throw new LaunchOptionError(field, `must be one of ${allowed.join(", ")}, not ${JSON.stringify(value)}`);
}

/** Checks a tag map as EC2 would: keys 1-128 characters and not `aws:`-prefixed, values up to 256. */
function checkTags(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new LaunchOptionError("tags", "must be a map of tag keys to values");
  const tags: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") throw new LaunchOptionError("tags", `the value of ${JSON.stringify(k)} must be text`);
    if (k.length < 1 || k.length > 128) throw new LaunchOptionError("tags", "keys must be 1 to 128 characters");
    if (/^aws:/i.test(k)) throw new LaunchOptionError("tags", `key ${JSON.stringify(k)}: the aws: prefix is AWS's`);
    if (v.length > 256) throw new LaunchOptionError("tags", `the value of ${JSON.stringify(k)} is over 256 characters`);
    tags[k] = v;
  }
  if (Object.keys(tags).length > 50) throw new LaunchOptionError("tags", "EC2 allows at most 50 tags an instance");
  return tags;
}

/** Validates launch arguments (from the control API or CLI flags) and fills in the defaults. */
export function parseLaunchOptions(input: Record<string, unknown>): LaunchOptions {
  const { account, region, count } = input;
  if (typeof account !== "string" || !/^\d{12}$/.test(account))
    throw new LaunchOptionError("account", `must be a 12-digit AWS account id, not ${JSON.stringify(account)}`);
  // The ec2 join verifies documents per region, so a region without AWS's certificate could never join.
  if (typeof region !== "string" || !awsRegionCertificate(region))
    throw new LaunchOptionError("region", `must be an AWS region such as us-east-1, not ${JSON.stringify(region)}`);
  const n = count === undefined ? 1 : count;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > MAX_LAUNCH_COUNT)
    throw new LaunchOptionError("count", `must be a whole number from 1 to ${MAX_LAUNCH_COUNT}, not ${String(count)}`);
  if (input.agentless !== undefined && typeof input.agentless !== "boolean")
    throw new LaunchOptionError("agentless", "must be true or false");
  return {
    account,
    region,
    tags: checkTags(input.tags),
    count: n,
    agentless: input.agentless === true,
    state: oneOf("state", input.state, STATES, "running"),
    platform: oneOf("platform", input.platform, PLATFORMS, "Linux"),
    ssmStatus: oneOf("ssmStatus", input.ssmStatus, SSM_STATUSES, "Online"),
  };
}

/** Parses `k=v[,k=v]` (a value may hold `=`, not `,`) into a tag map. */
export function parseTagList(text: string): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const pair of text.split(",")) {
    const at = pair.indexOf("=");
    if (at < 1) throw new LaunchOptionError("tags", `expected k=v[,k=v], and ${JSON.stringify(pair)} is not k=v`);
    const key = pair.slice(0, at).trim();
    if (Object.hasOwn(tags, key)) throw new LaunchOptionError("tags", `tag ${JSON.stringify(key)} is given twice`);
    tags[key] = pair.slice(at + 1).trim();
  }
  return tags;
}
