/**
 * What an installer run sends through SSM: the custom Command document's content and parameters, and the
 * commands for the stock AWS-RunShellScript document.
 */
import { DEFAULT_SSM_DOCUMENT } from "../../model";

/** agent: install the discovery agent; agentless: configure the instance's own OpenSSH server. */
export type InstallMode = "agent" | "agentless";

/** The document's steps, in order; their names are what GetCommandInvocation's PluginName takes. */
export const INSTALLER_STEPS = ["download", "install"] as const;

/** Where the download step puts the installer: root-owned, unlike a guessable name in /tmp. */
export const INSTALLER_PATH = "/var/lib/discovery/ssm-installer.sh";

import { shellQuote } from "../../util/shell";
export { shellQuote };

// ssm:SendCommand scoped to the document must bound what a caller can run. SSM pastes parameters into the shell
// script as text, so each one is written only inside single quotes, and no pattern admits a quote, a newline,
// `$`, a backquote, `;`, a space or `=`: no value can leave its quotes, and none names a variable.
const PATTERNS = {
  token: "^[A-Za-z0-9][A-Za-z0-9._:@-]{0,252}$",
  scriptName: "^[a-z0-9][a-z0-9._-]{0,62}$",
  proxyAddr: "^([A-Za-z0-9][A-Za-z0-9.-]{0,252}|\\[[0-9a-fA-F:.]{2,45}\\])(:[0-9]{1,5})?$",
  joinMethod: "^(iam|ec2|token)$",
  caPin: "^(sha256//[A-Za-z0-9+/]{43}=)?$",
  rejoin: "^(true|false)$",
  // No path component starts with a dot: no `..` out of the directory an operator meant.
  sshdConfigPath: "^(/[A-Za-z0-9_][A-Za-z0-9._-]{0,127}){1,16}$",
} as const;

/** A parameter of the installer document. */
export type InstallerParameter = keyof typeof PATTERNS;

/** The allowedPattern of each document parameter (a document that fixes proxyAddr or caPin narrows those). */
export const PARAMETER_PATTERNS: Readonly<Record<InstallerParameter, RegExp>> = Object.fromEntries(
  Object.entries(PATTERNS).map(([k, v]) => [k, new RegExp(v)]),
) as Record<InstallerParameter, RegExp>;

/**
 * Values a document version fixes: SendCommand then accepts only these (allowedPattern is the value itself), so
 * a caller can make instances run only what this runtime serves.
 */
export interface FixedRuntime {
  /** host:port of the runtime as instances reach it. */
  proxyAddr?: string;
  /** `sha256//<base64>` pin of the runtime's TLS key; the download and the installer use it. */
  caPin?: string;
}

const exactly = (value: string) => `^${value.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}$`;

/**
 * The document (schema 2.2, JSON) for `mode`: a download step (curl, pinned to caPin when there is one, which
 * aws:downloadContent cannot do) and an install step that runs the installer with its settings as environment
 * variables of that one process. `fixed` pins proxyAddr and caPin to one runtime; Teleport's names are kept.
 */
export function documentContent(mode: InstallMode, runtime: FixedRuntime = {}): string {
  const fixed = { proxyAddr: runtime.proxyAddr && proxyHost(runtime.proxyAddr), caPin: runtime.caPin };
  const param = (description: string, pattern: string, dflt?: string) => ({
    type: "String",
    description,
    ...(dflt !== undefined && { default: dflt }),
    allowedPattern: pattern,
  });
  const parameters: Record<string, Record<string, string>> = {
    token: param("(Required) Name of the join token the instance joins with.", PATTERNS.token),
    scriptName: param(
      "Installer to run, as served at https://<proxyAddr>/webapi/scripts/installer/<name>.",
      PATTERNS.scriptName,
      mode === "agentless" ? "default-agentless-installer" : "default-installer",
    ),
    proxyAddr: fixed.proxyAddr
      ? param("host:port of the discovery runtime (fixed by this document).", exactly(fixed.proxyAddr), fixed.proxyAddr)
      : param("(Required) host:port at which the instance reaches the discovery runtime.", PATTERNS.proxyAddr),
    joinMethod: param("Join method: iam, ec2 or token.", PATTERNS.joinMethod, "iam"),
    caPin: fixed.caPin
      ? param("Pin of the runtime's TLS key (fixed by this document).", exactly(fixed.caPin), fixed.caPin)
      : param("sha256//<base64> pin of the runtime's TLS key; empty: the system's CAs.", PATTERNS.caPin, ""),
    rejoin: param(
      "true: join again although already joined (a CA rotation, or a reinstall an admin forced).",
      PATTERNS.rejoin,
      "false",
    ),
  };
  if (mode === "agentless")
    parameters.sshdConfigPath = param(
      "The sshd_config the installer points at the discovery certificate authority.",
      PATTERNS.sshdConfigPath,
      "/etc/ssh/sshd_config",
    );
  const sshd = mode === "agentless" ? " DISCOVERY_SSHD_CONFIG='{{ sshdConfigPath }}'" : "";
  const dir = INSTALLER_PATH.slice(0, INSTALLER_PATH.lastIndexOf("/"));
  const linux = { StringEquals: ["platformType", "Linux"] };
  const doc = {
    schemaVersion: "2.2",
    description: `pulumi-discovery ${mode} installer: downloads the installer from the discovery runtime and runs it.`,
    parameters,
    mainSteps: [
      {
        action: "aws:runShellScript",
        name: INSTALLER_STEPS[0],
        precondition: linux,
        // Without it the install step would still run after a failed download.
        onFailure: "exit",
        inputs: {
          timeoutSeconds: "300",
          runCommand: [
            "set -eu",
            "umask 077",
            "url='https://{{ proxyAddr }}/webapi/scripts/installer/{{ scriptName }}'",
            "pin='{{ caPin }}'",
            `mkdir -p ${dir}`,
            // A failed download leaves no installer behind, old or partial, for anything to run.
            `rm -f ${INSTALLER_PATH} ${INSTALLER_PATH}.part`,
            'if [ -n "$pin" ]; then set -- -k --pinnedpubkey "$pin"; else set --; fi',
            `curl -sS --fail --max-time 120 "$@" -o ${INSTALLER_PATH}.part "$url"`,
            `mv ${INSTALLER_PATH}.part ${INSTALLER_PATH}`,
          ],
        },
      },
      {
        action: "aws:runShellScript",
        name: INSTALLER_STEPS[1],
        precondition: linux,
        inputs: {
          // The installer waits up to 5 minutes for a concurrent run's lock; leave room for that and the join.
          timeoutSeconds: "900",
          runCommand: [
            "DISCOVERY_TOKEN='{{ token }}' DISCOVERY_JOIN_METHOD='{{ joinMethod }}' DISCOVERY_CA_PIN='{{ caPin }}'" +
              ` DISCOVERY_REJOIN='{{ rejoin }}'${sshd} exec /bin/sh ${INSTALLER_PATH}`,
          ],
        },
      },
    ],
  };
  return JSON.stringify(doc, null, 2);
}

/** One installer run as a SendCommand asks for it, whichever document carries it. */
export interface InstallerArgs {
  mode: InstallMode;
  /** Name of the join token; it reaches the installer in DISCOVERY_TOKEN, never as an argument. */
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
  /** Join again although already joined: a CA rotation, or a reinstall an admin forced. */
  rejoin?: boolean;
}

/** SendCommand parameters for the custom document. */
export function documentParameters(o: InstallerArgs): Record<string, string[]> {
  const params: Record<string, string[]> = {
    token: [o.token],
    scriptName: [o.scriptName],
    proxyAddr: [o.proxyAddr],
    joinMethod: [o.method],
    caPin: [o.caPin ?? ""],
  };
  if (o.mode === "agentless") params.sshdConfigPath = [o.sshdConfig];
  // Sent only when set, so a document made before the parameter existed still takes ordinary runs.
  if (o.rejoin) params.rejoin = ["true"];
  return params;
}

/** Why SSM would refuse these parameters of the installer document (the first one its patterns refuse), if it would. */
export function refusedParameter(params: Record<string, string[]>): string | undefined {
  for (const [name, values] of Object.entries(params)) {
    const pattern = PARAMETER_PATTERNS[name as InstallerParameter];
    const bad = pattern && values.find((v) => !pattern.test(v));
    if (bad !== undefined)
      return `SSM document parameter ${name} ${JSON.stringify(bad)} does not match its allowedPattern ${pattern.source}`;
  }
  return undefined;
}

/** host:port from `https://host:port/` or `host:port`. */
export function proxyHost(addr: string): string {
  return addr.replace(/^https:\/\//, "").replace(/\/+$/, "");
}

/**
 * The `commands` of an AWS-RunShellScript installer run, every value shell-quoted. The installer is fetched
 * into a variable before it runs: `curl | sh` alone exits 0 when curl fails (sh reads an empty script). The
 * token reaches the installer's sh in its environment only, never as an argument `ps` would show.
 */
export function runShellScriptCommands(a: InstallerArgs): string[] {
  const env: [string, string][] = [["DISCOVERY_JOIN_METHOD", a.method]];
  if (a.caPin) env.push(["DISCOVERY_CA_PIN", a.caPin]);
  if (a.mode === "agentless") env.push(["DISCOVERY_SSHD_CONFIG", a.sshdConfig]);
  if (a.rejoin) env.push(["DISCOVERY_REJOIN", "true"]);
  const url = `https://${a.proxyAddr}/webapi/scripts/installer/${a.scriptName}`;
  const pin = a.caPin ? ` --pinnedpubkey ${shellQuote(a.caPin)} -k` : "";
  return [
    ...env.map(([k, v]) => `export ${k}=${shellQuote(v)}`),
    `installer="$(curl -sS --fail${pin} ${shellQuote(url)})" && ` +
      `printf '%s\\n' "$installer" | DISCOVERY_TOKEN=${shellQuote(a.token)} sh`,
  ];
}

/** A matcher's install block, as the model validated it (every cloud's has this shape). */
export interface MatcherInstall {
  mode: InstallMode;
  join_params: { token_name: string; method: string };
  script_name: string;
  sshd_config: string;
  proxy_addr?: string;
}

/** The installer run a matcher's install block asks for; its proxy_addr wins over the runtime's address. */
export function matcherInstallerArgs(
  install: MatcherInstall,
  endpoint: { proxyAddr: string; caPin?: string },
): InstallerArgs {
  return {
    mode: install.mode,
    token: install.join_params.token_name,
    scriptName: install.script_name,
    proxyAddr: proxyHost(install.proxy_addr ?? endpoint.proxyAddr),
    method: install.join_params.method,
    caPin: endpoint.caPin,
    sshdConfig: install.sshd_config,
  };
}

/** SendCommand parameters for an installer run: `commands` for the stock document, else the custom document's. */
export function installerParameters(document: string, a: InstallerArgs): Record<string, string[]> {
  return document === DEFAULT_SSM_DOCUMENT ? { commands: runShellScriptCommands(a) } : documentParameters(a);
}
