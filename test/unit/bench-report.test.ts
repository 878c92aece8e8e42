/** bench/report.ts: a bench's flags, and `--json` printing one JSON object and nothing else on stdout. */
const argv = process.argv;
afterEach(() => {
  process.argv = argv;
  jest.restoreAllMocks();
});

/** bench/report loaded afresh with these command-line arguments (it reads --json once, at load). */
function reportWith(args: string[]): typeof import("../../bench/report") {
  process.argv = ["node", "bench/x.ts", ...args];
  let mod!: typeof import("../../bench/report");
  jest.isolateModules(() => (mod = require("../../bench/report")));
  return mod;
}

test("a flag that is not a number stops the bench naming the flag and an example", () => {
  const r = reportWith(["--instances", "many", "--runs", "3"]);
  expect(r.numberArg("runs", 1)).toBe(3);
  expect(r.numberArg("latency", 50)).toBe(50);
  expect(() => r.numberArg("instances", 10000)).toThrow("--instances many: give a number, e.g. --instances 10000");
});

test("with --json, emit prints the result as one JSON line and not the tables", () => {
  const out = jest.spyOn(console, "log").mockImplementation(() => undefined);
  const tables = jest.fn();
  reportWith(["--json"]).emit({ bench: "x", ratio: 1.5 }, tables);
  expect(tables).not.toHaveBeenCalled();
  expect(out.mock.calls).toEqual([['{"bench":"x","ratio":1.5}']]);
});

test("without --json, emit prints the tables", () => {
  const out = jest.spyOn(console, "log").mockImplementation(() => undefined);
  const tables = jest.fn(() => console.log("table"));
  reportWith([]).emit({ bench: "x" }, tables);
  expect(out.mock.calls).toEqual([["table"]]);
});
