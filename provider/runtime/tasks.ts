/**
 * Tasks (SPEC §4, `GET /v1/tasks`): open enrollment problems grouped by cloud, issue type and scope, each with its
 * fix. They are derived on every read from the store (failed enrollment records and failed scopes) rather than kept
 * as rows of their own, so passes run anywhere (the runtime's loop, `discovery enroll`, the Enrollment resource)
 * feed them, and a task closes by itself the moment its instances enroll, or expires once nothing has seen them
 * for 2 × poll_interval (a terminated instance is never seen again).
 */
import * as crypto from "crypto";
import { cloudPlugin } from "../clouds";
import type { EnrollmentDetail } from "../enroll/rules";
import type { EnrollmentRecord, ScopeErrorRecord } from "./store/types";

/** One instance a task is about. */
export interface TaskInstance {
  instance_id: string;
  node_name: string;
  reason?: string;
}

/** One open problem, as `GET /v1/tasks` returns it. */
export interface Task {
  /** UUIDv5 of cloud, issue type and scope: the same problem keeps its name across passes and replicas. */
  name: string;
  cloud: string;
  /** A failure class (`ssm-agent-not-registered`, `script-failure`, ...) or `permission-denied` / `fetch-failure`. */
  issue_type: string;
  /** `account/region` (AWS, Azure: subscription/region; GCP: project/zone). */
  scope: string;
  instances: TaskInstance[];
  fix: string;
  first_seen: string;
  last_seen: string;
}

// A namespace of our own for the UUIDv5 names (RFC 9562 §5.5), fixed forever: changing it renames every task.
const TASK_NAMESPACE = Buffer.from("5b0f5d0e8a6c4c1e9a3d2f6b7c8d9e01", "hex");

/** The stable name of the task for one grouping: a UUIDv5 of its fields. */
export function taskName(cloud: string, issueType: string, scope: string): string {
  const h = crypto.createHash("sha1").update(TASK_NAMESPACE).update(`${cloud}\n${issueType}\n${scope}`).digest();
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString("hex");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** What a scope failure is when its cloud does not say: a scan that failed before listing anything. */
const FETCH_FAILURE = {
  issueType: "fetch-failure",
  fix: "The scan of this scope failed before any instance was listed; fix what the message names, the next pass retries.",
};

/** The issue type and fix of a scope that failed: its cloud's reading of the error, else a fetch failure. */
export function scopeProblem(e: { cloud: string; code: string; message: string }): { issueType: string; fix: string } {
  return cloudPlugin(e.cloud)?.scopeProblem?.(e) ?? FETCH_FAILURE;
}

const latest = (...times: (string | undefined)[]) =>
  times.filter((t): t is string => !!t).reduce((a, b) => (Date.parse(a) >= Date.parse(b) ? a : b));
const earliest = (a: string, b: string) => (Date.parse(a) <= Date.parse(b) ? a : b);

/**
 * The open tasks at `now`: failed instances grouped by (cloud, failure class, account/region), and failed scopes,
 * each seen within `ttlMs`. Sorted by cloud, issue type and scope.
 */
export function deriveTasks(
  enrollments: EnrollmentRecord[],
  scopeErrors: ScopeErrorRecord[],
  now: Date,
  ttlMs: number,
): Task[] {
  const fresh = (t: string) => now.getTime() - Date.parse(t) <= ttlMs;
  const tasks = new Map<string, Task>();
  const add = (cloud: string, issueType: string, scope: string, fix: string, first: string, last: string) => {
    const name = taskName(cloud, issueType, scope);
    let t = tasks.get(name);
    if (!t)
      tasks.set(
        name,
        (t = { name, cloud, issue_type: issueType, scope, instances: [], fix, first_seen: first, last_seen: last }),
      );
    t.first_seen = earliest(t.first_seen, first);
    t.last_seen = latest(t.last_seen, last);
    return t;
  };
  for (const e of enrollments) {
    if (e.status !== "failed") continue;
    const d = (e.detail ?? {}) as EnrollmentDetail;
    const last = latest(e.updatedAt, d.lastSeenAt);
    if (!fresh(last)) continue;
    const issue = d.failureClass ?? "invocation-failure";
    const fix =
      d.remediation ?? "Read the reason of each instance (`discovery get enrollments`) and fix what it names.";
    const t = add(e.cloud, issue, `${e.account}/${e.region}`, fix, d.firstFailedAt ?? e.updatedAt, last);
    t.instances.push({ instance_id: e.instanceId, node_name: e.nodeName, ...(e.reason && { reason: e.reason }) });
  }
  for (const e of scopeErrors) {
    if (!fresh(e.lastSeen)) continue;
    const { issueType, fix } = scopeProblem(e);
    add(e.cloud, issueType, `${e.account}/${e.region}`, `${e.code}: ${e.message}. ${fix}`, e.firstSeen, e.lastSeen);
  }
  return [...tasks.values()].sort(
    (a, b) => cmp(a.cloud, b.cloud) || cmp(a.issue_type, b.issue_type) || cmp(a.scope, b.scope),
  );
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
