/**
 * The runtime's secrets on disk (SSH CA keys in the store, the admin token, the TLS key) are for its own user only:
 * directories it makes are 0700 and files 0600 whatever the umask, and it refuses to start on a secret file that
 * other users can open, naming the `chmod` that fixes it (as ssh refuses an unprotected private key).
 */
import * as fs from "fs";
import * as path from "path";
import type { RuntimeConfig } from "./config";

/** Thrown when a file holding a secret is open to group or other users; the message lists each file and its fix. */
export class UnprotectedFileError extends Error {
  /** Builds the error from the offending files, each with what it holds and its mode. */
  constructor(public readonly files: { file: string; holds: string; mode: number }[]) {
    super(
      "refusing to start: files holding secrets are open to other users\n" +
        files.map((f) => `  ${f.file} (${f.holds}) has mode ${octal(f.mode)}; fix: chmod 600 ${f.file}`).join("\n"),
    );
    this.name = "UnprotectedFileError";
  }
}

function octal(mode: number): string {
  return "0" + (mode & 0o777).toString(8).padStart(3, "0");
}

/** Creates `dir` and any missing parents with mode 0700; a directory that already exists keeps its mode. */
export function makePrivateDir(dir: string): void {
  const target = path.resolve(dir);
  const first = fs.mkdirSync(target, { recursive: true, mode: 0o700 });
  if (!first) return;
  // mkdir's mode passes through the umask; chmod makes each new directory exactly 0700 (never 0500 under umask 0277).
  for (let d = target; ; d = path.dirname(d)) {
    fs.chmodSync(d, 0o700);
    if (d === first || d === path.dirname(d)) break;
  }
}

/**
 * Creates `file` empty with mode 0600 unless it exists (its parent made private first). SQLite then gives the
 * database's -wal and -shm files the database's own mode, so all three stay private.
 */
export function createPrivateFile(file: string): void {
  makePrivateDir(path.dirname(file));
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return;
    throw err;
  }
  try {
    fs.fchmodSync(fd, 0o600);
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes a new file with mode 0600 (exactly, whatever the umask); refuses to overwrite one that exists. */
export function writePrivateFile(file: string, content: string): void {
  makePrivateDir(path.dirname(file));
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  try {
    fs.fchmodSync(fd, 0o600);
    fs.writeFileSync(fd, content);
  } finally {
    fs.closeSync(fd);
  }
}

/** The secret-holding files of a config, each with what it holds (for the refusal message). */
export function privateFilesOf(config: RuntimeConfig): { file: string; holds: string }[] {
  const files: { file: string; holds: string }[] = [];
  if (config.storage.type === "sqlite") {
    const db = config.storage.path;
    for (const f of [db, `${db}-wal`, `${db}-shm`]) files.push({ file: f, holds: "the store, with the SSH CA keys" });
  }
  files.push({ file: config.adminTokenFile, holds: "the admin token" });
  if (config.statusPage.viewerTokenFile)
    files.push({ file: config.statusPage.viewerTokenFile, holds: "the status page viewer token" });
  if (config.caKeyFiles.host) files.push({ file: config.caKeyFiles.host, holds: "the SSH host CA key" });
  if (config.caKeyFiles.user) files.push({ file: config.caKeyFiles.user, holds: "the SSH user CA key" });
  // A configured TLS key is the operator's file (some setups share it with a group); the self-signed one is ours.
  if (!config.tls) files.push({ file: path.join(config.dataDir, "tls.key"), holds: "the TLS private key" });
  return files;
}

/** Throws UnprotectedFileError when any existing secret file of `config` has a group or other permission bit. */
export function assertPrivateFiles(config: RuntimeConfig): void {
  const open: { file: string; holds: string; mode: number }[] = [];
  for (const { file, holds } of privateFilesOf(config)) {
    let mode: number;
    try {
      mode = fs.statSync(file).mode;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") continue; // made private when first written
      throw err;
    }
    if (mode & 0o077) open.push({ file, holds, mode });
  }
  if (open.length) throw new UnprotectedFileError(open);
}
