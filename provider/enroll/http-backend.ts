import { answerError, request, RuntimeTarget } from "../http/client";
import { storedToken } from "../join/tokens";
import type { EnrollmentRecord, NodeStalenessChanges } from "../runtime/store/types";
import type { EnrollmentBackend } from "./backend";

/** A node as `GET /v1/nodes` lists it. */
interface ApiNode {
  name: string;
  labels: Record<string, string>;
  stale_since?: string;
  certified_at?: string;
}

/** The backend of a pass run outside the runtime: its admin API. */
export function httpBackend(target: RuntimeTarget): EnrollmentBackend {
  const call = async <T>(method: string, path: string, body?: object): Promise<T> => {
    const a = await request(target, method, path, body);
    if (a.status !== 200) throw new Error(`${method} ${path}: ${answerError(a, target)}`);
    return a.body as T;
  };
  return {
    nodes: async () =>
      (await call<{ nodes: ApiNode[] }>("GET", "/v1/nodes")).nodes.map((n) => ({
        name: n.name,
        labels: n.labels,
        staleSince: n.stale_since,
        certifiedAt: n.certified_at,
      })),
    enrollments: async () => (await call<{ enrollments: EnrollmentRecord[] }>("GET", "/v1/enrollments")).enrollments,
    claim: async (e, staleMs, opts) =>
      (
        await call<{ claimed: boolean }>("POST", "/v1/enrollments/claim", {
          enrollment: e,
          stale_ms: staleMs,
          ...(opts?.retryFailed && { retry_failed: true }),
        })
      ).claimed,
    record: async (e) => {
      await call("PUT", "/v1/enrollments", { enrollments: [e] });
    },
    rotationPending: async () => {
      type Cas = Record<string, { rotation?: { pending: { node: string }[] } }>;
      const cas = await call<Cas>("GET", "/v1/cas");
      return new Set(Object.values(cas).flatMap((ca) => (ca.rotation?.pending ?? []).map((p) => p.node)));
    },
    // The admin API finds a secret token by its name too (it looks the hash up), and never lists one.
    token: async (name) => {
      const a = await request(target, "GET", `/v1/resources/token/${encodeURIComponent(name)}`);
      if (a.status === 404) return undefined;
      if (a.status !== 200) throw new Error(`GET /v1/resources/token/(name): ${answerError(a)}`);
      return storedToken(a.body as Record<string, unknown>, name);
    },
    updateStaleness: (u) =>
      call<NodeStalenessChanges>("POST", "/v1/nodes/staleness", {
        stale: u.stale,
        active: u.active,
        remove: u.remove,
        at: u.at,
        stale_before: u.staleBefore,
      }),
  };
}
