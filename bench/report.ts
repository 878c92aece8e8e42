/**
 * What every bench shares to report: its command-line flags, the machine it ran on, and the choice between human
 * tables and `--json` (one JSON object on stdout with the figures, bounds and ratios, so runs can be compared;
 * progress goes to stderr either way).
 */
import * as os from "os";

/** Whether `--name` is on the command line. */
export function flag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}

/** The value after `--name`, or `dflt`. */
export function stringArg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

/** The number after `--name`, or `dflt`; anything else than a number stops the bench with the flag's name. */
export function numberArg(name: string, dflt: number): number {
  const raw = stringArg(name, String(dflt));
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new Error(`--${name} ${raw}: give a number, e.g. --${name} ${dflt}`);
  return n;
}

/** `--json`: print one JSON object instead of the tables. */
export const JSON_OUT = flag("json");

/** The machine a figure was measured on: it is shared, so the load average belongs with every figure. */
export function machine() {
  return {
    cores: os.cpus().length,
    node: process.version,
    load_average: os.loadavg().map((l) => Number(l.toFixed(2))),
  };
}

/** One line of a table: the first column left-aligned in `first` characters, the others right-aligned in `width`. */
export function tableLine(first = 10, width = 12): (cells: string[]) => string {
  return (cells) => cells.map((x, i) => (i === 0 ? x.padEnd(first) : x.padStart(width))).join("");
}

/** Progress and notes: stderr, so stdout holds only the result. */
export function progress(message: string): void {
  console.error(message);
}

/** Prints the result: as one JSON object with `--json`, else through `human` (the tables). */
export function emit(result: object, human: () => void): void {
  if (JSON_OUT) console.log(JSON.stringify(result));
  else human();
}

/** Median of a non-empty list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
