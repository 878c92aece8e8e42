/**
 * One command over SSH with the `ssh2` library, verifying the server's host key strictly against the keys the VM
 * published in its guest attributes: no published key matches, no connection. The script goes on stdin, so
 * nothing it holds is on any argv on either side.
 */
import { Client, type ServerHostKeyAlgorithm } from "ssh2";
import type { HostKey } from "./ssh-key";

/** Why a run did not get as far as an exit code. */
export type SshFailureKind = "host-key-mismatch" | "unreachable" | "auth" | "timeout";

/** An SSH failure before the command finished, with its kind. */
export class SshFailure extends Error {
  /** What kind of failure, to choose the outcome's class. */
  readonly kind: SshFailureKind;
  /** A failure of `kind` with a message. */
  constructor(kind: SshFailureKind, message: string) {
    super(message);
    this.name = "SshFailure";
    this.kind = kind;
  }
}

/** What ran and how it ended. */
export interface SshResult {
  /** Exit code; null when the command died of a signal. */
  code: number | null;
  signal?: string;
  stdout: string;
  stderr: string;
}

/** One SSH run. */
export interface SshRunRequest {
  host: string;
  port: number;
  user: string;
  /** OpenSSH private key. */
  privateKey: string;
  /** The only host keys accepted. */
  hostKeys: HostKey[];
  /** The command the server's shell runs, e.g. `sudo -n sh -s`. */
  command: string;
  /** Written to the command's stdin, then closed. */
  stdin: string;
  /** Handshake and authentication timeout; default 20 s. */
  readyTimeoutMs?: number;
  /** How long the command may run; default 10 minutes. */
  commandTimeoutMs?: number;
}

// Host key algorithms ssh2 accepts for each key type the guest agent publishes.
const ALGORITHMS: Record<string, ServerHostKeyAlgorithm[]> = {
  "ssh-ed25519": ["ssh-ed25519"],
  "ecdsa-sha2-nistp256": ["ecdsa-sha2-nistp256"],
  "ecdsa-sha2-nistp384": ["ecdsa-sha2-nistp384"],
  "ecdsa-sha2-nistp521": ["ecdsa-sha2-nistp521"],
  "ssh-rsa": ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
};

/** The bytes kept of each stream: enough for a tail, bounded so a chatty installer cannot exhaust memory. */
const KEEP = 64 * 1024;
const append = (acc: string, chunk: Buffer) => (acc + chunk.toString("utf8")).slice(-KEEP);

/** Runs `command` over SSH; resolves with its exit, rejects with an {@link SshFailure} otherwise. */
export function runOverSsh(req: SshRunRequest): Promise<SshResult> {
  // Offer only the algorithms of the published keys, so the server cannot pick a key type we cannot check.
  const serverHostKey = [...new Set(req.hostKeys.flatMap((k) => ALGORITHMS[k.type] ?? []))];
  return new Promise((resolve, reject) => {
    const conn = new Client();
    let mismatch = false;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (err: Error | undefined, result?: SshResult) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      conn.end();
      if (err) reject(err);
      else resolve(result as SshResult);
    };
    conn.on("error", (err: Error & { level?: string; code?: string }) => {
      if (mismatch)
        return finish(new SshFailure("host-key-mismatch", "the VM's SSH host key is not among its guest attributes"));
      if (err.level === "client-authentication")
        return finish(new SshFailure("auth", `the VM refused the ephemeral key: ${err.message}`));
      if (err.level === "client-timeout")
        return finish(new SshFailure("unreachable", `no SSH handshake within the timeout: ${err.message}`));
      finish(new SshFailure("unreachable", `${err.code ? `${err.code}: ` : ""}${err.message}`));
    });
    conn.on("close", () => finish(new SshFailure("unreachable", "the connection closed before the command ended")));
    conn.on("ready", () => {
      conn.exec(req.command, (err, stream) => {
        if (err) return finish(new SshFailure("unreachable", `could not start the command: ${err.message}`));
        let stdout = "";
        let stderr = "";
        timer = setTimeout(
          () => finish(new SshFailure("timeout", `the command ran longer than ${req.commandTimeoutMs ?? 600_000} ms`)),
          req.commandTimeoutMs ?? 600_000,
        );
        stream.on("data", (d: Buffer) => (stdout = append(stdout, d)));
        stream.stderr.on("data", (d: Buffer) => (stderr = append(stderr, d)));
        stream.on("close", (code: number | null, signal?: string) =>
          finish(undefined, { code: code ?? null, ...(signal ? { signal } : {}), stdout, stderr }),
        );
        stream.end(req.stdin);
      });
    });
    conn.connect({
      host: req.host,
      port: req.port,
      username: req.user,
      privateKey: req.privateKey,
      readyTimeout: req.readyTimeoutMs ?? 20_000,
      algorithms: { serverHostKey },
      hostVerifier: (key: Buffer) => {
        const ok = req.hostKeys.some((k) => k.blob.equals(key));
        if (!ok) mismatch = true;
        return ok;
      },
    });
  });
}
