/**
 * The one retry helper: full-jitter exponential backoff around a call, for every cloud's throttling. Clock and
 * sleep are injectable so tests need not wait.
 */

/** Waits `ms` milliseconds. */
export type Sleep = (ms: number) => Promise<void>;

/** Sleeps for real, with a timer. */
export const realSleep: Sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** How {@link withRetries} retries. */
export interface RetryOptions {
  /** Attempts in all, the first included; default 6. */
  maxAttempts?: number;
  /** Backoff ceiling after the first failure, doubled after each; default 100 ms. */
  baseMs?: number;
  /** Largest ceiling; default 5 s. */
  capMs?: number;
  /** Which errors are worth another attempt (throttling, 5xx); other errors are answers, and retrying repeats them. */
  isRetryable: (err: unknown) => boolean;
  /** Default {@link realSleep}. */
  sleep?: Sleep;
  /** Uniform in [0, 1); default Math.random. */
  random?: () => number;
  /** Told about each retry before its wait, e.g. for metrics. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

/**
 * Full-jitter backoff: a uniform wait below min(cap, base * 2^(attempt-1)). Jitter spreads out many scopes that
 * were throttled at the same moment, so they do not come back together and get throttled again.
 */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random: () => number): number {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** (attempt - 1)));
}

/** Runs `fn` until it succeeds, fails with an error that is not retryable, or runs out of attempts. */
export async function withRetries<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const maxAttempts = opts.maxAttempts ?? 6;
  const sleep = opts.sleep ?? realSleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= maxAttempts || !opts.isRetryable(err)) throw err;
      const delay = backoffDelay(attempt, opts.baseMs ?? 100, opts.capMs ?? 5000, opts.random ?? Math.random);
      opts.onRetry?.(err, attempt, delay);
      await sleep(delay);
    }
  }
}
