/**
 * Rate-limited requests cost a flooder nothing to send; logging each one would make them cost us disk. A sampler
 * lets the first event of a source through each window and keeps its own memory bounded.
 */

/** What to do with one event: log it, log one "too many sources" line, or drop it. */
export type Sample = "log" | "overflow" | "drop";

/** At most one event per key per window, and at most `maxKeys` keys a window (then one overflow, then nothing). */
export class LogSampler {
  private window = -1;
  private readonly seen = new Set<string>();
  private overflowed = false;

  /** Windows of `windowMs`; `now` is injectable for tests. */
  constructor(
    private readonly windowMs = 60_000,
    private readonly maxKeys = 1000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Decides for one event of `key`. */
  take(key: string): Sample {
    const window = Math.floor(this.now() / this.windowMs);
    if (window !== this.window) {
      this.window = window;
      this.seen.clear();
      this.overflowed = false;
    }
    if (this.seen.has(key)) return "drop";
    if (this.seen.size >= this.maxKeys) {
      if (this.overflowed) return "drop";
      this.overflowed = true;
      return "overflow";
    }
    this.seen.add(key);
    return "log";
  }
}
