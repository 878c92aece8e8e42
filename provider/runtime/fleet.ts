/**
 * The fleet as the admin API and the status page both show it: nodes, discovery configs with their status, open
 * tasks and certificate authorities, each read once from the store here so the two never disagree.
 */
import { nodeInstance } from "../clouds";
import type { EnrollmentDetail } from "../enroll/rules";
import { trustedPublicKeys } from "../ssh";
import { RotationProgress, rotationProgress } from "./rotation";
import type { DiscoveryStatus, Store, StoredResource } from "./store/types";
import { deriveTasks, Task } from "./tasks";

/** A node as `GET /v1/nodes` returns it. */
export interface NodeView {
  name: string;
  labels: Record<string, string>;
  join_method: string;
  principals: string[];
  joined_at: string;
  certified_at?: string;
  /** The cloud its attested labels name; absent for a node that joined with a token. */
  cloud?: string;
  /** The newest of: joined, certified, seen by a discovery pass. */
  last_seen_at: string;
  state: "active" | "stale";
  stale_since?: string;
}

const newest = (times: (string | undefined)[]) =>
  times.filter((t): t is string => !!t).reduce((a, b) => (Date.parse(a) >= Date.parse(b) ? a : b));

/** Every node, with its cloud and when it was last seen. */
export async function listNodeViews(store: Store): Promise<NodeView[]> {
  const [nodes, certs, enrollments] = await Promise.all([
    store.listNodes(),
    store.listNodeCertificates(),
    store.listEnrollments(),
  ]);
  const certified = new Map(certs.map((c) => [c.node, c.issuedAt]));
  const seen = new Map<string, string>();
  for (const e of enrollments) {
    const at = (e.detail as EnrollmentDetail | undefined)?.lastSeenAt ?? e.updatedAt;
    seen.set(e.nodeName, newest([seen.get(e.nodeName), at]));
  }
  return nodes.map((n) => {
    const cloud = nodeInstance(n.labels)?.cloud;
    return {
      name: n.name,
      labels: n.labels,
      join_method: n.joinMethod,
      principals: n.principals,
      joined_at: n.joinedAt,
      ...(certified.has(n.name) && { certified_at: certified.get(n.name) }),
      ...(cloud && { cloud }),
      last_seen_at: newest([n.joinedAt, certified.get(n.name), seen.get(n.name)]),
      state: n.staleSince ? "stale" : "active",
      ...(n.staleSince && { stale_since: n.staleSince }),
    };
  });
}

/** A discovery_config as the API shows it: the document, and the status its runtime keeps beside it. */
export function withStatus(r: StoredResource, statuses: Map<string, DiscoveryStatus>): Record<string, unknown> {
  const status = statuses.get(r.key);
  return status && r.kind === "discovery_config" ? { ...r.doc, status } : r.doc;
}

/** The stored resources of `kind` (secret tokens left out), discovery_configs with their status. */
export async function listResourceViews(store: Store, kind: string): Promise<Record<string, unknown>[]> {
  const all = await store.listResources(kind);
  const statuses = kind === "discovery_config" ? await store.listDiscoveryStatus() : new Map();
  return all.filter((r) => !r.key.startsWith("sha256:")).map((r) => withStatus(r, statuses));
}

/** The open tasks at `now` (see deriveTasks). */
export async function listOpenTasks(store: Store, now: Date, ttlMs: number): Promise<Task[]> {
  return deriveTasks(await store.listEnrollments(), await store.listScopeErrors(), now, ttlMs);
}

/** One certificate authority as `GET /v1/cas` shows it. */
export interface CaView {
  public_keys: string[];
  rotating: boolean;
  rotation?: RotationProgress;
}

/** The host and user certificate authorities, with the progress of an open rotation. */
export async function listCaViews(store: Store): Promise<Partial<Record<"host" | "user", CaView>>> {
  const out: Partial<Record<"host" | "user", CaView>> = {};
  for (const type of ["host", "user"] as const) {
    const ca = await store.getCertAuthority(type);
    if (!ca) continue;
    const rotating = ca.previous.length > 0;
    out[type] = { public_keys: trustedPublicKeys(ca), rotating };
    if (rotating) out[type].rotation = await rotationProgress(store, ca);
  }
  return out;
}
