import type { Cloud } from "../model";
import type { Candidate, FetchResult, InstallOutcome, RuntimeEndpoint, ScopeHeld, ScopeReport } from "./types";

/** One scope a fetch is about to list: AWS account × region, GCP project × zone (`*`), Azure subscription (`*`). */
export interface ScopeAsk {
  cloud: Cloud;
  account: string;
  region: string;
}

/**
 * Asked by a fetcher before a scope's listing calls: undefined to list it now, or why another replica lists it
 * (the runtime's scope leases, provider/runtime/scope-leases.ts). Absent outside a runtime: every scope is listed.
 */
export type AcquireScope = (scope: ScopeAsk) => Promise<ScopeHeld | undefined>;

/** Asks `acquire` (when there is one) about `scope`: undefined to list it, else the report of a scope left to another replica. */
export async function scopeLeftToOthers(
  acquire: AcquireScope | undefined,
  scope: ScopeAsk,
): Promise<ScopeReport | undefined> {
  const held = await acquire?.(scope);
  return held && { ...scope, instances: 0, held };
}

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
  /** Asked before each scope's listing calls (fetch only); a scope another replica holds is reported, not listed. */
  acquireScope?: AcquireScope;
}

/** Instances of one account × region (project × zone) whose existence a pass asks about. */
export interface ExistenceQuery {
  account: string;
  region: string;
  instanceIds: string[];
}

/** The most instance ids one fetchInstances query holds (EC2 takes at most 200 values in one filter). */
export const EVENT_BATCH = 200;

/** One `kebab-case` failure class an installer reports. */
export interface FailureClass {
  /** Whether a failure of this class means a command reached the instance (counted in a pass's `commandsSent`). */
  commandSent: boolean;
  /** What the class means, in a sentence (for docs and operators; each outcome carries its own remediation). */
  summary: string;
  /** An instance that has just started may show this for a while (an agent not up yet): events look again soon. */
  notReadyAtBoot?: boolean;
  /**
   * The cloud could not be asked (unreachable, throttled past the retries), so nothing was sent and the instance
   * itself is fine: it does not back off, the next pass tries again.
   */
  transient?: boolean;
}

/** A cloud's part of enrollment: list what a matcher selects, and install on candidates. */
export interface CloudEnrollment<M = unknown> {
  fetch(matcher: M, ctx: EnrollContext): Promise<FetchResult>;
  /**
   * What `fetch` would find among these instances only (a state-change event named them): the matcher's own scan
   * narrowed to them, so an instance it does not select is not a candidate. Optional: a cloud without it has no
   * event-driven enrollment. At most EVENT_BATCH ids per query.
   */
  fetchInstances?(matcher: M, query: ExistenceQuery, ctx: EnrollContext): Promise<FetchResult>;
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
