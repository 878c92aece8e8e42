import * as pulumi from "@pulumi/pulumi";
import { thinProvider } from "../provider/pulumi/thin-provider";

/** Arguments of a ResourceDocument: the document's kind, its name, and its spec in camelCase. */
export interface ResourceDocumentArgs {
  /** The resource kind: token, installer or discovery_config. */
  kind: pulumi.Input<"token" | "installer" | "discovery_config">;
  /** metadata.name of the document. */
  name: pulumi.Input<string>;
  /** metadata.description. */
  description?: pulumi.Input<string>;
  /** metadata.labels. */
  labels?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** The spec fields in camelCase, e.g. `{ roles: ["Node"], joinMethod: "ec2", allow: [{ awsAccount: "..." }] }`. */
  spec: pulumi.Input<Record<string, unknown>>;
}

/**
 * A discovery document validated at preview time (every problem is reported on the property it concerns)
 * and rendered as YAML and JSON with defaults applied.
 */
export class ResourceDocument extends pulumi.dynamic.Resource {
  /** The document's kind. */
  declare public readonly kind: pulumi.Output<string>;
  /** metadata.name. */
  declare public readonly name: pulumi.Output<string>;
  /** The document with defaults applied, as YAML. */
  declare public readonly yaml: pulumi.Output<string>;
  /** The document with defaults applied, as JSON. */
  declare public readonly json: pulumi.Output<string>;

  /** Declares a document named `name` in the stack. */
  constructor(name: string, args: ResourceDocumentArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      thinProvider(require.resolve("../provider/pulumi/resource-document"), "resourceDocumentProvider"),
      name,
      { yaml: undefined, json: undefined, ...args },
      opts,
      "discovery",
      "ResourceDocument",
    );
  }
}
