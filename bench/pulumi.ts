/**
 * bench/pulumi: wall and CPU time of the Pulumi CLI on stacks of N of this project's dynamic resources (ProvisionToken,
 * Installer and DiscoveryConfig in turn, against a runtime started here) beside the same N no-op dynamic resources
 * (a provider whose create hands its inputs back), measured in the same run: `pulumi preview` of a new stack,
 * `pulumi up --yes` (its own preview included, as a user runs it), preview and up again with nothing to change,
 * and `pulumi destroy --yes`. Each figure is the median of --runs runs.
 * Run: npm run bench:pulumi [-- --counts 1,10,50 --runs 3] [--skip-checkpoints: PULUMI_SKIP_CHECKPOINTS=true, to see
 * what writing the state file after every resource operation costs] [--json: one JSON object on stdout instead]
 */
import { execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { copyProgram, IN_REPO_WORK, pulumiEnv, REPO, requireTools, TOOLS_BIN } from "../test/fixtures/pulumi";
import { startTestRuntime, TestRuntime } from "../test/fixtures/runtime";
import { emit, flag, JSON_OUT, machine, median, numberArg, progress, stringArg } from "./report";

const COUNTS = stringArg("counts", "1,10,50").split(",").map(Number);
const RUNS = numberArg("runs", 3);
const SKIP_CHECKPOINTS = flag("skip-checkpoints");
const PROGRAM = path.join(__dirname, "pulumi-program");
const KINDS = ["discovery", "noop"] as const;
type Kind = (typeof KINDS)[number];

/** One CLI command of the sequence, and the summary line its output must show for a stack of n resources. */
interface Step {
  label: string;
  args: string[];
  expect: (n: number) => RegExp;
}
// The stack itself is one more resource in every summary line.
const STEPS: Step[] = [
  { label: "preview, new stack", args: ["preview"], expect: (n) => new RegExp(`\\+ ${n + 1} to create`) },
  { label: "up, create all", args: ["up", "--yes"], expect: (n) => new RegExp(`\\+ ${n + 1} created`) },
  { label: "preview, no changes", args: ["preview"], expect: (n) => new RegExp(`^\\s*${n + 1} unchanged`, "m") },
  { label: "up, no changes", args: ["up", "--yes"], expect: (n) => new RegExp(`^\\s*${n + 1} unchanged`, "m") },
  { label: "destroy", args: ["destroy", "--yes"], expect: (n) => new RegExp(`- ${n + 1} deleted`) },
];

/**
 * A private build of the package, linked into the program: `npm run build` empties dist/ first, and other work on
 * this repo may run it while the bench is running.
 */
function buildSnapshot(work: string): string {
  const pkg = path.join(work, "pkg");
  execFileSync(
    process.execPath,
    [require.resolve("typescript/bin/tsc"), "-p", "tsconfig.build.json", "--outDir", path.join(pkg, "dist")],
    // tsc reports on stdout; with --json that must hold the result alone.
    { cwd: REPO, stdio: ["ignore", JSON_OUT ? process.stderr : "inherit", "inherit"] },
  );
  fs.copyFileSync(path.join(REPO, "package.json"), path.join(pkg, "package.json"));
  return pkg;
}

/**
 * Milliseconds to require, in a fresh node, @pulumi/pulumi, then the package's model on top (our provider process pays
 * it on its first check), then the rest of pulumi-discovery (the program pays both): the median of three processes.
 */
function requireMs(dir: string): number[] {
  const script = `
    const ms = [];
    for (const m of ["@pulumi/pulumi", "pulumi-discovery/model", "pulumi-discovery"]) {
      const t = performance.now();
      require(m);
      ms.push(performance.now() - t);
    }
    console.log(JSON.stringify(ms));`;
  const runs = [0, 1, 2].map(() =>
    JSON.parse(execFileSync(process.execPath, ["-e", script], { cwd: dir, encoding: "utf8" })),
  );
  return [0, 1, 2].map((i) => median(runs.map((r: number[]) => r[i])));
}

/** What one CLI command cost: wall seconds, CPU seconds of the CLI and every process it started, and its output. */
interface Cost {
  seconds: number;
  cpu: number;
  out: string;
}

// bash's `times` prints the user and system time of the children it waited for, and theirs recursively: the CLI, its
// language host, the program's node, the dynamic provider's node. On a shared machine CPU is steadier than wall time.
const WITH_TIMES = `"$0" "$@"; rc=$?; times >&3; exit $rc`;

/** Runs the Pulumi CLI in `cwd`; resolves with what it cost, rejects with its output when it fails. */
function pulumi(cwd: string, env: NodeJS.ProcessEnv, args: string[]): Promise<Cost> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const child = spawn("bash", ["-c", WITH_TIMES, path.join(TOOLS_BIN, "pulumi"), ...args, "--non-interactive"], {
      cwd,
      env,
      stdio: ["ignore", "pipe", "pipe", "pipe"],
    });
    let out = "";
    let times = "";
    child.stdout!.on("data", (d) => (out += d));
    child.stderr!.on("data", (d) => (out += d));
    child.stdio[3]!.on("data", (d) => (times += d));
    child.on("error", reject);
    child.on("close", (code) => {
      const seconds = (performance.now() - t) / 1000;
      // Second line: children's user and system time, as "0m1.234s 0m0.567s".
      const cpu = [...(times.split("\n")[1] ?? "").matchAll(/(\d+)m([\d.]+)s/g)].reduce(
        (sum, m) => sum + Number(m[1]) * 60 + Number(m[2]),
        0,
      );
      if (code === 0) resolve({ seconds, cpu, out });
      else reject(new Error(`pulumi ${args.join(" ")} exited ${code}:\n${out.slice(-4000)}`));
    });
  });
}

/** The local backend's state file of `stack` (the program's Pulumi.yaml names the project). */
function statePath(program: string, stack: string): string {
  return path.join(program, ".backend", ".pulumi", "stacks", "discovery-bench", `${stack}.json`);
}

/** Requests and new TLS connections the runtime has served so far. */
function countTraffic(rt: TestRuntime): () => { requests: number; connections: number } {
  let requests = 0;
  let connections = 0;
  rt.runtime.app.server.on("request", () => requests++);
  rt.runtime.app.server.on("secureConnection", () => connections++);
  return () => ({ requests, connections });
}

async function main() {
  requireTools("pulumi", "pulumi-language-nodejs", "pulumi-resource-pulumi-nodejs");
  fs.mkdirSync(IN_REPO_WORK, { recursive: true });
  // Inside the repo, so the program and the package resolve @pulumi/pulumi from the repo's node_modules.
  const work = fs.mkdtempSync(path.join(IN_REPO_WORK, "bench-pulumi-"));
  const rt = await startTestRuntime();
  const traffic = countTraffic(rt);
  try {
    const pkg = buildSnapshot(work);
    const program = copyProgram(PROGRAM, work);
    fs.mkdirSync(path.join(program, "node_modules"));
    fs.symlinkSync(pkg, path.join(program, "node_modules", "pulumi-discovery"), "dir");
    const env = {
      ...process.env,
      ...pulumiEnv(path.join(work, ".pulumi-home")),
      NODE_EXTRA_CA_CERTS: rt.runtime.tls.certFile,
      ...(SKIP_CHECKPOINTS ? { PULUMI_SKIP_CHECKPOINTS: "true" } : {}),
    };
    const version = (await pulumi(program, env, ["version"])).out.trim();

    /** `steps` on a new stack of n resources of `kind`: what each step cost, and the runtime requests it made. */
    const sequence = async (kind: Kind, n: number, stack: string, steps = STEPS) => {
      await pulumi(program, env, ["stack", "init", stack]);
      const config = ["--plaintext", `count=${n}`, "--plaintext", `kind=${kind}`];
      if (kind === "discovery")
        config.push(
          "--plaintext",
          `discovery:server=${rt.url}`,
          "--secret",
          `discovery:adminToken=${rt.runtime.adminToken}`,
        );
      await pulumi(program, env, ["config", "set-all", "--stack", stack, ...config]);
      const costs: Cost[] = [];
      let stateBytes = 0;
      const requests: string[] = [];
      for (const step of steps) {
        const before = traffic();
        // This process's CPU is the runtime's (for the no-op stacks, next to nothing): counted for both kinds.
        const ownCpu = process.cpuUsage();
        const cost = await pulumi(program, env, [...step.args, "--stack", stack]);
        const own = process.cpuUsage(ownCpu);
        if (!step.expect(n).test(cost.out))
          throw new Error(`${kind} N=${n}: pulumi ${step.args.join(" ")} did not show ${step.expect(n)}:\n${cost.out}`);
        costs.push({ ...cost, cpu: cost.cpu + (own.user + own.system) / 1e6 });
        if (step === STEPS[1]) stateBytes = fs.statSync(statePath(program, stack)).size;
        const after = traffic();
        requests.push(`${after.requests - before.requests} (${after.connections - before.connections})`);
      }
      if (steps === STEPS && kind === "discovery") {
        const left = await rt.call("GET", `/v1/resources/token/${stack}-0`, undefined, { admin: true });
        if (left.status !== 404) throw new Error(`${stack}: destroy left the token ${stack}-0 in the runtime`);
      }
      await pulumi(program, env, ["stack", "rm", "--yes", "--force", stack]);
      return { costs, requests, stateBytes };
    };

    // Unmeasured, first: the first CLI, node and plugin starts read everything from disk.
    for (const kind of KINDS) await sequence(kind, 1, `warm-${kind}`, STEPS.slice(0, 1));

    const costs = new Map<string, Cost[][]>(); // `${kind} ${n}` → per run, the cost of each step
    const requests = new Map<number, string[]>(); // n → runtime requests (new connections) per step, last run
    const stateKb = new Map<string, number>(); // `${kind} ${n}` → size of the state file after up, KB
    const started = performance.now();
    for (let run = 0; run < RUNS; run++) {
      for (const n of COUNTS) {
        // Alternate which kind goes first, so neither always runs on a machine the other has just warmed.
        for (const kind of run % 2 ? [...KINDS].reverse() : KINDS) {
          const r = await sequence(kind, n, `${kind}-n${n}-r${run}`);
          const key = `${kind} ${n}`;
          costs.set(key, [...(costs.get(key) ?? []), r.costs]);
          if (kind === "discovery") requests.set(n, r.requests);
          stateKb.set(key, r.stateBytes / 1024);
          const figures = r.costs.map((c) => `${c.seconds.toFixed(2)}/${c.cpu.toFixed(2)}`).join(" ");
          progress(`run ${run + 1}/${RUNS} N=${n} ${kind}, wall/CPU s per step: ${figures}`);
        }
      }
    }
    const elapsed = (performance.now() - started) / 1000;

    const [bare, model, sdk] = requireMs(program);
    const result = {
      bench: "pulumi",
      pulumi: version,
      runs: RUNS,
      seconds: elapsed,
      skip_checkpoints: SKIP_CHECKPOINTS,
      ...machine(),
      // Per N and step: the medians of ours and of the no-op (the baseline), and their ratios.
      steps: COUNTS.flatMap((n) =>
        STEPS.map((step, i) => {
          const of = (kind: Kind, f: (c: Cost) => number) => median(costs.get(`${kind} ${n}`)!.map((r) => f(r[i])));
          const [ours, noop] = KINDS.map((k) => of(k, (c) => c.seconds));
          const [oursCpu, noopCpu] = KINDS.map((k) => of(k, (c) => c.cpu));
          const reqs = requests.get(n)![i];
          return { n, step: step.label, ours_seconds: ours, noop_seconds: noop, ratio: ours / noop, ours_cpu_seconds: oursCpu, noop_cpu_seconds: noopCpu, cpu_ratio: oursCpu / noopCpu, runtime_requests: reqs }; // prettier-ignore
        }),
      ),
      state_kb: COUNTS.map((n) => ({ n, ours: stateKb.get(`discovery ${n}`)!, noop: stateKb.get(`noop ${n}`)! })),
      require_ms: { pulumi: bare, model, sdk },
    };
    emit(result, () => {
      const widths = [4, 22, 9, 9, 7, 12, 12, 7, 15];
      const line = (c: string[]) =>
        c.map((x, i) => (i === 1 ? "  " + x.padEnd(widths[i]) : x.padStart(widths[i]))).join("");
      console.log(
        `\nbench/pulumi: pulumi ${version}, median of ${RUNS} run${RUNS > 1 ? "s" : ""} (${elapsed.toFixed(0)} s), ` +
          `${result.cores} cores, node ${result.node}, load average ${result.load_average.join(" ")} at the end` +
          (SKIP_CHECKPOINTS ? ", PULUMI_SKIP_CHECKPOINTS=true" : ""),
      );
      console.log(line(["N", "step", "ours s", "no-op s", "÷", "ours CPU s", "no-op CPU s", "÷", "runtime reqs"]));
      for (const r of result.steps)
        console.log(
          line([String(r.n), r.step, r.ours_seconds.toFixed(2), r.noop_seconds.toFixed(2), r.ratio.toFixed(2), r.ours_cpu_seconds.toFixed(2), r.noop_cpu_seconds.toFixed(2), r.cpu_ratio.toFixed(2), r.runtime_requests]), // prettier-ignore
        );
      const state = result.state_kb.map((s) => `N=${s.n} ${s.ours.toFixed(0)} / ${s.noop.toFixed(0)}`);
      console.log("\nruntime reqs: HTTP requests (new TLS connections) the runtime served during the step, ours only.");
      console.log(`state file after up, KB (ours / no-op): ${state.join(", ")}`);
      console.log(
        `require in a fresh node: @pulumi/pulumi ${bare.toFixed(0)} ms; ` +
          `then pulumi-discovery/model +${model.toFixed(0)} ms (our provider process, at its first check); ` +
          `then the rest of pulumi-discovery +${sdk.toFixed(0)} ms (the program)`,
      );
    });
  } finally {
    await rt.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
