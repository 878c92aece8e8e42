import * as pulumi from "@pulumi/pulumi";
import type * as dynamic from "@pulumi/pulumi/dynamic";
import type { RuntimeTarget } from "../http/client";
import {
  camelize,
  canonicalJson,
  fromSdkArgs,
  OWNER_LABEL,
  Resource,
  sdkProblemText,
  validateDocument,
} from "../model";
import {
  alreadyExists,
  changedMeanwhile,
  changedProperties,
  deleteDocument,
  describeDocument,
  getStored,
  leftInPlace,
  ownedElsewhere,
  putDocument,
  StoredDocument,
  userLabels,
  withOwner,
} from "./ownership";
import { recordedTarget, resolveServer, RuntimeConnectionProps, sameServer, UNKNOWN } from "./runtime-target";

/** The kinds a runtime stores (SPEC §1). */
export type RuntimeKind = "token" | "installer" | "discovery_config";

/**
 * Inputs of a runtime-backed resource as the engine hands them to the provider: the metadata fields, the
 * runtime connection, ownership, and every other property is a spec field in camelCase. Properties starting with
 * `__` are the provider's own bookkeeping (the engine does not show them in diffs).
 */
export interface RuntimeResourceInputs extends RuntimeConnectionProps {
  name: string;
  description?: string;
  labels?: Record<string, string>;
  expires?: string;
  /** The URN of this Pulumi resource, written as the document's owner label (computed by the SDK). */
  owner?: string;
  /** Take over a document that exists already (written outside Pulumi, or owned by another resource). */
  adopt?: boolean;
  /** Output: the owner label this resource last wrote: delete removes only a document that still carries it. */
  __owner?: string;
  /** Set by check when a create finds the document in the runtime and may take it: whose it is, what changes. */
  __existing?: { owner: string; changes: string[] };
  [field: string]: unknown;
}

/** Properties that are not spec fields, besides the `__` ones (`__provider` is the serialized provider). */
const NOT_SPEC = [
  "name",
  "description",
  "labels",
  "expires",
  "server",
  "adminToken",
  "caCert",
  "status",
  "owner",
  "adopt",
];
const METADATA = ["description", "labels", "expires"] as const;
/** This module, for thinProvider. */
export const RUNTIME_RESOURCE_MODULE = __filename;

function isSpecField(key: string): boolean {
  return !key.startsWith("__") && !NOT_SPEC.includes(key);
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
  for (const [k, v] of Object.entries(props)) if (isSpecField(k) && v !== undefined && v !== null) spec[k] = v;
  const meta: Record<string, unknown> = {};
  for (const k of METADATA) if (props[k] !== undefined && props[k] !== null) meta[k] = props[k];
  return fromSdkArgs(kind, { name: props.name, ...meta, spec });
}

/** The validated document with defaults applied; throws naming each bad property as the SDK spells it. */
function normalize(kind: RuntimeKind, props: RuntimeResourceInputs): Record<string, unknown> {
  const { resource, problems } = validateDocument(wireDocument(kind, props));
  if (!resource) throw new Error(problems.map((p) => sdkProblemText(p, { specAtTop: true })).join("; "));
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

/** `token "ec2-token"` for messages; a token whose name is its secret is never named. */
function what(kind: RuntimeKind, props: RuntimeResourceInputs): string {
  return describeDocument(kind, props.name, kind === "token" && props.joinMethod === "token");
}

/**
 * The resource's properties for `doc` as stored: name and connection as the inputs had them, the metadata (labels
 * without the owner label), `owner` as the document carries it, and the spec in camelCase. The same shape serves
 * as outputs and, after a refresh, as the inputs the engine compares the program's with (so drift shows as the
 * properties an update reverts).
 */
function propsOf(props: RuntimeResourceInputs, doc: Record<string, unknown>): RuntimeResourceInputs {
  const meta = doc.metadata as Record<string, unknown>;
  const out: Record<string, unknown> = { name: props.name };
  for (const k of ["server", "adminToken", "caCert", "__serverFromEnvironment"] as const)
    if (props[k] !== undefined) out[k] = props[k];
  if (meta.description !== undefined) out.description = meta.description;
  const labels = userLabels(meta.labels as Record<string, string> | undefined);
  if (labels) out.labels = labels;
  if (meta.expires !== undefined) out.expires = meta.expires;
  const owner = (meta.labels as Record<string, string> | undefined)?.[OWNER_LABEL];
  if (owner !== undefined) out.owner = owner;
  return { ...out, ...(camelize(doc.spec) as Record<string, unknown>) } as RuntimeResourceInputs;
}

/** Outputs after this resource wrote `doc`: what is stored, and the owner label it wrote. */
function writtenOutputs(inputs: RuntimeResourceInputs, doc: Record<string, unknown>): RuntimeResourceInputs {
  return { ...propsOf(inputs, doc), ...(inputs.owner ? { __owner: inputs.owner } : {}) };
}

/** The checked inputs: the program's, with the spec replaced by the model's (defaults applied, in camelCase). */
function normalizedInputs(news: RuntimeResourceInputs, resource: Resource): RuntimeResourceInputs {
  const inputs: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(news)) if (!isSpecField(k)) inputs[k] = v;
  const meta = resource.metadata as Record<string, unknown>;
  for (const k of METADATA) if (meta[k] !== undefined) inputs[k] = meta[k];
  return { ...inputs, ...(camelize(resource.spec) as Record<string, unknown>) } as RuntimeResourceInputs;
}

/**
 * Writes `doc` over what the runtime holds, conditional on the revision just read, after `guard` accepted the stored
 * document (it throws to refuse); one retry when another writer got in between, then a clear error.
 */
async function writeOver(
  t: RuntimeTarget,
  kind: RuntimeKind,
  props: RuntimeResourceInputs,
  doc: Record<string, unknown>,
  guard: (stored: StoredDocument) => void,
): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const stored = await getStored(t, kind, props.name, what(kind, props));
    if (stored) guard(stored);
    if (await putDocument(t, doc, stored?.revision ?? 0)) return;
  }
  throw new Error(changedMeanwhile(what(kind, props), t.server));
}

/**
 * At check, for a document new to this resource (a create, or a new name or runtime): the one the runtime holds
 * already, with the runtime's URL. Unknown when the runtime cannot be asked now: create then says why.
 */
async function storedBeforeCreate(
  kind: RuntimeKind,
  olds: RuntimeResourceInputs,
  inputs: RuntimeResourceInputs,
): Promise<{ stored: StoredDocument; server: string } | undefined> {
  const isNew =
    olds.name === undefined ||
    olds.name !== inputs.name ||
    (olds.server !== undefined && !sameServer(olds.server, inputs.server));
  if (!isNew) return undefined;
  try {
    // A preview should not wait long on a runtime that does not answer.
    const t = { ...recordedTarget(what(kind, inputs), inputs), timeoutMs: 10_000 };
    const stored = await getStored(t, kind, inputs.name, what(kind, inputs));
    return stored && { stored, server: t.server };
  } catch {
    return undefined;
  }
}

/**
 * The dynamic provider of one runtime-backed kind. `check` validates with the model and, for a create, refuses a
 * document the runtime holds already unless it is this resource's or `adopt` is set; create, update and delete go
 * to the admin API, each conditional on the revision it read and on the document's owner label (docs/OPERATIONS.md,
 * "Documents a Pulumi stack owns"); read returns what the runtime holds, so a refresh shows drift.
 */
export function runtimeResourceProvider(kind: RuntimeKind): dynamic.ResourceProvider {
  return {
    async check(olds: RuntimeResourceInputs, news: RuntimeResourceInputs) {
      const failures: dynamic.CheckFailure[] = [];
      // No property: the engine then prints the reason alone, `allow[0].awsAccount: must be ...`.
      const fail = (reason: string) => failures.push({ property: "", reason });
      let inputs: RuntimeResourceInputs = { ...news };
      if (news.labels?.[OWNER_LABEL] !== undefined)
        fail(
          `labels["${OWNER_LABEL}"]: is set by the resource itself (the URN of the resource owning the document); remove it`,
        );
      if (news.server !== UNKNOWN) {
        const r = resolveServer(what(kind, news), olds, news);
        if ("problem" in r) fail(`server: ${r.problem}`);
        else if (r.fromEnvironment) inputs = { ...inputs, server: r.server, __serverFromEnvironment: true };
      }
      // Values not known until apply are checked then.
      if (hasUnknown(news)) return { inputs, failures };
      const { resource, problems } = validateDocument(wireDocument(kind, news));
      for (const p of problems) fail(sdkProblemText(p, { specAtTop: true }));
      if (!resource || failures.length > 0) return { inputs, failures };
      inputs = normalizedInputs(inputs, resource);
      const found = await storedBeforeCreate(kind, olds, inputs);
      if (found) {
        const { stored, server } = found;
        if ((inputs.owner && stored.owner === inputs.owner) || inputs.adopt)
          inputs.__existing = {
            owner: stored.owner ?? "",
            changes: changedProperties(stored.doc, resource as unknown as Record<string, unknown>),
          };
        else fail(alreadyExists(what(kind, inputs), server, stored.owner));
      }
      return { inputs, failures };
    },

    async diff(_id: string, olds: RuntimeResourceInputs, news: RuntimeResourceInputs) {
      // State written before the runtime was recorded used DISCOVERY_SERVER: the same runtime, to be recorded now.
      const sameRuntime = olds.server === undefined || sameServer(olds.server, news.server);
      if (hasUnknown(news)) return { changes: true, replaces: news.name === olds.name && sameRuntime ? [] : ["name"] };
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
      if (!sameRuntime) replaces.push("server");
      if (prev && isSecretDoc(prev) !== isSecretDoc(next)) replaces.push("joinMethod");
      const changes =
        replaces.length > 0 ||
        !prev ||
        canonicalJson(prev) !== canonicalJson(next) ||
        (olds.adminToken ?? "") !== (news.adminToken ?? "") ||
        // The document lost or changed its owner label (seen by a refresh), or the state predates owner labels.
        (olds.owner ?? "") !== (news.owner ?? "") ||
        olds.server === undefined ||
        !!olds.__serverFromEnvironment !== !!news.__serverFromEnvironment;
      // Same name, new key or server: remove the old document first so the new one is not deleted after it.
      const deleteBeforeReplace = replaces.length > 0 && !replaces.includes("name");
      return { changes, replaces, deleteBeforeReplace };
    },

    async create(inputs: RuntimeResourceInputs) {
      const doc = withOwner(normalize(kind, inputs), inputs.owner);
      const t = recordedTarget(what(kind, inputs), inputs);
      await writeOver(t, kind, inputs, doc, (stored) => {
        if (!(inputs.owner && stored.owner === inputs.owner) && !inputs.adopt)
          throw new Error(alreadyExists(what(kind, inputs), t.server, stored.owner));
      });
      return { id: resourceId(doc), outs: writtenOutputs(inputs, doc) };
    },

    async read(id: string, props: RuntimeResourceInputs) {
      const label = what(kind, props);
      const stored = await getStored(recordedTarget(label, props), kind, props.name, label);
      if (!stored) return { id: "", props: {} }; // gone from the runtime: the engine drops it
      const current = propsOf(props, stored.doc);
      // A discovery_config's status (kept by the runtime that scans it) is an output only: never an input, and the
      // diff ignores it, so a refresh shows it without a change to apply.
      const status = stored.doc.status === undefined ? {} : { status: camelize(stored.doc.status) };
      const bookkeeping = props.__owner ? { __owner: props.__owner } : {};
      return { id, props: { ...current, ...status, ...bookkeeping }, inputs: current };
    },

    async update(_id: string, olds: RuntimeResourceInputs, news: RuntimeResourceInputs) {
      const doc = withOwner(normalize(kind, news), news.owner);
      const t = recordedTarget(what(kind, news), news);
      await writeOver(t, kind, news, doc, (stored) => {
        const theirs = stored.owner && stored.owner !== news.owner && stored.owner !== olds.__owner;
        if (theirs && !news.adopt)
          throw new Error(ownedElsewhere(what(kind, news), t.server, stored.owner!, news.owner));
      });
      return { outs: writtenOutputs(news, doc) };
    },

    async delete(_id: string, props: RuntimeResourceInputs) {
      const label = what(kind, props);
      const t = recordedTarget(label, props);
      for (let attempt = 0; attempt < 2; attempt++) {
        const stored = await getStored(t, kind, props.name, label);
        if (!stored) return;
        // State from before owner labels deletes only a document that has none, as that version wrote it.
        const mine = props.__owner ? stored.owner === props.__owner : stored.owner === undefined;
        if (!mine) {
          // The engine shows a provider's stderr with the operation's diagnostics; `discovery destroy` as a warning.
          console.error(leftInPlace(label, t.server, stored.owner));
          return;
        }
        if (await deleteDocument(t, kind, props.name, stored.revision)) return;
      }
      throw new Error(changedMeanwhile(label, t.server));
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
  /**
   * Take over the document of this name if the runtime holds one already (applied with `discovery apply`, or owned
   * by another stack): without it, create refuses such a document rather than overwrite it. The document then takes
   * this resource's fields and owner label, and destroying this resource deletes it. Pulumi cannot import dynamic
   * resources, so this is how an existing document comes under a stack.
   */
  adopt?: pulumi.Input<boolean>;
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
