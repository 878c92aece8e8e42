/**
 * Installs on GCE VMs over SSH with an ephemeral metadata key, as RFD 113 and Teleport's gcp installer do: per VM,
 * check OS Login, read the host keys from guest attributes, add a fresh key to `ssh-keys`, SSH in verifying the
 * host key, run the installer, and remove exactly our key again whatever happened. One VM's failure never stops
 * the others; at most 10 VMs of a project at once.
 */
import * as fs from "fs";
import type { GcpMatcher } from "../../model";
import type { Candidate, InstallOutcome, RuntimeEndpoint } from "../../enroll/types";
import type { FailureClass } from "../../enroll/clouds";
import { concurrencyLimit } from "../../util/concurrency";
import { outputTail } from "../aws/install-ssm";
import { matcherInstallerArgs, runShellScriptCommands } from "../aws/ssm-installer-content";
import { GceInstance, GcpClients, gcpErrorCode, gcpErrorMessage, googleClients } from "./clients";
import { changeSshKeys, ephemeralKey, guestHostKeys, osLoginEnabled, VmRef } from "./ssh-key";
import { runOverSsh, SshFailure, SshResult } from "./ssh-run";

/** The failure classes installViaGceSsh reports. */
export type GceFailureClass =
  | "oslogin-enabled"
  | "no-host-keys"
  | "host-key-mismatch"
  | "ssh-unreachable"
  | "permission-denied"
  | "script-failure"
  | "invocation-failure";

/** The failure classes of the SSH installer, and whether each means a command reached the VM. */
export const GCE_FAILURE_CLASSES: Record<GceFailureClass, FailureClass> = {
  "oslogin-enabled": { commandSent: false, summary: "OS Login is on: the VM refuses metadata SSH keys" },
  "no-host-keys": { commandSent: false, summary: "the VM publishes no host keys (guest attributes are off)" },
  "host-key-mismatch": { commandSent: false, summary: "the VM's SSH host key is not one its guest attributes name" },
  "ssh-unreachable": { commandSent: false, summary: "no SSH connection to the VM, or the key was not accepted" },
  "permission-denied": { commandSent: false, summary: "the runtime may not set the VM's metadata" },
  "script-failure": { commandSent: true, summary: "the installer ran and exited non-zero" },
  "invocation-failure": { commandSent: false, summary: "a Compute call failed" },
};

/** Everything installViaGceSsh needs besides the candidates. */
export interface GceInstallRequest {
  /** The matcher the candidates came from: its install block decides what runs. */
  matcher: GcpMatcher;
  /** Where VMs fetch the installer; the matcher's install.proxy_addr wins over its proxyAddr. */
  endpoint: RuntimeEndpoint;
  /** Default: Google's clients, endpoint from the environment. */
  clients?: GcpClients;
  /** The login the ephemeral key is for (the guest agent creates it, with sudo); default `discovery`. */
  user?: string;
  /** Run the installer through `sudo -n` (the guest agent's users have passwordless sudo); default true. */
  sudo?: boolean;
  /** Connect to the external (NAT) IP instead of the internal one; default false. */
  useExternalIp?: boolean;
  /** The SSH port of a VM; default {@link sshPortFor}. */
  sshPort?: (c: Candidate) => number;
  /** How long to keep trying to log in while the guest agent installs the key; default 90 s. */
  connectWindowMs?: number;
  /** Between two login attempts; default 3 s. */
  connectRetryMs?: number;
  /** How long the installer may run; default 10 minutes. */
  commandTimeoutMs?: number;
  /** VMs of one project in flight at once; default 10. */
  perProject?: number;
  /** VMs in flight at once over all projects (each holds an SSH connection); default 32. */
  maxInFlight?: number;
  /** The clock, for the key's expiry. */
  now?: () => Date;
}

/**
 * The SSH port of a VM: 22, except where the JSON map `{"<instance id>": port}` in the file
 * `DISCOVERY_GCP_SSH_PORTS_FILE` names another. A test and sandbox seam only (simulated VMs share one loopback
 * address), never set in production; it changes the port only: the host key must still match the guest attribute.
 */
export function sshPortFor(c: Candidate, env: NodeJS.ProcessEnv = process.env): number {
  let port = 22;
  const file = env.DISCOVERY_GCP_SSH_PORTS_FILE;
  if (file) {
    try {
      port = Number((JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>)[c.instanceId] ?? 22);
    } catch {
      port = 22;
    }
  }
  return Number.isInteger(port) && port > 0 && port < 65536 ? port : 22;
}

const USER = /^[a-z_][a-z0-9_-]{0,31}$/;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const only = (c: Candidate) => ({ instanceId: c.instanceId, account: c.account, region: c.region });

function failed(c: Candidate, failureClass: GceFailureClass, reason: string, remediation: string): InstallOutcome {
  return { ...only(c), status: "failed", failureClass, reason, remediation };
}

/** The outcome of a Compute API error: permission-denied names the permission and project. */
function apiFailure(c: Candidate, permission: string, err: unknown, extraFix = ""): InstallOutcome {
  const code = gcpErrorCode(err);
  if (code === "PERMISSION_DENIED" || code === "UNAUTHENTICATED")
    return failed(
      c,
      "permission-denied",
      `${permission} was denied on VM ${c.instanceId} in project ${c.account}: ${gcpErrorMessage(err)}`,
      `grant ${permission} on project ${c.account} to the discovery credentials${extraFix}; ` +
        "`discovery policy gcp` prints the role it needs",
    );
  return failed(
    c,
    "invocation-failure",
    `${permission.replace(/^compute\./, "")} failed for VM ${c.instanceId} (${code}): ${gcpErrorMessage(err)}`,
    "the next pass retries; if it persists, check the Compute API in the project and the request above",
  );
}

/** The VM's name: the first label of the zonal DNS name the fetcher sets, else its numeric id. */
const vmName = (c: Candidate) => c.privateDnsName?.split(".")[0] || c.instanceId;

/** What one install shares among its VMs. */
interface Run {
  req: GceInstallRequest;
  clients: GcpClients;
  user: string;
  script: string;
  /** Project metadata by project, read once per run. */
  projectMetadata: Map<string, Promise<GceInstance["metadata"] | undefined>>;
}

/** The project's common metadata; undefined when it cannot be read (the instance's own setting still counts). */
function projectMetadata(run: Run, project: string) {
  let p = run.projectMetadata.get(project);
  if (!p) {
    p = run.clients
      .computeProjects()
      .get({ project })
      .then(([proj]) => proj.commonInstanceMetadata ?? undefined)
      .catch(() => undefined);
    run.projectMetadata.set(project, p);
  }
  return p;
}

/** Logs in and runs the installer, retrying the login while the guest agent has not yet installed the key. */
async function connectAndRun(
  run: Run,
  c: Candidate,
  host: string,
  ssh: Omit<Parameters<typeof runOverSsh>[0], "host">,
) {
  const until = Date.now() + (run.req.connectWindowMs ?? 90_000);
  for (;;) {
    try {
      return await runOverSsh({ ...ssh, host });
    } catch (e) {
      const retryable = e instanceof SshFailure && (e.kind === "auth" || e.kind === "unreachable");
      if (!retryable || Date.now() >= until) throw e;
      await sleep(run.req.connectRetryMs ?? 3000);
    }
  }
}

/** The outcome of an SSH failure. */
function sshFailure(c: Candidate, e: unknown, where: string): InstallOutcome {
  const kind = e instanceof SshFailure ? e.kind : "unreachable";
  const msg = (e as Error).message ?? String(e);
  if (kind === "host-key-mismatch")
    return failed(
      c,
      "host-key-mismatch",
      `refused to connect to ${where}: ${msg}`,
      "something other than the VM may answer at that address; if the VM was rebuilt with new host keys, " +
        "restart its guest agent so it republishes them (guest attributes hostkeys/), then the next pass retries",
    );
  if (kind === "timeout")
    return failed(
      c,
      "script-failure",
      `the installer did not finish: ${msg}`,
      "run the installer by hand on the VM to see where it hangs (often: no route to the runtime)",
    );
  return failed(
    c,
    "ssh-unreachable",
    `could not run the installer over SSH at ${where}: ${msg}`,
    kind === "auth"
      ? "check the VM's guest agent (google-guest-agent) runs and applies ssh-keys metadata, and that " +
          "block-project-ssh-keys or an sshd AuthorizedKeysCommand does not exclude metadata keys"
      : "allow TCP to port 22 from the discovery service to the VM (a VPC firewall rule), check sshd runs, and " +
          "if the service has no route to internal IPs, install from inside the VPC or use external IPs",
  );
}

/** The outcome of a finished run. */
function classify(c: Candidate, r: SshResult): InstallOutcome {
  const stdoutTail = outputTail(r.stdout);
  const stderrTail = outputTail(r.stderr);
  if (r.code === 0)
    return { ...only(c), status: "succeeded", exitCode: 0, stdoutTail, ...(stderrTail && { stderrTail }) };
  const last = stderrTail.split("\n").pop();
  const how = r.code === null ? `was killed by ${r.signal ?? "a signal"}` : `exited with code ${r.code}`;
  return {
    ...failed(
      c,
      "script-failure",
      `the installer ${how}${last ? `: ${last}` : ""}`,
      "read stderrTail; if curl could not reach the runtime, open the path from the VM to it (firewall rules, " +
        "install.proxy_addr); curl's exit code 90 means the runtime's TLS key does not match the pin",
    ),
    ...(r.code !== null && { exitCode: r.code }),
    stdoutTail,
    stderrTail,
  };
}

/** Installs on one VM; never throws. */
async function installOne(run: Run, c: Candidate): Promise<InstallOutcome> {
  const api = run.clients.instances();
  const vm: VmRef = { project: c.account, zone: c.region, instance: vmName(c) };
  let inst: GceInstance;
  try {
    [inst] = await api.get(vm);
  } catch (e) {
    return apiFailure(c, "compute.instances.get", e);
  }
  if (inst.status && inst.status !== "RUNNING")
    return {
      ...only(c),
      status: "skipped",
      reason: `VM ${c.instanceId} is ${inst.status} now; the next pass installs once it runs`,
    };
  if (osLoginEnabled(inst.metadata, await projectMetadata(run, c.account)))
    return failed(
      c,
      "oslogin-enabled",
      `OS Login is enabled for VM ${c.instanceId} (enable-oslogin=TRUE), so it ignores metadata SSH keys`,
      "set metadata enable-oslogin=FALSE on the VM (or the project), or enroll it another way",
    );
  let hostKeys;
  try {
    hostKeys = await guestHostKeys(api, vm);
  } catch (e) {
    return apiFailure(c, "compute.instances.getGuestAttributes", e);
  }
  if (hostKeys.length === 0)
    return failed(
      c,
      "no-host-keys",
      `VM ${c.instanceId} publishes no SSH host keys in guest attributes, so its identity cannot be checked`,
      "set metadata enable-guest-attributes=TRUE on the VM (or the project); the guest agent then publishes " +
        "hostkeys/ within a minute",
    );
  const nic = inst.networkInterfaces?.[0];
  const host = run.req.useExternalIp ? nic?.accessConfigs?.[0]?.natIP : nic?.networkIP;
  if (!host)
    return failed(
      c,
      "ssh-unreachable",
      `VM ${c.instanceId} has no ${run.req.useExternalIp ? "external" : "internal"} IP address`,
      run.req.useExternalIp ? "give the VM an external IP, or install over internal IPs" : "check the VM's network",
    );
  const key = ephemeralKey(run.user, (run.req.now ?? (() => new Date()))());
  try {
    await changeSshKeys(run.clients, vm, key.metadataLine, false, 1, inst);
  } catch (e) {
    const outcome = apiFailure(
      c,
      "compute.instances.setMetadata",
      e,
      " (and iam.serviceAccounts.actAs on its service account)",
    );
    return withRemoval(outcome, await removeKey(run, vm, key.metadataLine));
  }
  const port = (run.req.sshPort ?? sshPortFor)(c);
  let outcome: InstallOutcome;
  try {
    const result = await connectAndRun(run, c, host, {
      port,
      user: run.user,
      privateKey: key.privateKey,
      hostKeys,
      command: run.req.sudo === false ? "sh -s" : "sudo -n sh -s",
      stdin: run.script,
      commandTimeoutMs: run.req.commandTimeoutMs,
    });
    outcome = classify(c, result);
  } catch (e) {
    outcome = sshFailure(c, e, `${host}:${port}`);
  }
  return withRemoval(outcome, await removeKey(run, vm, key.metadataLine));
}

/** Removes our line, reading the metadata afresh; returns why it could not, if it could not. */
async function removeKey(run: Run, vm: VmRef, line: string): Promise<string | undefined> {
  try {
    await changeSshKeys(run.clients, vm, line, true, 3);
    return undefined;
  } catch (e) {
    return `${gcpErrorCode(e)}: ${gcpErrorMessage(e)}`;
  }
}

/** The outcome, noting a key left behind (it still expires by itself within ten minutes). */
function withRemoval(o: InstallOutcome, error: string | undefined): InstallOutcome {
  if (!error) return o;
  const note = `the ephemeral SSH key could not be removed (${error}); the guest agent drops it at its expiry`;
  return { ...o, reason: o.reason ? `${o.reason}; ${note}` : note };
}

/**
 * Installs on GCP candidates over SSH and returns one outcome per candidate, in order. VMs of one project run at
 * most `perProject` (10) at a time, and at most `maxInFlight` (32) in all.
 */
export async function installViaGceSsh(candidates: Candidate[], req: GceInstallRequest): Promise<InstallOutcome[]> {
  const user = req.user ?? "discovery";
  if (!USER.test(user)) throw new Error(`invalid SSH user ${JSON.stringify(user)}`);
  const clients = req.clients ?? googleClients();
  const args = matcherInstallerArgs(req.matcher.install, req.endpoint);
  const base = { req, clients, user, projectMetadata: new Map() };
  const runs = [false, true].map((rejoin): Run => ({
    ...base,
    script: `${runShellScriptCommands({ ...args, rejoin }).join("\n")}\n`,
  }));
  const limits = new Map<string, <T>(task: () => Promise<T>) => Promise<T>>();
  const limitFor = (project: string) => {
    let l = limits.get(project);
    if (!l) limits.set(project, (l = concurrencyLimit(req.perProject ?? 10)));
    return l;
  };
  // The project slot is taken first, so a VM waiting for its project never holds one of the shared slots.
  const overall = concurrencyLimit(req.maxInFlight ?? 32);
  try {
    return await Promise.all(
      candidates.map((c) =>
        limitFor(c.account)(() =>
          overall(() => installOne(runs[c.rejoin ? 1 : 0], c).catch((e) => apiFailure(c, "installing over SSH", e))),
        ),
      ),
    );
  } finally {
    if (!req.clients) await clients.close();
  }
}
