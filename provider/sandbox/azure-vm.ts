import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { diskWithoutSshd, GuestDisk, guestDiskMap, guestEnv, prepareGuestDisk, reloadSshd, writeGuestShell } from "./guest"; // prettier-ignore
import { rewritePaths } from "./ssm-commands";
import { startVm, TestVm } from "./sshd";

/** What a run command's instance view reports once the script ended. */
export interface RunCommandOutcome {
  executionState: "Succeeded" | "Failed" | "TimedOut";
  exitCode: number;
  output: string;
  error: string;
  startTime: string;
  endTime: string;
}

/** The guest of a sandbox Azure VM: its disk, its sshd when agentless, and what runs scripts on it. */
export interface AzureGuest {
  disk: GuestDisk;
  sshd?: TestVm;
  stop(): Promise<void>;
}

// Azure keeps the last 4 KiB of each stream in the instance view.
const KEPT_OUTPUT = 4096;
/** Azure's default when `timeoutInSeconds` is 0 or missing: 90 minutes. */
export const DEFAULT_RUN_TIMEOUT_S = 90 * 60;

/**
 * Starts the guest of a VM in `dir`: with `agentless`, a real sshd whose sessions run through a guest shell with
 * the VM's IMDS and disk (AZURE_IMDS_ENDPOINT, host paths mapped), as gcp-vm's do.
 */
export async function startAzureGuest(dir: string, imdsEndpoint: string, agentless: boolean): Promise<AzureGuest> {
  fs.mkdirSync(dir, { recursive: true });
  if (!agentless) {
    const disk = diskWithoutSshd(dir);
    prepareGuestDisk(disk, "Azure");
    return { disk, stop: async () => undefined };
  }
  const sshd = await startVm({ dir });
  prepareGuestDisk(sshd, "Azure");
  const shell = writeGuestShell(sshd, [["AZURE_IMDS_ENDPOINT", imdsEndpoint]], "Azure");
  // Every session through the guest shell; whose keys (or certificates) log in is up to the VM's sshd_config,
  // which is what an agentless install edits.
  fs.writeFileSync(path.join(dir, "sshd_config.d", "50-azure-guest.conf"), `ForceCommand ${shell}\n`);
  await reloadSshd(sshd);
  return { disk: sshd, sshd, stop: () => sshd.stop() };
}

const tail = (s: string) => (s.length > KEPT_OUTPUT ? s.slice(-KEPT_OUTPUT) : s);

function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/**
 * Runs a run command's script as the Azure VM agent would: `sh` on the VM (cwd its directory, env with its IMDS
 * and disk, host paths in the text mapped to the VM's own), waiting for the end or `timeoutS`.
 */
export function runAzureScript(
  disk: GuestDisk,
  imdsEndpoint: string,
  script: string,
  timeoutS: number,
  scriptFile: string,
): Promise<RunCommandOutcome> {
  fs.mkdirSync(path.dirname(scriptFile), { recursive: true });
  fs.writeFileSync(scriptFile, rewritePaths(script, guestDiskMap(disk)), { mode: 0o700 });
  const env = Object.fromEntries(guestEnv(disk, [["AZURE_IMDS_ENDPOINT", imdsEndpoint]]));
  const startTime = new Date().toISOString();
  return new Promise((resolve) => {
    // Its own process group, so a timeout ends pipelines (curl | sh) as a whole.
    const child = spawn("sh", [scriptFile], { cwd: disk.dir, env, detached: true, stdio: ["ignore", "pipe", "pipe"] }); // prettier-ignore
    let output = "";
    let error = "";
    child.stdout!.on("data", (d: Buffer) => (output = tail(output + d.toString("utf8"))));
    child.stderr!.on("data", (d: Buffer) => (error = tail(error + d.toString("utf8"))));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid) killGroup(child.pid);
    }, timeoutS * 1000);
    let settled = false;
    const done = (code: number | null, err?: Error) => {
      if (settled) return; // a process that failed to start reports both error and close
      settled = true;
      clearTimeout(timer);
      if (err) error += `cannot run sh: ${err.message}\n`;
      const exitCode = code ?? -1;
      const executionState = timedOut ? "TimedOut" : exitCode === 0 ? "Succeeded" : "Failed";
      resolve({ executionState, exitCode, output, error, startTime, endTime: new Date().toISOString() });
    };
    child.on("error", (err) => done(null, err));
    child.on("close", (code) => done(code));
  });
}
