/**
 * Edits an sshd_config so sshd presents a host certificate and trusts the user CA, touching only the lines it
 * wrote before: an operator's own settings and comments stay byte-for-byte.
 */
import * as path from "path";

/** The comment line that opens the block of directives this module owns. */
export const SSHD_CONFIG_MARKER = "# managed by pulumi-discovery";

/** Where sshd finds the host key, its certificate, and the user CA public keys. */
export interface SshdCertificateSettings {
  /** The host private key, e.g. `/etc/ssh/ssh_host_ed25519_key`. */
  hostKeyPath: string;
  /** The host certificate signed by the host CA, e.g. `/etc/ssh/ssh_host_ed25519_key-cert.pub`. */
  hostCertificatePath: string;
  /** A file of user CA public keys, one a line (active and, during a rotation, previous). */
  trustedUserCaKeysPath: string;
}

/** A refused edit: a stable code, the offending setting, and a message naming the fix. */
export class SshdConfigError extends Error {
  /** Builds the error; the message starts with the field so it reads well in logs. */
  constructor(
    /** Stable machine-readable code, e.g. `path_invalid`. */
    public readonly code: string,
    /** The setting at fault, e.g. `hostKeyPath`. */
    public readonly field: string,
    detail: string,
  ) {
    super(`${field}: ${detail}`);
    this.name = "SshdConfigError";
  }
}

const DIRECTIVES = [
  ["HostKey", "hostKeyPath"],
  ["HostCertificate", "hostCertificatePath"],
  ["TrustedUserCAKeys", "trustedUserCaKeysPath"],
] as const;

/** The keyword of a config line, lower-cased (sshd keywords are case-insensitive), or "" for blanks and comments. */
function keywordOf(line: string): string {
  const m = /^\s*([A-Za-z]+)(?:\s|=)/.exec(line);
  return m ? m[1].toLowerCase() : "";
}

/** Renders a path as an sshd argument; sshd runs relative paths against its cwd, and a newline would end the line. */
function renderPath(field: string, value: string): string {
  if (typeof value !== "string" || !path.posix.isAbsolute(value)) {
    throw new SshdConfigError("path_invalid", field, `must be an absolute path, got ${JSON.stringify(value)}`);
  }
  if (/["\x00-\x1f\x7f]/.test(value)) {
    throw new SshdConfigError(
      "path_invalid",
      field,
      `${JSON.stringify(value)} contains a double quote or control character, which sshd_config cannot express; ` +
        "choose another path",
    );
  }
  return /\s/.test(value) ? `"${value}"` : value;
}

/** Whether `line` is the marker, ignoring a CR and trailing blanks an editor may have left. */
function isMarker(line: string): boolean {
  return line.trimEnd() === SSHD_CONFIG_MARKER;
}

/**
 * Drops every managed block: the marker plus the directly following directives it owns, at most one of each.
 * Also returns where the first block stood, so a rewrite stays where the operator last saw it.
 */
function withoutManagedBlocks(lines: string[]): { kept: string[]; firstBlockAt: number } {
  const owned = new Set(DIRECTIVES.map(([k]) => k.toLowerCase()));
  const kept: string[] = [];
  let firstBlockAt = -1;
  for (let i = 0; i < lines.length; i++) {
    if (!isMarker(lines[i])) {
      kept.push(lines[i]);
      continue;
    }
    if (firstBlockAt < 0) firstBlockAt = kept.length;
    const seen = new Set<string>();
    while (i + 1 < lines.length) {
      const k = keywordOf(lines[i + 1]);
      // A repeated keyword is the operator's own line placed right after the block, not ours.
      if (!owned.has(k) || seen.has(k)) break;
      seen.add(k);
      i++;
    }
  }
  return { kept, firstBlockAt };
}

/**
 * Returns `text` with one managed block setting HostKey, HostCertificate and TrustedUserCAKeys; running it again
 * with the same settings returns the same text. The block stays where an earlier run put it, unless it must move
 * before the first `Match` (directives after it apply only to matching connections), `Include`, or unmanaged
 * `TrustedUserCAKeys`, because sshd keeps the first TrustedUserCAKeys it reads and ours must be the one in force.
 */
export function editSshdConfig(text: string, settings: SshdCertificateSettings): string {
  const values = DIRECTIVES.map(([keyword, field]) => `${keyword} ${renderPath(field, settings[field])}`);
  const eol = text.includes("\r\n") ? "\r\n" : "\n";
  const { kept: lines, firstBlockAt } = withoutManagedBlocks(text.match(/[^\n]*\n|[^\n]+$/g) ?? []);

  let at = lines.findIndex((l) => ["match", "include", "trustedusercakeys"].includes(keywordOf(l)));
  // Rewrite in place when the old block already sits early enough; move it only when it would lose to a later line.
  if (firstBlockAt >= 0 && (at < 0 || firstBlockAt < at)) at = firstBlockAt;
  if (at < 0) at = lines.length;
  // Appending after a last line without a newline would glue our marker onto it.
  if (at === lines.length && at > 0 && !lines[at - 1].endsWith("\n")) lines[at - 1] += eol;
  lines.splice(at, 0, ...[SSHD_CONFIG_MARKER, ...values].map((l) => l + eol));
  return lines.join("");
}
