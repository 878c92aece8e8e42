/**
 * The contract between a cloud's state-change event queue (provider/clouds/<cloud>) and the runtime's consumer
 * (provider/runtime/events.ts). An event is a hint, never a fact: it names an instance to look at now, and the pass
 * that follows fetches and matches it as any pass does, so a forged event can at most cost one narrowed lookup.
 */
import type { Cloud } from "../model";
import { type CloudEnrollment, EVENT_BATCH, type ExistenceQuery } from "./clouds";
import type { InstanceResult } from "./pass";
import type { FetchResult } from "./types";

/** The instance an event names. */
export interface InstanceEvent {
  cloud: Cloud;
  /** AWS account id (GCP project, Azure subscription). */
  account: string;
  region: string;
  instanceId: string;
}

/** One message read from a queue. */
export interface QueuedMessage {
  /** What deletes the message (SQS: its receipt handle). */
  receipt: string;
  body: string;
}

/** What a message says: an instance to look at, a well-formed event of no interest, or garbage (with why). */
export type EventVerdict = { instance: InstanceEvent } | { ignored: string } | { malformed: string };

/** Why a queue could not be read, and what to do about it. */
export interface QueueProblem {
  code: string;
  message: string;
  fix: string;
}

/** A queue of a cloud's instance state-change events. */
export interface EventQueue {
  /** Names the queue in logs (its URL). */
  name: string;
  /** Waits up to the queue's long-poll time for messages; `signal` ends the wait early (on stop). */
  receive(signal: AbortSignal): Promise<QueuedMessage[]>;
  /** Deletes handled messages. */
  remove(receipts: string[]): Promise<void>;
  /** What one message body says. */
  parse(body: string): EventVerdict;
  /** The cause and fix of a receive or remove failure. */
  problem(err: unknown): QueueProblem;
}

/** A cloud's fetcher and installer by name, as a pass takes them. */
export type CloudLookup = (name: string) => CloudEnrollment | undefined;

/**
 * The clouds of a targeted pass: each cloud's `fetch` becomes its `fetchInstances` over the named instances of that
 * cloud (per account and region, EVENT_BATCH ids at a time), so every matcher looks at those instances only and
 * selects them by its own rules. A cloud without `fetchInstances`, or with no named instance, finds nothing.
 */
export function targetedClouds(instances: InstanceEvent[], clouds: CloudLookup): CloudLookup {
  return (name) => {
    const impl = clouds(name);
    if (!impl) return undefined;
    const scopes = new Map<string, ExistenceQuery>();
    for (const i of instances.filter((x) => x.cloud === name)) {
      const k = `${i.account}/${i.region}`;
      const q = scopes.get(k) ?? { account: i.account, region: i.region, instanceIds: [] };
      if (!q.instanceIds.includes(i.instanceId)) q.instanceIds.push(i.instanceId);
      scopes.set(k, q);
    }
    return {
      ...impl,
      fetch: async (matcher, ctx): Promise<FetchResult> => {
        const out: FetchResult = { candidates: [], scopes: [] };
        if (!impl.fetchInstances) return out;
        for (const q of scopes.values())
          for (let n = 0; n < q.instanceIds.length; n += EVENT_BATCH) {
            const instanceIds = q.instanceIds.slice(n, n + EVENT_BATCH);
            const r = await impl.fetchInstances(matcher, { ...q, instanceIds }, ctx);
            out.candidates.push(...r.candidates);
            out.scopes.push(...r.scopes);
          }
        return out;
      },
    };
  };
}

/**
 * Whether an instance's failure in a targeted pass may only mean it has just started (AWS: its SSM agent has not
 * registered yet), by the cloud's failure-class table: such an instance is looked at again shortly.
 */
export function notReadyYet(result: InstanceResult, clouds: CloudLookup): boolean {
  if (result.status !== "failed" || !result.failure_class) return false;
  return clouds(result.cloud)?.failureClasses?.[result.failure_class]?.notReadyAtBoot === true;
}
