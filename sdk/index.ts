/** pulumi-discovery: discovery resources for Pulumi programs. */
export { ResourceDocument } from "./resource-document";
export type { ResourceDocumentArgs } from "./resource-document";
export * as model from "../provider/model";
export { ProvisionToken } from "./provision-token";
export type {
  ProvisionTokenArgs,
  ProvisionTokenAwsRule,
  ProvisionTokenGcpRule,
  ProvisionTokenAzureRule,
} from "./provision-token";
export { Installer } from "./installer";
export type { InstallerArgs } from "./installer";
export { DiscoveryConfig } from "./discovery-config";
export type {
  DiscoveryConfigArgs,
  DiscoveryConfigStatus,
  AwsMatcherArgs,
  GcpMatcherArgs,
  AzureMatcherArgs,
} from "./discovery-config";
export { Enrollment } from "./enrollment";
export type { EnrollmentArgs } from "./enrollment";
export * as aws from "./aws";
export * as gcp from "./gcp";
export * as azure from "./azure";
export { DiscoveryService } from "./discovery-service";
export type {
  DiscoveryServiceArgs,
  DiscoveryServiceTarget,
  RuntimeConfigArgs,
  LocalTargetArgs,
  AwsTargetArgs,
  GcpTargetArgs,
} from "./discovery-service";
export * as automation from "../provider/pulumi/automation";
