import type { Token } from "../model";
import type { EnrollmentRecord, NodeStalenessChanges, NodeStalenessUpdate, Store } from "../runtime/store/types";
import { outdatedNodes } from "../runtime/rotation";
import { storedToken, tokenKey } from "../join/tokens";
import { busyReason, ClaimOptions, EnrollmentDetail, unfinishedAttempt } from "./rules";

/** A joined node as enrollment sees it. */
export interface KnownNode {
  name: string;
  labels: Record<string, string>;
  /** Since when its instance is known to be gone; absent while active. */
  staleSince?: string;
  /** When its current certificate was issued (its join, or a re-certification for a CA rotation). */
  certifiedAt?: string;
}

/** Where a pass reads the inventory and records enrollments: the runtime's store, or its admin API. */
export interface EnrollmentBackend {
  nodes(): Promise<KnownNode[]>;
  enrollments(): Promise<EnrollmentRecord[]>;
  /**
   * Records `e` (status installing) unless another pass holds the instance or it is backing off after a failure
   * (unless `retryFailed`); false when it may not be claimed.
   */
  claim(e: EnrollmentRecord, staleMs: number, opts?: Pick<ClaimOptions, "retryFailed" | "self">): Promise<boolean>;
  record(e: EnrollmentRecord): Promise<void>;
  /** Applies a pass's verdicts on nodes whose instances it checked; every change is audited. */
  updateStaleness(u: NodeStalenessUpdate): Promise<NodeStalenessChanges>;
  /** Names of nodes whose credentials do not match the CAs (a rotation started or completed since they joined). */
  rotationPending(): Promise<Set<string>>;
  /** The token a join with `method` naming `name` would use (a secret token's name restored), if it exists. */
  token(name: string, method: string): Promise<Token | undefined>;
}

/** Applies staleness verdicts to the store and writes one audit event per node that changed. */
export async function applyNodeStaleness(
  store: Store,
  u: NodeStalenessUpdate,
  source?: string,
): Promise<NodeStalenessChanges> {
  const changes = await store.updateNodeStaleness(u);
  const audit = (type: string, names: string[], reason: string) =>
    Promise.all(names.map((node) => store.appendAudit({ at: u.at, type, node, reason, source })));
  await audit("node.stale", changes.staled, "its instance is terminated or no longer exists");
  await audit("node.active", changes.activated, "its instance exists again");
  await audit("node.removed", changes.removed, `stale since before ${u.staleBefore} (the grace period)`);
  return changes;
}

/** The backend inside the runtime: the store itself. */
export function storeBackend(store: Store, now: () => Date = () => new Date()): EnrollmentBackend {
  return {
    nodes: async () => {
      const certs = new Map((await store.listNodeCertificates()).map((c) => [c.node, c.issuedAt]));
      return (await store.listNodes()).map((n) => ({
        name: n.name,
        labels: n.labels,
        staleSince: n.staleSince,
        certifiedAt: certs.get(n.name),
      }));
    },
    enrollments: () => store.listEnrollments(),
    claim: (e, staleMs, opts) => {
      const rotation = (e.detail as EnrollmentDetail | undefined)?.rotation;
      return store.claimEnrollment(e, (cur) => {
        if (busyReason(cur, now(), staleMs, { ...opts, rotation }) !== undefined) return false;
        // Decided inside the claim's transaction: an attempt the current record leaves unfinished is continued.
        const unfinished = unfinishedAttempt(cur);
        if (unfinished && e.detail) (e.detail as EnrollmentDetail).attempt = unfinished;
        return true;
      });
    },
    record: (e) => store.upsertEnrollment(e),
    updateStaleness: (u) => applyNodeStaleness(store, u, "discovery"),
    rotationPending: () => outdatedNodes(store),
    token: async (name, method) => {
      const stored = await store.getResource("token", tokenKey(method, name));
      return stored && storedToken(stored.doc, name);
    },
  };
}
