import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { freePort } from "./moto";

/** A simulated VM's disk and its real OpenSSH server on a loopback port. */
export interface TestVm {
  dir: string;
  dataDir: string;
  hostKey: string;
  sshdConfig: string;
  sshPort: number;
  /** Sends SIGHUP to sshd (it re-reads its config) - what the installer's restart does here. */
  restartCommand: string;
  /** Waits until sshd accepts TCP connections. */
  ready(): Promise<void>;
  stop(): Promise<void>;
}

/** sshd_config shaped like Debian's: an Include first, a Match block last. */
export function baseSshdConfig(dir: string, port: number): string {
  return [
    `Include ${dir}/sshd_config.d/*.conf`,
    "",
    `Port ${port}`,
    "ListenAddress 127.0.0.1",
    `HostKey ${dir}/ssh_host_ed25519_key`,
    `PidFile ${dir}/sshd.pid`,
    "UsePAM no",
    "StrictModes no",
    "AuthorizedKeysFile none",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "",
    "Match User nobody",
    "    X11Forwarding no",
    "",
  ].join("\n");
}

async function waitForPort(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`sshd did not listen on ${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Where {@link startVm} puts the VM. */
export interface StartVmOptions {
  /** The VM's disk; made if missing and kept on stop (its owner decides). Default: a temp dir removed on stop. */
  dir?: string;
}

/** Starts a VM: a host key, Debian-like sshd_config, and `sshd -D` on a free port. */
export async function startVm(opts: StartVmOptions = {}): Promise<TestVm> {
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "pd-vm-"));
  fs.mkdirSync(path.join(dir, "sshd_config.d"), { recursive: true });
  fs.mkdirSync("/run/sshd", { recursive: true });
  const hostKey = path.join(dir, "ssh_host_ed25519_key");
  spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
  const sshPort = await freePort();
  const sshdConfig = path.join(dir, "sshd_config");
  fs.writeFileSync(sshdConfig, baseSshdConfig(dir, sshPort));
  const sshd: ChildProcess = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", sshdConfig], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  sshd.stderr?.on("data", (d) => (log = (log + d).slice(-8000)));
  const ready = () => waitForPort(sshPort).catch((e) => Promise.reject(new Error(`${e.message}: ${log}`)));
  await ready();
  return {
    dir,
    dataDir: path.join(dir, "var-lib-discovery"),
    hostKey,
    sshdConfig,
    sshPort,
    restartCommand: `kill -HUP $(cat ${dir}/sshd.pid)`,
    ready,
    stop: async () => {
      if (sshd.exitCode === null) {
        const exited = new Promise((r) => sshd.once("exit", r));
        sshd.kill("SIGTERM");
        await exited;
      }
      if (!opts.dir) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
