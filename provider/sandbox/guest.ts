import * as fs from "fs";
import * as path from "path";
import type { TestVm } from "./sshd";
import { shellQuote } from "../util/shell";

/**
 * What a simulated VM's scripts and SSH sessions see as the machine's own files: its disk, the sshd_config and
 * host key an installer edits, and how sshd is restarted. The sandbox runs as root on the host, so every path
 * an installer names (/etc/ssh/sshd_config, /var/lib/discovery) must land here instead.
 */
export type GuestDisk = Pick<TestVm, "dir" | "dataDir" | "sshdConfig" | "hostKey" | "restartCommand">;

/** The disk of a VM without sshd: the same layout, with nothing to restart. */
export function diskWithoutSshd(dir: string): GuestDisk {
  return {
    dir,
    dataDir: path.join(dir, "var-lib-discovery"),
    sshdConfig: path.join(dir, "sshd_config"),
    hostKey: path.join(dir, "ssh_host_ed25519_key"),
    restartCommand: "true",
  };
}

/** The environment of the VM's commands: its own HOME, TMPDIR and discovery paths, plus `extra` (metadata seams). */
export function guestEnv(disk: GuestDisk, extra: [string, string][] = []): [string, string][] {
  return [
    // The guest's bin first: its `sudo` is the passwordless one the cloud's guest agent grants its users.
    ["PATH", `${path.join(disk.dir, "guest-bin")}:/usr/sbin:/usr/bin:/bin`],
    ["HOME", disk.dir],
    ["TMPDIR", path.join(disk.dir, "tmp")],
    ...extra,
    ["DISCOVERY_DATA_DIR", disk.dataDir],
    ["DISCOVERY_SSHD_CONFIG", disk.sshdConfig],
    ["DISCOVERY_HOST_KEY", disk.hostKey],
    ["DISCOVERY_SSHD_RESTART", disk.restartCommand],
  ];
}

/** Host paths to the VM's own, longest first so the host key is not caught by a shorter prefix. */
export function guestDiskMap(disk: GuestDisk): [string, string][] {
  return [
    ["/etc/ssh/ssh_host_ed25519_key", disk.hostKey],
    ["/etc/ssh/sshd_config", disk.sshdConfig],
    ["/var/lib/discovery", disk.dataDir],
  ];
}

/** Makes the VM's tmp dir and its passwordless `sudo` (which runs the command as the sandbox's user). */
export function prepareGuestDisk(disk: GuestDisk, cloud: string): void {
  fs.mkdirSync(path.join(disk.dir, "tmp"), { recursive: true });
  fs.mkdirSync(disk.dataDir, { recursive: true });
  fs.mkdirSync(path.join(disk.dir, "guest-bin"), { recursive: true });
  fs.writeFileSync(
    path.join(disk.dir, "guest-bin", "sudo"),
    `#!/bin/sh\n# sandbox ${cloud} guest: passwordless sudo\nwhile [ "$1" = -n ] || [ "$1" = -E ]; do shift; done\nexec "$@"\n`,
    { mode: 0o755 },
  );
}

const sedPattern = (v: string) => v.replace(/[\\|.*^$[\]]/g, "\\$&");
const sedReplacement = (v: string) => v.replace(/[\\|&]/g, "\\$&");

/**
 * The session wrapper sshd's ForceCommand runs (written to DIR/guest-shell): the VM's environment, host paths in
 * the command and in its stdin mapped to the VM's own.
 */
export function writeGuestShell(disk: GuestDisk, extraEnv: [string, string][], cloud: string): string {
  const sed = guestDiskMap(disk)
    .map(([from, to]) => `-e ${shellQuote(`s|${sedPattern(from)}|${sedReplacement(to)}|g`)}`)
    .join(" ");
  const text = [
    "#!/bin/sh",
    `# Written by the discovery sandbox: every SSH session of this simulated ${cloud} VM runs through here.`,
    ...guestEnv(disk, extraEnv).map(([k, v]) => `export ${k}=${shellQuote(v)}`),
    'cd "$HOME" || exit 1',
    'if [ -z "$SSH_ORIGINAL_COMMAND" ]; then exec /bin/sh -i; fi',
    `cmd=$(printf '%s\\n' "$SSH_ORIGINAL_COMMAND" | sed ${sed})`,
    // The session's input too: an SSH installer sends its script on stdin (`sudo -n sh -s`), and that script
    // names /etc/ssh/sshd_config outright, which on this host is the host's own.
    `sed -u ${sed} | /bin/sh -c "$cmd"`,
    "",
  ].join("\n");
  const shell = path.join(disk.dir, "guest-shell");
  fs.writeFileSync(shell, text, { mode: 0o755 });
  return shell;
}

/** sshd reads AuthorizedKeysFile per connection but its config only at start or SIGHUP. */
export async function reloadSshd(vm: TestVm): Promise<void> {
  const pidFile = path.join(vm.dir, "sshd.pid");
  const deadline = Date.now() + 10_000;
  while (!fs.existsSync(pidFile)) {
    if (Date.now() > deadline) throw new Error(`sshd wrote no ${pidFile}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  process.kill(Number(fs.readFileSync(pidFile, "utf8").trim()), "SIGHUP");
  await new Promise((r) => setTimeout(r, 200));
  await vm.ready();
}
