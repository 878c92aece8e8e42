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

  describe("with admission (a token taken before the batch is formed)", () => {
    /** An admit whose grants the test hands out one by one, recording how many keys waited at each ask. */
    function gate(maxBatch: number) {
      const asks: number[] = [];
      const grants: ((lane: string) => void)[] = [];
      let open = 0;
      let mostOpen = 0;
      const admit = (waiting: number) => {
        asks.push(waiting);
        mostOpen = Math.max(mostOpen, ++open);
        return new Promise<{ lane: string; maxBatch: number }>((resolve) =>
          grants.push((lane) => {
            open--;
            resolve({ lane, maxBatch });
          }),
        );
      };
      return { asks, grants, admit, mostOpen: () => mostOpen };
    }
    const tick = () => new Promise((r) => setImmediate(r));

    it("puts the keys asked while a call waits for its token into that call, and tells the lookup its lane", async () => {
      const g = gate(1000);
      const calls: [number[], string][] = [];
      const c = new Coalescer(
        async (keys: number[], lane: string) => {
          calls.push([keys, lane]);
          return new Map(keys.map((k) => [k, k]));
        },
        { maxBatch: 1000, maxInFlight: 2, admit: g.admit },
      );
      const first = c.get(1);
      await tick();
      expect(g.asks).toEqual([1]); // asked for a token with one key waiting; no call yet
      const later = [2, 3, 4].map((k) => c.get(k));
      await tick();
      expect(calls).toEqual([]);
      g.grants[0]("filter");
      expect(await Promise.all([first, ...later])).toEqual([1, 2, 3, 4]);
      expect(calls).toEqual([[[1, 2, 3, 4], "filter"]]);
      expect(g.asks).toEqual([1]); // one token for the four keys
    });

    it("waits for one token at a time, caps each call at the admitted batch, and admits the rest next", async () => {
      const g = gate(2);
      const sizes: number[] = [];
      const c = new Coalescer(
        async (keys: number[]) => {
          sizes.push(keys.length);
          return new Map(keys.map((k) => [k, k]));
        },
        { maxBatch: 1000, maxInFlight: 4, admit: g.admit },
      );
      const all = Promise.all([1, 2, 3, 4, 5].map((k) => c.get(k)));
      for (let i = 0; i < 3; i++) {
        await tick();
        g.grants[i]("ids");
      }
      expect(await all).toEqual([1, 2, 3, 4, 5]);
      expect(sizes).toEqual([2, 2, 1]);
      expect(g.asks).toEqual([5, 3, 1]);
      expect(g.mostOpen()).toBe(1);
    });

    it("fails the waiting keys when no token can be had, and admits later keys as usual", async () => {
      let refuse = true;
      const c = new Coalescer(async (keys: number[]) => new Map(keys.map((k) => [k, k])), {
        maxBatch: 10,
        maxInFlight: 1,
        admit: async () => {
          if (refuse) throw new Error("pacing failed");
          return { lane: undefined, maxBatch: 10 };
        },
      });
      const results = await Promise.allSettled([1, 2].map((k) => c.get(k)));
      expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
      refuse = false;
      expect(await c.get(3)).toBe(3);
    });
  });
});
