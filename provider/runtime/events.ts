/**
 * Event-driven enrollment: the runtime reads its clouds' instance state-change queues (AWS: EventBridge rule → SQS)
 * and enrolls a new instance at once instead of at the next poll. Events are hints: a targeted pass fetches each
 * named instance and matches it by the matchers' own rules. The poll stays the safety net, so a queue that cannot be
 * read is logged with its cause and fix, retried with backoff, and never stops discovery.
 */
import type { Logger } from "pino";
import { type CloudLookup, type EventQueue, type InstanceEvent, notReadyYet, QueuedMessage } from "../enroll/events";
import type { PassResult } from "../enroll/pass";

/** What the consumer drives: the loop's targeted pass, and its clouds (for the failure classes). */
export interface EventTarget {
  enrollInstances(instances: InstanceEvent[], opts?: { retryFailed?: boolean }): Promise<PassResult[]>;
  readonly clouds: CloudLookup;
}

/** How the consumer runs; the timings are injectable for tests. */
export interface EventConsumerOptions {
  queues: EventQueue[];
  target: EventTarget;
  logger: Logger;
  /** Quiet time after a message before its pass starts, so a burst of launches makes one pass; default 250 ms. */
  debounceMs?: number;
  /** First wait after a queue failed, doubling up to 60 s; default 5 s. */
  errorBackoffMs?: number;
  /**
   * Waits before looking again at an instance that was not ready (an SSM agent not registered yet); default 15 s,
   * 30 s, 60 s, 120 s: within a default poll interval of 5 minutes.
   */
  notReadyRetryMs?: number[];
}

const key = (i: InstanceEvent) => `${i.cloud}/${i.account}/${i.region}/${i.instanceId}`;

/** Reads every queue until stopped and turns its events into targeted passes (see the module comment). */
export class EventConsumer {
  private readonly abort = new AbortController();
  private readonly readers: Promise<void>[] = [];
  private readonly pending = new Map<string, InstanceEvent>();
  private readonly handled: { queue: EventQueue; receipt: string }[] = [];
  private readonly passes = new Set<Promise<void>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private debounce?: NodeJS.Timeout;
  /** Messages read, for tests and logs: instances named, ignored and malformed ones. */
  readonly counts = { instances: 0, ignored: 0, malformed: 0, queueErrors: 0 };

  /** A consumer of `o.queues`; call start(). */
  constructor(private readonly o: EventConsumerOptions) {}

  /** Starts one long-poll reader per queue. */
  start(): void {
    for (const q of this.o.queues) this.readers.push(this.read(q));
    if (this.o.queues.length > 0)
      this.o.logger.info({ queues: this.o.queues.map((q) => q.name) }, "reading instance state-change events");
  }

  /** Stops reading, drops follow-ups, and waits for the passes in progress. */
  async stop(): Promise<void> {
    this.abort.abort();
    if (this.debounce) clearTimeout(this.debounce);
    for (const t of this.timers) clearTimeout(t);
    await Promise.allSettled(this.readers);
    await Promise.allSettled([...this.passes]);
  }

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  private async read(queue: EventQueue): Promise<void> {
    let backoff = this.o.errorBackoffMs ?? 5000;
    while (!this.stopped) {
      let messages: QueuedMessage[];
      const started = Date.now();
      try {
        messages = await queue.receive(this.abort.signal);
        // A queue that answers an empty long poll at once (a fake, a misconfigured proxy) must not spin the CPU.
        if (messages.length === 0 && Date.now() - started < 200) await this.sleep(500);
        backoff = this.o.errorBackoffMs ?? 5000;
      } catch (err) {
        if (this.stopped) return;
        this.counts.queueErrors++;
        const p = queue.problem(err);
        this.o.logger.error(
          { queue: queue.name, code: p.code, fix: p.fix, retry_in_ms: backoff },
          `could not read the event queue: ${p.message}; new instances wait for the next poll. Fix: ${p.fix}`,
        );
        await this.sleep(backoff);
        backoff = Math.min(backoff * 2, 60_000);
        continue;
      }
      const drop: string[] = [];
      for (const m of messages) {
        const v = queue.parse(m.body);
        if ("instance" in v) {
          this.counts.instances++;
          this.pending.set(key(v.instance), v.instance);
          this.handled.push({ queue, receipt: m.receipt });
        } else if ("ignored" in v) {
          this.counts.ignored++;
          this.o.logger.debug({ queue: queue.name, reason: v.ignored }, "event ignored");
          drop.push(m.receipt);
        } else {
          this.counts.malformed++;
          this.o.logger.warn(
            { queue: queue.name, reason: v.malformed, body: m.body.slice(0, 200) },
            `dropped a malformed event message: ${v.malformed}`,
          );
          drop.push(m.receipt);
        }
      }
      if (drop.length > 0) await this.remove(queue, drop);
      if (this.pending.size > 0) this.schedule();
    }
  }

  private schedule(): void {
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      const instances = [...this.pending.values()];
      const receipts = this.handled.splice(0);
      this.pending.clear();
      this.track(this.enroll(instances, receipts, 0));
    }, this.o.debounceMs ?? 250);
  }

  private track(p: Promise<void>): void {
    this.passes.add(p);
    void p.finally(() => this.passes.delete(p));
  }

  /** One targeted pass; its messages are deleted once it is done, and instances not ready yet get a later look. */
  private async enroll(
    instances: InstanceEvent[],
    receipts: { queue: EventQueue; receipt: string }[],
    round: number,
  ): Promise<void> {
    let results: PassResult[] = [];
    try {
      this.o.logger.info(
        { instances: instances.map((i) => `${i.account}/${i.region}/${i.instanceId}`), round },
        "enrolling instances named by state-change events",
      );
      results = await this.o.target.enrollInstances(instances, { retryFailed: round > 0 });
    } catch (err) {
      this.o.logger.error({ err }, "an event's targeted pass failed; the poll will look at these instances");
    }
    const byQueue = new Map<EventQueue, string[]>();
    for (const r of receipts) byQueue.set(r.queue, [...(byQueue.get(r.queue) ?? []), r.receipt]);
    for (const [queue, list] of byQueue) await this.remove(queue, list);
    const waits = this.o.notReadyRetryMs ?? [15_000, 30_000, 60_000, 120_000];
    if (this.stopped || round >= waits.length) return;
    const again = new Set(
      results.flatMap((r) => r.instances.filter((i) => notReadyYet(i, this.o.target.clouds))).map((i) => i.instance_id),
    );
    const later = instances.filter((i) => again.has(i.instanceId));
    if (later.length === 0) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.track(this.enroll(later, [], round + 1));
    }, waits[round]);
    this.timers.add(t);
  }

  private async remove(queue: EventQueue, receipts: string[]): Promise<void> {
    try {
      await queue.remove(receipts);
    } catch (err) {
      const p = queue.problem(err);
      this.o.logger.warn(
        { queue: queue.name, code: p.code, fix: p.fix },
        `could not delete handled event messages (they will come back and be handled again): ${p.message}`,
      );
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.abort.signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
    });
  }
}
