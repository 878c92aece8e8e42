import type { Candidate, FetchResult, InstallOutcome, RuntimeEndpoint, ScopeReport } from "./types";

/** What a pass hands a cloud besides the matcher. */
export interface EnrollContext {
  runtime: RuntimeEndpoint;
  /** Called as each account × region (project × zone) scan finishes. */
  onScope?: (s: ScopeReport) => void;
  /** Called before each retry of a throttled (or failed server-side) cloud API call: the pass counts them. */
  onRetry?: () => void;
  /**
   * The pass's memo: `fn` runs once per `key` in one pass and every caller gets its answer, so a check made for
   * one matcher is not made again for the next (one DescribeDocument per account × region, not per instance).
   * Absent outside a pass: the caller runs `fn` itself.
   */
  once?: <T>(key: string, fn: () => Promise<T>) => Promise<T>;
}

/** Instances of one account × region (project × zone) whose existence a pass asks about. */
export interface ExistenceQuery {
  account: string;
  region: string;
  instanceIds: string[];
}

/** One `kebab-case` failure class an installer reports. */
export interface FailureClass {
  /** Whether a failure of this class means a command reached the instance (counted in a pass's `commandsSent`). */
  commandSent: boolean;
  /** What the class means, in a sentence (for docs and operators; each outcome carries its own remediation). */
  summary: string;
  /**
   * The cloud could not be asked (unreachable, throttled past the retries), so nothing was sent and the instance
   * itself is fine: it does not back off, the next pass tries again.
   */
  transient?: boolean;
}

/** A cloud's part of enrollment: list what a matcher selects, and install on candidates. */
export interface CloudEnrollment<M = unknown> {
  fetch(matcher: M, ctx: EnrollContext): Promise<FetchResult>;
  install(candidates: Candidate[], matcher: M, ctx: EnrollContext): Promise<InstallOutcome[]>;
  /**
   * Checks made before anything is sent (AWS: the matcher's SSM document exists in each account and region): a
   * failed outcome for every candidate that must not be installed on now, naming what is missing and the fix;
   * the pass installs on the rest. A check that cannot tell (denied, throttled) must not hold an install back.
   */
  preflight?(candidates: Candidate[], matcher: M, ctx: EnrollContext): Promise<InstallOutcome[]>;
  /**
   * Which of the ids still exist and are not terminated, asked with the matcher's credentials. Must throw when the
   * cloud could not answer for every id (denied, throttled): a missing answer is never read as "gone". Optional: a
   * cloud without it never has stale nodes.
   */
  existing?(matcher: M, query: ExistenceQuery): Promise<Set<string>>;
  /**
   * The failure classes `install` reports. A class not listed here (or no table: test fakes) counts as a command
   * sent; a registered cloud must list every class (CloudPlugin requires it).
   */
  failureClasses?: Record<string, FailureClass>;
}

/** Whether an install outcome means a command reached the instance, by the installer's failure-class table. */
export function commandWasSent(impl: CloudEnrollment, outcome: InstallOutcome): boolean {
  if (outcome.status === "skipped") return false;
  return !outcome.failureClass || (impl.failureClasses?.[outcome.failureClass]?.commandSent ?? true);
}

/** Whether a failure should back off: not when it was transient, nor when the next pass resumes its attempt. */
export function failureBacksOff(impl: CloudEnrollment, outcome: InstallOutcome): boolean {
  if (outcome.attempt) return false;
  return !(outcome.failureClass && impl.failureClasses?.[outcome.failureClass]?.transient);
}
