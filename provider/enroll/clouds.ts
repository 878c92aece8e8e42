import type { Candidate, FetchResult, InstallOutcome, RuntimeEndpoint, ScopeReport } from "./types";

/** What a pass hands a cloud besides the matcher. */
export interface EnrollContext {
  runtime: RuntimeEndpoint;
  /** Called as each account × region (project × zone) scan finishes. */
  onScope?: (s: ScopeReport) => void;
}

/** Instances of one account × region (project × zone) whose existence a pass asks about. */
export interface ExistenceQuery {
  account: string;
  region: string;
  instanceIds: string[];
}

/** A cloud's part of enrollment: list what a matcher selects, and install on candidates. */
export interface CloudEnrollment<M = unknown> {
  fetch(matcher: M, ctx: EnrollContext): Promise<FetchResult>;
  install(candidates: Candidate[], matcher: M, ctx: EnrollContext): Promise<InstallOutcome[]>;
  /**
   * Which of the ids still exist and are not terminated, asked with the matcher's credentials. Must throw when the
   * cloud could not answer for every id (denied, throttled): a missing answer is never read as "gone". Optional: a
   * cloud without it never has stale nodes.
   */
  existing?(matcher: M, query: ExistenceQuery): Promise<Set<string>>;
}

const clouds = new Map<string, CloudEnrollment>();

/** Registers a cloud's fetcher and installer; clouds call this when imported. */
export function registerCloud<M>(name: "aws" | "gcp" | "azure", impl: CloudEnrollment<M>): void {
  clouds.set(name, impl as CloudEnrollment);
}

/** The registered implementation of a cloud, if any. */
export function cloudEnrollment(name: string): CloudEnrollment | undefined {
  return clouds.get(name);
}
