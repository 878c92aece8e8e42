/**
 * Reading IAM policy documents as @pulumi/aws resources hold them (a JSON string or an object), and IAM's
 * glob matching (`*` any run of characters, `?` one character; actions case-insensitive).
 */
import { asArray, asObject, asString, Obj, ResourceLike, TYPES } from "./resources";

/** An IAM policy document found in a resource's inputs, with the property it came from. */
export interface PolicyDocumentView {
  /** `policy`, or `inlinePolicies[0].policy` for a role's inline policy. */
  path: string;
  /** The parsed document; undefined when the text is not JSON. */
  document?: Obj;
  /** Why the document could not be read. */
  error?: string;
}

/** One statement of a policy document, with its position for messages. */
export interface StatementView {
  /** `policy.Statement[1]` (with the Sid in the label when it has one). */
  label: string;
  effect: string;
  actions: string[];
  notActions?: string[];
  resources: string[];
  notResources?: string[];
}

function parseDocument(value: unknown, path: string): PolicyDocumentView | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value === "string") {
    try {
      const parsed = asObject(JSON.parse(value));
      return parsed ? { path, document: parsed } : { path, error: "is not a JSON object" };
    } catch (e) {
      return { path, error: `is not valid JSON (${(e as Error).message})` };
    }
  }
  const obj = asObject(value);
  return obj ? { path, document: obj } : { path, error: "is neither a JSON string nor an object" };
}

/** The IAM policy documents a resource grants with: aws.iam Policy, RolePolicy, UserPolicy, GroupPolicy, Role. */
export function policyDocumentsOf(r: ResourceLike): PolicyDocumentView[] {
  const out: (PolicyDocumentView | undefined)[] = [];
  switch (r.type) {
    case TYPES.awsIamPolicy:
    case TYPES.awsIamRolePolicy:
    case TYPES.awsIamUserPolicy:
    case TYPES.awsIamGroupPolicy:
      out.push(parseDocument(r.props.policy, "policy"));
      break;
    case TYPES.awsIamRole:
      asArray(r.props.inlinePolicies).forEach((p, i) =>
        out.push(parseDocument(asObject(p)?.policy, `inlinePolicies[${i}].policy`)),
      );
      break;
  }
  return out.filter((d): d is PolicyDocumentView => d !== undefined);
}

function strings(value: unknown): string[] {
  if (typeof value === "string") return [value];
  return asArray(value).filter((v): v is string => typeof v === "string");
}

/** The statements of a document (a single statement object counts as a list of one). */
export function statementsOf(doc: PolicyDocumentView): StatementView[] {
  const raw = doc.document?.Statement;
  const list = Array.isArray(raw) ? raw : raw !== undefined ? [raw] : [];
  return list.flatMap((s, i) => {
    const st = asObject(s);
    if (!st) return [];
    const sid = asString(st.Sid);
    return [
      {
        label: `${doc.path}.Statement[${i}]${sid ? ` (Sid ${JSON.stringify(sid)})` : ""}`,
        effect: asString(st.Effect) ?? "",
        actions: strings(st.Action),
        notActions: st.NotAction === undefined ? undefined : strings(st.NotAction),
        resources: strings(st.Resource),
        notResources: st.NotResource === undefined ? undefined : strings(st.NotResource),
      },
    ];
  });
}

/** IAM's wildcard match: `*` any run of characters, `?` exactly one. */
export function globMatches(pattern: string, value: string, caseInsensitive = false): boolean {
  const source = pattern
    .split("")
    .map((c) => (c === "*" ? ".*" : c === "?" ? "." : c.replace(/[.+^${}()|[\]\\]/g, "\\$&")))
    .join("");
  return new RegExp(`^${source}$`, caseInsensitive ? "i" : "").test(value);
}

/** Whether an Allow statement grants `action` (such as `ssm:SendCommand`), through Action or NotAction. */
export function allowsAction(st: StatementView, action: string): boolean {
  if (st.effect !== "Allow") return false;
  if (st.notActions) return !st.notActions.some((p) => globMatches(p, action, true));
  return st.actions.some((p) => globMatches(p, action, true));
}

/** Partitions probed when deciding whether a resource pattern reaches beyond what it names. */
const PARTITIONS = ["aws", "aws-cn", "aws-us-gov"];

/** ARNs no real policy names: a pattern that matches one matches every resource of that kind. */
const PROBES: Record<"document" | "role", (partition: string) => string> = {
  document: (p) => `arn:${p}:ssm:us-east-1:123456789012:document/pulumi-discovery-unnamed-document`,
  role: (p) => `arn:${p}:iam::123456789012:role/pulumi-discovery-unnamed-role`,
};

/**
 * Whether a Resource pattern grants more than named SSM documents (or IAM roles): `*`, a service or resource-type
 * wildcard, or a wildcard in the document (role) name. Region and account wildcards with a fixed name are named.
 */
export function coversUnnamed(pattern: string, kind: "document" | "role"): boolean {
  if (PARTITIONS.some((p) => globMatches(pattern, PROBES[kind](p)))) return true;
  const name = new RegExp(`^arn:[^:]*:[^:]*:[^:]*:[^:]*:${kind}/(.*)$`).exec(pattern)?.[1];
  return name !== undefined && /[*?]/.test(name);
}
