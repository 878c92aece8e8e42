/**
 * `discovery serve` keeps its secrets to its own user: run under `umask 0` it still makes its data dir 0700 and
 * every file holding a key 0600, and it refuses to start on a store, admin token or CA key file other users can
 * read, printing the chmod that fixes it. Needs `npm run build`.
 */
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { freePort } from "../fixtures/moto";

const BIN = path.resolve(__dirname, "../../bin/discovery.js");
const mode = (file: string) => fs.statSync(file).mode & 0o777;

/** A `discovery serve` process: `outcome` settles once it listens or exits. */
interface Serve {
  proc: ChildProcess;
  outcome: Promise<{ listening: boolean; code: number | null; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

/** Writes a config into `dir` and starts `discovery serve` on it, under `umask 0` when asked. */
async function serve(
  dir: string,
  extra: Record<string, unknown> = {},
  opts: { umask0?: boolean } = {},
): Promise<Serve> {
  const port = await freePort();
  const config = path.join(dir, "runtime.yaml");
  fs.writeFileSync(
    config,
    stringify({
      version: "v1",
      cluster_name: "modes.test",
      listen_addr: `127.0.0.1:${port}`,
      public_addr: `https://127.0.0.1:${port}`,
      ...extra,
    }),
  );
  // `umask 0` as a shell sets it: every file and directory the process makes would be open to all users.
  const proc = opts.umask0
    ? spawn("sh", ["-c", 'umask 0 && exec "$0" "$@"', process.execPath, BIN, "serve", "--config", config])
    : spawn(process.execPath, [BIN, "serve", "--config", config]);
  let stdout = "";
  let stderr = "";
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  const outcome = new Promise<{ listening: boolean; code: number | null; stdout: string; stderr: string }>(
    (resolve) => {
      proc.stdout!.on("data", (d) => {
        stdout += d;
        if (stdout.includes("discovery runtime listening")) resolve({ listening: true, code: null, stdout, stderr });
      });
      proc.stderr!.on("data", (d) => (stderr += d));
      exited.then((code) => resolve({ listening: false, code, stdout, stderr }));
    },
  );
  return {
    proc,
    outcome,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      await exited;
    },
  };
}

/** Every file under `dir`. */
function filesUnder(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? filesUnder(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

describe("discovery serve: file modes", () => {
  let dir: string;
  let running: Serve | undefined;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-modes-"));
  });
  afterEach(async () => {
    await running?.stop();
    running = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("under umask 0 makes the data dir 0700 and the store, admin token and TLS key 0600", async () => {
    running = await serve(dir, {}, { umask0: true });
    const r = await running.outcome;
    expect(r).toMatchObject({ listening: true });
    const data = path.join(dir, "data");
    expect(mode(data)).toBe(0o700);
    for (const f of ["discovery.db", "discovery.db-wal", "discovery.db-shm", "admin.token", "tls.key"])
      expect([f, mode(path.join(data, f))]).toEqual([f, 0o600]);
    expect(mode(path.join(data, "tls.crt"))).toBe(0o644);
    // Whatever holds a private key (the SSH CAs live in the store) is closed to other users, and so is its directory.
    const holders = filesUnder(dir).filter((f) => fs.readFileSync(f).includes("PRIVATE KEY-----"));
    expect(holders.some((f) => fs.readFileSync(f).includes("BEGIN OPENSSH PRIVATE KEY"))).toBe(true);
    for (const f of holders) {
      expect([f, mode(f) & 0o077]).toEqual([f, 0]);
      expect(path.dirname(f)).toBe(data);
    }
    expect(r.stdout).not.toContain("PRIVATE KEY");
  });

  it("refuses to start with an admin token file other users can read, naming the chmod", async () => {
    const data = path.join(dir, "data");
    fs.mkdirSync(data, { mode: 0o700 });
    const token = path.join(data, "admin.token");
    fs.writeFileSync(token, "t".repeat(43) + "\n");
    fs.chmodSync(token, 0o644);
    running = await serve(dir);
    const r = await running.outcome;
    expect(r).toMatchObject({ listening: false, code: 1 });
    expect(r.stderr).toContain(`${token} (the admin token) has mode 0644; fix: chmod 600 ${token}`);
    // Refused before the store was opened: nothing was made.
    expect(fs.readdirSync(data)).toEqual(["admin.token"]);
    expect(mode(token)).toBe(0o644);
  });

  it("refuses a store another version left readable, and starts once the printed fix is applied", async () => {
    running = await serve(dir);
    expect(await running.outcome).toMatchObject({ listening: true });
    await running.stop();
    const db = path.join(dir, "data", "discovery.db");
    fs.chmodSync(db, 0o644);

    running = await serve(dir);
    const r = await running.outcome;
    expect(r).toMatchObject({ listening: false, code: 1 });
    const fix = /fix: (chmod 600 \S+)/.exec(r.stderr)?.[1];
    expect(fix).toBe(`chmod 600 ${db}`);
    expect(r.stderr).toContain("the store, with the SSH CA keys");
    execFileSync("sh", ["-c", fix!]);
    running = await serve(dir);
    expect(await running.outcome).toMatchObject({ listening: true });
  });

  it("refuses an SSH CA key file its group can read, before it is adopted into the store", async () => {
    const key = path.join(dir, "host_ca.key");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
    fs.chmodSync(key, 0o640);
    running = await serve(dir, { certificate_authorities: { host_key_file: "host_ca.key" } });
    const r = await running.outcome;
    expect(r).toMatchObject({ listening: false, code: 1 });
    expect(r.stderr).toContain(`${key} (the SSH host CA key) has mode 0640; fix: chmod 600 ${key}`);
    expect(fs.existsSync(path.join(dir, "data", "discovery.db"))).toBe(false);
  });
});
