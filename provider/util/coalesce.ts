/**
 * Concurrent lookups of single keys, answered by batch calls. A key asked while `maxInFlight` batch calls are
 * already running waits, and every key that arrives meanwhile goes into the next call (up to `maxBatch`), so a
 * burst of N lookups costs about N / maxBatch calls, while a lone lookup is sent at once and waits for nothing.
 * When the batch call itself is paced (a token bucket inside `lookup`), the wait for a token is time in which
 * more keys gather: the call rate stays at the bucket's rate however many lookups come.
 */
export interface CoalesceOptions {
  /** Most keys in one call (DescribeInstances takes 1000 instance ids). */
  maxBatch: number;
  /** Batch calls running at once; more keys wait for one to end. */
  maxInFlight: number;
}

/** Answers for the keys of one call; a key missing from the map is answered `undefined` (not found). */
export type BatchLookup<K, V> = (keys: K[]) => Promise<Map<K, V>>;

interface Waiter<V> {
  resolve: (v: V | undefined) => void;
  reject: (err: unknown) => void;
}

export class Coalescer<K, V> {
  private readonly pending = new Map<K, Waiter<V>[]>();
  private inFlight = 0;
  private scheduled = false;
  /** Batch calls made so far (for metrics and benchmarks). */
  calls = 0;

  constructor(
    private readonly lookup: BatchLookup<K, V>,
    private readonly opts: CoalesceOptions,
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
    while (this.inFlight < this.opts.maxInFlight && this.pending.size > 0) {
      const batch = new Map<K, Waiter<V>[]>();
      for (const [key, waiters] of this.pending) {
        if (batch.size >= this.opts.maxBatch) break;
        batch.set(key, waiters);
      }
      for (const key of batch.keys()) this.pending.delete(key);
      this.inFlight++;
      this.calls++;
      this.send(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async send(batch: Map<K, Waiter<V>[]>): Promise<void> {
    let answers: Map<K, V>;
    try {
      answers = await this.lookup([...batch.keys()]);
    } catch (err) {
      for (const waiters of batch.values()) for (const w of waiters) w.reject(err);
      return;
    }
    for (const [key, waiters] of batch) for (const w of waiters) w.resolve(answers.get(key));
  }
}
