import { z } from "zod";
import { closest, distance } from "fastest-levenshtein";

/** A path into a document: object keys and array indexes, e.g. ["spec", "allow", 0, "aws_account"]. */
export type FieldPath = (string | number)[];

/** One validation problem, located at a field of a document. */
export interface Problem {
  path: FieldPath;
  message: string;
  /** The problem is the field's name itself (an unknown field): locate the key, not the value. */
  key?: boolean;
  /** Text inside the field's value that the problem is about, to locate it exactly. */
  needle?: string;
}

/** Renders a field path the way users write it: `spec.allow[0].aws_account`. */
export function formatPath(path: FieldPath): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out ? `.${part}` : part;
  }
  return out || "(document)";
}

/** Suggests the closest known name for a misspelt one, or undefined when nothing is close. */
export function didYouMean(name: string, known: readonly string[]): string | undefined {
  if (known.length === 0) return undefined;
  const best = closest(name, known as string[]);
  const limit = Math.max(2, Math.floor(best.length / 3));
  if (distance(name, best) <= limit) return best;
  // A shortened or extended spelling of a known name ("document" for "document_name").
  return known.find((k) => name.length >= 3 && (k.startsWith(name) || name.startsWith(k)));
}

/** "did you mean X?" tail for a message, or a list of the allowed names. */
export function suggestion(name: string, known: readonly string[]): string {
  const best = didYouMean(name, known);
  if (best) return `; did you mean "${best}"?`;
  return known.length ? `; allowed: ${known.join(", ")}` : "";
}

const DURATION_UNITS_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};
const DURATION_RE = /^(\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/;

/** Parses a Go-style duration ("5m", "300s", "1h30m") into milliseconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  if (!DURATION_RE.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(m[1]) * DURATION_UNITS_MS[m[2]];
  return total;
}

/** A positive duration such as `5m` or `300s`. */
export const duration = z.string().superRefine((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined)
    ctx.addIssue({ code: "custom", message: `"${v}" is not a duration; write it like 5m, 300s or 1h30m` });
  else if (ms <= 0) ctx.addIssue({ code: "custom", message: "duration must be greater than zero" });
});

/** The advice for a number that loses its leading zeros in YAML (sdkMessage words it for code). */
export const YAML_QUOTE_HINT = "(quote it in YAML so leading zeros are kept)";

/** YAML turns unquoted digits into numbers; account ids are strings of exactly 12 digits. */
export const awsAccountId = z.preprocess(
  (v) => (typeof v === "number" && Number.isInteger(v) ? String(v) : v),
  z.string().regex(/^\d{12}$/, {
    message: `must be a 12-digit AWS account id such as "123456789012" ${YAML_QUOTE_HINT}`,
  }),
);

/** An IAM role ARN: arn:aws:iam::123456789012:role/name. */
export const awsRoleArn = z.string().regex(/^arn:aws(-[a-z]+)*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/, {
  message: "must be an IAM role ARN such as arn:aws:iam::123456789012:role/discovery",
});

/** A glob over caller ARNs (iam join): `*` and `?` are wildcards. */
export const awsArnGlob = z.string().regex(/^arn:aws(-[a-z]+)*:(iam|sts)::(\d{12}|[\d*?]+):[\w+=,.@/*?-]+$/, {
  message:
    "must be an IAM or STS ARN, optionally with * or ? wildcards, such as arn:aws:sts::123456789012:assumed-role/node/*",
});

/** An AWS Organizations id: o-xxxxxxxxxx. */
export const awsOrganizationId = z
  .string()
  .regex(/^o-[a-z0-9]{10,32}$/, { message: "must be an AWS Organizations id such as o-abcde12345" });

/** A resource name as stored by the runtime. */
export const resourceName = z
  .string()
  .min(1, { message: "must not be empty" })
  .max(253, { message: "must be at most 253 characters" })
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:@-]*$/, {
    message: "may contain only letters, digits and . _ : @ - and must start with a letter or digit",
  });

/** Names of installer scripts, as they appear in /webapi/scripts/installer/{name}. */
export const INSTALLER_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;
export const installerName = z.string().regex(INSTALLER_NAME_RE, {
  message: "must match [a-z0-9][a-z0-9._-]{0,62} (lower case, at most 63 characters)",
});

/** A list with at least one entry, each of `item`. */
export function nonEmptyList<T extends z.ZodTypeAny>(item: T, what: string) {
  return z.array(item).min(1, { message: `must list at least one ${what}` });
}

/** A list of items where `*` may stand only alone. */
export function wildcardList<T extends z.ZodTypeAny>(item: T, what: string) {
  return z
    .array(z.unknown())
    .min(1, { message: `must list at least one ${what}, or "*"` })
    .superRefine((list, ctx) => {
      if (list.includes("*")) {
        if (list.length > 1)
          ctx.addIssue({ code: "custom", message: `"*" must stand alone; remove the other ${what}s or the "*"` });
        return;
      }
      list.forEach((v, i) => {
        const r = item.safeParse(v);
        if (!r.success)
          for (const issue of r.error.issues) ctx.addIssue({ ...issue, path: [i, ...issue.path] } as z.IssueData);
      });
    }) as unknown as z.ZodType<string[], z.ZodTypeDef, string[]>;
}

/** A map from tag or label key to a value, a list of values, or "*". */
export const tagMap = z.record(z.unknown()).superRefine((tags, ctx) => {
  for (const [key, value] of Object.entries(tags)) {
    const isList = Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === "string");
    if (typeof value !== "string" && !isList)
      ctx.addIssue({ code: "custom", path: [key], message: 'must be a value, a non-empty list of values, or "*"' });
    else if (
      key === "*" &&
      value !== "*" &&
      !(isList && (value as string[]).length === 1 && (value as string[])[0] === "*")
    )
      ctx.addIssue({
        code: "custom",
        path: [key],
        message: 'the "*" key matches every instance; its value must be "*"',
      });
    if (key.length === 0) ctx.addIssue({ code: "custom", path: [key], message: "tag keys must not be empty" });
  }
}) as unknown as z.ZodType<Record<string, string | string[]>, z.ZodTypeDef, Record<string, string | string[]>>;

/**
 * The label a Pulumi resource (ProvisionToken, Installer, DiscoveryConfig) sets on the document it writes: its
 * URN. Only the resource it names deletes the document; a create finding a document without its own URN refuses
 * unless told to adopt it. Kept in the runtime with the document, shown by GET and `discovery get -o yaml`.
 */
export const OWNER_LABEL = "discovery/owner";

/** Common metadata of every resource. */
export const metadata = z
  .object({
    name: resourceName,
    description: z.string().optional(),
    labels: z.record(z.string()).optional(),
    expires: z
      .string()
      .datetime({ offset: true, message: "must be an RFC 3339 time such as 2026-12-31T23:59:59Z" })
      .optional(),
  })
  .strict();

/** An absolute filesystem path on the VM. */
export const absolutePath = z
  .string()
  .regex(/^\/[^\0]*$/, { message: "must be an absolute path such as /etc/ssh/sshd_config" });

/** host:port, or an https:// URL with an optional port. */
export const proxyAddr = z
  .string()
  .regex(/^(https:\/\/)?[A-Za-z0-9.-]+(:\d{1,5})?\/?$|^(https:\/\/)?\[[0-9a-fA-F:]+\](:\d{1,5})?\/?$/, {
    message: "must be host:port or https://host[:port]",
  });

/** A GCP project id: lower case letters, digits and hyphens, starting with a letter (at most 30). */
export const gcpProjectId = z.string().regex(/^[a-z][a-z0-9-]{0,28}[a-z0-9]$/, {
  message: "is not a GCP project id (lower case letters, digits, hyphens)",
});

/** Drops mapping keys whose value is null: YAML's `key:` with nothing after it means "not set". */
export function dropNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropNulls);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== null) out[k] = dropNulls(v);
  return out;
}

/** An error map for one field: "is required" when the field is missing, else `message`. */
export function fieldError(message: string): { errorMap: z.ZodErrorMap } {
  return { errorMap: (_issue, ctx) => ({ message: ctx.data === undefined ? "is required" : message }) };
}

/** JSON with object keys sorted, so two documents compare equal whatever order their fields came in. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}
