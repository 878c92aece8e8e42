/**
 * Forced re-enrollment (Teleport #63899): replaces what the runtime knows about one instance, its enrollment record
 * (enrolled, failed or backing off), by a `reinstall` record, and deletes its node, so the next pass installs on it
 * at once and tells the installer to join again even though the machine holds a certificate. A node joins once;
 * deleting its record, by an admin and audited, is what lets it join a second time.
 */
import type { EnrollmentRecord, NodeRecord, Store } from "../runtime/store/types";
import { busyReason } from "./rules";
import { nodeInstance } from "../clouds";

/** The enrollment status a forced reinstall leaves: free to claim, and the pass sets `Candidate.rejoin`. */
export const REINSTALL = "reinstall";

/** Which instance to reinstall; account and region narrow it when an id is not unique across scopes. */
export interface ReinstallRequest {
  cloud: string;
  account?: string;
  region?: string;
  instanceId: string;
}

/** What a reinstall forgot. */
export interface ReinstallResult {
  instanceId: string;
  nodesRemoved: string[];
  /** Enrollment records now waiting for the reinstall. */
  enrollmentsCleared: number;
}

/** A reinstall that cannot be done, with the HTTP status that says why. */
export class ReinstallRefusal extends Error {
  /** 404 nothing known, 409 ambiguous or an install in flight. */
  readonly status: 404 | 409;

  /** A refusal with its status and a sentence saying what to do. */
  constructor(status: 404 | 409, message: string) {
    super(message);
    this.name = "ReinstallRefusal";
    this.status = status;
  }
}

const nodeAccount = (n: NodeRecord) => nodeInstance(n.labels)?.account;
const nodeRegion = (n: NodeRecord) => nodeInstance(n.labels)?.region;

/** Clears one instance's enrollment records and deletes its node, writing one audit event; see the file comment. */
export async function reinstallInstance(
  store: Store,
  r: ReinstallRequest,
  opts: { now?: Date; source?: string; inFlightMs?: number } = {},
): Promise<ReinstallResult> {
  const now = opts.now ?? new Date();
  const records = (await store.listEnrollments()).filter(
    (e: EnrollmentRecord) =>
      e.cloud === r.cloud &&
      e.instanceId === r.instanceId &&
      (r.account === undefined || e.account === r.account) &&
      (r.region === undefined || e.region === r.region),
  );
  const names = new Set(records.map((e) => e.nodeName));
  const nodes = (await store.listNodes()).filter(
    (n) =>
      names.has(n.name) ||
      (n.labels["discovery/instance-id"] === r.instanceId &&
        (r.account === undefined || nodeAccount(n) === r.account) &&
        (r.region === undefined || nodeRegion(n) === r.region)),
  );
  const what = `${r.cloud} instance ${r.instanceId}`;
  if (records.length === 0 && nodes.length === 0)
    throw new ReinstallRefusal(404, `no enrollment or node is known for ${what}; check the id, account and region`);
  const accounts = new Set([...records.map((e) => e.account), ...nodes.map(nodeAccount)]);
  if (accounts.size > 1)
    throw new ReinstallRefusal(
      409,
      `${what} is known in several accounts (${[...accounts].join(", ")}); pass account and region`,
    );
  for (const e of records) {
    const busy = busyReason(e, now, opts.inFlightMs ?? 15 * 60_000);
    if (e.status === "installing" && busy)
      throw new ReinstallRefusal(409, `${what}: ${busy}; retry once it has finished`);
  }
  // A node that joined without a record of ours (before discovery ran, say) gets one from its verified labels.
  const pending = new Map(records.map((e) => [`${e.account}/${e.region}`, { ...e }]));
  for (const n of nodes) {
    const account = nodeAccount(n);
    const region = nodeRegion(n);
    if (account && region && !pending.has(`${account}/${region}`))
      pending.set(`${account}/${region}`, {
        ...{ cloud: r.cloud, account, region },
        instanceId: r.instanceId,
        nodeName: n.name,
        status: "",
        updatedAt: "",
      });
  }
  const removed: string[] = [];
  for (const n of nodes) if (await store.deleteNode(n.name)) removed.push(n.name);
  let cleared = 0;
  for (const e of pending.values()) {
    await store.upsertEnrollment({
      ...e,
      status: REINSTALL,
      reason: "forced reinstall",
      detail: { attempts: 0, rejoin: true },
      updatedAt: now.toISOString(),
    });
    cleared++;
  }
  await store.appendAudit({
    at: now.toISOString(),
    type: "enrollment.reinstall",
    source: opts.source,
    node: removed[0] ?? records[0]?.nodeName,
    reason: `${what}: node record(s) ${removed.join(", ") || "none"} deleted, ${cleared} enrollment record(s) cleared; the next pass installs again`,
  });
  return { instanceId: r.instanceId, nodesRemoved: removed, enrollmentsCleared: cleared };
}
