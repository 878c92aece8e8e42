/**
 * The ephemeral SSH key of one GCE install (RFD 113, Teleport's gcp installer): a fresh ed25519 pair, its line in
 * the instance's `ssh-keys` metadata (with an expiry the guest agent honours should removal fail), adding and
 * removing that exact line under the metadata fingerprint, and the VM's host keys from its guest attributes.
 */
import { newEd25519KeyPair } from "../../ssh/keys";
import type { GceInstance, GceMetadata, GceOperation, GcpClients, InstancesApi } from "./clients";
import { gcpErrorCode, gcpErrorMessage } from "./clients";

/** How long the guest agent keeps the key if we never get to remove it. */
export const EPHEMERAL_KEY_TTL_MS = 10 * 60_000;

/** A key pair made for one VM and one install. */
export interface EphemeralKey {
  /** OpenSSH private key, for ssh2. */
  privateKey: string;
  /** `ssh-ed25519 <base64>`. */
  publicKey: string;
  /** The exact `ssh-keys` line added, and later removed. */
  metadataLine: string;
}

/** A new ed25519 pair and its `ssh-keys` line: `<user>:ssh-ed25519 <b64> google-ssh {"userName":...,"expireOn":...}`. */
export function ephemeralKey(user: string, now: Date, ttlMs = EPHEMERAL_KEY_TTL_MS): EphemeralKey {
  const { privateKey, publicKey } = newEd25519KeyPair();
  // Google's format: the expiry is RFC 3339 without fractional seconds, e.g. 2026-01-02T03:14:05+0000 or ...Z.
  const expireOn = new Date(now.getTime() + ttlMs).toISOString().replace(/\.\d{3}Z$/, "Z");
  const metadataLine = `${user}:${publicKey} google-ssh ${JSON.stringify({ userName: user, expireOn })}`;
  return { privateKey, publicKey, metadataLine };
}

/** The value of a metadata key, if set. */
export function metadataValue(md: GceMetadata | null | undefined, key: string): string | undefined {
  const item = (md?.items ?? []).find((i) => i.key === key);
  return item?.value ?? undefined;
}

/**
 * Whether OS Login governs the VM: the instance's `enable-oslogin` wins, else the project's. With OS Login on, the
 * guest agent ignores `ssh-keys` metadata, so adding a key could never work.
 */
export function osLoginEnabled(instance: GceMetadata | null | undefined, project: GceMetadata | null | undefined) {
  const v = metadataValue(instance, "enable-oslogin") ?? metadataValue(project, "enable-oslogin");
  return /^true$/i.test((v ?? "").trim());
}

/** Metadata with `line` added to (or, with `remove`, every exact copy of it taken from) `ssh-keys`. */
export function withSshKeyLine(md: GceMetadata, line: string, remove = false): GceMetadata {
  const items = [...(md.items ?? [])];
  const at = items.findIndex((i) => i.key === "ssh-keys");
  const lines = (at >= 0 ? (items[at].value ?? "") : "").split("\n").filter((l) => l.trim() !== "");
  const next = remove ? lines.filter((l) => l.trim() !== line) : [...lines, line];
  // A removal that empties `ssh-keys` drops the item, leaving the metadata as a VM without keys had it.
  if (at >= 0 && next.length === 0 && remove) items.splice(at, 1);
  else if (at >= 0) items[at] = { key: "ssh-keys", value: next.join("\n") };
  else if (!remove) items.push({ key: "ssh-keys", value: next.join("\n") });
  return { items, fingerprint: md.fingerprint };
}

/** A metadata change refused because the fingerprint moved on (someone else changed the metadata in between). */
export function isStaleFingerprint(err: unknown): boolean {
  const code = gcpErrorCode(err);
  return code === "FAILED_PRECONDITION" || (code === "INVALID_ARGUMENT" && /fingerprint/i.test(gcpErrorMessage(err)));
}

/** Where one VM is, for the API. */
export interface VmRef {
  project: string;
  zone: string;
  /** The VM's name (or its numeric id, which the API also takes). */
  instance: string;
}

/**
 * Reads the metadata, applies the change, writes it with the fingerprint just read, and waits on the zone
 * operation. A stale fingerprint is read again and retried, `retries` times; other errors are thrown.
 */
export async function changeSshKeys(
  clients: Pick<GcpClients, "instances" | "zoneOperations">,
  vm: VmRef,
  line: string,
  remove: boolean,
  retries = 1,
  first?: GceInstance,
): Promise<void> {
  const api = clients.instances();
  let current = first;
  for (let attempt = 0; ; attempt++) {
    current ??= (await api.get(vm))[0];
    const md = current.metadata ?? {};
    // Nothing of ours left (a removal retried after it landed, or the key already expired): nothing to write.
    if (remove && !hasLine(md, line)) return;
    const next = withSshKeyLine(md, line, remove);
    try {
      const [op] = await api.setMetadata({ ...vm, metadataResource: next });
      await waitForZoneOperation(clients, vm, op.latestResponse);
      return;
    } catch (err) {
      if (!isStaleFingerprint(err) || attempt >= retries) throw err;
      current = undefined;
    }
  }
}

// Operation.Status DONE, as a name or, with numeric enums, as its number.
const isDone = (op: GceOperation) => op.status === "DONE" || (op.status as unknown) === 2104194;

/**
 * Waits until a zone operation is DONE (zoneOperations.wait returns after about two minutes at most, so it is
 * asked again), then throws the operation's own error, if it ended in one, with Google's code.
 */
export async function waitForZoneOperation(
  clients: Pick<GcpClients, "zoneOperations">,
  vm: VmRef,
  first: GceOperation | undefined,
  maxWaits = 10,
): Promise<void> {
  let op = first ?? {};
  for (let i = 0; !isDone(op) && op.name && i < maxWaits; i++)
    [op] = await clients.zoneOperations().wait({ project: vm.project, zone: vm.zone, operation: op.name });
  if (op.name && !isDone(op)) throw new Error(`zone operation ${op.name} did not finish`);
  const err = op.error?.errors?.[0];
  if (err)
    throw Object.assign(new Error(err.message ?? err.code ?? "the operation failed"), {
      status: err.code ?? undefined,
      code: op.httpErrorStatusCode ?? undefined,
    });
}

const hasLine = (md: GceMetadata, line: string) =>
  (metadataValue(md, "ssh-keys") ?? "").split("\n").some((l) => l.trim() === line);

/** A host key as published in guest attributes: its type (e.g. `ssh-ed25519`) and key blob. */
export interface HostKey {
  type: string;
  blob: Buffer;
}

/**
 * The VM's SSH host keys from guest attributes (`hostkeys/`, written by the guest agent when
 * `enable-guest-attributes` is TRUE). Google's NOT_FOUND (no such attributes) reads as none.
 */
export async function guestHostKeys(api: InstancesApi, vm: VmRef): Promise<HostKey[]> {
  let items: { namespace?: string | null; key?: string | null; value?: string | null }[];
  try {
    const [attrs] = await api.getGuestAttributes({ ...vm, queryPath: "hostkeys/" });
    items = attrs.queryValue?.items ?? [];
  } catch (err) {
    if (gcpErrorCode(err) === "NOT_FOUND") return [];
    throw err;
  }
  const keys: HostKey[] = [];
  for (const i of items) {
    if (i.namespace && i.namespace !== "hostkeys") continue;
    // The value is the base64 blob; tolerate a full `type blob` line too.
    const parts = (i.value ?? "").trim().split(/\s+/);
    const b64 = parts.length > 1 ? parts[1] : parts[0];
    const type = parts.length > 1 ? parts[0] : (i.key ?? "");
    if (!b64 || !type) continue;
    keys.push({ type, blob: Buffer.from(b64, "base64") });
  }
  return keys;
}
