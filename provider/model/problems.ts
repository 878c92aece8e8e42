import { z } from "zod";
import { FieldPath, Problem, suggestion } from "./common";

/** Unwraps optional, default, effects and pipeline wrappers down to the schema that holds the shape. */
function unwrap(schema: z.ZodTypeAny): z.ZodTypeAny {
  let s: z.ZodTypeAny = schema;
  for (;;) {
    const def = s._def as { typeName?: string; innerType?: z.ZodTypeAny; schema?: z.ZodTypeAny; in?: z.ZodTypeAny };
    if (def.innerType) s = def.innerType;
    else if (def.typeName === z.ZodFirstPartyTypeKind.ZodEffects && def.schema) s = def.schema;
    else if (def.typeName === z.ZodFirstPartyTypeKind.ZodPipeline && def.in) s = def.in;
    else return s;
  }
}

/** The field names an object schema knows at `path`, to suggest the right one for a misspelt field. */
export function knownFieldsAt(schema: z.ZodTypeAny, path: FieldPath): string[] {
  let s = unwrap(schema);
  for (const part of path) {
    if (s instanceof z.ZodObject) s = unwrap(s.shape[String(part)] ?? z.never());
    else if (s instanceof z.ZodArray) s = unwrap(s.element);
    else if (s instanceof z.ZodRecord) s = unwrap(s.valueSchema);
    else return [];
  }
  return s instanceof z.ZodObject ? Object.keys(s.shape) : [];
}

/** Turns a zod error into located problems: one per unknown field, each with a suggestion. */
export function zodProblems(error: z.ZodError, schema: z.ZodTypeAny): Problem[] {
  const out: Problem[] = [];
  const seen = new Set<string>();
  const push = (p: Problem) => {
    const key = JSON.stringify([p.path, p.message]);
    if (!seen.has(key)) out.push(p);
    seen.add(key);
  };
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      const known = knownFieldsAt(schema, issue.path);
      for (const k of issue.keys)
        push({ path: [...issue.path, k], message: `unknown field "${k}"${suggestion(k, known)}`, key: true });
    } else {
      const needle = issue.code === "custom" ? (issue.params?.needle as string | undefined) : undefined;
      push({ path: issue.path, message: issue.message, ...(needle ? { needle } : {}) });
    }
  }
  return out;
}

/** Every field name an object schema knows at any depth (snake_case as written in documents). */
export function fieldNamesOf(schema: z.ZodTypeAny, into = new Set<string>()): Set<string> {
  const s = unwrap(schema);
  if (s instanceof z.ZodObject)
    for (const [name, field] of Object.entries(s.shape as Record<string, z.ZodTypeAny>)) {
      into.add(name);
      fieldNamesOf(field, into);
    }
  else if (s instanceof z.ZodArray) fieldNamesOf(s.element, into);
  else if (s instanceof z.ZodRecord) fieldNamesOf(s.valueSchema, into);
  else if (s instanceof z.ZodUnion || s instanceof z.ZodDiscriminatedUnion)
    for (const option of s.options as z.ZodTypeAny[]) fieldNamesOf(option, into);
  return into;
}
