/**
 * Concurrent lookups of single keys, answered by batch calls. A key asked while `maxInFlight` batch calls are
 * already running waits, and every key that arrives meanwhile goes into the next call (up to `maxBatch`), so a
 * burst of N lookups costs about N / maxBatch calls, while a lone lookup is sent at once and waits for nothing.
 * When calls are paced (a token bucket), `admit` waits for the next call's token before its batch is formed, so the
 * wait for a token is time in which more keys join that call: the call rate stays at the bucket's rate however many
 * lookups come, and no key waits for a token taken by a call formed before it arrived.
 */
export interface CoalesceOptions<L = undefined> {
  /** Most keys in one call (DescribeInstances takes 1000 instance ids), unless `admit` says otherwise. */
  maxBatch: number;
  /** Batch calls running at once (after admission); more keys wait for one to end. */
  maxInFlight: number;
  /**
   * Waits until the next call may be made (takes its token), told how many keys are waiting, and answers which
   * lane the call goes by and how many keys it may carry. One admission waits at a time; keys asked meanwhile
   * join its call. Default: every call is admitted at once with `maxBatch` keys.
   */
  admit?: (waiting: number) => Promise<Admission<L>>;
}

/** What {@link CoalesceOptions.admit} grants a call: its lane (passed to the lookup) and its largest batch. */
export interface Admission<L> {
  lane: L;
  maxBatch: number;
}

/** Answers for the keys of one call; a key missing from the map is answered `undefined` (not found). */
export type BatchLookup<K, V, L = undefined> = (keys: K[], lane: L) => Promise<Map<K, V>>;

interface Waiter<V> {
  resolve: (v: V | undefined) => void;
  reject: (err: unknown) => void;
}

export class Coalescer<K, V, L = undefined> {
  private readonly pending = new Map<K, Waiter<V>[]>();
  private inFlight = 0;
  private admitting = false;
  private scheduled = false;
  /** Batch calls made so far (for metrics and benchmarks). */
  calls = 0;

  constructor(
    private readonly lookup: BatchLookup<K, V, L>,
    private readonly opts: CoalesceOptions<L>,
  ) {
    if (!(opts.maxBatch >= 1 && opts.maxInFlight >= 1)) throw new Error("maxBatch and maxInFlight must be at least 1");
  }

  /** The answer for `key`: from a batch call shared with the keys asked at about the same time. */
  get(key: K): Promise<V | undefined> {
    return new Promise((resolve, reject) => {
      const waiters = this.pending.get(key);
      // The same key asked twice before its call is sent rides on the first ask.
      if (waiters) waiters.push({ resolve, reject });
      else this.pending.set(key, [{ resolve, reject }]);
      // After the current synchronous burst: keys asked in one tick share a call even when nothing is in flight.
      if (!this.scheduled) {
        this.scheduled = true;
        queueMicrotask(() => {
          this.scheduled = false;
          this.pump();
        });
      }
    });
  }

  private pump(): void {
    const admit = this.opts.admit;
    if (!admit) {
      while (this.inFlight < this.opts.maxInFlight && this.pending.size > 0)
        this.start(undefined as L, this.opts.maxBatch);
      return;
    }
    if (this.admitting || this.inFlight >= this.opts.maxInFlight || this.pending.size === 0) return;
    // Only this admission takes keys out of `pending` once it ends, so its token is never spent on an empty call.
    this.admitting = true;
    admit(this.pending.size).then(
      ({ lane, maxBatch }) => {
        this.admitting = false;
        this.start(lane, Math.max(1, maxBatch));
        this.pump();
      },
      (err: unknown) => {
        // No call can be made (the pacing itself failed): every waiting key gets the error rather than waiting on.
        this.admitting = false;
        const waiting = [...this.pending.values()];
        this.pending.clear();
        for (const ws of waiting) for (const w of ws) w.reject(err);
      },
    );
  }

  /** Sends the oldest `maxBatch` waiting keys as one call by `lane`. */
  private start(lane: L, maxBatch: number): void {
    const batch = new Map<K, Waiter<V>[]>();
    for (const [key, waiters] of this.pending) {
      if (batch.size >= maxBatch) break;
      batch.set(key, waiters);
    }
    for (const key of batch.keys()) this.pending.delete(key);
    this.inFlight++;
    this.calls++;
    this.send(batch, lane).finally(() => {
      this.inFlight--;
      this.pump();
    });
  }

  private async send(batch: Map<K, Waiter<V>[]>, lane: L): Promise<void> {
    let answers: Map<K, V>;
    try {
      answers = await this.lookup([...batch.keys()], lane);
    } catch (err) {
      for (const waiters of batch.values()) for (const w of waiters) w.reject(err);
      return;
    }
    for (const [key, waiters] of batch) for (const w of waiters) w.resolve(answers.get(key));
  }
}
