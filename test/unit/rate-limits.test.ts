import {
  BucketRegistry,
  EC2_NON_MUTATING,
  EC2_UNFILTERED,
  PacedCaller,
  TokenBucket,
  backoffDelay,
  isThrottling,
  withRetries,
} from "../../provider/clouds/aws/rate-limits";

/** A clock that only moves when someone sleeps, recording each sleep. */
function fakeTime() {
  const t = { now: 0, sleeps: [] as number[] };
  return {
    t,
    clock: () => t.now,
    sleep: async (ms: number) => {
      t.sleeps.push(ms);
      t.now += ms;
    },
  };
}

/** An error shaped like the AWS SDK's: the AWS error code is its name. */
function awsError(code: string): Error {
  const e = new Error(`${code} from AWS`);
  e.name = code;
  return e;
}

describe("TokenBucket", () => {
  it("lets EC2's burst of 100 through at once, then paces at 20 a second", async () => {
    const { t, clock, sleep } = fakeTime();
    const bucket = new TokenBucket(EC2_NON_MUTATING, clock, sleep);
    for (let i = 0; i < 100; i++) await bucket.take();
    expect(t.sleeps).toEqual([]);
    for (let i = 0; i < 20; i++) await bucket.take();
    expect(t.sleeps).toEqual(Array(20).fill(50));
    expect(t.now).toBe(1000);
  });

  it("with a reserve, keeps that many tokens back: the burst is smaller, the sustained rate the same", async () => {
    const { t, clock, sleep } = fakeTime();
    const bucket = new TokenBucket(EC2_UNFILTERED, clock, sleep);
    expect(bucket.waitMs(2)).toBe(0);
    for (let i = 0; i < 48; i++) await bucket.take(2);
    expect(t.sleeps).toEqual([]);
    expect(bucket.available()).toBe(2);
    expect(bucket.waitMs(2)).toBe(100);
    expect(bucket.waitMs()).toBe(0); // a caller without a reserve may still take the two
    for (let i = 0; i < 10; i++) await bucket.take(2);
    expect(t.sleeps).toEqual(Array(10).fill(100));
    expect(t.now).toBe(1000);
  });

  it("refills with time up to its capacity and no further", async () => {
    const { t, clock, sleep } = fakeTime();
    const bucket = new TokenBucket(EC2_UNFILTERED, clock, sleep);
    for (let i = 0; i < 50; i++) await bucket.take();
    expect(bucket.available()).toBe(0);
    t.now += 500;
    expect(bucket.available()).toBe(5);
    t.now += 60_000;
    expect(bucket.available()).toBe(50);
  });

  it("queues concurrent callers behind each other instead of waking them together", async () => {
    const { clock } = fakeTime();
    const waits: number[] = [];
    const bucket = new TokenBucket({ name: "tiny", capacity: 1, refillPerSecond: 10 }, clock, async (ms) => {
      waits.push(ms);
    });
    await Promise.all([bucket.take(), bucket.take(), bucket.take(), bucket.take()]);
    expect(waits).toEqual([100, 200, 300]);
  });
});

describe("BucketRegistry", () => {
  it("keeps one bucket per scope and profile, so accounts, regions and call categories do not share a budget", async () => {
    const { clock, sleep } = fakeTime();
    const registry = new BucketRegistry({ clock, sleep });
    const a = registry.get("ec2/111111111111/us-east-1", EC2_NON_MUTATING);
    expect(registry.get("ec2/111111111111/us-east-1", EC2_NON_MUTATING)).toBe(a);
    expect(registry.get("ec2/111111111111/us-west-2", EC2_NON_MUTATING)).not.toBe(a);
    expect(registry.get("ec2/222222222222/us-east-1", EC2_NON_MUTATING)).not.toBe(a);
    const unfiltered = registry.get("ec2/111111111111/us-east-1", EC2_UNFILTERED);
    expect(unfiltered).not.toBe(a);
    await registry.take("ec2/111111111111/us-east-1", EC2_UNFILTERED);
    expect(unfiltered.available()).toBe(49);
    expect(a.available()).toBe(100);
  });
});

describe("withRetries", () => {
  it("recognises the throttling codes of EC2, STS, Organizations and the Account API, and nothing else", () => {
    for (const code of ["RequestLimitExceeded", "ThrottlingException", "Throttling", "TooManyRequestsException"])
      expect(isThrottling(awsError(code))).toBe(true);
    expect(isThrottling(awsError("AccessDenied"))).toBe(false);
    expect(isThrottling(new Error("socket hang up"))).toBe(false);
    expect(isThrottling(undefined)).toBe(false);
  });

  it("backs off exponentially from 100 ms, capped at 5 s, with full jitter", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 10].map((n) => backoffDelay(n, 100, 5000, () => 0.999999))).toEqual([
      99, 199, 399, 799, 1599, 3199, 4999, 4999,
    ]);
    expect(backoffDelay(6, 100, 5000, () => 0)).toBe(0);
    expect(backoffDelay(3, 100, 5000, () => 0.5)).toBe(200);
  });

  it("succeeds after throttling clears, having waited between attempts", async () => {
    const sleeps: number[] = [];
    let attempts = 0;
    const out = await withRetries(
      async () => {
        if (++attempts <= 2) throw awsError("RequestLimitExceeded");
        return "listed";
      },
      { sleep: async (ms) => void sleeps.push(ms), random: () => 0.5 },
    );
    expect(out).toBe("listed");
    expect(attempts).toBe(3);
    expect(sleeps).toEqual([50, 100]);
  });

  it("gives up after 6 attempts and throws AWS's last error", async () => {
    const sleeps: number[] = [];
    let attempts = 0;
    const run = withRetries(
      async () => {
        attempts++;
        throw awsError("ThrottlingException");
      },
      { sleep: async (ms) => void sleeps.push(ms), random: () => 0.999999 },
    );
    await expect(run).rejects.toMatchObject({ name: "ThrottlingException" });
    expect(attempts).toBe(6);
    expect(sleeps).toEqual([99, 199, 399, 799, 1599]);
  });

  it("does not retry an answer such as AccessDenied", async () => {
    let attempts = 0;
    const run = withRetries(
      async () => {
        attempts++;
        throw awsError("AccessDenied");
      },
      { sleep: async () => {} },
    );
    await expect(run).rejects.toMatchObject({ name: "AccessDenied" });
    expect(attempts).toBe(1);
  });
});

describe("PacedCaller", () => {
  it("takes a token for every attempt, retries included, and counts the attempts", async () => {
    const { clock } = fakeTime();
    const registry = new BucketRegistry({ clock, sleep: async () => {} });
    const caller = new PacedCaller(registry, { sleep: async () => {}, random: () => 0 });
    let n = 0;
    const out = await caller.call("ec2/111111111111/us-east-1", EC2_NON_MUTATING, async () => {
      if (++n === 1) throw awsError("RequestLimitExceeded");
      return n;
    });
    expect(out).toBe(2);
    expect(caller.calls).toBe(2);
    expect(registry.get("ec2/111111111111/us-east-1", EC2_NON_MUTATING).available()).toBe(98);
  });
});
