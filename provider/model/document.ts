import { z } from "zod";
import { Document, isMap, isPair, isScalar, isSeq, LineCounter, Node, parseAllDocuments, stringify } from "yaml";
import { didYouMean, dropNulls, FieldPath, formatPath, Problem, suggestion } from "./common";
import { camelCase, snakify } from "./case";
import { Token, tokenDocument } from "./token";
import { Installer, installerDocument } from "./installer";
import { CLOUDS, DiscoveryConfig, discoveryConfigDocument, discoveryServiceSection } from "./discovery-config";
import { zodProblems } from "./problems";
import { matcherWarnings, resourceWarnings } from "./warnings";

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

/** `FILE:LINE:COL: field.path: message`, the format editors and CI annotate. */
export function formatProblem(p: SourceProblem): string {
  return `${p.file}:${p.line}:${p.col}: ${formatPath(p.path)}: ${p.message}`;
}

/** A warning in the problems' format, its message marked `warning:`. */
export function formatWarning(p: SourceProblem): string {
  return formatProblem({ ...p, message: `warning: ${p.message}` });
}

/** Result of validating one document value. */
export interface DocumentResult {
  /** The validated resource, absent when there were problems or the document is a disabled discovery_service. */
  resource?: Resource;
  problems: Problem[];
  /** What is accepted but worth a look (a region this version does not know); only for a valid document. */
  warnings?: Problem[];
}

/** The top-level fields of a resource document, and teleport.yaml's section this model reads. */
const TOP_LEVEL_FIELDS = ["kind", "version", "metadata", "spec", "discovery_service"];

/**
 * Problems for top-level keys of a document without `kind` that misspell a field it would need
 * (`discovery_servce`, `knd`). Other unknown keys pass: a teleport.yaml has sections of its own.
 */
function misspeltTopLevel(value: Record<string, unknown>): Problem[] {
  const out: Problem[] = [];
  for (const key of Object.keys(value)) {
    if (TOP_LEVEL_FIELDS.includes(key)) continue;
    const best = didYouMean(key, TOP_LEVEL_FIELDS);
    if (best) out.push({ path: [key], message: `unknown field "${key}"; did you mean "${best}"?`, key: true });
  }
  return out;
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
    const misspelt = misspeltTopLevel(value);
    if (!r.success || misspelt.length)
      return { problems: [...misspelt, ...(r.success ? [] : zodProblems(r.error, teleportFile))] };
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
    return { resource, problems: [], warnings: matcherWarnings(ds, ["discovery_service"]) };
  }
  if (value.kind === undefined) {
    const misspelt = misspeltTopLevel(value);
    if (misspelt.length) return { problems: misspelt };
    return {
      problems: [
        {
          path: ["kind"],
          message: `is required: one of ${KIND_NAMES.join(", ")} (or a teleport.yaml with discovery_service)`,
        },
      ],
    };
  }
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
  return { resource: r.data as Resource, problems: [], warnings: resourceWarnings(r.data as Resource) };
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
    case "invalid_union_discriminator":
    case "invalid_enum_value": {
      const allowed = issue.options.map(String);
      // A discriminated union reports on its whole input; the value is the discriminator's.
      const given =
        issue.code === "invalid_enum_value"
          ? ctx.data
          : (ctx.data as Record<string, unknown>)?.[String(issue.path.at(-1))];
      const best = typeof given === "string" ? didYouMean(given, allowed) : undefined;
      const list = allowed.map((o) => JSON.stringify(o)).join(", ");
      return { message: `must be one of ${list}${best ? `; did you mean "${best}"?` : ""}` };
    }
    case "too_small":
      return { message: boundMessage(issue.type, issue.minimum, issue.inclusive, "low") ?? ctx.defaultError };
    case "too_big":
      return { message: boundMessage(issue.type, issue.maximum, issue.inclusive, "high") ?? ctx.defaultError };
    default:
      return { message: ctx.defaultError };
  }
};

/** `must be at least 2 characters long`, `must be greater than 0`: a bound on a string's length or a number. */
function boundMessage(type: string, limit: number | bigint, inclusive: boolean, side: "low" | "high") {
  const n = Number(limit);
  const [within, beyond] = side === "low" ? ["at least", "greater than"] : ["at most", "less than"];
  if (type === "string") return `must be ${within} ${n} character${n === 1 ? "" : "s"} long`;
  if (type === "number") return `must be ${inclusive ? within : beyond} ${n}`;
  return undefined;
}

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
  /** Located warnings of the valid documents (see DocumentResult.warnings). */
  warnings: SourceProblem[];
}

/**
 * Parses YAML or JSON text holding one or more documents (`---` separated, or a list), validates each,
 * and locates every problem at its line and column. Problems in every document are reported.
 */
export function parseDocuments(text: string, file = "<input>"): ParseResult {
  const { values, problems, warnings } = parseYamlWith(text, file, (v) => {
    const r = validateDocument(v);
    return { value: r.resource, problems: r.problems, warnings: r.warnings };
  });
  return { resources: values, problems, warnings };
}

/**
 * The YAML half of parseDocuments, for any schema: parses every document of `text` (a top-level list
 * counts as one document per item when `splitLists`), runs `validate` on each, and locates its problems.
 */
export function parseYamlWith<T>(
  text: string,
  file: string,
  validate: (value: unknown) => { value?: T; problems: Problem[]; warnings?: Problem[] },
  opts: { splitLists?: boolean } = { splitLists: true },
): { values: T[]; problems: SourceProblem[]; warnings: SourceProblem[]; documents: number } {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const out = { values: [] as T[], problems: [] as SourceProblem[], warnings: [] as SourceProblem[], documents: 0 };
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
      const located = (p: Problem): SourceProblem => {
        const offset = locate(doc, [...prefix, ...p.path], p, text);
        return { file, ...at(offset), path: p.path, message: p.message };
      };
      out.problems.push(...result.problems.map(located));
      out.warnings.push(...(result.warnings ?? []).map(located));
    }
  }
  const byPlace = (a: SourceProblem, b: SourceProblem) => a.line - b.line || a.col - b.col;
  out.problems.sort(byPlace);
  out.warnings.sort(byPlace);
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
