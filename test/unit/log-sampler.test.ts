import { LogSampler } from "../../provider/runtime/log-sampler";

describe("LogSampler: what a flood of 429s may write to the log", () => {
  it("lets the first event of each source through per minute, then one overflow line, then nothing", () => {
    let t = 0;
    const s = new LogSampler(60_000, 3, () => t);
    expect(["a", "a", "b", "c", "a"].map((k) => s.take(k))).toEqual(["log", "drop", "log", "log", "drop"]);
    // A fourth source in the same minute: one line saying more are not logged, then silence however many come.
    expect(["d", "e", "f"].map((k) => s.take(k))).toEqual(["overflow", "drop", "drop"]);
    t = 60_000;
    expect(["a", "d", "a"].map((k) => s.take(k))).toEqual(["log", "log", "drop"]);
  });
});
