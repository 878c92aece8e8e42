import * as pulumi from "@pulumi/pulumi";
import { joinMethodOf, JoinMethod } from "../provider/model";
import type { RuntimeResourceArgs } from "../provider/pulumi/runtime-resource";
import { RuntimeBackedResource } from "./runtime-backed";

/** An AWS allow rule of an ec2 or iam token. */
export interface ProvisionTokenAwsRule {
  /** The 12-digit AWS account the joining instance or caller must belong to. */
  awsAccount?: pulumi.Input<string>;
  /** ec2: the regions the instance may run in. */
  awsRegions?: pulumi.Input<pulumi.Input<string>[]>;
  /**
   * ec2 and iam: a role ARN assumed for the instance check (DescribeInstances; iam also GetInstanceProfile) in a
   * foreign account; iam rules may write `*` for the account, meaning the caller's (organization rules).
   */
  awsRole?: pulumi.Input<string>;
  /** iam: a glob on the caller's ARN. */
  awsArn?: pulumi.Input<string>;
  /** iam: the AWS organization the caller's account must belong to. */
  awsOrganizationId?: pulumi.Input<string>;
}

/** A GCP allow rule of a gcp token. */
export interface ProvisionTokenGcpRule {
  /** Projects the VM may run in (required). */
  projectIds: pulumi.Input<pulumi.Input<string>[]>;
  /** Regions or zones the VM may run in. */
  locations?: pulumi.Input<pulumi.Input<string>[]>;
  /** Service account emails the VM may run as. */
  serviceAccounts?: pulumi.Input<pulumi.Input<string>[]>;
}

/** An Azure allow rule of an azure token. */
export interface ProvisionTokenAzureRule {
  /** The subscription id (a UUID) the VM must belong to. */
  subscription: pulumi.Input<string>;
  /** Resource groups the VM may belong to. */
  resourceGroups?: pulumi.Input<pulumi.Input<string>[]>;
}

/** Arguments of a ProvisionToken: `kind: token` of SPEC §1 in camelCase, with the runtime connection. */
export interface ProvisionTokenArgs extends RuntimeResourceArgs {
  /** Roles a joining node receives: at least one of Node, Discovery. */
  roles: pulumi.Input<pulumi.Input<"Node" | "Discovery">[]>;
  /** token, ec2, iam, gcp or azure; inferred from the allow rules when absent. With token the name is the secret. */
  joinMethod?: pulumi.Input<JoinMethod>;
  /** ec2 only: how old an instance identity document may be, e.g. 5m (the default). */
  awsIidTtl?: pulumi.Input<string>;
  /** AWS allow rules of an ec2 or iam token. */
  allow?: pulumi.Input<pulumi.Input<ProvisionTokenAwsRule>[]>;
  /** GCP allow rules of a gcp token. */
  gcp?: pulumi.Input<{ allow: pulumi.Input<pulumi.Input<ProvisionTokenGcpRule>[]> }>;
  /** Azure allow rules of an azure token. */
  azure?: pulumi.Input<{ allow: pulumi.Input<pulumi.Input<ProvisionTokenAzureRule>[]> }>;
}

/**
 * A join token stored in the discovery runtime. Checked by the model at preview; a token whose join method is
 * `token` keeps its name (the shared secret) encrypted in the stack state.
 */
export class ProvisionToken extends RuntimeBackedResource {
  /** Roles a joining node receives. */
  declare public readonly roles: pulumi.Output<string[]>;
  /** The join method, inferred when not given. */
  declare public readonly joinMethod: pulumi.Output<JoinMethod>;
  /** ec2 only: the identity document's maximum age, default 5m. */
  declare public readonly awsIidTtl: pulumi.Output<string | undefined>;
  /** AWS allow rules. */
  declare public readonly allow: pulumi.Output<ProvisionTokenAwsRuleOutput[] | undefined>;
  /** GCP allow rules. */
  declare public readonly gcp: pulumi.Output<{ allow: ProvisionTokenGcpRuleOutput[] } | undefined>;
  /** Azure allow rules. */
  declare public readonly azure: pulumi.Output<
    { allow: { subscription: string; resourceGroups?: string[] }[] } | undefined
  >;

  /** Declares the token `args.name` in the runtime. */
  constructor(name: string, args: ProvisionTokenArgs, opts?: pulumi.CustomResourceOptions) {
    const secretName = pulumi
      .all([args.name, args.joinMethod, args.allow, args.gcp, args.azure])
      .apply(([n, joinMethod, allow, gcp, azure]) =>
        joinMethodOf({ join_method: joinMethod, allow, gcp, azure }) === "token" ? pulumi.secret(n) : pulumi.output(n),
      );
    const props = {
      joinMethod: undefined,
      awsIidTtl: undefined,
      allow: undefined,
      gcp: undefined,
      azure: undefined,
      ...args,
      name: secretName,
    };
    super("token", "ProvisionToken", name, args, props, opts, args.joinMethod === "token" ? ["name"] : []);
  }
}

/** An AWS allow rule as the runtime holds it. */
export interface ProvisionTokenAwsRuleOutput {
  /** The AWS account. */
  awsAccount?: string;
  /** ec2: allowed regions. */
  awsRegions?: string[];
  /** ec2 and iam: role assumed for the instance check (`*` account: the caller's). */
  awsRole?: string;
  /** iam: glob on the caller ARN. */
  awsArn?: string;
  /** iam: the organization id. */
  awsOrganizationId?: string;
}

/** A GCP allow rule as the runtime holds it. */
export interface ProvisionTokenGcpRuleOutput {
  /** Allowed projects. */
  projectIds: string[];
  /** Allowed regions or zones. */
  locations?: string[];
  /** Allowed service accounts. */
  serviceAccounts?: string[];
}
