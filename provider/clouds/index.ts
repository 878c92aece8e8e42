/**
 * The cloud catalog: every cloud of model.CLOUDS and its plugin, written out once. A cloud left out is a compile
 * error; `undefined` is a cloud this build does not implement yet (its matchers report `cloud_unavailable`).
 * Adding a cloud is a folder under provider/clouds/ exporting a CloudPlugin, and its line here.
 */
import { CLOUDS, type Cloud, type DiscoveryServiceSection, type EventsSection } from "../model";
import type { CloudEnrollment } from "../enroll/clouds";
import type { EventQueue } from "../enroll/events";
import { AWS_PLUGIN } from "./aws";
import { AZURE_PLUGIN } from "./azure";
import { GCP_PLUGIN } from "./gcp";
import type { CloudJoinMethod, CloudPlugin, NodeIdentity } from "./plugin";

export type { AllowProblem, CloudJoinMethod, CloudPlugin, NodeIdentity, NodeJoinContext } from "./plugin";

/** The matcher type of a cloud, as the model validated it. */
export type MatcherOf<C extends Cloud> = DiscoveryServiceSection[C][number];

/** Each cloud's plugin, typed by its matcher. */
export const CLOUD_PLUGINS: { readonly [C in Cloud]: CloudPlugin<MatcherOf<C>> | undefined } = {
  aws: AWS_PLUGIN,
  gcp: GCP_PLUGIN,
  azure: AZURE_PLUGIN,
};

/** The plugin of a cloud, for callers that hold the cloud's name as a string. */
export function cloudPlugin(name: string): CloudPlugin | undefined {
  return (CLOUD_PLUGINS as Record<string, CloudPlugin | undefined>)[name];
}

/** The fetcher and installer of a cloud, if this build has it. */
export function cloudEnrollment(name: string): CloudEnrollment | undefined {
  return cloudPlugin(name)?.enrollment;
}

/** Every state-change event queue `discovery_service.events` names, over the implemented clouds. */
export function cloudEventQueues(events: EventsSection): EventQueue[] {
  return implementedClouds().flatMap(({ plugin }) => plugin.eventQueues?.(events) ?? []);
}

/** The implemented clouds with their plugins, in model.CLOUDS order. */
export function implementedClouds(): { cloud: Cloud; plugin: CloudPlugin }[] {
  return CLOUDS.flatMap((cloud) => {
    const plugin = cloudPlugin(cloud);
    return plugin ? [{ cloud, plugin }] : [];
  });
}

/** Every join method the implemented clouds attest, by name, with its node side. */
export function cloudJoinMethods(): Record<string, CloudJoinMethod> {
  return Object.assign({}, ...implementedClouds().map(({ plugin }) => plugin.joinMethods));
}

/** The node identities (account and region labels, node name) of the implemented clouds. */
export function nodeIdentities(): { cloud: Cloud; identity: NodeIdentity }[] {
  return implementedClouds().map(({ cloud, plugin }) => ({ cloud, identity: plugin.identity }));
}

/** The label every cloud's join sets to the instance id. */
export const INSTANCE_ID_LABEL = "discovery/instance-id";

/** Which cloud instance a node's attested labels name (region or instance may be unproven), or undefined. */
export function nodeInstance(
  labels: Record<string, string>,
): { cloud: Cloud; account: string; region?: string; instanceId?: string } | undefined {
  for (const { cloud, identity } of nodeIdentities()) {
    const account = labels[identity.accountLabel];
    if (account) return { cloud, account, region: labels[identity.regionLabel], instanceId: labels[INSTANCE_ID_LABEL] };
  }
  return undefined;
}
