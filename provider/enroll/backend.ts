import type { EnrollmentRecord, Store } from "../runtime/store/types";
import { busyReason } from "./rules";

/** A joined node as enrollment sees it. */
export interface KnownNode {
  name: string;
  labels: Record<string, string>;
}

/** Where a pass reads the inventory and records enrollments: the runtime's store, or its admin API. */
export interface EnrollmentBackend {
  nodes(): Promise<KnownNode[]>;
  enrollments(): Promise<EnrollmentRecord[]>;
  /** Records `e` (status installing) unless another pass holds the instance; false when it does. */
  claim(e: EnrollmentRecord, staleMs: number): Promise<boolean>;
  record(e: EnrollmentRecord): Promise<void>;
}

/** The backend inside the runtime: the store itself. */
export function storeBackend(store: Store, now: () => Date = () => new Date()): EnrollmentBackend {
  return {
    nodes: async () => (await store.listNodes()).map((n) => ({ name: n.name, labels: n.labels })),
    enrollments: () => store.listEnrollments(),
    claim: (e, staleMs) => store.claimEnrollment(e, (cur) => busyReason(cur, now(), staleMs) === undefined),
    record: (e) => store.upsertEnrollment(e),
  };
}
