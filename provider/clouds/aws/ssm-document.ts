/**
 * The custom SSM Command document that installs the discovery agent (or the agentless OpenSSH setup), the
 * parameters a SendCommand fills it (or the stock AWS-RunShellScript) with, and the custom document's lifecycle
 * on an SSM client (behind aws.SsmInstallerDocument).
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
import { DEFAULT_SSM_DOCUMENT } from "../../model";

/** agent: install the discovery agent; agentless: configure the instance's own OpenSSH server. */
export type InstallMode = "agent" | "agentless";

/** The document's steps, in order; their names are what GetCommandInvocation's PluginName takes. */
export const INSTALLER_STEPS = ["downloadContent", "runShellScript"] as const;

/** Where the downloadContent step puts the installer: root-owned, unlike a guessable name in /tmp. */
export const INSTALLER_PATH = "/var/lib/discovery/ssm-installer.sh";

/** Quotes `value` for a POSIX shell: single quotes, each embedded `'` written as `'\''`. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

// Parameters are pasted into the shell command as text, and the discovery policy scopes ssm:SendCommand to
// this document: without these patterns a parameter could carry a command of its own. `env` may only hold
// NAME='quoted value' words (with '\'' inside), which the shell turns back into exactly NAME=value.
const PATTERNS = {
  token: "^[A-Za-z0-9][A-Za-z0-9._:@-]{0,252}$",
  scriptName: "^[a-z0-9][a-z0-9._-]{0,62}$",
  proxyAddr: "^([A-Za-z0-9.-]+|\\[[0-9a-fA-F:]+\\])(:[0-9]{1,5})?$",
  env: "^([A-Za-z_][A-Za-z0-9_]*=('[^']*'|\\\\')+ ?)*$",
  sshdConfigPath: "^/[A-Za-z0-9._/-]*$",
} as const;

/** The allowedPattern of each document parameter, for checks before a SendCommand. */
export const PARAMETER_PATTERNS: Readonly<Record<keyof typeof PATTERNS, RegExp>> = Object.fromEntries(
  Object.entries(PATTERNS).map(([k, v]) => [k, new RegExp(v)]),
) as Record<keyof typeof PATTERNS, RegExp>;

/**
 * The document (schema 2.2, JSON) for `mode`. The installer URL is built from the `proxyAddr` and `scriptName`
 * parameters, so one document serves every runtime and installer; Teleport's parameter names are kept.
 */
export function documentContent(mode: InstallMode): string {
  const parameters: Record<string, Record<string, string>> = {
    token: {
      type: "String",
      description: "(Required) Name of the join token the instance joins with.",
      allowedPattern: PATTERNS.token,
    },
    scriptName: {
      type: "String",
      description: "(Required) Installer to run, as served at https://<proxyAddr>/webapi/scripts/installer/<name>.",
      default: mode === "agentless" ? "default-agentless-installer" : "default-installer",
      allowedPattern: PATTERNS.scriptName,
    },
    proxyAddr: {
      type: "String",
      description: "(Required) host:port at which the instance reaches the discovery runtime.",
      allowedPattern: PATTERNS.proxyAddr,
    },
    env: {
      type: "String",
      description: "Environment for the installer: space-separated NAME='value' pairs, values shell-quoted.",
      default: "",
      allowedPattern: PATTERNS.env,
    },
  };
  if (mode === "agentless")
    parameters.sshdConfigPath = {
      type: "String",
      description: "The sshd_config the installer points at the discovery certificate authority.",
      default: "/etc/ssh/sshd_config",
      allowedPattern: PATTERNS.sshdConfigPath,
    };
  const sshd = mode === "agentless" ? " DISCOVERY_SSHD_CONFIG='{{ sshdConfigPath }}'" : "";
  const doc = {
    schemaVersion: "2.2",
    description: `pulumi-discovery ${mode} installer: downloads the installer from the discovery runtime and runs it.`,
    parameters,
    mainSteps: [
      {
        action: "aws:downloadContent",
        name: INSTALLER_STEPS[0],
        precondition: { StringEquals: ["platformType", "Linux"] },
        inputs: {
          sourceType: "HTTP",
          sourceInfo: { url: "https://{{ proxyAddr }}/webapi/scripts/installer/{{ scriptName }}" },
          destinationPath: INSTALLER_PATH,
        },
      },
      {
        action: "aws:runShellScript",
        name: INSTALLER_STEPS[1],
        precondition: { StringEquals: ["platformType", "Linux"] },
        inputs: {
          // The installer waits up to 5 minutes for a concurrent run's lock; leave room for that and the join.
          timeoutSeconds: "900",
          runCommand: [`exec env {{ env }}${sshd} /bin/sh ${INSTALLER_PATH} '{{ token }}'`],
        },
      },
    ],
  };
  return JSON.stringify(doc, null, 2);
}

/** What the installer needs besides its token, as environment variables (both document modes share it). */
export interface InstallerEnvOptions {
  method: string;
  caPin?: string;
  /** Agentless only. */
  sshdConfig?: string;
  /** Join even when the machine already holds a certificate (a forced reinstall). */
  rejoin?: boolean;
}

/** The installer's environment: DISCOVERY_JOIN_METHOD, DISCOVERY_CA_PIN, DISCOVERY_SSHD_CONFIG (agentless). */
export function installerEnv(opts: InstallerEnvOptions): [string, string][] {
  const env: [string, string][] = [["DISCOVERY_JOIN_METHOD", opts.method]];
  if (opts.caPin) env.push(["DISCOVERY_CA_PIN", opts.caPin]);
  if (opts.sshdConfig !== undefined) env.push(["DISCOVERY_SSHD_CONFIG", opts.sshdConfig]);
  if (opts.rejoin) env.push(["DISCOVERY_REJOIN", "1"]);
  return env;
}

/** One installer run as a SendCommand asks for it, whichever document carries it. */
export interface InstallerArgs {
  mode: InstallMode;
  /** Name of the join token, passed to the installer as its first argument. */
  token: string;
  scriptName: string;
  /** host:port of the runtime as the instance reaches it. */
  proxyAddr: string;
  /** Join method: iam, ec2 or token. */
  method: string;
  /** `sha256//<base64>` pin of the runtime's TLS key. */
  caPin?: string;
  /** sshd_config the agentless installer edits. */
  sshdConfig: string;
  /** Join even when the machine already holds a certificate (a forced reinstall). */
  rejoin?: boolean;
}

/** SendCommand parameters for the custom document: token, scriptName, proxyAddr, env, sshdConfigPath (agentless). */
export function documentParameters(o: InstallerArgs): Record<string, string[]> {
  // The sshd_config path has a parameter of its own; env carries the rest.
  const env = installerEnv({ method: o.method, caPin: o.caPin, rejoin: o.rejoin })
    .map(([k, v]) => `${k}=${shellQuote(v)}`)
    .join(" ");
  const params: Record<string, string[]> = {
    token: [o.token],
    scriptName: [o.scriptName],
    proxyAddr: [o.proxyAddr],
    env: [env],
  };
  if (o.mode === "agentless") params.sshdConfigPath = [o.sshdConfig];
  return params;
}

/** host:port from `https://host:port/` or `host:port`. */
export function proxyHost(addr: string): string {
  return addr.replace(/^https:\/\//, "").replace(/\/+$/, "");
}

/**
 * The `commands` of an AWS-RunShellScript installer run, every value shell-quoted. The installer is fetched
 * into a variable before it runs: `curl | sh` alone exits 0 when curl fails (sh reads an empty script).
 */
export function runShellScriptCommands(a: InstallerArgs): string[] {
  const env = installerEnv({
    method: a.method,
    caPin: a.caPin,
    sshdConfig: a.mode === "agentless" ? a.sshdConfig : undefined,
    rejoin: a.rejoin,
  });
  const url = `https://${a.proxyAddr}/webapi/scripts/installer/${a.scriptName}`;
  const pin = a.caPin ? ` --pinnedpubkey ${shellQuote(a.caPin)} -k` : "";
  return [
    ...env.map(([k, v]) => `export ${k}=${shellQuote(v)}`),
    `installer="$(curl -sS --fail${pin} ${shellQuote(url)})" && printf '%s\\n' "$installer" | sh -s ${shellQuote(a.token)}`,
  ];
}

/** SendCommand parameters for an installer run: `commands` for the stock document, else the custom document's. */
export function installerParameters(document: string, a: InstallerArgs): Record<string, string[]> {
  return document === DEFAULT_SSM_DOCUMENT ? { commands: runShellScriptCommands(a) } : documentParameters(a);
}

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
function sameContent(a: string, b: string): boolean {
  try {
    return JSON.stringify(JSON.parse(a)) === JSON.stringify(JSON.parse(b));
  } catch {
    return a === b;
  }
}

const errorName = (e: unknown) => (e as { name?: string }).name ?? "";

/** Creates the document `name` for `mode`; refuses invalid names before calling AWS. */
export async function createInstallerDocument(
  client: SSMClient,
  args: { name: string; mode: InstallMode; tags?: Record<string, string> },
): Promise<InstallerDocumentState> {
  checkName(args.name);
  const content = documentContent(args.mode);
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
 * Brings the document to `mode`'s content: a new version made the default. Nothing changes when the default
 * version already has that content. Returns the state and whether a change was made.
 */
export async function updateInstallerDocument(
  client: SSMClient,
  args: { name: string; mode: InstallMode },
): Promise<{ state: InstallerDocumentState; changed: boolean }> {
  const current = await readInstallerDocument(client, args.name);
  if (!current)
    throw new SsmDocumentError("document_not_found", `SSM document ${args.name} does not exist; create it first`);
  const content = documentContent(args.mode);
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
