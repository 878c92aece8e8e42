/**
 * The one log line a runtime writes per enrollment pass: the counts an operator scans for (found, enrolled,
 * already enrolled, failed) and the most frequent failure classes, each with one instance's reason, so a log
 * alone says what to fix first. Instance-level detail stays in `GET /v1/enrollments` and `GET /v1/tasks`.
 */
import type { PassResult } from "../enroll/pass";
import type { ScopeHeld } from "../enroll/types";

/** How many failure classes the line names. */
export const TOP_FAILURES = 3;

/** One failure class of a pass: how many instances failed with it, and one of their reasons. */
export interface TopFailure {
  failure_class: string;
  count: number;
  /** The reason of the first instance that failed so (it names the resource and the account). */
  example: string;
}

/** The fields of the per-pass line. */
export interface PassSummary {
  found: number;
  enrolled: number;
  already_enrolled: number;
  failed: number;
  /** Failed before and left alone while backing off. */
  backing_off: number;
  /** Left alone for another reason (another pass holds it, not running any more). */
  skipped: number;
  commands_sent: number;
  scopes: number;
  failed_scopes: number;
  /** Scopes left to another replica of the group (scope leases), each with its holder and until when; if any. */
  held_scopes?: ({ scope: string } & ScopeHeld)[];
  duration_ms: number;
  top_failures: TopFailure[];
}

/** The summary of `result` and its message, e.g. `discovery pass: 4 found, 1 enrolled, 2 already enrolled, 1 failed`. */
export function summarizePass(result: PassResult, durationMs: number): { fields: PassSummary; message: string } {
  const count = (pred: (i: PassResult["instances"][number]) => boolean) => result.instances.filter(pred).length;
  const classes = new Map<string, TopFailure>();
  for (const i of result.instances) {
    if (i.status !== "failed") continue;
    const cls = i.failure_class ?? "unclassified";
    const t = classes.get(cls);
    if (t) t.count++;
    else classes.set(cls, { failure_class: cls, count: 1, example: i.reason ?? "" });
  }
  const top = [...classes.values()]
    .sort((a, b) => b.count - a.count || (a.failure_class < b.failure_class ? -1 : 1))
    .slice(0, TOP_FAILURES);
  const held = result.scopes.filter((s): s is typeof s & { held: object } => !!s.held);
  const fields: PassSummary = {
    found: result.instances.length,
    enrolled: count((i) => i.status === "enrolled"),
    already_enrolled: count((i) => i.status === "already_enrolled"),
    failed: count((i) => i.status === "failed"),
    backing_off: count((i) => i.status === "skipped" && !!i.failure_class),
    skipped: count((i) => i.status === "skipped" && !i.failure_class),
    commands_sent: result.commandsSent,
    scopes: result.scopes.length,
    failed_scopes: result.scopes.filter((s) => s.error).length,
    ...(held.length > 0 && {
      held_scopes: held.map((s) => ({ scope: `${s.cloud}/${s.account}/${s.region}`, ...s.held })),
    }),
    duration_ms: Math.round(durationMs),
    top_failures: top,
  };
  const parts = [
    `${fields.found} found, ${fields.enrolled} enrolled, ${fields.already_enrolled} already enrolled, ` +
      `${fields.failed} failed`,
  ];
  if (fields.backing_off) parts.push(`${fields.backing_off} backing off`);
  if (fields.failed_scopes) parts.push(`${fields.failed_scopes} of ${fields.scopes} scope(s) failed`);
  if (held.length) parts.push(`${held.length} of ${fields.scopes} scope(s) left to other replicas`);
  parts.push(`${fields.commands_sent} command(s) sent`);
  const failures = top.map((t) => `${t.failure_class} ×${t.count} (${t.example})`).join("; ");
  return { fields, message: `discovery pass: ${parts.join(", ")}${failures ? `; top failures: ${failures}` : ""}` };
}
