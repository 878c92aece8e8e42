/** The one concurrency limiter, for every cloud's fetchers and installers. */

/** Runs at most `n` tasks at once; later ones wait in arrival order. */
export function concurrencyLimit(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  const max = Math.max(1, Math.floor(n));
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (task) => {
    if (active < max) active++;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter, so a newcomer cannot slip in between and exceed the limit.
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}

/** Runs `fn` on every item, at most `limit` at a time, in order of the items. */
export async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const run = concurrencyLimit(limit);
  await Promise.all(items.map((item) => run(() => fn(item))));
}
