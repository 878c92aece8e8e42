/**
 * The custom SSM Command document's lifecycle on an SSM client (behind aws.SsmInstallerDocument); its content and
 * the parameters a SendCommand fills it (or the stock AWS-RunShellScript) with are in ssm-installer-content.
 */
import {
  CreateDocumentCommand,
  DeleteDocumentCommand,
  DescribeDocumentCommand,
  GetDocumentCommand,
  SSMClient,
  UpdateDocumentCommand,
  UpdateDocumentDefaultVersionCommand,
} from "@aws-sdk/client-ssm";
import { createHash } from "crypto";
import { documentContent, FixedRuntime, InstallMode } from "./ssm-installer-content";

export * from "./ssm-installer-content";

/** Why a document name is refused (naming the field and the fix), or undefined when SSM accepts it. */
export function validateDocumentName(name: string): string | undefined {
  if (!/^[a-zA-Z0-9_.-]{3,128}$/.test(name))
    return `document name ${JSON.stringify(name)} must be 3 to 128 of a-z A-Z 0-9 _ . -; choose a name such as DiscoveryInstaller`;
  if (/^(aws|amazon)/i.test(name))
    return `document name ${JSON.stringify(name)} must not start with "aws" or "amazon" (AWS reserves them); choose a name such as DiscoveryInstaller`;
  return undefined;
}

/** A refused document operation, with a stable code. */
export class SsmDocumentError extends Error {
  /** `invalid_document_name`, `document_exists`, `document_not_found` or `document_conflict`. */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "SsmDocumentError";
    this.code = code;
  }
}

function checkName(name: string): void {
  const problem = validateDocumentName(name);
  if (problem) throw new SsmDocumentError("invalid_document_name", problem);
}

/** An installer document as SSM holds it. */
export interface InstallerDocumentState {
  name: string;
  /** Content of the default version (the one SendCommand runs). */
  content: string;
  defaultVersion: string;
  latestVersion: string;
}

// SSM may hand back JSON formatted differently from what was sent; compare meaning, not bytes.
function normalized(content: string): string {
  try {
    return JSON.stringify(JSON.parse(content));
  } catch {
    return content;
  }
}

/** Whether two document contents mean the same (JSON compared after parsing). */
export function sameContent(a: string, b: string): boolean {
  return normalized(a) === normalized(b);
}

/** sha256 (hex) of a document's content as sameContent compares it: what a state records to see content change. */
export function contentDigest(content: string): string {
  return createHash("sha256").update(normalized(content)).digest("hex");
}

const errorName = (e: unknown) => (e as { name?: string }).name ?? "";

/** Creates the document `name` for `mode` (fixed to `runtime` when given); refuses invalid names before calling AWS. */
export async function createInstallerDocument(
  client: SSMClient,
  args: { name: string; mode: InstallMode; runtime?: FixedRuntime; tags?: Record<string, string> },
): Promise<InstallerDocumentState> {
  checkName(args.name);
  const content = documentContent(args.mode, args.runtime);
  try {
    const r = await client.send(
      new CreateDocumentCommand({
        Name: args.name,
        Content: content,
        DocumentType: "Command",
        DocumentFormat: "JSON",
        Tags: args.tags ? Object.entries(args.tags).map(([Key, Value]) => ({ Key, Value })) : undefined,
      }),
    );
    const version = r.DocumentDescription?.DocumentVersion ?? "1";
    return { name: args.name, content, defaultVersion: version, latestVersion: version };
  } catch (e) {
    if (errorName(e) === "DocumentAlreadyExists")
      throw new SsmDocumentError(
        "document_exists",
        `SSM document ${args.name} already exists in this account and region; choose another name or delete it first`,
      );
    throw e;
  }
}

/** The document's default content and versions, or undefined when it does not exist. */
export async function readInstallerDocument(
  client: SSMClient,
  name: string,
): Promise<InstallerDocumentState | undefined> {
  checkName(name);
  try {
    const d = await client.send(new DescribeDocumentCommand({ Name: name }));
    const defaultVersion = d.Document?.DefaultVersion ?? "1";
    const g = await client.send(new GetDocumentCommand({ Name: name, DocumentVersion: defaultVersion }));
    return {
      name,
      content: g.Content ?? "",
      defaultVersion,
      latestVersion: d.Document?.LatestVersion ?? defaultVersion,
    };
  } catch (e) {
    if (errorName(e) === "InvalidDocument") return undefined;
    throw e;
  }
}

/**
 * Brings the document to `mode`'s content (fixed to `runtime` when given): a new version made the default. Nothing changes when the default
 * version already has that content. Returns the state and whether a change was made.
 */
export async function updateInstallerDocument(
  client: SSMClient,
  args: { name: string; mode: InstallMode; runtime?: FixedRuntime },
): Promise<{ state: InstallerDocumentState; changed: boolean }> {
  const current = await readInstallerDocument(client, args.name);
  if (!current)
    throw new SsmDocumentError("document_not_found", `SSM document ${args.name} does not exist; create it first`);
  const content = documentContent(args.mode, args.runtime);
  if (sameContent(current.content, content)) return { state: current, changed: false };
  let version: string;
  let latestVersion: string;
  try {
    const r = await client.send(
      new UpdateDocumentCommand({
        Name: args.name,
        Content: content,
        DocumentFormat: "JSON",
        DocumentVersion: "$LATEST",
      }),
    );
    version = latestVersion = r.DocumentDescription?.DocumentVersion ?? String(Number(current.latestVersion) + 1);
  } catch (e) {
    // SSM refuses a new version whose content an existing version already has (switching a mode back, or an
    // earlier update that stopped before changing the default): that version becomes the default instead.
    if (errorName(e) !== "DuplicateDocumentContent") throw e;
    version = await versionWithContent(client, args.name, content, Number(current.latestVersion));
    latestVersion = current.latestVersion;
  }
  await client.send(new UpdateDocumentDefaultVersionCommand({ Name: args.name, DocumentVersion: version }));
  return { state: { name: args.name, content, defaultVersion: version, latestVersion }, changed: true };
}

/** The newest version of the document whose content is `content`. */
async function versionWithContent(client: SSMClient, name: string, content: string, latest: number): Promise<string> {
  for (let v = latest; v >= 1; v--) {
    const g = await client.send(new GetDocumentCommand({ Name: name, DocumentVersion: String(v) }));
    if (sameContent(g.Content ?? "", content)) return String(v);
  }
  throw new SsmDocumentError("document_conflict", `SSM refused the content of ${name} as a duplicate of no version`);
}

/** Deletes the document; a document that is already gone is not an error. */
export async function deleteInstallerDocument(client: SSMClient, name: string): Promise<void> {
  checkName(name);
  try {
    await client.send(new DeleteDocumentCommand({ Name: name }));
  } catch (e) {
    if (errorName(e) !== "InvalidDocument") throw e;
  }
}
