import { createHash } from "crypto";
import * as fs from "fs";
import { isMap, isScalar, isSeq, LineCounter, Node, parseAllDocuments } from "yaml";
import { camelize, parseYamlWith, Resource, SourceProblem, validateDocument } from "../../model";
import { runtimeOf } from "../../http/runtime-of";
import { ConfigError, parseRuntimeConfig, RuntimeConfig } from "../../runtime/config";
import { AutomationError, invalidDocuments } from "./errors";

/** Where the runtime is: its https URL, its admin token, and a CA certificate file to trust for its TLS. */
export interface RuntimeConnection {
  /** The runtime's https URL. */
  server?: string;
  /** The runtime's admin token. */
  adminToken?: string;
  /** A PEM file with the runtime's certificate or CA, for a runtime whose certificate no public CA signed. */
  caFile?: string;
}

/** One resource of the program: its validated document, its Pulumi resource name, and where it was declared. */
export interface Declaration {
  /** The document with the model's defaults applied. */
  resource: Resource;
  /** The Pulumi resource name: `kind/metadata.name` (a token whose name is its secret: `token/sha256-<hash>`). */
  resourceName: string;
  /** `FILE:LINE:COL` of the document's name, or `documents[I]`. */
  source: string;
}

/** What a set of files and document values declares. */
export interface LoadedDocuments {
  /** The resources, in the order they were written. */
  declarations: Declaration[];
  /** The runtime a runtime config among the files names (SPEC §3), when one does. */
  connection: RuntimeConnection;
  /** The runtime configs among the files. */
  runtimeConfigs: string[];
}

/** Top-level keys only a runtime config (SPEC §3) has; a teleport.yaml has none of them. */
const RUNTIME_CONFIG_KEYS = ["public_addr", "listen_addr", "cluster_name", "admin_token_file", "storage"];

/** Whether a join_method token token, whose name is its secret (never in a resource name, a URN or a log). */
export function isSecretToken(r: Resource): boolean {
  return r.kind === "token" && r.spec.join_method === "token";
}

/**
 * The Pulumi resource name of a document: `kind/name`; `kind/sha256-<hash>` when the name is a secret, or holds
 * `::` (the separator of a URN's parts).
 */
export function resourceNameOf(r: Resource): string {
  if (!isSecretToken(r) && !r.metadata.name.includes("::")) return `${r.kind}/${r.metadata.name}`;
  return `${r.kind}/sha256-${createHash("sha256").update(r.metadata.name, "utf8").digest("hex").slice(0, 16)}`;
}

/** SDK arguments of a document (SPEC §5): `name` and the metadata fields, and the spec in camelCase at the top. */
export function sdkArgsOf(r: Resource): Record<string, unknown> {
  const { name, description, labels, expires } = r.metadata;
  return {
    name,
    ...(description !== undefined ? { description } : {}),
    ...(labels !== undefined ? { labels } : {}),
    ...(expires !== undefined ? { expires } : {}),
    ...(camelize(r.spec) as Record<string, unknown>),
  };
}

/** Line and column of each document's name (or start), in the order parseDocuments validates them. */
function documentAnchors(text: string): { line: number; col: number }[] {
  const lineCounter = new LineCounter();
  const at = (node: unknown) => lineCounter.linePos((node as Node | null)?.range?.[0] ?? 0);
  const out: { line: number; col: number }[] = [];
  const nameNode = (doc: unknown): unknown => {
    if (!isMap(doc)) return doc;
    const get = (map: unknown, key: string) => (isMap(map) ? map.get(key, true) : undefined);
    return get(get(doc, "metadata"), "name") ?? get(get(doc, "discovery_service"), "discovery_group") ?? doc;
  };
  for (const doc of parseAllDocuments(text, { lineCounter })) {
    // Skipped as parseYamlWith skips them: a document with YAML errors, or an empty one, is never validated.
    if (doc.errors.length > 0 || doc.contents === null) continue;
    const items = isSeq(doc.contents) ? doc.contents.items : [doc.contents];
    for (const item of items) out.push(at(isScalar(item) ? item : nameNode(item)));
  }
  return out;
}

/** Validates the documents of one file; a runtime config also yields its connection. */
function loadFile(file: string, decls: Declaration[], problems: SourceProblem[], configs: Map<string, RuntimeConfig>) {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message;
    problems.push({
      file,
      line: 1,
      col: 1,
      path: ["file"],
      message: `cannot read: ${reason}; check the --config path`,
    });
    return;
  }
  const peek = parseYamlWith(text, file, (value) => ({ value, problems: [] }), { splitLists: false });
  const first = peek.values[0];
  const isRuntimeConfig =
    peek.problems.length === 0 &&
    peek.values.length === 1 &&
    first !== null &&
    typeof first === "object" &&
    !Array.isArray(first) &&
    RUNTIME_CONFIG_KEYS.some((k) => k in (first as Record<string, unknown>));
  if (isRuntimeConfig) {
    try {
      configs.set(file, parseRuntimeConfig(text, file));
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.problems);
      return;
    }
    if (!("discovery_service" in (first as Record<string, unknown>))) return;
  }
  const anchors = documentAnchors(text);
  let index = 0;
  const parsed = parseYamlWith(text, file, (value) => {
    const anchor = anchors[index++] ?? { line: 1, col: 1 };
    const r = validateDocument(value);
    const source = `${file}:${anchor.line}:${anchor.col}`;
    return {
      value: r.resource && { resource: r.resource, resourceName: resourceNameOf(r.resource), source },
      problems: r.problems,
    };
  });
  problems.push(...parsed.problems);
  decls.push(...parsed.values);
}

/**
 * Reads and validates documents from files (YAML or JSON, `---` separated; teleport.yaml style and runtime configs
 * included) and from values; every problem is collected, and any problem refuses the whole set.
 */
export function loadDocuments(input: { files?: string[]; documents?: unknown[] }): LoadedDocuments {
  const declarations: Declaration[] = [];
  const problems: SourceProblem[] = [];
  const configs = new Map<string, RuntimeConfig>();
  for (const file of input.files ?? []) loadFile(file, declarations, problems, configs);
  (input.documents ?? []).forEach((value, i) => {
    const file = `documents[${i}]`;
    const r = validateDocument(value);
    for (const p of r.problems) problems.push({ file, line: 0, col: 0, path: p.path, message: p.message });
    if (r.resource) declarations.push({ resource: r.resource, resourceName: resourceNameOf(r.resource), source: file });
  });
  const seen = new Map<string, Declaration>();
  for (const d of declarations) {
    const before = seen.get(d.resourceName);
    if (before) {
      const [file, line, col] = splitSource(d.source);
      const what = isSecretToken(d.resource) ? "this token" : `${d.resource.kind} "${d.resource.metadata.name}"`;
      problems.push({
        file,
        line,
        col,
        path: ["metadata", "name"],
        message: `${what} is already declared at ${before.source}; the runtime keys documents by kind and name, keep one`,
      });
    } else seen.set(d.resourceName, d);
  }
  if (problems.length) throw invalidDocuments(problems);
  return { declarations, connection: connectionOf(configs), runtimeConfigs: [...configs.keys()] };
}

function splitSource(source: string): [string, number, number] {
  const m = /^(.*):(\d+):(\d+)$/.exec(source);
  return m ? [m[1], Number(m[2]), Number(m[3])] : [source, 0, 0];
}

/** The connection a runtime config names; two runtime configs naming different runtimes are refused. */
function connectionOf(configs: Map<string, RuntimeConfig>): RuntimeConnection {
  if (configs.size === 0) return {};
  const files = [...configs.keys()];
  const configsList = [...configs.values()];
  const servers = new Set(configsList.map((c) => c.publicAddr));
  if (servers.size > 1)
    throw new AutomationError(
      "no_runtime",
      `${files.join(" and ")} name different runtimes (${[...servers].join(", ")}); pass one runtime config`,
    );
  try {
    const { target } = runtimeOf(configsList[0]);
    return { server: target.server, adminToken: target.adminToken, caFile: target.caFile };
  } catch (err) {
    throw new AutomationError("no_runtime", `${files[0]}: ${(err as Error).message}`);
  }
}
