import type { Candidate, FetchResult, InstallOutcome, RuntimeEndpoint, ScopeReport } from "./types";

/** What a pass hands a cloud besides the matcher. */
export interface EnrollContext {
  runtime: RuntimeEndpoint;
  /** Called as each account × region (project × zone) scan finishes. */
  onScope?: (s: ScopeReport) => void;
}

/** A cloud's part of enrollment: list what a matcher selects, and install on candidates. */
export interface CloudEnrollment<M = unknown> {
  fetch(matcher: M, ctx: EnrollContext): Promise<FetchResult>;
  install(candidates: Candidate[], matcher: M, ctx: EnrollContext): Promise<InstallOutcome[]>;
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
