/**
 * The files `discovery join` touches, checked before the join: a join is used once, so a path that cannot be
 * written must fail before anything is sent. The sshd_config is installed only once `sshd -t` accepts it, by an
 * atomic rename that keeps its mode and owner.
 */
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { editSshdConfig, SshdConfigError } from "../ssh";
import { makePrivateDir } from "../runtime/file-modes";

/** A path `discovery join` cannot use; the message starts with the option to fix. */
export class JoinPathError extends Error {
  /** Builds the error: `option` is the command-line option at fault, e.g. `--data-dir`. */
  constructor(
    public readonly option: string,
    detail: string,
  ) {
    super(`${option}: ${detail}; nothing was sent to the runtime, the join is still unused`);
    this.name = "JoinPathError";
  }
}

/** Where a join writes, resolved and checked. */
export interface JoinFiles {
  dataDir: string;
  /** The host public key to certify (one OpenSSH line, without a comment). */
  hostPublicKey: string;
  hostKey: string;
  cert: string;
  userCa: string;
  knownHosts: string;
  node: string;
  /** The sshd_config to edit (its real path, through symlinks). */
  sshdConfig?: string;
}

function errorText(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}

/** Makes `dir` (0700) unless it exists, and checks it is a directory this process can write. */
function writableDir(option: string, dir: string): void {
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory())
    throw new JoinPathError(option, `${dir} is not a directory`);
  try {
    makePrivateDir(dir);
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (err) {
    throw new JoinPathError(option, `cannot create or write the directory ${dir} (${errorText(err)})`);
  }
}

/** `path` is a regular file this process can read (and write, when `write`). */
function usableFile(option: string, file: string, write = false): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (err) {
    throw new JoinPathError(option, `cannot read ${file} (${errorText(err)})`);
  }
  if (!stat.isFile()) throw new JoinPathError(option, `${file} is not a regular file`);
  try {
    fs.accessSync(file, fs.constants.R_OK | (write ? fs.constants.W_OK : 0));
  } catch (err) {
    throw new JoinPathError(option, `cannot ${write ? "write" : "read"} ${file} (${errorText(err)})`);
  }
}

/** The sshd binary that checks configs: on PATH, else where distributions install it. */
export function findSshd(): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(path.delimiter), "/usr/sbin", "/usr/local/sbin", "/sbin"];
  for (const dir of dirs.filter(Boolean)) {
    const file = path.join(dir, "sshd");
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Runs `sshd -t -f file`; the error text when sshd refuses it. */
function sshdRefuses(sshd: string, file: string): string | undefined {
  const r = spawnSync(sshd, ["-t", "-f", file], { encoding: "utf8", timeout: 30_000 });
  if (r.status === 0) return undefined;
  // sshd also warns about the host certificate that the join has yet to write; the refusal is the last line.
  return (r.stderr || r.error?.message || `exit ${r.status}`).trim().split("\n").slice(-3).join(" | ");
}

/** The config with the certificate directives, or the reason it cannot be edited (an unusable path). */
function edited(files: JoinFiles, text: string): string {
  try {
    return editSshdConfig(text, {
      hostKeyPath: files.hostKey,
      hostCertificatePath: files.cert,
      trustedUserCaKeysPath: files.userCa,
    });
  } catch (err) {
    if (err instanceof SshdConfigError) throw new JoinPathError("--openssh-config", err.message);
    throw err;
  }
}

/**
 * Writes `text` beside `file` with its mode and owner, has `sshd -t` check it there, and returns the temporary
 * file; the caller renames it into place or removes it. Throws the refusal, leaving nothing behind.
 */
function stageSshdConfig(file: string, text: string, sshd: string): string {
  const stat = fs.statSync(file);
  const tmp = `${file}.discovery.tmp`;
  fs.rmSync(tmp, { force: true });
  const fd = fs.openSync(tmp, "wx", 0o600);
  try {
    fs.writeFileSync(fd, text);
    // The installed file must read as the old one did: same owner, same mode (a 0600 config stays 0600).
    if (process.getuid?.() === 0) fs.fchownSync(fd, stat.uid, stat.gid);
    fs.fchmodSync(fd, stat.mode & 0o7777);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  } finally {
    fs.closeSync(fd);
  }
  const refusal = sshdRefuses(sshd, tmp);
  if (refusal !== undefined) {
    fs.rmSync(tmp, { force: true });
    throw new Error(`the edited ${file} does not pass "sshd -t" (${refusal}); ${file} is unchanged`);
  }
  return tmp;
}

/** The host key's public half, making the key pair first when there is none. */
function ensureHostKey(file: string): string {
  try {
    if (!fs.existsSync(file)) execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", file]);
    if (!fs.existsSync(file + ".pub"))
      fs.writeFileSync(file + ".pub", execFileSync("ssh-keygen", ["-y", "-f", file]), { mode: 0o644 });
  } catch (err) {
    throw new JoinPathError("--host-key", `cannot make or read the key pair ${file}: ${(err as Error).message}`);
  }
  return fs
    .readFileSync(file + ".pub", "utf8")
    .trim()
    .split(/\s+/)
    .slice(0, 2)
    .join(" ");
}

/**
 * Resolves and checks every path of a join before it is made: the data dir (made 0700), the host key (made when
 * missing), the CA certificate, and the sshd_config, whose edited form must already pass `sshd -t`.
 */
export function checkJoinFiles(o: {
  dataDir: string;
  hostKey?: string;
  caCert?: string;
  opensshConfig?: string;
}): JoinFiles {
  const dataDir = path.resolve(o.dataDir);
  writableDir("--data-dir", dataDir);
  const hostKey = path.resolve(
    o.hostKey ?? (o.opensshConfig ? "/etc/ssh/ssh_host_ed25519_key" : path.join(dataDir, "host_key")),
  );
  writableDir("--host-key", path.dirname(hostKey));
  if (fs.existsSync(hostKey)) usableFile("--host-key", hostKey);
  const cert = `${hostKey}-cert.pub`;
  if (fs.existsSync(cert) && !fs.statSync(cert).isFile())
    throw new JoinPathError("--host-key", `${cert} (where the certificate goes) is not a regular file`);
  if (o.caCert) usableFile("--ca-cert", path.resolve(o.caCert));
  const files: JoinFiles = {
    dataDir,
    hostPublicKey: ensureHostKey(hostKey),
    hostKey,
    cert,
    userCa: path.join(dataDir, "user_ca.pub"),
    knownHosts: path.join(dataDir, "known_hosts"),
    node: path.join(dataDir, "node"),
  };
  if (!o.opensshConfig) return files;
  let real: string;
  try {
    real = fs.realpathSync(o.opensshConfig);
  } catch (err) {
    throw new JoinPathError("--openssh-config", `cannot read ${o.opensshConfig} (${errorText(err)})`);
  }
  usableFile("--openssh-config", real, true);
  writableDir("--openssh-config", path.dirname(real));
  const sshd = findSshd();
  if (!sshd)
    throw new JoinPathError(
      "--openssh-config",
      "sshd is not installed (not on PATH nor in /usr/sbin): the edited config must pass `sshd -t` before it is installed",
    );
  files.sshdConfig = real;
  try {
    fs.rmSync(stageSshdConfig(real, edited(files, fs.readFileSync(real, "utf8")), sshd));
  } catch (err) {
    if (err instanceof JoinPathError) throw err;
    throw new JoinPathError("--openssh-config", (err as Error).message);
  }
  return files;
}

/**
 * Points the sshd_config at the new certificate and CA keys: checked with `sshd -t`, then renamed into place with
 * its mode and owner. Returns false when it already said all that (nothing written).
 */
export function installSshdConfig(files: JoinFiles): boolean {
  const file = files.sshdConfig!;
  const before = fs.readFileSync(file, "utf8");
  const after = edited(files, before);
  if (after === before) return false;
  const sshd = findSshd();
  if (!sshd) throw new Error(`sshd is no longer installed; ${file} is unchanged`);
  fs.renameSync(stageSshdConfig(file, after, sshd), file);
  return true;
}
