/**
 * Turns the camelCase config (or matcher list) a Pulumi program holds into a validated discovery_config, and
 * runs `discovery policy`'s own builder on it, so the SDK and the CLI never disagree on a policy.
 */
import { policyFor, PolicyCloud } from "../provider/clouds/policies";
import {
  Camelize,
  DiscoveryConfigInput,
  fromSdkArgs,
  sdkMessage,
  sdkPropertyPath,
  validateDocument,
} from "../provider/model";

type Spec = NonNullable<DiscoveryConfigInput["spec"]>;

/** An AWS matcher in camelCase, as DiscoveryConfig's `aws` entries take it. */
export type AwsMatcherArgs = Camelize<NonNullable<Spec["aws"]>[number]>;
/** A GCP matcher in camelCase, as DiscoveryConfig's `gcp` entries take it. */
export type GcpMatcherArgs = Camelize<NonNullable<Spec["gcp"]>[number]>;
/** An Azure matcher in camelCase, as DiscoveryConfig's `azure` entries take it. */
export type AzureMatcherArgs = Camelize<NonNullable<Spec["azure"]>[number]>;

/** DiscoveryConfig-style args (the spec fields at the top, camelCase); `name` and `discoveryGroup` may be left out. */
export interface DiscoveryConfigPolicyArgs {
  /** metadata.name of the config (not used by the policies). */
  name?: string;
  /** metadata.description (not used by the policies). */
  description?: string;
  /** metadata.labels (not used by the policies). */
  labels?: Record<string, string>;
  /** The discovery group (not used by the policies). */
  discoveryGroup?: string;
  /** AWS matchers. */
  aws?: AwsMatcherArgs[];
  /** GCP matchers. */
  gcp?: GcpMatcherArgs[];
  /** Azure matchers. */
  azure?: AzureMatcherArgs[];
}

/** A placeholder for the name and group when the caller gives neither: the policies do not depend on them. */
const UNNAMED = "policy";

/** Where a problem is, in the caller's terms: `aws[0].regions` for config args, `[0].regions` for a matcher list. */
function callerPath(path: (string | number)[], list: boolean): string {
  if (path[0] !== "spec") return sdkPropertyPath(path);
  const rest = path.slice(list ? 2 : 1);
  return rest.length === 0 ? (list ? "matchers" : "config") : sdkPropertyPath(rest);
}

/**
 * What `discovery policy <cloud>` prints for `input`, validated by the model first; throws an error naming each
 * refused property (and its fix), or the missing matchers.
 */
export function policyOutput(cloud: PolicyCloud, input: DiscoveryConfigPolicyArgs | readonly object[]): object {
  const list = Array.isArray(input);
  const args: DiscoveryConfigPolicyArgs = list ? { [cloud]: input } : (input as DiscoveryConfigPolicyArgs);
  const { name, description, labels, discoveryGroup, ...matchers } = args;
  const doc = fromSdkArgs("discovery_config", {
    name: name ?? discoveryGroup ?? UNNAMED,
    description,
    labels,
    spec: { discoveryGroup: discoveryGroup ?? name ?? UNNAMED, ...matchers },
  });
  const { resource, problems } = validateDocument(doc);
  if (!resource)
    throw new Error(
      `invalid ${list ? `${cloud} matchers` : "discovery config"}: ` +
        problems.map((p) => `${callerPath(p.path, list)}: ${sdkMessage(p.message, p.path)}`).join("; "),
    );
  const r = policyFor(cloud, [resource]);
  if ("error" in r) throw new Error(r.error);
  return r.output;
}
