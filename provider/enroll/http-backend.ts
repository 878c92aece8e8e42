import { answerError, request, RuntimeTarget } from "../cli/http";
import type { EnrollmentRecord } from "../runtime/store/types";
import type { EnrollmentBackend, KnownNode } from "./backend";

/** The backend of a pass run outside the runtime: its admin API. */
export function httpBackend(target: RuntimeTarget): EnrollmentBackend {
  const call = async <T>(method: string, path: string, body?: object): Promise<T> => {
    const a = await request(target, method, path, body);
    if (a.status !== 200) throw new Error(`${method} ${path}: ${answerError(a)}`);
    return a.body as T;
  };
  return {
    nodes: async () => (await call<{ nodes: KnownNode[] }>("GET", "/v1/nodes")).nodes,
    enrollments: async () => (await call<{ enrollments: EnrollmentRecord[] }>("GET", "/v1/enrollments")).enrollments,
    claim: async (e, staleMs) =>
      (await call<{ claimed: boolean }>("POST", "/v1/enrollments/claim", { enrollment: e, stale_ms: staleMs })).claimed,
    record: async (e) => {
      await call("PUT", "/v1/enrollments", { enrollments: [e] });
    },
  };
}
