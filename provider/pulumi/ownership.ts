import { answerError, request, RuntimeTarget } from "../http/client";
import { camelCase, canonicalJson, OWNER_LABEL, sdkProblemText } from "../model";

/** A document as the runtime holds it, with the revision that makes a write or delete conditional on it. */
export interface StoredDocument {
  doc: Record<string, unknown>;
  revision: number;
  /** The owner label: the URN of the Pulumi resource that owns it; absent for a document written outside Pulumi. */
  owner?: string;
}

/** `token "ec2-token"`, or a token whose name is its secret without the name. */
export function describeDocument(kind: string, name: string, secretName: boolean): string {
  return secretName ? `${kind} (its name is its secret)` : `${kind} ${JSON.stringify(name)}`;
}

function resourcePath(kind: string, name: string): string {
  return `v1/resources/${encodeURIComponent(kind)}/${encodeURIComponent(name)}`;
}

/** The owner label of a document, if it has one. */
export function ownerOf(doc: Record<string, unknown>): string | undefined {
  return (doc.metadata as { labels?: Record<string, string> } | undefined)?.labels?.[OWNER_LABEL];
}

/** Labels without the owner label (undefined when none are left): what a resource's `labels` hold. */
export function userLabels(labels: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!labels) return undefined;
  const { [OWNER_LABEL]: _owner, ...rest } = labels;
  return Object.keys(rest).length > 0 ? rest : undefined;
}

/** The document with `owner` as its owner label. */
export function withOwner(doc: Record<string, unknown>, owner: string | undefined): Record<string, unknown> {
  if (!owner) return doc;
  const metadata = doc.metadata as Record<string, unknown> & { labels?: Record<string, string> };
  return { ...doc, metadata: { ...metadata, labels: { ...metadata.labels, [OWNER_LABEL]: owner } } };
}

/**
 * The document of `kind` and `name` in the runtime with its revision, or undefined when there is none; `what`
 * names it in errors (see describeDocument).
 */
export async function getStored(
  t: RuntimeTarget,
  kind: string,
  name: string,
  what: string,
): Promise<StoredDocument | undefined> {
  const a = await request(t, "GET", resourcePath(kind, name));
  if (a.status === 404) return undefined;
  if (a.status !== 200) throw new Error(`cannot read ${what} from the runtime ${t.server}: ${answerError(a)}`);
  const etag = /^"?(\d+)"?$/.exec(String(a.headers.etag ?? ""));
  if (!etag) throw new Error(`the runtime ${t.server} gave no revision (ETag) for the ${kind}: upgrade the runtime`);
  const doc = a.body as Record<string, unknown>;
  return { doc, revision: Number(etag[1]), owner: ownerOf(doc) };
}

/**
 * Stores one document only over the revision read (0: only if absent): false when it changed meanwhile. A refusal
 * by the runtime's model names each property as the SDK spells it.
 */
export async function putDocument(t: RuntimeTarget, doc: Record<string, unknown>, revision: number): Promise<boolean> {
  const condition: Record<string, string> = revision === 0 ? { "if-none-match": "*" } : { "if-match": `"${revision}"` };
  const a = await request(t, "PUT", "v1/resources", doc, "application/json", condition);
  if (a.status === 200) return true;
  if (a.status === 412) return false;
  const problems = (a.body as { error?: { problems?: { path: (string | number)[]; message: string }[] } }).error
    ?.problems;
  if (a.status === 400 && problems?.length)
    throw new Error(
      `the runtime refused the document: ${problems.map((p) => sdkProblemText(p, { specAtTop: true })).join("; ")}`,
    );
  throw new Error(`the runtime refused the document: ${answerError(a)}`);
}

/** Deletes a document only at the revision read: false when it changed meanwhile (a document gone counts as done). */
export async function deleteDocument(t: RuntimeTarget, kind: string, name: string, revision: number): Promise<boolean> {
  const a = await request(t, "DELETE", resourcePath(kind, name), undefined, undefined, { "if-match": `"${revision}"` });
  if (a.status === 200 || a.status === 404) return true;
  if (a.status === 412) return false;
  throw new Error(`cannot delete ${kind} from the runtime ${t.server}: ${answerError(a)}`);
}

/** Who holds a document, for people. */
function holder(owner: string | undefined): string {
  return owner
    ? `owned by ${owner}`
    : "written outside Pulumi (discovery apply, the API, or a version without owner labels)";
}

/** Create found a document this resource does not own: what it is, whose it is, and the way to adopt it. */
export function alreadyExists(what: string, server: string, owner: string | undefined): string {
  return (
    `${what} already exists in the runtime ${server}, ${holder(owner)}; creating it would overwrite it. To manage ` +
    `it from this stack, set adopt: true on the resource (discovery up: --adopt) and its fields become this ` +
    `program's; or give the resource another name`
  );
}

/** Update found the document owned by another resource (it adopted it). */
export function ownedElsewhere(what: string, server: string, owner: string, self: string | undefined): string {
  return (
    `${what} in the runtime ${server} is now ${holder(owner)}, which adopted it, so this stack does not change it. ` +
    `Set adopt: true on the resource to take it back, or stop managing it here` +
    (self ? ` (pulumi state delete '${self}')` : "")
  );
}

/** Delete left a document this resource does not own, saying why; printed as a warning of the operation. */
export function leftInPlace(what: string, server: string, owner: string | undefined): string {
  const why = owner
    ? `it is owned by ${owner}, which adopted it`
    : "it no longer carries this resource's owner label (it was written again outside Pulumi)";
  return `warning: ${what} was left in the runtime ${server}, not deleted: ${why}. Only the resource that owns a document deletes it`;
}

/** Another writer changed the document between the read and the conditional write, twice in a row. */
export function changedMeanwhile(what: string, server: string): string {
  return `${what} kept changing in the runtime ${server} while this operation ran; run it again`;
}

/**
 * The top-level SDK properties in which `next` would change the stored document: its metadata and spec fields in
 * camelCase (the owner label aside), for a preview of what adopting it changes.
 */
export function changedProperties(stored: Record<string, unknown>, next: Record<string, unknown>): string[] {
  type Doc = { metadata?: Record<string, unknown>; spec?: Record<string, unknown> };
  const flat = (d: Doc) => {
    const meta = d.metadata ?? {};
    return {
      description: meta.description,
      labels: userLabels(meta.labels as Record<string, string> | undefined),
      expires: meta.expires,
      ...d.spec,
    } as Record<string, unknown>;
  };
  const a = flat(stored as Doc);
  const b = flat(next as Doc);
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return keys
    .filter((k) => canonicalJson(a[k] ?? null) !== canonicalJson(b[k] ?? null))
    .map(camelCase)
    .sort();
}
