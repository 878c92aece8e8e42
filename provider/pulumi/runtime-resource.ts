import * as pulumi from "@pulumi/pulumi";
import type * as dynamic from "@pulumi/pulumi/dynamic";

/** The kinds a runtime stores (SPEC §1). */
export type RuntimeKind = "token" | "installer" | "discovery_config";

/**
 * Inputs of a runtime-backed resource as the engine hands them to the provider: the metadata fields, the
 * runtime connection, and every other property is a spec field in camelCase.
 */
export interface RuntimeResourceInputs {
  name: string;
  description?: string;
  labels?: Record<string, string>;
  expires?: string;
  server?: string;
  adminToken?: string;
  caCert?: string;
  [field: string]: unknown;
}

/** Properties that are not spec fields (`__provider` is the serialized provider the engine adds). */
const NOT_SPEC = ["name", "description", "labels", "expires", "server", "adminToken", "caCert", "status", "__provider"];
const METADATA = ["description", "labels", "expires"] as const;
/** What the engine sends for a value not known yet during preview. */
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

// Absolute paths, captured by value when Pulumi serializes a provider: the provider process loads these
// modules from the package itself (linked or installed) instead of inlined copies of them.
const MODEL_MODULE = require.resolve("../model");
const HTTP_MODULE = require.resolve("../http/client");
/** This module, for thinProvider. */
export const RUNTIME_RESOURCE_MODULE = __filename;

/** Loads the resource model inside the dynamic provider process. */
function model(): typeof import("../model") {
  return require(MODEL_MODULE);
}

/** Loads the runtime HTTP client inside the dynamic provider process. */
function http(): typeof import("../http/client") {
  return require(HTTP_MODULE);
}

function hasUnknown(value: unknown): boolean {
  if (value === UNKNOWN) return true;
  if (Array.isArray(value)) return value.some(hasUnknown);
  if (value !== null && typeof value === "object") return Object.values(value).some(hasUnknown);
  return false;
}

/** The wire document (snake_case, not yet validated) of the resource's properties. */
function wireDocument(kind: RuntimeKind, props: RuntimeResourceInputs): Record<string, unknown> {
  const spec: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(props)) if (!NOT_SPEC.includes(k) && v !== undefined && v !== null) spec[k] = v;
  const meta: Record<string, unknown> = {};
  for (const k of METADATA) if (props[k] !== undefined && props[k] !== null) meta[k] = props[k];
  return model().fromSdkArgs(kind, { name: props.name, ...meta, spec });
}

/** The validated document with defaults applied; throws naming each bad property in camelCase. */
function normalize(kind: RuntimeKind, props: RuntimeResourceInputs): Record<string, unknown> {
  const m = model();
  const { resource, problems } = m.validateDocument(wireDocument(kind, props));
  if (!resource) throw new Error(problems.map((p) => `${m.sdkPropertyPath(p.path)}: ${p.message}`).join("; "));
  return resource as unknown as Record<string, unknown>;
}

/** Whether the runtime keeps this document under the hash of its name (a join_method token token). */
function isSecretDoc(doc: Record<string, unknown>): boolean {
  return doc.kind === "token" && (doc.spec as { join_method?: string }).join_method === "token";
}

/** The resource id: kind/name, or kind/sha256:<hash> for a token whose name is its secret. */
function resourceId(doc: Record<string, unknown>): string {
  const name = (doc.metadata as { name: string }).name;
  if (!isSecretDoc(doc)) return `${doc.kind}/${name}`;
  const crypto: typeof import("crypto") = require("crypto");
  return `${doc.kind}/sha256:${crypto.createHash("sha256").update(name, "utf8").digest("hex")}`;
}

/** Outputs: name, connection and metadata as given, and the normalized spec in camelCase. */
function outputsOf(props: RuntimeResourceInputs, doc: Record<string, unknown>): RuntimeResourceInputs {
  const meta = doc.metadata as Record<string, unknown>;
  const outs: Record<string, unknown> = { name: props.name };
  if (props.server !== undefined) outs.server = props.server;
  if (props.adminToken !== undefined) outs.adminToken = props.adminToken;
  if (props.caCert !== undefined) outs.caCert = props.caCert;
  for (const k of METADATA) if (meta[k] !== undefined) outs[k] = meta[k];
  return { ...outs, ...(model().camelize(doc.spec) as Record<string, unknown>) } as RuntimeResourceInputs;
}

/** Where the runtime is: the resource's own properties, else DISCOVERY_SERVER / DISCOVERY_ADMIN_TOKEN. */
function target(props: RuntimeResourceInputs): import("../http/client").RuntimeTarget {
  const server = props.server || process.env.DISCOVERY_SERVER;
  if (!server)
    throw new Error(
      "no runtime to talk to: set server on the resource, stack config discovery:server, or DISCOVERY_SERVER",
    );
  return { server, adminToken: props.adminToken || process.env.DISCOVERY_ADMIN_TOKEN, ca: props.caCert || undefined };
}

function resourcePath(kind: RuntimeKind, name: string): string {
  return `v1/resources/${encodeURIComponent(kind)}/${encodeURIComponent(name)}`;
}

async function put(props: RuntimeResourceInputs, doc: Record<string, unknown>): Promise<void> {
  const h = http();
  const a = await h.request(target(props), "PUT", "v1/resources", doc);
  if (a.status === 200) return;
  const problems = (a.body as { error?: { problems?: { path: (string | number)[]; message: string }[] } }).error
    ?.problems;
  if (a.status === 400 && problems?.length) {
    const m = model();
    throw new Error(
      `the runtime refused the document: ${problems.map((p) => `${m.sdkPropertyPath(p.path)}: ${p.message}`).join("; ")}`,
    );
  }
  throw new Error(`the runtime refused the document: ${h.answerError(a)}`);
}

/**
 * The dynamic provider of one runtime-backed kind: the model checks the inputs at preview, and create,
 * update and delete go to the runtime's admin API; read returns what the runtime holds, so a refresh shows drift.
 */
export function runtimeResourceProvider(kind: RuntimeKind): dynamic.ResourceProvider {
  return {
    async check(_olds: RuntimeResourceInputs, news: RuntimeResourceInputs) {
      const m = model();
      const failures: dynamic.CheckFailure[] = [];
      if (!news.server && !process.env.DISCOVERY_SERVER)
        failures.push({
          property: "server",
          reason: "no runtime: set server, stack config discovery:server, or DISCOVERY_SERVER",
        });
      const { problems } = m.validateDocument(wireDocument(kind, news));
      // Values not known until apply are checked then; only problems independent of them are reported now.
      const unknowns = hasUnknown(news);
      for (const p of problems)
        if (!unknowns) failures.push({ property: m.sdkPropertyPath(p.path), reason: p.message });
      return { inputs: news, failures };
    },

    async diff(_id: string, olds: RuntimeResourceInputs, news: RuntimeResourceInputs) {
      if (hasUnknown(news)) {
        const replaces = news.name === olds.name && news.server === olds.server ? [] : ["name"];
        return { changes: true, replaces };
      }
      const m = model();
      const next = normalize(kind, news);
      let prev: Record<string, unknown> | undefined;
      try {
        prev = normalize(kind, olds);
      } catch {
        prev = undefined; // state written by another version of this provider: treat as changed
      }
      // The runtime keys by name (and a token by the hash of its name when the name is its secret), so these replace.
      const replaces: string[] = [];
      if (olds.name !== news.name) replaces.push("name");
      if ((olds.server ?? "") !== (news.server ?? "")) replaces.push("server");
      if (prev && isSecretDoc(prev) !== isSecretDoc(next)) replaces.push("joinMethod");
      const changes =
        replaces.length > 0 ||
        !prev ||
        m.canonicalJson(prev) !== m.canonicalJson(next) ||
        (olds.adminToken ?? "") !== (news.adminToken ?? "");
      // Same name, new key or server: remove the old document first so the new one is not deleted after it.
      const deleteBeforeReplace = replaces.length > 0 && !replaces.includes("name");
      return { changes, replaces, deleteBeforeReplace };
    },

    async create(inputs: RuntimeResourceInputs) {
      const doc = normalize(kind, inputs);
      await put(inputs, doc);
      return { id: resourceId(doc), outs: outputsOf(inputs, doc) };
    },

    async read(id: string, props: RuntimeResourceInputs) {
      const h = http();
      const a = await h.request(target(props), "GET", resourcePath(kind, props.name));
      if (a.status === 404) return { id: "", props: {} }; // gone from the runtime: the engine drops it
      if (a.status !== 200) throw new Error(`cannot read ${kind} from the runtime: ${h.answerError(a)}`);
      const doc = a.body as Record<string, unknown>;
      // A discovery_config's status (kept by the runtime that scans it) is an output only: never an input, and the
      // diff ignores it, so a refresh shows it without a change to apply.
      const status = doc.status === undefined ? {} : { status: model().camelize(doc.status) };
      return { id, props: { ...outputsOf(props, doc), ...status } };
    },

    async update(_id: string, _olds: RuntimeResourceInputs, news: RuntimeResourceInputs) {
      const doc = normalize(kind, news);
      await put(news, doc);
      return { outs: outputsOf(news, doc) };
    },

    async delete(_id: string, props: RuntimeResourceInputs) {
      const h = http();
      const a = await h.request(target(props), "DELETE", resourcePath(kind, props.name));
      if (a.status !== 200 && a.status !== 404)
        throw new Error(`cannot delete ${kind} from the runtime: ${h.answerError(a)}`);
    },
  };
}

/** Arguments every runtime-backed resource takes besides its spec: metadata and where the runtime is. */
export interface RuntimeResourceArgs {
  /** metadata.name: the runtime keys documents by it, so changing it replaces the resource. */
  name: pulumi.Input<string>;
  /** metadata.description. */
  description?: pulumi.Input<string>;
  /** metadata.labels. */
  labels?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** metadata.expires: an RFC 3339 time after which the runtime ignores the document. */
  expires?: pulumi.Input<string>;
  /** The runtime's https URL; default stack config discovery:server, else DISCOVERY_SERVER. */
  server?: pulumi.Input<string>;
  /** The runtime's admin token (kept secret); default stack config discovery:adminToken, else DISCOVERY_ADMIN_TOKEN. */
  adminToken?: pulumi.Input<string>;
  /**
   * PEM of a CA (or the runtime's own self-signed certificate, e.g. DiscoveryService's `tlsCert`) to trust for the
   * runtime's TLS; default stack config discovery:caCert, else the system CAs and NODE_EXTRA_CA_CERTS.
   */
  caCert?: pulumi.Input<string>;
}

/** The runtime connection inputs: the args' own, else the stack config `discovery:*`; the admin token secret. */
export function connectionInputs(args: {
  server?: pulumi.Input<string>;
  adminToken?: pulumi.Input<string>;
  caCert?: pulumi.Input<string>;
}): {
  server?: pulumi.Input<string>;
  adminToken?: pulumi.Output<string>;
  caCert?: pulumi.Input<string>;
} {
  const config = new pulumi.Config("discovery");
  const server = args.server ?? config.get("server");
  const token = args.adminToken ?? config.getSecret("adminToken");
  const caCert = args.caCert ?? config.get("caCert");
  return {
    ...(server !== undefined ? { server } : {}),
    ...(token !== undefined ? { adminToken: pulumi.secret(token) } : {}),
    ...(caCert !== undefined ? { caCert } : {}),
  };
}
