import * as fs from "fs";
import * as path from "path";
import { prepareGuestDisk, reloadSshd, writeGuestShell } from "./guest";
import { startVm, TestVm } from "./sshd";

/**
 * The guest side of a sandbox GCP VM: a real sshd (from {@link startVm}) that behaves as Google's guest agent
 * makes it behave. Its authorized keys follow the instance's `ssh-keys` metadata (expired `google-ssh` keys
 * skipped, none at all with OS Login), and every session runs through a guest shell that gives the command the
 * VM's own metadata server and disk, so an installer run over SSH never touches the host's /etc/ssh or
 * /var/lib/discovery.
 */
export interface GcpGuest {
  vm: TestVm;
  /** Guest attributes under `hostkeys/`: key type to `<type> <base64>`, as the guest agent publishes them. */
  hostKeys: Record<string, string>;
  /** Rewrites the authorized keys from the instance's metadata items. */
  syncKeys(items: { key: string; value?: string }[]): void;
  stop(): Promise<void>;
}

/** One usable `ssh-keys` line: `user:type base64 [comment]`. */
export interface MetadataSshKey {
  user: string;
  key: string;
}

const KEY_LINE = /^([a-z_][a-z0-9._-]{0,31}):(\S+ [A-Za-z0-9+/=]+)(?: (.*))?$/i;

/**
 * The keys of an `ssh-keys` value the guest agent would install at `now`: well-formed lines whose `google-ssh`
 * comment, if any, has an `expireOn` in the future (an unreadable expiry counts as expired, as the agent does).
 */
export function activeSshKeys(value: string, now = new Date()): MetadataSshKey[] {
  const keys: MetadataSshKey[] = [];
  for (const line of value.split("\n")) {
    const m = KEY_LINE.exec(line.trim());
    if (!m) continue;
    const comment = m[3] ?? "";
    if (comment.startsWith("google-ssh ")) {
      let expireOn: unknown;
      try {
        expireOn = (JSON.parse(comment.slice("google-ssh ".length)) as { expireOn?: unknown }).expireOn;
      } catch {
        continue;
      }
      const at = typeof expireOn === "string" ? Date.parse(expireOn) : NaN;
      if (!(at > now.getTime())) continue;
    }
    keys.push({ user: m[1], key: m[2] });
  }
  return keys;
}

/** `enable-oslogin` as GCE reads it: TRUE, true or 1 in the instance metadata. */
export function osLoginEnabled(items: { key: string; value?: string }[]): boolean {
  const v = items.find((i) => i.key === "enable-oslogin")?.value ?? "";
  return /^(true|1)$/i.test(v.trim());
}

/** Starts a VM's guest in `dir`: sshd on a loopback port, keys from metadata, GCE_METADATA_HOST for sessions. */
export async function startGcpGuest(dir: string, metadataHost: string): Promise<GcpGuest> {
  const vm = await startVm({ dir });
  const keysDir = path.join(dir, "authorized_keys");
  fs.mkdirSync(keysDir, { recursive: true });
  // The guest agent's users have passwordless sudo; the sandbox's sshd logs in the user running it.
  prepareGuestDisk(vm, "GCP");
  const shell = writeGuestShell(vm, [["GCE_METADATA_HOST", metadataHost]], "GCP");
  // A drop-in, as the guest agent's own sshd_config changes are: the Include comes first, so it wins over the
  // base config's `AuthorizedKeysFile none`, and an installer's edits to sshd_config leave it in place.
  fs.writeFileSync(
    path.join(dir, "sshd_config.d", "50-google-guest.conf"),
    `AuthorizedKeysFile ${keysDir}/%u\nForceCommand ${shell}\n`,
  );
  await reloadSshd(vm);
  const pub = fs.readFileSync(`${vm.hostKey}.pub`, "utf8").trim().split(/\s+/);
  return {
    vm,
    hostKeys: { [pub[0]]: `${pub[0]} ${pub[1]}` },
    syncKeys(items) {
      const byUser = new Map<string, string[]>();
      if (!osLoginEnabled(items))
        for (const k of activeSshKeys(items.find((i) => i.key === "ssh-keys")?.value ?? ""))
          byUser.set(k.user, [...(byUser.get(k.user) ?? []), k.key]);
      for (const f of fs.readdirSync(keysDir)) if (!byUser.has(f)) fs.rmSync(path.join(keysDir, f), { force: true });
      for (const [user, keys] of byUser) fs.writeFileSync(path.join(keysDir, user), keys.join("\n") + "\n");
    },
    stop: () => vm.stop(),
  };
}
