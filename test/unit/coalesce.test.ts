import { Coalescer } from "../../provider/util/coalesce";

/** A batch lookup that records each call's keys and answers `key * 10` for even keys (odd ones are unknown). */
function recorder(delayMs = 0) {
  const calls: number[][] = [];
  const lookup = async (keys: number[]) => {
    calls.push(keys);
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    return new Map(keys.filter((k) => k % 2 === 0).map((k) => [k, k * 10]));
  };
  return { calls, lookup };
}

describe("Coalescer: single-key lookups answered by batch calls", () => {
  it("answers keys asked in one tick with one call; unknown keys come back undefined", async () => {
    const r = recorder();
    const c = new Coalescer(r.lookup, { maxBatch: 1000, maxInFlight: 2 });
    const answers = await Promise.all([2, 3, 4].map((k) => c.get(k)));
    expect(answers).toEqual([20, undefined, 40]);
    expect(r.calls).toEqual([[2, 3, 4]]);
  });

  it("sends a lone key at once, and gathers the keys that arrive while calls are in flight into the next call", async () => {
    const r = recorder(20);
    const c = new Coalescer(r.lookup, { maxBatch: 1000, maxInFlight: 1 });
    const first = c.get(0);
    await new Promise((res) => setTimeout(res, 5)); // the first call is in flight
    const later = [2, 4, 6, 8].map((k) => c.get(k));
    expect(await first).toBe(0);
    expect(await Promise.all(later)).toEqual([20, 40, 60, 80]);
    expect(r.calls).toEqual([[0], [2, 4, 6, 8]]);
  });

  it("splits a burst into calls of at most maxBatch keys, at most maxInFlight at once", async () => {
    let running = 0;
    let most = 0;
    const sizes: number[] = [];
    const c = new Coalescer(
      async (keys: number[]) => {
        sizes.push(keys.length);
        most = Math.max(most, ++running);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        return new Map(keys.map((k) => [k, k]));
      },
      { maxBatch: 100, maxInFlight: 2 },
    );
    const keys = Array.from({ length: 1050 }, (_, i) => i);
    expect(await Promise.all(keys.map((k) => c.get(k)))).toEqual(keys);
    expect(sizes).toEqual([100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 50]);
    expect(most).toBe(2);
    expect(c.calls).toBe(11);
  });

  it("asks a key once however many wait for it", async () => {
    const r = recorder();
    const c = new Coalescer(r.lookup, { maxBatch: 10, maxInFlight: 1 });
    expect(await Promise.all([6, 6, 6].map((k) => c.get(k)))).toEqual([60, 60, 60]);
    expect(r.calls).toEqual([[6]]);
  });

  it("fails every key of a failed call, and only those; the next call is made as usual", async () => {
    let fail = true;
    const c = new Coalescer(
      async (keys: number[]) => {
        if (fail) {
          fail = false;
          throw new Error("throttled for good");
        }
        return new Map(keys.map((k) => [k, k]));
      },
      { maxBatch: 2, maxInFlight: 1 },
    );
    const results = await Promise.allSettled([1, 2, 3].map((k) => c.get(k)));
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected", "fulfilled"]);
    expect((results[0] as PromiseRejectedResult).reason.message).toBe("throttled for good");
    expect(await c.get(4)).toBe(4);
  });

  it("refuses a batch or concurrency below 1", () => {
    expect(() => new Coalescer(async () => new Map(), { maxBatch: 0, maxInFlight: 1 })).toThrow(
      "maxBatch and maxInFlight must be at least 1",
    );
  });
});
