import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { concurrencyLimit } from "../util/concurrency";
import { Fleet, FleetInstance, pingStatus } from "./fleet";
import type { CommandParameters, CommandPlan, StepPlan } from "./ssm-documents";

/** Statuses SSM reports for an invocation or one of its plugins. */
export type InvocationStatus = "Pending" | "InProgress" | "Success" | "Failed" | "TimedOut" | "Cancelled";

/** One plugin (step) of an invocation. */
export interface PluginResult {
  name: string;
  status: InvocationStatus;
  statusDetails: string;
  /** The exit code; -1 until the step ends or when it never ran a process. */
  responseCode: number;
  stdout: string;
  stderr: string;
  startedAt?: Date;
  endedAt?: Date;
}

/** A command on one instance. */
export interface Invocation {
  commandId: string;
  instanceId: string;
  status: InvocationStatus;
  statusDetails: string;
  plugins: PluginResult[];
  startedAt?: Date;
  endedAt?: Date;
}

/** A SendCommand, with one invocation an instance. */
export interface CommandRecord {
  commandId: string;
  /** The caller's account and region: commands are seen only from there, as in AWS. */
  account: string;
  region: string;
  comment: string;
  parameters: CommandParameters;
  instanceIds: string[];
  requestedAt: Date;
  /** Delivery timeout: how long an invocation may wait for its agent to come online. */
  timeoutSeconds: number;
  plan: CommandPlan;
  invocations: Map<string, Invocation>;
}

/** How the runner reaches the runtime: downloads from `origin` are checked against its public-key pin. */
export interface RuntimeTls {
  origin: string;
  pin: string;
}

/** Runner settings. */
export interface CommandRunnerOptions {
  /** Invocations running at once across the fleet; one instance runs its own one after another. Default 8. */
  concurrency?: number;
  runtimeTls?: RuntimeTls;
}

/** Output kept of each stream: GetCommandInvocation shows 24,000 characters; the files on disk keep it all. */
const KEPT_OUTPUT = 64 * 1024;
const DELIVERY_POLL_MS = 250;
const TERMINAL = new Set<InvocationStatus>(["Success", "Failed", "TimedOut", "Cancelled"]);

/** Whether an invocation has finished one way or another. */
export const isTerminal = (s: InvocationStatus) => TERMINAL.has(s);

/** The simulated SSM agents: delivers each invocation when its instance is online, and runs it for real. */
export class CommandRunner {
  /** Every command, oldest first. */
  readonly commands = new Map<string, CommandRecord>();
  private readonly queues = new Map<string, Promise<void>>();
  private readonly running = new Map<Invocation, ChildProcess>();
  private readonly limit: <T>(task: () => Promise<T>) => Promise<T>;
  private closed = false;

  constructor(
    private readonly fleet: Fleet,
    private readonly opts: CommandRunnerOptions = {},
  ) {
    this.limit = concurrencyLimit(opts.concurrency ?? 8);
  }

  /** Records a command and queues its invocations, each behind the earlier commands of its instance. */
  submit(record: CommandRecord): void {
    this.commands.set(record.commandId, record);
    for (const inv of record.invocations.values()) {
      const prev = this.queues.get(inv.instanceId) ?? Promise.resolve();
      const next = prev.then(() => this.deliver(record, inv)).catch(() => undefined);
      this.queues.set(inv.instanceId, next);
    }
  }

  /** Cancels the invocations of a command that have not finished (all, or those on `instanceIds`). */
  cancel(record: CommandRecord, instanceIds?: string[]): void {
    for (const inv of record.invocations.values()) {
      if (isTerminal(inv.status) || (instanceIds && !instanceIds.includes(inv.instanceId))) continue;
      this.finish(inv, "Cancelled", "Cancelled");
      const child = this.running.get(inv);
      if (child?.pid) killGroup(child.pid);
    }
  }

  /** Kills whatever still runs; nothing new starts. */
  close(): void {
    this.closed = true;
    for (const record of this.commands.values()) this.cancel(record);
  }

  private async deliver(record: CommandRecord, inv: Invocation): Promise<void> {
    const deadline = record.requestedAt.getTime() + record.timeoutSeconds * 1000;
    for (;;) {
      const inst = this.fleet.get(inv.instanceId);
      if (isTerminal(inv.status) || this.closed || !inst) return;
      if (pingStatus(inst) === "Online") break;
      // An offline agent picks its commands up when it reconnects, unless the delivery timeout ends first.
      if (Date.now() >= deadline) return this.finish(inv, "TimedOut", "DeliveryTimedOut");
      await sleep(DELIVERY_POLL_MS);
    }
    await this.limit(async () => {
      if (!isTerminal(inv.status) && !this.closed) await this.run(record, inv, this.fleet.get(inv.instanceId)!);
    });
  }

  private async run(record: CommandRecord, inv: Invocation, inst: FleetInstance): Promise<void> {
    inv.status = "InProgress";
    inv.statusDetails = "InProgress";
    inv.startedAt = new Date();
    const workDir = path.join(inst.dir, ".ssm", record.commandId);
    // Absolute download paths land inside the instance's directory; later steps' scripts get the same rewrite.
    const rewrites: [string, string][] = [];
    let skipRest: string | undefined;
    for (const [i, step] of record.plan.steps.entries()) {
      const plugin = inv.plugins[i];
      if (isTerminal(inv.status)) return; // cancelled meanwhile
      plugin.startedAt = new Date();
      if (skipRest || (step.platformType && step.platformType !== inst.platform)) {
        const why = skipRest ?? `unsatisfied preconditions: platformType ${step.platformType}`;
        Object.assign(plugin, { status: "Success", statusDetails: "Skipped", responseCode: 0, endedAt: new Date() });
        plugin.stdout = `Step execution skipped due to ${why}. Step name: ${step.name}\n`;
        continue;
      }
      plugin.status = "InProgress";
      plugin.statusDetails = "InProgress";
      const stepDir = path.join(workDir, `${i}-${step.name.replace(/[^A-Za-z0-9_.-]/g, "_")}`);
      fs.mkdirSync(stepDir, { recursive: true });
      await this.runStep(step, inv, plugin, inst, stepDir, rewrites);
      plugin.endedAt = new Date();
      const outcome = plugin.status as InvocationStatus; // runStep set it
      if (outcome === "Failed" || outcome === "TimedOut") {
        if (step.onFailure === "successAndExit") Object.assign(plugin, { status: "Success", statusDetails: "Success" });
        if (step.onFailure) skipRest = `an earlier step's onFailure: ${step.onFailure}`;
      } else if (step.onSuccess === "exit") skipRest = "an earlier step's onSuccess: exit";
    }
    if (isTerminal(inv.status)) return;
    const worst = inv.plugins.find((p) => p.status === "Failed") ?? inv.plugins.find((p) => p.status === "TimedOut");
    if (worst) this.finish(inv, worst.status, worst.statusDetails);
    else this.finish(inv, "Success", "Success");
  }

  private async runStep(
    step: StepPlan,
    inv: Invocation,
    plugin: PluginResult,
    inst: FleetInstance,
    stepDir: string,
    rewrites: [string, string][],
  ): Promise<void> {
    const env = this.fleet.commandEnv(inst);
    const diskMap = this.fleet.diskMap(inst);
    if (step.unsupported) {
      return void Object.assign(plugin, {
        status: "Failed",
        statusDetails: "Failed",
        stderr: `the sandbox's SSM agent does not simulate ${step.unsupported}\n`,
      });
    }
    if (step.download) {
      const dest = downloadDestination(inst.dir, step.download.destinationPath, step.download.url, diskMap);
      if (step.download.destinationPath && path.isAbsolute(step.download.destinationPath))
        rewrites.push([step.download.destinationPath, dest]);
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      const args = ["-sS", "--fail", "-L", "--max-time", String(step.timeoutSeconds), "-o", dest];
      const tls = this.opts.runtimeTls;
      // The runtime's certificate is self-signed; its pin stands in for the public CA an agent would trust.
      if (tls && new URL(step.download.url).origin === tls.origin) args.push("-k", "--pinnedpubkey", tls.pin);
      await this.spawnStep(inv, plugin, "curl", [...args, step.download.url], inst.dir, env, stepDir, step);
      if (plugin.status === "Success") plugin.stdout += `Content downloaded to ${dest}\n`;
      return;
    }
    const script = rewritePaths(step.runCommand!.join("\n") + "\n", [...rewrites, ...this.fleet.diskMap(inst)]);
    const scriptFile = path.join(stepDir, "_script.sh");
    fs.writeFileSync(scriptFile, script, { mode: 0o700 });
    const cwd = step.workingDirectory ? insideInstance(inst.dir, step.workingDirectory, diskMap) : inst.dir;
    await this.spawnStep(inv, plugin, "sh", [scriptFile], cwd, env, stepDir, step);
  }

  private spawnStep(
    inv: Invocation,
    plugin: PluginResult,
    file: string,
    args: string[],
    cwd: string,
    env: Record<string, string>,
    stepDir: string,
    step: StepPlan,
  ): Promise<void> {
    return new Promise((resolve) => {
      // Its own process group, so a timeout or a cancel ends pipelines (curl | sh) as a whole.
      const child = spawn(file, args, { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
      this.running.set(inv, child);
      const files = { stdout: path.join(stepDir, "stdout"), stderr: path.join(stepDir, "stderr") };
      for (const stream of ["stdout", "stderr"] as const) {
        const sink = fs.createWriteStream(files[stream]);
        child[stream]!.on("data", (d: Buffer) => {
          sink.write(d);
          if (plugin[stream].length < KEPT_OUTPUT) plugin[stream] += d.toString("utf8");
        });
        child[stream]!.on("end", () => sink.end());
      }
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        if (child.pid) killGroup(child.pid);
      }, step.timeoutSeconds * 1000);
      let settled = false;
      const done = (code: number | null, err?: Error) => {
        if (settled) return; // a process that failed to start reports both error and close
        settled = true;
        clearTimeout(timer);
        this.running.delete(inv);
        if (isTerminal(inv.status)) return resolve(); // cancelled: the invocation already says so
        plugin.responseCode = code ?? -1;
        if (err) plugin.stderr += `cannot run ${file}: ${err.message}\n`;
        if (timedOut) Object.assign(plugin, { status: "TimedOut", statusDetails: "ExecutionTimedOut" });
        else if (code === 0) Object.assign(plugin, { status: "Success", statusDetails: "Success" });
        else Object.assign(plugin, { status: "Failed", statusDetails: "Failed" });
        resolve();
      };
      child.on("error", (err) => done(null, err));
      child.on("close", (code) => done(code));
    });
  }

  private finish(inv: Invocation, status: InvocationStatus, details: string): void {
    inv.status = status;
    inv.statusDetails = details;
    inv.endedAt = new Date();
    for (const p of inv.plugins)
      if (!isTerminal(p.status)) Object.assign(p, { status, statusDetails: details, endedAt: inv.endedAt });
  }
}

/**
 * A path the agent itself handles (download destination, working directory) on the instance's disk: a path of
 * the disk map goes where the instance keeps that file, any other absolute path is re-rooted at the instance's
 * directory, so instances never share or touch the host's files.
 */
export function insideInstance(instanceDir: string, p: string, diskMap: [string, string][] = []): string {
  const n = path.normalize(p); // before the lookup, so `..` cannot walk out of a mapped directory
  for (const [from, to] of diskMap) if (n === from || n.startsWith(from + "/")) return to + n.slice(from.length);
  return path.join(instanceDir, n.replace(/^(\.\.(\/|$))+/, ""));
}

/** Where aws:downloadContent writes: `destinationPath` inside the instance, or its downloads dir by default. */
export function downloadDestination(
  instanceDir: string,
  destinationPath: string | undefined,
  url: string,
  diskMap: [string, string][] = [],
): string {
  const name = path.basename(new URL(url).pathname) || "download";
  if (!destinationPath) return path.join(instanceDir, "downloads", name);
  const inside = insideInstance(instanceDir, destinationPath, diskMap);
  return destinationPath.endsWith("/") ? path.join(inside, name) : inside;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A script with each mapped path (whole path components only) replaced by the instance's own. */
export function rewritePaths(script: string, map: [string, string][]): string {
  for (const [from, to] of map) {
    const re = new RegExp(`(?<![\\w./-])${escapeRegExp(from)}(?![\\w-])`, "g");
    script = script.replace(re, () => to);
  }
  return script;
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // already gone
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
