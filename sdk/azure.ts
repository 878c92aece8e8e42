/** Azure pieces for Pulumi programs: the discovery service's custom role. */
import type { AzureRole } from "../provider/clouds/policies";
import { AzureMatcherArgs, DiscoveryConfigPolicyArgs, policyOutput } from "./policy-config";

export type { AzureMatcherArgs, DiscoveryConfigPolicyArgs } from "./policy-config";

/** What the Azure role builder takes: DiscoveryConfig-style args, or a list of Azure matchers, in camelCase. */
export type AzurePolicyInput = DiscoveryConfigPolicyArgs | readonly AzureMatcherArgs[];

/** A custom role in the shape `@pulumi/azure-native`'s `authorization.RoleDefinition` args take. */
export interface DiscoveryRole {
  /** The role's name. */
  roleName: string;
  /** What the role is for. */
  description: string;
  /** The actions, sorted: exactly what discovery, the run command installer and the azure join call. */
  actions: string[];
  /** Where the role may be assigned: the matchers' subscriptions, or `/` when one says `*`. */
  assignableScopes: string[];
}

/**
 * The discovery service's custom role (what `discovery policy azure` prints, in camelCase). Throws naming any
 * invalid property.
 */
export function discoveryRole(config: AzurePolicyInput): DiscoveryRole {
  const role = policyOutput("azure", config) as AzureRole;
  return {
    roleName: role.Name,
    description: role.Description,
    actions: role.Actions,
    assignableScopes: role.AssignableScopes,
  };
}
