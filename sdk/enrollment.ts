import * as pulumi from "@pulumi/pulumi";
import { thinProvider } from "../provider/pulumi/thin-provider";
import type { EnrollmentInstance } from "../provider/pulumi/enrollment";
import { connectionInputs } from "../provider/pulumi/runtime-resource";
import type { AwsMatcherArgs, AzureMatcherArgs, GcpMatcherArgs } from "./discovery-config";

/** Arguments of an Enrollment: the matchers (as DiscoveryConfig takes them) and where the runtime is. */
export interface EnrollmentArgs {
  /** AWS matchers: which EC2 instances to enroll and how. */
  aws?: pulumi.Input<pulumi.Input<AwsMatcherArgs>[]>;
  /** GCP matchers. */
  gcp?: pulumi.Input<pulumi.Input<GcpMatcherArgs>[]>;
  /** Azure matchers. */
  azure?: pulumi.Input<pulumi.Input<AzureMatcherArgs>[]>;
  /** The runtime's https URL; default stack config discovery:server, else DISCOVERY_SERVER. */
  server?: pulumi.Input<string>;
  /** The runtime's admin token; default stack config discovery:adminToken (secret), else DISCOVERY_ADMIN_TOKEN. */
  adminToken?: pulumi.Input<string>;
  /** PEM of a CA (or the runtime's self-signed certificate, e.g. DiscoveryService's `tlsCert`) to trust; default stack config discovery:caCert. */
  caCert?: pulumi.Input<string>;
  /** How long an installed instance may take to join; default 120. */
  joinTimeoutSeconds?: pulumi.Input<number>;
}

/**
 * Enrolls the instances the matchers select, on every create and update (one enrollment pass through the
 * runtime). `selected` lists every instance the matchers select, so `pulumi preview --diff` shows the ones that
 * appeared since the last update; an update is shown while any selected instance has not joined. The same claims
 * as the runtime's own loop keep an instance from being enrolled twice.
 */
export class Enrollment extends pulumi.dynamic.Resource {
  /** Every node name the matchers select, to its cloud, account and region (computed at preview). */
  declare public readonly selected: pulumi.Output<Record<string, string>>;
  /** Every selected instance's outcome in the last pass, with the reason and fix when it failed. */
  declare public readonly instances: pulumi.Output<EnrollmentInstance[]>;
  /** Instances enrolled (now or before). */
  declare public readonly enrolled: pulumi.Output<number>;
  /** Instances whose enrollment failed in the last pass. */
  declare public readonly failed: pulumi.Output<number>;

  /** Declares an enrollment named `name`. */
  constructor(name: string, args: EnrollmentArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      thinProvider(require.resolve("../provider/pulumi/enrollment"), "enrollmentProvider"),
      name,
      {
        ...args,
        ...connectionInputs(args),
        selected: undefined,
        instances: undefined,
        enrolled: undefined,
        failed: undefined,
        commandsSent: undefined,
      },
      { ...opts, additionalSecretOutputs: ["adminToken"] },
      "discovery",
      "Enrollment",
    );
  }
}
