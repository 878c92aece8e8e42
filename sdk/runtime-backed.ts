import * as pulumi from "@pulumi/pulumi";
import type * as dynamic from "@pulumi/pulumi/dynamic";
import {
  connectionInputs,
  RUNTIME_RESOURCE_MODULE,
  RuntimeKind,
  RuntimeResourceArgs,
} from "../provider/pulumi/runtime-resource";
import { thinProvider } from "../provider/pulumi/thin-provider";

// One provider object per kind: Pulumi serializes each provider object once per program, however many resources.
const providers = new Map<RuntimeKind, dynamic.ResourceProvider>();
function providerOf(kind: RuntimeKind): dynamic.ResourceProvider {
  let provider = providers.get(kind);
  if (!provider)
    providers.set(kind, (provider = thinProvider(RUNTIME_RESOURCE_MODULE, "runtimeResourceProvider", [kind])));
  return provider;
}

/**
 * What ProvisionToken, Installer and DiscoveryConfig share: a document of `kind` kept in the runtime, its
 * metadata outputs, and the runtime connection (the admin token always a secret output).
 */
export abstract class RuntimeBackedResource extends pulumi.dynamic.Resource {
  /** metadata.name. */
  declare public readonly name: pulumi.Output<string>;
  /** metadata.description. */
  declare public readonly description: pulumi.Output<string | undefined>;
  /** metadata.labels. */
  declare public readonly labels: pulumi.Output<Record<string, string> | undefined>;
  /** metadata.expires. */
  declare public readonly expires: pulumi.Output<string | undefined>;
  /** The runtime's URL. */
  declare public readonly server: pulumi.Output<string | undefined>;
  /** The admin token (secret). */
  declare public readonly adminToken: pulumi.Output<string | undefined>;
  /** The CA certificate trusted for the runtime's TLS, when one was given. */
  declare public readonly caCert: pulumi.Output<string | undefined>;
  /**
   * The owner label of the document in the runtime (label `discovery/owner`): this resource's URN once it wrote
   * the document; after a refresh, whatever the runtime holds (absent when the document was rewritten outside Pulumi).
   */
  declare public readonly owner: pulumi.Output<string | undefined>;

  /**
   * Registers `type` (`pulumi-nodejs:dynamic/discovery:<type>`) for a document of `kind`. `spec` lists the spec
   * outputs (undefined until known); `props` are the inputs; `secretOutputs` adds to the admin token.
   */
  protected constructor(
    kind: RuntimeKind,
    type: string,
    name: string,
    args: RuntimeResourceArgs,
    props: Record<string, unknown>,
    opts: pulumi.CustomResourceOptions | undefined,
    secretOutputs: string[] = [],
  ) {
    // The owner label the document carries: this resource's URN, as the engine will name it.
    const owner = pulumi.createUrn(name, `pulumi-nodejs:dynamic/discovery:${type}`, opts?.parent);
    super(
      providerOf(kind),
      name,
      {
        description: undefined,
        labels: undefined,
        expires: undefined,
        ...props,
        ...connectionInputs(args),
        owner,
        adopt: args.adopt,
      },
      pulumi.mergeOptions(opts, { additionalSecretOutputs: ["adminToken", ...secretOutputs] }),
      "discovery",
      type,
    );
  }
}
