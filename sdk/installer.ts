import * as pulumi from "@pulumi/pulumi";
import type { RuntimeResourceArgs } from "../provider/pulumi/runtime-resource";
import { RuntimeBackedResource } from "./runtime-backed";

/** Arguments of an Installer: `kind: installer` of SPEC §1 in camelCase, with the runtime connection. */
export interface InstallerArgs extends RuntimeResourceArgs {
  /** The shell script template; it may use {{ .PublicProxyAddr }} and {{ .ClusterName }}, nothing else. */
  script: pulumi.Input<string>;
}

/** An installer script stored in the discovery runtime and served at /webapi/scripts/installer/{name}. */
export class Installer extends RuntimeBackedResource {
  /** The script template. */
  declare public readonly script: pulumi.Output<string>;

  /** Declares the installer `args.name` in the runtime. */
  constructor(name: string, args: InstallerArgs, opts?: pulumi.CustomResourceOptions) {
    super("installer", "Installer", name, args, { ...args }, opts);
  }
}
