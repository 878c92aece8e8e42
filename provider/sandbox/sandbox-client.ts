import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { AzureLaunchOptionError, type AzureLaunchOptions } from "./azure-launch-options";
import type { AzureVmView } from "./azure-world";
import type { FleetInstanceView } from "./fleet";
import type { GcpLaunchOptions } from "./gcp-launch-options";
import type { GcpVmView } from "./gcp-world";
import { LaunchOptionError, LaunchOptions } from "./launch-options";
import { callControl, readSandboxState, sandboxPaths, SandboxState } from "./sandbox-control";
import { isAlive, packageBin } from "../deploy/local-process";
import { isolatedEnv, type SandboxOptions } from "./sandbox";

const START_TIMEOUT_MS = 180_000;
const STOP_TIMEOUT_MS = 30_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pidOf(dir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(sandboxPaths(dir).pid, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

// A pid file can outlive its process and the pid be reused: only a sandbox daemon is ever signalled.
function isSandboxDaemon(pid: number): boolean {
  if (!isAlive(pid)) return false;
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes("_daemon");
  } catch {
    return process.platform !== "linux"; // no /proc to ask: trust the pid file
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // the group is gone
  }
}

async function waitUntil(done: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

function logTail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** The state of the sandbox running in `dir`, when its daemon is alive and its control API answers. */
export async function runningSandbox(dir: string): Promise<SandboxState | undefined> {
  const state = readSandboxState(path.resolve(dir));
  if (!state || !isAlive(state.pid)) return undefined;
  const status = await callControl(state, "GET", "/v1/status").catch(() => undefined);
  return status?.status === 200 ? state : undefined;
}

/**
 * Starts the sandbox daemon for `dir` in its own session (it outlives this process) and returns once it answers,
 * or the sandbox already running there.
 */
export async function startSandbox(
  dirArg: string,
  options: SandboxOptions = {},
): Promise<{ state: SandboxState; alreadyRunning: boolean }> {
  const dir = path.resolve(dirArg);
  fs.mkdirSync(dir, { recursive: true });
  const p = sandboxPaths(dir);
  const running = await runningSandbox(dir);
  if (running) return { state: running, alreadyRunning: true };
  let pid = pidOf(dir);
  let ours = false;
  let exited = false;
  if (!pid || !isSandboxDaemon(pid)) {
    fs.rmSync(p.pid, { force: true });
    fs.rmSync(p.state, { force: true });
    const log = fs.openSync(p.log, "a");
    const flags = [
      ...(options.events ? ["--events"] : []),
      ...(options.pollInterval ? ["--poll-interval", options.pollInterval] : []),
    ];
    const child = spawn(process.execPath, [packageBin(), "sandbox", "_daemon", "--dir", dir, ...flags], {
      cwd: dir,
      detached: true, // a session of its own: not ended with this shell, and its pid names its process group
      stdio: ["ignore", log, log],
      env: isolatedEnv(),
    });
    fs.closeSync(log);
    child.on("exit", () => (exited = true));
    child.unref();
    pid = child.pid!;
    ours = true;
  }
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const state = readSandboxState(dir);
    if (state?.pid === pid) {
      const status = await callControl(state, "GET", "/v1/status").catch(() => undefined);
      if (status?.status === 200) return { state, alreadyRunning: !ours };
    }
    if (exited || !isAlive(pid)) {
      // Two starts at once: the other daemon took the directory, and this one stepped aside.
      const holder = pidOf(dir);
      if (holder && holder !== pid && isSandboxDaemon(holder)) {
        [pid, ours, exited] = [holder, false, false];
        continue;
      }
      throw new Error(`the sandbox did not start; the end of ${p.log}:\n${logTail(p.log)}`);
    }
    if (Date.now() > deadline) {
      if (ours) await stopSandbox(dir);
      throw new Error(`the sandbox did not become ready within ${START_TIMEOUT_MS / 1000} s; see ${p.log}`);
    }
    await sleep(200);
  }
}

/**
 * Ends the sandbox in `dir` and every process it started (moto, runtime, sshd); idempotent. The daemon stops
 * them itself; whatever is left of its process group afterwards is killed.
 */
export async function stopSandbox(dirArg: string): Promise<{ wasRunning: boolean }> {
  const dir = path.resolve(dirArg);
  const p = sandboxPaths(dir);
  const pid = pidOf(dir);
  if (!pid || !isSandboxDaemon(pid)) {
    fs.rmSync(p.pid, { force: true });
    fs.rmSync(p.state, { force: true });
    return { wasRunning: false };
  }
  const state = readSandboxState(dir);
  const asked = state?.pid === pid && (await callControl(state, "POST", "/v1/stop").catch(() => undefined));
  if (!asked || asked.status !== 202) process.kill(pid, "SIGTERM");
  if (!(await waitUntil(() => !isAlive(pid), STOP_TIMEOUT_MS))) signalGroup(pid, "SIGKILL");
  if (groupAlive(pid)) {
    signalGroup(pid, "SIGTERM");
    if (!(await waitUntil(() => !groupAlive(pid), 5_000))) signalGroup(pid, "SIGKILL");
  }
  await waitUntil(() => !groupAlive(pid), 5_000);
  fs.rmSync(p.pid, { force: true });
  fs.rmSync(p.state, { force: true });
  return { wasRunning: true };
}

/** Asks the sandbox in `dir` to launch instances; a refused argument comes back as a {@link LaunchOptionError}. */
export async function launchInSandbox(
  dirArg: string,
  launch: Partial<LaunchOptions> & Record<string, unknown>,
): Promise<FleetInstanceView[]>;
/** Asks the sandbox in `dir` to launch GCP VMs (`cloud: "gcp"`). */
export async function launchInSandbox(
  dirArg: string,
  launch: Partial<GcpLaunchOptions> & { cloud: "gcp" },
): Promise<GcpVmView[]>;
/** Asks the sandbox in `dir` to launch Azure VMs (`cloud: "azure"`); refusals come back as AzureLaunchOptionError. */
export async function launchInSandbox(
  dirArg: string,
  launch: Partial<AzureLaunchOptions> & { cloud: "azure" },
): Promise<AzureVmView[]>;
export async function launchInSandbox(
  dirArg: string,
  launch: Record<string, unknown>,
): Promise<FleetInstanceView[] | GcpVmView[] | AzureVmView[]> {
  const dir = path.resolve(dirArg);
  const state = await runningSandbox(dir);
  if (!state) throw new Error(`no sandbox is running in ${dir}; start one with: discovery sandbox start --dir ${dir}`);
  const answer = await callControl(state, "POST", "/v1/launch", launch);
  const error = answer.body?.error as { message?: string; field?: LaunchOptionError["field"] } | undefined;
  if (answer.status === 400 && error?.field && launch.cloud === "azure")
    throw new AzureLaunchOptionError(error.field as keyof AzureLaunchOptions, error.message ?? "is not valid");
  if (answer.status === 400 && error?.field) throw new LaunchOptionError(error.field, error.message ?? "is not valid");
  if (answer.status !== 200)
    throw new Error(
      `the sandbox could not launch: ${error?.message ?? `HTTP ${answer.status}`}; see ${sandboxPaths(dir).log}`,
    );
  return answer.body.instances as FleetInstanceView[] | GcpVmView[] | AzureVmView[];
}
