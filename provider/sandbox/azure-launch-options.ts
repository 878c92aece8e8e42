import { MAX_LAUNCH_COUNT } from "./launch-options";

/** States a sandbox Azure VM launches into (its `PowerState/...` status). */
export type AzureLaunchState = "running" | "deallocated";

/** What to launch in the sandbox's fake Azure: VMs with an IMDS each, an sshd when agentless. */
export interface AzureLaunchOptions {
  /** A subscription id (any UUID). */
  subscription: string;
  resourceGroup: string;
  /** An Azure region name such as eastus. */
  region: string;
  tags: Record<string, string>;
  count: number;
  /** Give each VM a real sshd, for the agentless (OpenSSH) mode. */
  agentless: boolean;
  state: AzureLaunchState;
  /** A VM whose VM agent never reports: run commands fail with VMAgentStatusCommunicationError. */
  noAgent: boolean;
  /** Put the VMs in this (Uniform) scale set, as its instances 0, 1, ... instead of standalone VMs. */
  scaleSet?: string;
}

/** An Azure launch argument that is not acceptable; `field` names it as the control API spells it. */
export class AzureLaunchOptionError extends Error {
  constructor(
    readonly field: keyof AzureLaunchOptions,
    message: string,
  ) {
    super(message);
    this.name = "AzureLaunchOptionError";
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// Azure's rules: resource groups 1-90 of letters, digits, _ - . ( ), not ending in a period.
const RESOURCE_GROUP = /^[-\w.()]{0,89}[-\w()]$/;
const REGION = /^[a-z]+[a-z0-9]*$/;
// Scale set names as VM names: 1-64 of letters, digits, - _ ., starting with a letter or digit.
const SCALE_SET = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function checkTags(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new AzureLaunchOptionError("tags", "must be a map of tag names to values");
  const tags: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string")
      throw new AzureLaunchOptionError("tags", `the value of ${JSON.stringify(k)} must be text`);
    // Azure refuses these characters in tag names, and names over 512 or values over 256 characters.
    if (!k || k.length > 512 || /[<>%&\\?/]/.test(k))
      throw new AzureLaunchOptionError("tags", `${JSON.stringify(k)} is not an Azure tag name`);
    if (v.length > 256)
      throw new AzureLaunchOptionError("tags", `the value of ${JSON.stringify(k)} is over 256 characters`);
    tags[k] = v;
  }
  if (Object.keys(tags).length > 50)
    throw new AzureLaunchOptionError("tags", "Azure allows at most 50 tags a resource");
  return tags;
}

/** Validates Azure launch arguments (control API or CLI flags) and fills in the defaults. */
export function parseAzureLaunchOptions(input: Record<string, unknown>): AzureLaunchOptions {
  const { subscription, resourceGroup, region, count, scaleSet } = input;
  if (typeof subscription !== "string" || !UUID.test(subscription))
    throw new AzureLaunchOptionError("subscription", `must be a subscription id (a UUID), not ${JSON.stringify(subscription)}`); // prettier-ignore
  if (typeof resourceGroup !== "string" || !RESOURCE_GROUP.test(resourceGroup))
    throw new AzureLaunchOptionError("resourceGroup", `must be a resource group name, not ${JSON.stringify(resourceGroup)}`); // prettier-ignore
  if (typeof region !== "string" || !REGION.test(region))
    throw new AzureLaunchOptionError("region", `must be an Azure region such as eastus, not ${JSON.stringify(region)}`);
  const n = count === undefined ? 1 : count;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > MAX_LAUNCH_COUNT)
    throw new AzureLaunchOptionError("count", `must be a whole number from 1 to ${MAX_LAUNCH_COUNT}, not ${String(count)}`); // prettier-ignore
  for (const flag of ["agentless", "noAgent"] as const)
    if (input[flag] !== undefined && typeof input[flag] !== "boolean")
      throw new AzureLaunchOptionError(flag, "must be true or false");
  const state = input.state ?? "running";
  if (state !== "running" && state !== "deallocated")
    throw new AzureLaunchOptionError("state", `must be running or deallocated, not ${JSON.stringify(state)}`);
  if (scaleSet !== undefined && (typeof scaleSet !== "string" || !SCALE_SET.test(scaleSet)))
    throw new AzureLaunchOptionError("scaleSet", `must be a scale set name, not ${JSON.stringify(scaleSet)}`);
  return {
    subscription: subscription.toLowerCase(),
    resourceGroup,
    region,
    tags: checkTags(input.tags),
    count: n,
    agentless: input.agentless === true,
    state,
    noAgent: input.noAgent === true,
    ...(scaleSet !== undefined && { scaleSet: scaleSet as string }),
  };
}
