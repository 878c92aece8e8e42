/** The policy documents each cloud needs for a config's matchers, for `discovery policy` and the SDK. */
import type { AwsMatcher, DiscoveryConfig, DiscoveryServiceSection, Resource } from "../model";
import { discoveryPolicy, eventQueueArn, eventQueuePolicy, instancePolicy, PolicyDocument } from "./aws/policy";
import { azureDiscoveryRole } from "./azure/role";
import { gcpDiscoveryRole } from "./gcp/role";

export { gcpDiscoveryRole } from "./gcp/role";
export type { GcpRole } from "./gcp/role";
export { azureDiscoveryRole } from "./azure/role";
export type { AzureRole } from "./azure/role";

/** The clouds `discovery policy` writes policies for. */
export const POLICY_CLOUDS = ["aws", "gcp", "azure"] as const;
/** A cloud `discovery policy` writes policies for. */
export type PolicyCloud = (typeof POLICY_CLOUDS)[number];

/** The AWS policies: `discovery` for the discovery service's role, `instance` for enrolled instances' profile. */
export function awsPolicies(matchers: readonly AwsMatcher[]): { discovery: PolicyDocument; instance: PolicyDocument } {
  return { discovery: discoveryPolicy(matchers), instance: instancePolicy(matchers) };
}

/**
 * What `discovery policy CLOUD` prints for the discovery_config resources (a teleport.yaml parses to one too) and the
 * `discovery_service` sections of runtime configs: the policy documents, or an error naming what is missing. For
 * AWS, a runtime config's `events.aws` queues add `events`: read and delete on those queues only.
 */
export function policyFor(
  cloud: PolicyCloud,
  resources: Resource[],
  services: readonly DiscoveryServiceSection[] = [],
): { output: object } | { error: string } {
  const specs = [
    ...resources.filter((r): r is DiscoveryConfig => r.kind === "discovery_config").map((c) => c.spec),
    ...services,
  ];
  if (specs.every((s) => s[cloud].length === 0))
    return {
      error:
        `no ${cloud} matchers: add one under spec.${cloud} of a discovery_config ` +
        `(or discovery_service.${cloud} of a teleport.yaml or runtime config)`,
    };
  if (cloud === "aws") {
    const queues = services.flatMap((s) => s.events?.aws ?? []).map(eventQueueArn);
    const events = queues.length > 0 ? { events: eventQueuePolicy([...new Set(queues)]) } : {};
    return { output: { ...awsPolicies(specs.flatMap((s) => s.aws)), ...events } };
  }
  if (cloud === "gcp") return { output: gcpDiscoveryRole(specs.flatMap((s) => s.gcp)) };
  return { output: azureDiscoveryRole(specs.flatMap((s) => s.azure)) };
}
