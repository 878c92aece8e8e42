import type { EnrollmentRecord } from "../runtime/store/types";

/** Backoff after the n-th consecutive failure: 1 min, doubling, at most 1 h, with ±20 % jitter. */
export function backoffMs(attempts: number, baseMs = 60_000, capMs = 3_600_000, random = Math.random): number {
  const raw = Math.min(capMs, baseMs * 2 ** Math.max(0, attempts - 1));
  return Math.round(raw * (0.8 + 0.4 * random()));
}

/** Details an enrollment record keeps between passes. */
export interface EnrollmentDetail {
  attempts?: number;
  nextAttemptAt?: string;
  failureClass?: string;
  remediation?: string;
  exitCode?: number;
  stderrTail?: string;
  stdoutTail?: string;
  commandId?: string;
  matcher?: string;
  /** The runtime (or tool) whose pass claimed the instance; the join labels the node with it. */
  discoveredBy?: string;
  /** When the current run of failures began: a task's first_seen. */
  firstFailedAt?: string;
  /** When a pass last saw the instance still failing (it is not retried while backing off): a task's last_seen. */
  lastSeenAt?: string;
  /** A forced reinstall is pending: kept across failed attempts until the instance has joined again. */
  rejoin?: boolean;
  /** The install re-runs the installer on an enrolled node for a CA rotation. */
  rotation?: boolean;
  /**
   * The install attempt this claim (or a failure whose command's fate is unknown) belongs to: the installer names
   * it in the command it sends (the SSM Comment), so a pass that takes the instance over finds that command and
   * follows it instead of sending a second one.
   */
  attempt?: string;
  /** The process (one start of a runtime) that made the claim: a restarted runtime takes its dead claims over at once. */
  boot?: string;
}

/** Who claims: a runtime's id (`discoveredBy`) and this start of it. */
export interface Claimant {
  by: string;
  boot: string;
}

/** What may override the claim rule: a CA rotation re-runs an enrolled node's installer, a retry skips a backoff. */
export interface ClaimOptions {
  rotation?: boolean;
  /** `discovery enroll --retry-failed`, `POST /v1/enrollments/retry`: a failed instance is retried now. */
  retryFailed?: boolean;
  /**
   * The claiming runtime: an "installing" claim that the same runtime made in an earlier start (same id, another
   * boot) is free at once, as the process that held it is gone (each runtime has its own data dir and id).
   */
  self?: Claimant;
}

/** Whether `current` is a claim the claimant itself made before a restart: its holder is dead. */
export function deadOwnClaim(current: EnrollmentRecord, self: Claimant | undefined): boolean {
  const d = (current.detail ?? {}) as EnrollmentDetail;
  return !!self && current.status === "installing" && !!d.boot && d.discoveredBy === self.by && d.boot !== self.boot;
}

/**
 * The attempt a new claim continues, when the previous record leaves a command's fate unknown: a claim whose
 * holder died (it may have sent), or a failure that said so. Undefined: the claim starts a new attempt.
 */
export function unfinishedAttempt(prev: EnrollmentRecord | undefined): string | undefined {
  if (!prev || (prev.status !== "installing" && prev.status !== "failed")) return undefined;
  return ((prev.detail ?? {}) as EnrollmentDetail).attempt;
}

/**
 * Why an instance may not be claimed for an install now, or undefined when it may. An enrolled instance may be
 * claimed only for a CA rotation (`rotation`), which re-runs its installer; a failed one backing off only when
 * failures are retried now (`retryFailed`).
 */
export function busyReason(
  current: EnrollmentRecord | undefined,
  now: Date,
  staleMs: number,
  { rotation = false, retryFailed = false, self }: ClaimOptions = {},
): string | undefined {
  if (!current) return undefined;
  const detail = (current.detail ?? {}) as EnrollmentDetail;
  if (current.status === "enrolled" && !rotation) return "already enrolled";
  if (deadOwnClaim(current, self)) return undefined;
  if (current.status === "installing" && now.getTime() - Date.parse(current.updatedAt) < staleMs)
    return `an install is in flight since ${current.updatedAt}`;
  if (retryFailed) return undefined;
  if (current.status === "failed" && detail.nextAttemptAt && Date.parse(detail.nextAttemptAt) > now.getTime())
    return `backing off after ${detail.attempts ?? 1} failed attempt(s) until ${detail.nextAttemptAt}`;
  return undefined;
}
