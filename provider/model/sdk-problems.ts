import { FieldPath, formatPath, Problem, YAML_QUOTE_HINT } from "./common";
import { camelCase, OPAQUE_MAPS } from "./case";
import { tokenDocument } from "./token";
import { installerDocument } from "./installer";
import { discoveryConfigDocument } from "./discovery-config";
import { fieldNamesOf } from "./problems";

/** How SDK arguments hold a document: the spec fields at the top (ProvisionToken, ...) or under `spec`. */
export interface SdkPathOptions {
  /** The args hold the spec's fields at the top level, so `spec.` is not part of a property's path. */
  specAtTop?: boolean;
}

/**
 * Renders a document field path as the SDK property it came from: `allow[0].awsAccount` (spec at the top) or
 * `spec.allow[0].awsAccount`, and `name` for `metadata.name`. Keys inside tags and labels are kept as written.
 */
export function sdkPropertyPath(path: FieldPath, opts: SdkPathOptions = {}): string {
  if (path[0] === "metadata") return formatPath(path.slice(1));
  const rest = opts.specAtTop && path[0] === "spec" ? path.slice(1) : path;
  let opaque = false;
  const parts = rest.map((p) => {
    if (typeof p !== "string") return p;
    const name = opaque ? p : camelCase(p);
    opaque = !opaque && OPAQUE_MAPS.has(p);
    return name;
  });
  return formatPath(parts);
}

/** Advice written for YAML documents, and what the same advice reads like for code that builds the arguments. */
const SDK_HINTS: [yaml: string, sdk: string][] = [
  [YAML_QUOTE_HINT, "(pass it as a string: a number loses the leading zeros)"],
];

let fieldNames: Set<string> | undefined;
/** The snake_case field names of every kind, found once. */
function knownFieldNames(): Set<string> {
  if (!fieldNames) {
    fieldNames = new Set<string>();
    for (const schema of [tokenDocument, installerDocument, discoveryConfigDocument]) fieldNamesOf(schema, fieldNames);
  }
  return fieldNames;
}

/**
 * A model message as a program's author reads it: field names in camelCase (`joinMethod`, `assumeRole.roleArn`,
 * and the misspelt field of `path`), "an object" for a YAML mapping, and hints about code instead of YAML quoting.
 */
export function sdkMessage(message: string, path: FieldPath = []): string {
  const names = knownFieldNames();
  const own = new Set(path.filter((p): p is string => typeof p === "string"));
  let out = message.replace(/(?<![\w/-])[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b/g, (word) =>
    names.has(word) || own.has(word) ? camelCase(word) : word,
  );
  for (const [yaml, sdk] of SDK_HINTS) out = out.split(yaml).join(sdk);
  return out.replace(/\ba mapping\b/g, "an object");
}

/** One problem as an SDK error line: `allow[0].awsAccount: must be a 12-digit AWS account id ...`. */
export function sdkProblemText(p: Problem, opts: SdkPathOptions = {}): string {
  return `${sdkPropertyPath(p.path, opts)}: ${sdkMessage(p.message, p.path)}`;
}
