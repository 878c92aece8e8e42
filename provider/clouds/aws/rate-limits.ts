/**
 * Pacing for AWS API calls: token buckets shaped like EC2's own request limits, and full-jitter exponential
 * backoff for the throttling that gets through anyway. Clock and sleep are injectable so tests need not wait.
 */
import {
  backoffDelay,
  realSleep,
  withRetries as retry,
  type RetryOptions as BaseRetryOptions,
  type Sleep,
} from "../../util/retry";

export { backoffDelay, realSleep, type Sleep };

/** Milliseconds since some fixed point; `Date.now` outside tests. */
export type Clock = () => number;

/** The size and refill rate of one token bucket. */
export interface BucketProfile {
  /** Part of the registry key: EC2 keeps a separate bucket per call category. */
  name: string;
  /** Tokens a full bucket holds: the burst AWS allows. */
  capacity: number;
  /** Tokens added per second: the sustained rate AWS allows. */
  refillPerSecond: number;
}

/** EC2 non-mutating calls (Describe* with filters or pagination), per account and region. */
export const EC2_NON_MUTATING: BucketProfile = { name: "ec2-non-mutating", capacity: 100, refillPerSecond: 20 };
/** EC2 unfiltered and unpaginated non-mutating calls (e.g. DescribeRegions), per account and region. */
export const EC2_UNFILTERED: BucketProfile = { name: "ec2-unfiltered", capacity: 50, refillPerSecond: 10 };
/** EC2 mutating calls, per account and region. */
export const EC2_MUTATING: BucketProfile = { name: "ec2-mutating", capacity: 50, refillPerSecond: 5 };
/**
 * STS, Organizations and Account calls. AWS publishes no bucket for them; this pace keeps a walk over hundreds of
 * organizational units from bursting into throttling, and withRetries absorbs what still comes back.
 */
export const GLOBAL_API: BucketProfile = { name: "global-api", capacity: 20, refillPerSecond: 10 };

/** A token bucket: callers take one token per request and wait, in arrival order, while the bucket is empty. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  /** A full bucket. */
  constructor(
    readonly profile: BucketProfile,
    private readonly clock: Clock = Date.now,
    private readonly sleep: Sleep = realSleep,
  ) {
    this.tokens = profile.capacity;
    this.last = clock();
  }

  /**
   * Takes one token, waiting for the refill when none is left. With a `reserve`, it also waits until that many
   * tokens are left after it: a caller running at the bucket's full rate keeps that margin, so the few
   * milliseconds its calls take to reach AWS (more for one, less for the next) do not find AWS's bucket empty.
   */
  async take(reserve = 0): Promise<void> {
    this.refill();
    // Going below zero reserves a future token, so concurrent callers queue up instead of all waking at once.
    this.tokens -= 1;
    if (this.tokens >= reserve) return;
    await this.sleep(Math.ceil(((reserve - this.tokens) / this.profile.refillPerSecond) * 1000));
  }

  /** Milliseconds until {@link take} with the same `reserve` would return at once. */
  waitMs(reserve = 0): number {
    this.refill();
    const short = reserve + 1 - this.tokens;
    return short <= 0 ? 0 : Math.ceil((short / this.profile.refillPerSecond) * 1000);
  }

  /** Tokens available now (negative while callers are queued). */
  available(): number {
    this.refill();
    return this.tokens;
  }

  private refill(): void {
    const now = this.clock();
    const elapsed = Math.max(0, now - this.last);
    this.last = now;
    this.tokens = Math.min(this.profile.capacity, this.tokens + (elapsed / 1000) * this.profile.refillPerSecond);
  }
}

/**
 * Buckets by scope (e.g. `ec2/<account>/<region>`) and profile, created full on first use. Share one registry
 * between fetches so that every matcher touching an account and region draws from the same budget, as AWS counts it.
 */
export class BucketRegistry {
  private readonly buckets = new Map<string, TokenBucket>();

  /** A registry whose buckets use the given clock and sleep (tests) or the real ones. */
  constructor(private readonly time: { clock?: Clock; sleep?: Sleep } = {}) {}

  /** The bucket of a scope and profile. */
  get(scope: string, profile: BucketProfile): TokenBucket {
    const key = `${scope}|${profile.name}`;
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = new TokenBucket(profile, this.time.clock, this.time.sleep);
      this.buckets.set(key, bucket);
    }
    return bucket;
  }

  /** Takes a token from the bucket of a scope and profile. */
  take(scope: string, profile: BucketProfile): Promise<void> {
    return this.get(scope, profile).take();
  }
}

/** Error codes AWS answers when a caller exceeds a request limit. */
export const THROTTLING_CODES: ReadonlySet<string> = new Set([
  "RequestLimitExceeded",
  "ThrottlingException",
  "Throttling",
  "TooManyRequestsException",
]);

/** AWS's error code of an SDK error (its `name`, or `Code` on some services), or "Error" for anything else. */
export function awsErrorCode(err: unknown): string {
  const e = err as { name?: unknown; Code?: unknown } | undefined;
  if (typeof e?.Code === "string" && e.Code) return e.Code;
  if (typeof e?.name === "string" && e.name) return e.name;
  return "Error";
}

/** Whether an error is AWS throttling the caller. */
export function isThrottling(err: unknown): boolean {
  return THROTTLING_CODES.has(awsErrorCode(err));
}

/** How AWS calls retry: as {@link retry}'s options, throttling ({@link isThrottling}) unless told otherwise. */
export type RetryOptions = Omit<BaseRetryOptions, "isRetryable"> & Partial<Pick<BaseRetryOptions, "isRetryable">>;

/** Runs `fn` with the one retry helper, retrying AWS throttling by default. */
export function withRetries<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  return retry(fn, { isRetryable: isThrottling, ...opts });
}

/**
 * One scope's API calls: every attempt first takes a token from the bucket it names, throttling is retried with
 * backoff, and attempts are counted, since each one spends AWS's budget whether it succeeds or not.
 */
export class PacedCaller {
  /** Attempts made so far, retries included. */
  calls = 0;

  /** A caller drawing from `buckets`. */
  constructor(
    private readonly buckets: BucketRegistry,
    private readonly retry: RetryOptions = {},
  ) {}

  /**
   * Makes one call, paced by the bucket of `scope` (e.g. `ec2/<account>/<region>`) and `profile`. `prepaid`: the
   * caller already took the first attempt's token (to gather work while waiting for it); retries take their own.
   */
  call<T>(scope: string, profile: BucketProfile, fn: () => Promise<T>, prepaid = false): Promise<T> {
    return withRetries(async (attempt) => {
      if (!(prepaid && attempt === 1)) await this.buckets.take(scope, profile);
      this.calls++;
      return fn();
    }, this.retry);
  }
}
