import * as pulumi from "@pulumi/pulumi";
import type { RuntimeResourceArgs } from "../provider/pulumi/runtime-resource";
import { RuntimeBackedResource } from "./runtime-backed";

/** A list of inputs. */
type InputList<T> = pulumi.Input<pulumi.Input<T>[]>;
/** Tag or label filters: key to a value, a list of values, or "*"; key "*" matches every instance. */
type TagFilter = pulumi.Input<Record<string, pulumi.Input<string | pulumi.Input<string>[]>>>;

/** How a matcher installs the agent on what it finds. */
export interface MatcherInstallArgs {
  /** The token and join method the instance joins with; defaults per cloud (aws-discovery-iam-token, iam, ...). */
  joinParams?: pulumi.Input<{
    /** Name of the token to join with. */
    tokenName?: pulumi.Input<string>;
    /** Join method the instance uses. */
    method?: pulumi.Input<string>;
  }>;
  /** Installer to run; default default-installer, or default-agentless-installer in agentless mode. */
  scriptName?: pulumi.Input<string>;
  /** agent (default) or agentless (OpenSSH). */
  mode?: pulumi.Input<"agent" | "agentless">;
  /** Teleport's spelling: false means agentless. */
  installTeleport?: pulumi.Input<boolean>;
  /** Teleport's spelling: true means agentless. */
  agentless?: pulumi.Input<boolean>;
  /** The sshd_config edited in agentless mode; default /etc/ssh/sshd_config. */
  sshdConfig?: pulumi.Input<string>;
  /** Address the instance uses to reach the runtime; default the runtime's public address. */
  proxyAddr?: pulumi.Input<string>;
}

/** An AWS EC2 matcher. */
export interface AwsMatcherArgs {
  /** ["ec2"] (the default). */
  types?: InputList<"ec2">;
  /** Region names, or ["*"] for every enabled region. */
  regions: InputList<string>;
  /** Tag filters; default every instance. */
  tags?: TagFilter;
  /** Role to assume for the account's API calls. */
  assumeRole?: pulumi.Input<{
    /** ARN of the role to assume. */
    roleArn?: pulumi.Input<string>;
    /** External id the role's trust policy requires. */
    externalId?: pulumi.Input<string>;
    /** With organization: the role name assumed in every member account. */
    roleName?: pulumi.Input<string>;
  }>;
  /** Scan the accounts of an AWS organization. */
  organization?: pulumi.Input<{
    /** The organization id, o-... */
    organizationId: pulumi.Input<string>;
    /** Organizational units to include (default all) and exclude. */
    organizationalUnits?: pulumi.Input<{ include?: InputList<string>; exclude?: InputList<string> }>;
  }>;
  /** The SSM document that runs the installer; default AWS-RunShellScript. */
  ssm?: pulumi.Input<{
    /** Name of the SSM document. */
    documentName: pulumi.Input<string>;
  }>;
  /** How to install. */
  install?: pulumi.Input<MatcherInstallArgs>;
}

/** A GCP Compute Engine matcher. */
export interface GcpMatcherArgs {
  /** ["gce"] (the default; "vm" accepted). */
  types?: InputList<"gce" | "vm">;
  /** Project ids, or ["*"]. */
  projectIds: InputList<string>;
  /** Regions or zones, or ["*"] (the default). */
  locations?: InputList<string>;
  /** Label filters; default every VM. */
  labels?: TagFilter;
  /** Service account emails the VMs run as. */
  serviceAccounts?: InputList<string>;
  /** How to install. */
  install?: pulumi.Input<MatcherInstallArgs>;
}

/** An Azure VM matcher. */
export interface AzureMatcherArgs {
  /** ["vm"] (the default). */
  types?: InputList<"vm">;
  /** Subscription ids, or ["*"]. */
  subscriptions: InputList<string>;
  /** Resource groups, or ["*"] (the default). */
  resourceGroups?: InputList<string>;
  /** Regions, or ["*"] (the default). */
  regions?: InputList<string>;
  /** Tag filters; default every VM. */
  tags?: TagFilter;
  /** How to install. */
  install?: pulumi.Input<MatcherInstallArgs>;
}

/** Arguments of a DiscoveryConfig: `kind: discovery_config` of SPEC §1 in camelCase, with the runtime connection. */
export interface DiscoveryConfigArgs extends RuntimeResourceArgs {
  /**
   * Required, as in Teleport: the discovery group whose runtimes scan these matchers. A runtime scans
   * the configs whose group equals its `discovery_service.discovery_group`; a config of a group no
   * runtime has is stored but never scanned (its status stays empty), and two runtimes of different
   * groups never enroll each other's instances.
   */
  discoveryGroup: pulumi.Input<string>;
  /** AWS EC2 matchers. */
  aws?: InputList<AwsMatcherArgs>;
  /** GCP matchers. */
  gcp?: InputList<GcpMatcherArgs>;
  /** Azure matchers. */
  azure?: InputList<AzureMatcherArgs>;
}

/** What the runtime scanning a DiscoveryConfig reports about it; read by `pulumi refresh`. */
export interface DiscoveryConfigStatus {
  /** syncing (a pass is running), running (the last pass succeeded) or error. */
  state: "syncing" | "running" | "error";
  /** Why the last pass failed for some scope, with the fix; empty when nothing failed. */
  errorMessage: string;
  /** When the last pass over this config finished (RFC 3339). */
  lastSyncTime?: string;
  /** Instances the matchers selected in the last pass. */
  found: number;
  /** Of those, instances enrolled. */
  enrolled: number;
  /** Of those, instances whose install failed (or that back off after a failure). */
  failed: number;
  /** The runtime that scans this config. */
  discoveredBy?: string;
}

/** Matchers stored in the discovery runtime: which VMs to find and how to enroll them. */
export class DiscoveryConfig extends RuntimeBackedResource {
  /** The discovery group. */
  declare public readonly discoveryGroup: pulumi.Output<string>;
  /** AWS matchers with defaults applied. */
  declare public readonly aws: pulumi.Output<pulumi.Unwrap<AwsMatcherArgs>[]>;
  /** GCP matchers with defaults applied. */
  declare public readonly gcp: pulumi.Output<pulumi.Unwrap<GcpMatcherArgs>[]>;
  /** Azure matchers with defaults applied. */
  declare public readonly azure: pulumi.Output<pulumi.Unwrap<AzureMatcherArgs>[]>;
  /** The status the scanning runtime keeps (after `pulumi refresh`); undefined until a runtime of its group scans it. */
  declare public readonly status: pulumi.Output<DiscoveryConfigStatus | undefined>;

  /** Declares the discovery config `args.name` in the runtime. */
  constructor(name: string, args: DiscoveryConfigArgs, opts?: pulumi.CustomResourceOptions) {
    const props = { aws: undefined, gcp: undefined, azure: undefined, ...args, status: undefined };
    super("discovery_config", "DiscoveryConfig", name, args, props, opts);
  }
}
