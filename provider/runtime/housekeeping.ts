/**
 * What keeps the store from growing under load nobody completes: challenges issued and never used, and audit
 * events past their retention, deleted at start and then on a timer. Every replica runs it; the deletes are
 * idempotent, so replicas sweeping together only share the work.
 */
import type { Logger } from "pino";
import type { RuntimeMetrics } from "./metrics";
import type { Store } from "./store/types";

/** How often housekeeping runs by default: challenges live 60 s, so an abandoned one is gone within two minutes. */
export const HOUSEKEEPING_INTERVAL_MS = 60_000;

/** What housekeeping needs. */
export interface HousekeepingOptions {
  store: Store;
  metrics: RuntimeMetrics;
  logger: Logger;
  /** Audit events older than this are deleted. */
  auditRetentionMs: number;
  /** Time between runs; HOUSEKEEPING_INTERVAL_MS unless a test wants it shorter. */
  intervalMs?: number;
  now?: () => Date;
}

/** A running housekeeping timer. */
export interface Housekeeping {
  /** One pass now; a failure is logged, never thrown (the next pass tries again). */
  runOnce(): Promise<void>;
  /** Stops the timer and waits for a pass in progress, so the store can close after it. */
  stop(): Promise<void>;
}

/** Runs one pass, then one every `intervalMs`, until stopped. */
export async function startHousekeeping(o: HousekeepingOptions): Promise<Housekeeping> {
  const now = o.now ?? (() => new Date());
  let running: Promise<void> = Promise.resolve();
  const pass = async () => {
    try {
      const at = now();
      const challenges = await o.store.deleteExpiredChallenges(at);
      const audit = await o.store.pruneAudit(new Date(at.getTime() - o.auditRetentionMs));
      o.metrics.housekeepingDeleted("challenges", challenges);
      o.metrics.housekeepingDeleted("audit_events", audit);
      if (challenges + audit > 0)
        o.logger.info({ expiredChallenges: challenges, prunedAuditEvents: audit }, "housekeeping");
    } catch (err) {
      o.logger.error({ err }, "housekeeping failed; retrying at the next interval");
    }
  };
  const runOnce = () => (running = running.then(pass));
  await runOnce();
  const timer = setInterval(() => void runOnce(), o.intervalMs ?? HOUSEKEEPING_INTERVAL_MS);
  timer.unref();
  return {
    runOnce,
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}
