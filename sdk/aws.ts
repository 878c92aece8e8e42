/** AWS pieces for Pulumi programs: the SSM installer document resource and the IAM policy builders. */
import * as pulumi from "@pulumi/pulumi";
import { thinProvider } from "../provider/pulumi/thin-provider";
import { eventQueuePolicy as eventQueuePolicyOf, type PolicyDocument } from "../provider/clouds/aws/policy";
import type { awsPolicies } from "../provider/clouds/policies";
import { AwsMatcherArgs, DiscoveryConfigPolicyArgs, policyOutput } from "./policy-config";

export type { PolicyDocument, PolicyStatement } from "../provider/clouds/aws/policy";
export type { AwsMatcherArgs, DiscoveryConfigPolicyArgs } from "./policy-config";

/** Arguments of an SsmInstallerDocument. */
export interface SsmInstallerDocumentArgs {
  /** Name of the SSM document: 3 to 128 of a-z A-Z 0-9 _ . -, not starting with aws or amazon. Changing it replaces the document. */
  name: pulumi.Input<string>;
  /** AWS region the document lives in, such as us-east-1. Changing it replaces the document. */
  region: pulumi.Input<string>;
  /** agent: install the discovery agent; agentless: point the instance's OpenSSH at the discovery CA. Changes in place. */
  mode: pulumi.Input<"agent" | "agentless">;
  /**
   * host:port of the runtime (DiscoveryService's address) the document fixes: SendCommand then accepts no other,
   * so a caller allowed to send this document can only run what this runtime serves. Changes in place.
   */
  proxyAddr?: pulumi.Input<string>;
  /** The runtime's TLS key pin (DiscoveryService's tlsPin) the document fixes and downloads with. Changes in place. */
  caPin?: pulumi.Input<string>;
  /** Tags of the document. */
  tags?: pulumi.Input<Record<string, pulumi.Input<string>>>;
}

/**
 * The custom SSM Command document discovery sends to instances (a matcher's `ssm.documentName`). A change of mode,
 * of the fixed runtime, or of the package's document content makes a new version the default; refresh reports the
 * default version, and a document deleted outside Pulumi as gone.
 */
export class SsmInstallerDocument extends pulumi.dynamic.Resource {
  /** Name of the SSM document. */
  declare public readonly name: pulumi.Output<string>;
  /** Region of the document. */
  declare public readonly region: pulumi.Output<string>;
  /** The mode the default version installs (`modified` after a refresh found other content). */
  declare public readonly mode: pulumi.Output<string>;
  /** Tags of the document. */
  declare public readonly tags: pulumi.Output<Record<string, string> | undefined>;
  /** The runtime address the document fixes, if any. */
  declare public readonly proxyAddr: pulumi.Output<string | undefined>;
  /** The TLS key pin the document fixes, if any. */
  declare public readonly caPin: pulumi.Output<string | undefined>;
  /** arn:aws:ssm:<region>:<account>:document/<name>. */
  declare public readonly arn: pulumi.Output<string>;
  /** The version SendCommand runs. */
  declare public readonly defaultVersion: pulumi.Output<string>;
  /** The newest version of the document. */
  declare public readonly latestVersion: pulumi.Output<string>;
  /** sha256 of the default version's content: a newer package's content shows as an update. */
  declare public readonly contentDigest: pulumi.Output<string>;

  /** Declares the document `args.name` in `args.region`. */
  constructor(name: string, args: SsmInstallerDocumentArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      thinProvider(require.resolve("../provider/pulumi/ssm-installer-document"), "ssmInstallerDocumentProvider"),
      name,
      {
        tags: undefined,
        proxyAddr: undefined,
        caPin: undefined,
        arn: undefined,
        defaultVersion: undefined,
        latestVersion: undefined,
        contentDigest: undefined,
        ...args,
      },
      opts,
      "discovery",
      "SsmInstallerDocument",
    );
  }
}

/** What the AWS policy builders take: DiscoveryConfig-style args, or a list of AWS matchers, in camelCase. */
export type AwsPolicyInput = DiscoveryConfigPolicyArgs | readonly AwsMatcherArgs[];

/**
 * The discovery service role's IAM policy (`discovery policy aws`'s `discovery`), as a plain object for
 * `new aws.iam.Policy(..., {policy: discoveryPolicy(config)})`. Throws naming any invalid property.
 */
export function discoveryPolicy(config: AwsPolicyInput): PolicyDocument {
  return (policyOutput("aws", config) as ReturnType<typeof awsPolicies>).discovery;
}

/** The enrolled instances' instance-profile policy (`discovery policy aws`'s `instance`), as a plain object. */
export function instancePolicy(config: AwsPolicyInput): PolicyDocument {
  return (policyOutput("aws", config) as ReturnType<typeof awsPolicies>).instance;
}

/**
 * The runtime role's policy for reading EC2 state-change events (`discoveryService.events.aws`): sqs:ReceiveMessage,
 * sqs:DeleteMessage and sqs:GetQueueAttributes on these queue ARNs only. DiscoveryService's aws target with
 * `aws.ec2Events` attaches it for the queue it creates.
 */
export function eventQueuePolicy(queueArns: string[]): PolicyDocument {
  for (const [i, arn] of queueArns.entries())
    if (!/^arn:aws(-[a-z]+)*:sqs:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,80}(\.fifo)?$/.test(arn))
      throw new Error(
        `queueArns[${i}]: must be an SQS queue ARN such as arn:aws:sqs:us-east-1:123456789012:q, not ${arn}`,
      );
  return eventQueuePolicyOf(queueArns);
}
