import { z } from "zod";
import { Document, isMap, isPair, isScalar, isSeq, LineCounter, Node, parseAllDocuments, stringify } from "yaml";
import { dropNulls, FieldPath, Problem, suggestion } from "./common";
import { snakify } from "./case";
import { Token, tokenDocument } from "./token";
import { Installer, installerDocument } from "./installer";
import { CLOUDS, DiscoveryConfig, discoveryConfigDocument, discoveryServiceSection } from "./discovery-config";
import { zodProblems } from "./problems";

/** The resource kinds and the version each is written in. */
export const KINDS = { token: "v2", installer: "v1", discovery_config: "v1" } as const;
/** A resource kind. */
export type Kind = keyof typeof KINDS;
const KIND_NAMES = Object.keys(KINDS) as Kind[];

const SCHEMAS: Record<Kind, z.ZodTypeAny> = {
  token: tokenDocument,
  installer: installerDocument,
  discovery_config: discoveryConfigDocument,
};

/** A validated resource with defaults applied. */
export type Resource = Token | Installer | DiscoveryConfig;

/** A problem located in a source file. */
export interface SourceProblem extends Problem {
  file: string;
  line: number;
  col: number;
}

/** Result of validating one document value. */
export interface DocumentResult {
  /** The validated resource, absent when there were problems or the document is a disabled discovery_service. */
  resource?: Resource;
  problems: Problem[];
}

const teleportFile = z.object({ discovery_service: discoveryServiceSection }).passthrough();

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Validates one parsed document (a plain value) and applies defaults. */
export function validateDocument(input: unknown): DocumentResult {
  const value = dropNulls(input);
  if (!isPlainObject(value))
    return { problems: [{ path: [], message: "a document must be a mapping with kind, version, metadata and spec" }] };
  if (value.kind === undefined && "discovery_service" in value) {
    const r = teleportFile.safeParse(value, { errorMap: zodErrorMap });
    if (!r.success) return { problems: zodProblems(r.error, teleportFile) };
    const ds = r.data.discovery_service;
    if (!ds.enabled) return { problems: [] };
    if (!CLOUDS.some((c) => ds[c].length > 0))
      return {
        problems: [
          { path: ["discovery_service"], message: "has no matchers; add at least one under aws, gcp or azure" },
        ],
      };
    const resource: DiscoveryConfig = {
      kind: "discovery_config",
      version: "v1",
      metadata: { name: ds.discovery_group },
      spec: { discovery_group: ds.discovery_group, aws: ds.aws, gcp: ds.gcp, azure: ds.azure },
    };
    return { resource, problems: [] };
  }
  if (value.kind === undefined)
    return {
      problems: [
        {
          path: ["kind"],
          message: `is required: one of ${KIND_NAMES.join(", ")} (or a teleport.yaml with discovery_service)`,
        },
      ],
    };
  if (typeof value.kind !== "string" || !(value.kind in SCHEMAS))
    return {
      problems: [
        {
          path: ["kind"],
          message: `unknown kind "${String(value.kind)}"${suggestion(String(value.kind), KIND_NAMES)}`,
        },
      ],
    };
  const schema = SCHEMAS[value.kind as Kind];
  const r = schema.safeParse(value, { errorMap: zodErrorMap });
  if (!r.success) return { problems: zodProblems(r.error, schema) };
  return { resource: r.data as Resource, problems: [] };
}

/** Plain-language messages for zod's generic issues; messages a schema sets itself are kept. */
export const zodErrorMap: z.ZodErrorMap = (issue, ctx) => {
  const builtin = z.defaultErrorMap(issue, { ...ctx, defaultError: "" }).message;
  if (ctx.defaultError !== builtin) return { message: ctx.defaultError };
  if (ctx.data === undefined) return { message: "is required" };
  switch (issue.code) {
    case "invalid_type":
      return { message: `must be ${article(issue.expected)}, not ${article(issue.received)}` };
    case "invalid_literal":
      return { message: `must be ${JSON.stringify(issue.expected)}` };
    default:
      return { message: ctx.defaultError };
  }
};

function article(t: string): string {
  if (t === "array") return "a list";
  if (t === "object") return "a mapping";
  if (t === "null") return "empty";
  return /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`;
}

/** Result of parsing a file of documents. */
export interface ParseResult {
  resources: Resource[];
  problems: SourceProblem[];
}

/**
 * Parses YAML or JSON text holding one or more documents (`---` separated, or a list), validates each,
 * and locates every problem at its line and column. Problems in every document are reported.
 */
export function parseDocuments(text: string, file = "<input>"): ParseResult {
  const { values, problems } = parseYamlWith(text, file, (v) => {
    const r = validateDocument(v);
    return { value: r.resource, problems: r.problems };
  });
  return { resources: values, problems };
}

/**
 * The YAML half of parseDocuments, for any schema: parses every document of `text` (a top-level list
 * counts as one document per item when `splitLists`), runs `validate` on each, and locates its problems.
 */
export function parseYamlWith<T>(
  text: string,
  file: string,
  validate: (value: unknown) => { value?: T; problems: Problem[] },
  opts: { splitLists?: boolean } = { splitLists: true },
): { values: T[]; problems: SourceProblem[]; documents: number } {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const out = { values: [] as T[], problems: [] as SourceProblem[], documents: 0 };
  const at = (offset: number) => {
    const pos = lineCounter.linePos(Math.max(0, Math.min(offset, text.length)));
    return { line: pos.line, col: pos.col };
  };
  const list = Array.isArray(docs) ? docs : [docs];
  for (const doc of list as Document.Parsed[]) {
    if (doc.errors.length > 0) {
      out.documents++;
      for (const e of doc.errors)
        out.problems.push({ file, ...at(e.pos[0]), path: ["yaml"], message: yamlMessage(e.message) });
      continue;
    }
    if (doc.contents === null) continue; // an empty document, e.g. a trailing ---
    const value = doc.toJS({ maxAliasCount: 100 });
    const items: [FieldPath, unknown][] =
      opts.splitLists !== false && Array.isArray(value) ? value.map((v, i) => [[i], v]) : [[[], value]];
    for (const [prefix, item] of items) {
      out.documents++;
      const result = validate(item);
      if (result.value !== undefined) out.values.push(result.value);
      for (const p of result.problems) {
        const offset = locate(doc, [...prefix, ...p.path], p, text);
        out.problems.push({ file, ...at(offset), path: p.path, message: p.message });
      }
    }
  }
  out.problems.sort((a, b) => a.line - b.line || a.col - b.col);
  return out;
}

function yamlMessage(message: string): string {
  return `invalid YAML: ${message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "")}`;
}

function keyName(pair: unknown): string | undefined {
  if (!isPair(pair)) return undefined;
  const k = pair.key;
  return isScalar(k) ? String(k.value) : undefined;
}

/** Finds the source offset of a field path: the key for unknown fields, the value otherwise, or the nearest parent. */
function locate(doc: Document.Parsed, path: FieldPath, problem: Problem, text: string): number {
  let node: unknown = doc.contents;
  let offset = (doc.contents as Node | null)?.range?.[0] ?? 0;
  for (let i = 0; i < path.length; i++) {
    const part = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => keyName(p) === String(part));
      if (!pair) break;
      const keyNode = pair.key as Node;
      if (last && problem.key && keyNode.range) return keyNode.range[0];
      node = pair.value;
      offset = (pair.value as Node | null)?.range?.[0] ?? keyNode.range?.[0] ?? offset;
    } else if (isSeq(node) && typeof part === "number" && node.items[part] !== undefined) {
      node = node.items[part];
      offset = (node as Node).range?.[0] ?? offset;
    } else break;
  }
  if (problem.needle && isScalar(node) && node.range) {
    const idx = text.indexOf(problem.needle, node.range[0]);
    if (idx >= 0 && idx < node.range[1]) return idx;
  }
  return offset;
}

/** Renders resources as YAML documents separated by `---`. */
export function toYaml(resources: Resource[]): string {
  return resources.map((r) => stringify(r, { lineWidth: 0 })).join("---\n");
}

/** Renders resources as JSON: one object, or a list when there are several. */
export function toJson(resources: Resource[]): string {
  return JSON.stringify(resources.length === 1 ? resources[0] : resources, null, 2) + "\n";
}

/** SDK-side arguments of a resource: `name` and the metadata fields, with the spec in camelCase. */
export interface SdkDocumentArgs {
  name: string;
  description?: string;
  labels?: Record<string, string>;
  expires?: string;
  spec: Record<string, unknown>;
}

/** Builds the wire document of `kind` from SDK arguments (camelCase spec). */
export function fromSdkArgs(kind: Kind, args: SdkDocumentArgs): Record<string, unknown> {
  const meta: Record<string, unknown> = { name: args.name };
  if (args.description !== undefined) meta.description = args.description;
  if (args.labels !== undefined) meta.labels = args.labels;
  if (args.expires !== undefined) meta.expires = args.expires;
  return { kind, version: KINDS[kind], metadata: meta, spec: snakify(args.spec ?? {}) };
}
