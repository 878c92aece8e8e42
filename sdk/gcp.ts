/** GCP pieces for Pulumi programs: the discovery service's custom role. */
import type { GcpRole } from "../provider/clouds/policies";
import { DiscoveryConfigPolicyArgs, GcpMatcherArgs, policyOutput } from "./policy-config";

export type { DiscoveryConfigPolicyArgs, GcpMatcherArgs } from "./policy-config";

/** What the GCP role builder takes: DiscoveryConfig-style args, or a list of GCP matchers, in camelCase. */
export type GcpPolicyInput = DiscoveryConfigPolicyArgs | readonly GcpMatcherArgs[];

/** A custom role in the shape `@pulumi/gcp`'s `projects.IAMCustomRole` args take (add a `roleId`). */
export interface DiscoveryRole {
  /** Human-readable title. */
  title: string;
  /** What the role is for. */
  description: string;
  /** Launch stage. */
  stage: "GA";
  /** The permissions, sorted. */
  permissions: string[];
}

/**
 * The discovery service's custom role (what `discovery policy gcp` prints, with `includedPermissions` named
 * `permissions` as IAMCustomRole takes them). Throws naming any invalid property.
 */
export function discoveryRole(config: GcpPolicyInput): DiscoveryRole {
  const role = policyOutput("gcp", config) as GcpRole;
  return { title: role.title, description: role.description, stage: role.stage, permissions: role.includedPermissions };
}
