/**
 * pulumi-discovery/policy: policies for programs that declare discovery resources, and a helper that serves
 * them as a Pulumi policy pack. Importing this module starts nothing; only createPolicyPack does.
 */
import type { Policies, PolicyPack, PolicyPackConfig } from "@pulumi/policy";
import {
  ec2TokenIidTtlAndRegions,
  matcherCloudJoinMethod,
  noWildcardAssumeRole,
  resourcePolicies,
  runtimeAddressHttps,
  ssmSendCommandDocumentScoped,
  tokenAllowRules,
} from "./rules";
import { discoveryTokenJoinMethod, gcpOsLoginProjects, stackPolicies } from "./stack-rules";

export {
  ec2TokenIidTtlAndRegions,
  tokenAllowRules,
  discoveryTokenJoinMethod,
  matcherCloudJoinMethod,
  ssmSendCommandDocumentScoped,
  runtimeAddressHttps,
  noWildcardAssumeRole,
  gcpOsLoginProjects,
};
export { TYPES as RESOURCE_TYPES } from "./resources";
export { checkResource, checkStack } from "./check";
export type { ResourceUnderTest, StackViolation } from "./check";

/** Every policy of the pack, resource policies first. */
export const policies: Policies = [...resourcePolicies, ...stackPolicies];

/** The names of the pack's policies. */
export const POLICY_NAMES: readonly string[] = policies.map((p) => p.name);

/** Options of createPolicyPack. */
export interface DiscoveryPolicyPackOptions {
  /**
   * Initial config by policy name: an enforcement level, or `{ enforcementLevel, ...policy config }`, e.g.
   * `{ "gcp-os-login-projects": { osLoginProjects: ["corp-prod"] }, "token-allow-rules": "advisory" }`.
   * A `--policy-pack-config` file given to the CLI overrides it.
   */
  config?: PolicyPackConfig;
  /** Policies of this package to leave out, by name. */
  exclude?: string[];
  /** Your own policies, served in the same pack. */
  extraPolicies?: Policies;
  /** The pack's description; default a sentence about discovery. */
  description?: string;
}

/**
 * Serves the discovery policies as the policy pack `name` (run by `pulumi preview --policy-pack DIR`, where DIR
 * holds PulumiPolicy.yaml, a package.json with a version, and the file that calls this). Starts the policy
 * server: call it once, from a pack's entry point, never from tests.
 */
export function createPolicyPack(name: string, opts: DiscoveryPolicyPackOptions = {}): PolicyPack {
  const unknown = [...(opts.exclude ?? []), ...Object.keys(opts.config ?? {})].filter(
    (n) => !POLICY_NAMES.includes(n) && !(opts.extraPolicies ?? []).some((p) => p.name === n) && n !== "all",
  );
  if (unknown.length > 0)
    throw new Error(
      `unknown policy ${unknown.map((n) => JSON.stringify(n)).join(", ")}: use one of ${POLICY_NAMES.join(", ")}`,
    );
  // Loaded here, not at the top: @pulumi/policy is an optional peer, and its PolicyPack starts a server.
  let Pack: typeof PolicyPack;
  try {
    Pack = (require("@pulumi/policy") as typeof import("@pulumi/policy")).PolicyPack;
  } catch (e) {
    throw new Error(
      `the policy pack needs @pulumi/policy, an optional peer dependency of pulumi-discovery: run npm install @pulumi/policy (${(e as Error).message.split("\n")[0]})`,
    );
  }
  const excluded = new Set(opts.exclude ?? []);
  return new Pack(
    name,
    {
      description:
        opts.description ??
        "pulumi-discovery: join tokens pin who may join, discovery installs with cloud join methods, and the IAM grants it needs stay scoped.",
      policies: [...policies.filter((p) => !excluded.has(p.name)), ...(opts.extraPolicies ?? [])],
    },
    opts.config,
  );
}
