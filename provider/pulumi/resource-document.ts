import type * as dynamic from "@pulumi/pulumi/dynamic";

/** Inputs of a ResourceDocument, as the engine hands them to the provider. */
export interface ResourceDocumentInputs {
  kind: "token" | "installer" | "discovery_config";
  name: string;
  description?: string;
  labels?: Record<string, string>;
  spec: Record<string, unknown>;
}

/** Outputs of a ResourceDocument. */
export interface ResourceDocumentOutputs extends ResourceDocumentInputs {
  /** The document with defaults applied, as YAML. */
  yaml: string;
  /** The document with defaults applied, as JSON. */
  json: string;
}

// Absolute path of the model, captured by value when Pulumi serializes this provider: the provider
// process loads the model from the package itself instead of an inlined copy of it.
const MODEL_MODULE = require.resolve("../model");

/** Loads the resource model inside the dynamic provider process. */
function model(): typeof import("../model") {
  return require(MODEL_MODULE);
}

function render(inputs: ResourceDocumentInputs): ResourceDocumentOutputs {
  const m = model();
  const { resource, problems } = m.validateDocument(m.fromSdkArgs(inputs.kind, inputs));
  if (!resource) throw new Error(problems.map((p) => m.sdkProblemText(p)).join("; "));
  return { ...inputs, yaml: m.toYaml([resource]), json: JSON.stringify(resource) };
}

/**
 * A discovery resource validated by the model at preview time and rendered to YAML and JSON, for use
 * wherever a document is needed (user data, a file, another provider's input). It keeps no remote state.
 */
export const resourceDocumentProvider: dynamic.ResourceProvider = {
  async check(_olds: ResourceDocumentInputs, news: ResourceDocumentInputs) {
    const m = model();
    if (!(news.kind in m.KINDS))
      return {
        inputs: news,
        failures: [{ property: "kind", reason: `must be one of ${Object.keys(m.KINDS).join(", ")}` }],
      };
    const { problems } = m.validateDocument(m.fromSdkArgs(news.kind, news));
    // No property: the engine then prints the reason alone, `spec.allow[0].awsAccount: must be ...`.
    const failures = problems.map((p) => ({ property: "", reason: m.sdkProblemText(p) }));
    return { inputs: news, failures };
  },
  async diff(_id: string, olds: ResourceDocumentOutputs, news: ResourceDocumentInputs) {
    const next = render(news);
    const replaces = (["kind", "name"] as const).filter((k) => olds[k] !== news[k]);
    const changes = replaces.length > 0 || olds.json !== next.json || olds.description !== news.description;
    return { changes, replaces, deleteBeforeReplace: replaces.length > 0 };
  },
  async create(inputs: ResourceDocumentInputs) {
    const outs = render(inputs);
    return { id: `${inputs.kind}/${inputs.name}`, outs };
  },
  async read(id: string, props: ResourceDocumentOutputs) {
    return { id, props };
  },
  async update(_id: string, _olds: ResourceDocumentOutputs, news: ResourceDocumentInputs) {
    return { outs: render(news) };
  },
  async delete() {
    // Nothing remote to remove.
  },
};
