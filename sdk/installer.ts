import * as pulumi from "@pulumi/pulumi";
import { connectionInputs, RUNTIME_RESOURCE_MODULE, RuntimeResourceArgs } from "../provider/pulumi/runtime-resource";
import { thinProvider } from "../provider/pulumi/thin-provider";

const provider = thinProvider(RUNTIME_RESOURCE_MODULE, "runtimeResourceProvider", ["installer"]);

/** Arguments of an Installer: `kind: installer` of SPEC §1 in camelCase, with the runtime connection. */
export interface InstallerArgs extends RuntimeResourceArgs {
  /** The shell script template; it may use {{ .PublicProxyAddr }} and {{ .ClusterName }}, nothing else. */
  script: pulumi.Input<string>;
}

/** An installer script stored in the discovery runtime and served at /webapi/scripts/installer/{name}. */
export class Installer extends pulumi.dynamic.Resource {
  /** metadata.name, also the name in the script's URL. */
  declare public readonly name: pulumi.Output<string>;
  /** metadata.description. */
  declare public readonly description: pulumi.Output<string | undefined>;
  /** metadata.labels. */
  declare public readonly labels: pulumi.Output<Record<string, string> | undefined>;
  /** metadata.expires. */
  declare public readonly expires: pulumi.Output<string | undefined>;
  /** The script template. */
  declare public readonly script: pulumi.Output<string>;
  /** The runtime's URL. */
  declare public readonly server: pulumi.Output<string | undefined>;
  /** The admin token (secret). */
  declare public readonly adminToken: pulumi.Output<string | undefined>;

  /** Declares the installer `args.name` in the runtime. */
  constructor(name: string, args: InstallerArgs, opts?: pulumi.CustomResourceOptions) {
    const props = { description: undefined, labels: undefined, expires: undefined, ...args, ...connectionInputs(args) };
    super(
      provider,
      name,
      props,
      pulumi.mergeOptions(opts, { additionalSecretOutputs: ["adminToken"] }),
      "discovery",
      "Installer",
    );
  }
}
