/**
 * Installs on Azure VMs with a managed run command, as Teleport's Azure installer does: per VM, read its instance
 * view (a VM no longer running is skipped, one whose VM agent is not ready fails without sending anything), create
 * or update the run command `discovery-install` with the installer script and `asyncExecution: false`, wait for it,
 * and read its instance view (execution state, exit code, output, error). The script carries a random nonce line,
 * because Azure does not run a run command again whose content did not change.
 *
 * The run command is left in place, not deleted: its fixed name means each install updates the same one (a VM
 * never collects them), deleting would be another long-running operation per VM and another permission, and its
 * instance view keeps the last installer output readable (`az vm run-command show --instance-view`). The script
 * holds no secret: the token name only, which an azure join cannot use without the VM's own attested identity.
 */
import * as crypto from "crypto";
import type { AzureMatcher } from "../../model";
import type { Candidate, InstallOutcome, RuntimeEndpoint } from "../../enroll/types";
import type { FailureClass } from "../../enroll/clouds";
import { concurrencyLimit } from "../../util/concurrency";
import { outputTail } from "../aws/install-ssm";
import { matcherInstallerArgs, runShellScriptCommands } from "../aws/ssm-installer-content";
import type { VirtualMachineRunCommand } from "@azure/arm-compute";
import {
  AzureApis,
  azureApis,
  AzureCandidate,
  azureErrorCode,
  azureErrorMessage,
  ComputeApi,
  powerState,
} from "./fetch";

/** The failure classes of the run command installer, and whether each means a command reached the VM. */
export const AZURE_FAILURE_CLASSES = {
  "vm-agent-not-available": { commandSent: false, summary: "the VM's Azure VM agent is not ready or not reachable" },
  "missing-run-command-permission": {
    commandSent: false,
    summary: "the discovery identity may not create or read run commands on the VM",
  },
  "vm-not-running": { commandSent: false, summary: "the VM stopped or was deallocated during the install" },
  "script-failure": { commandSent: true, summary: "the installer ran and exited non-zero, or timed out" },
  "invocation-failure": { commandSent: false, summary: "an ARM call failed" },
} satisfies Record<string, FailureClass>;

/** The failure classes installViaRunCommand reports. */
export type AzureFailureClass = keyof typeof AZURE_FAILURE_CLASSES;

/** The name of the run command on every VM: one per VM, updated by each install. */
export const RUN_COMMAND_NAME = "discovery-install";
/** How long the installer may run unless told otherwise. */
export const DEFAULT_RUN_COMMAND_TIMEOUT_S = 600;
/** VMs in flight at once unless told otherwise. */
export const DEFAULT_AZURE_INSTALL_CONCURRENCY = 10;

/** Everything installViaRunCommand needs besides the candidates. */
export interface AzureInstallRequest {
  /** The matcher the candidates came from: its install block decides what runs. */
  matcher: AzureMatcher;
  /** Where VMs fetch the installer; the matcher's install.proxy_addr wins over its proxyAddr. */
  endpoint: RuntimeEndpoint;
  /** Default: Microsoft's clients, endpoint from the environment. */
  clients?: AzureApis;
  /** The run command's timeoutInSeconds; default 600. */
  timeoutSeconds?: number;
  /** VMs in flight at once; default 10. */
  maxInFlight?: number;
  /** The nonce line's random hex (16 characters); tests fix it. */
  nonce?: () => string;
}

/** The installer script for one run: the nonce line first, then the same commands AWS-RunShellScript runs. */
export function runCommandScript(commands: string[], nonce: string): string {
  return `# ${nonce}\n${commands.join("\n")}\n`;
}

const only = (c: Candidate) => ({ instanceId: c.instanceId, account: c.account, region: c.region });

function failed(c: Candidate, failureClass: AzureFailureClass, reason: string, remediation: string): InstallOutcome {
  return { ...only(c), status: "failed", failureClass, reason, remediation };
}

const POLICY_HINT = "`discovery policy azure --config FILE` prints the custom role";

/** The action an ARM permission error names (`... perform action 'X' over scope ...`), if it names one. */
const deniedAction = (message: string) => /action '([^']+)'/.exec(message)?.[1];

/** The outcome of a failed ARM call while installing on `c`. */
export function armFailure(c: AzureCandidate, err: unknown, doing: string, action: string): InstallOutcome {
  const code = azureErrorCode(err);
  const msg = azureErrorMessage(err);
  const vm = describeVm(c);
  if (code === "VMAgentStatusCommunicationError")
    return failed(
      c,
      "vm-agent-not-available",
      `${doing} on ${vm} failed: its VM agent does not report status (${code}): ${msg}`,
      "check the VM runs the Azure Linux agent (walinuxagent) and can reach Azure (168.63.129.16 and storage), " +
        "or restart it; the next pass retries",
    );
  if (code === "AuthorizationFailed" || code === "HTTP_403") {
    const named = deniedAction(msg) ?? action;
    return failed(
      c,
      "missing-run-command-permission",
      `${doing} on ${vm} was denied: the discovery identity lacks ${named}: ${msg}`,
      `grant ${named} on subscription ${c.account} (or the VM's resource group) to the discovery identity; ` +
        POLICY_HINT,
    );
  }
  if (code === "OperationNotAllowed" && /deallocat|stopp|not running|power/i.test(msg))
    return failed(
      c,
      "vm-not-running",
      `${vm} stopped running during the install (${code}): ${msg}`,
      "nothing to do if it was stopped on purpose; the next pass installs once it runs",
    );
  return failed(
    c,
    "invocation-failure",
    `${doing} on ${vm} failed (${code}): ${msg}`,
    "the next pass retries; if it persists, check the VM in the portal (provisioning state, extensions) and the " +
      "error above",
  );
}

const describeVm = (c: AzureCandidate) =>
  c.azure.scaleSet
    ? `VM ${c.azure.scaleSet.instanceId} of scale set ${c.azure.scaleSet.name} (resource group ${c.azure.resourceGroup})`
    : `VM ${c.azure.name} (resource group ${c.azure.resourceGroup})`;

/** The run command operations of one VM, standalone or of a scale set. */
function runCommands(api: ComputeApi, c: AzureCandidate) {
  const { resourceGroup: rg, name, scaleSet: ss } = c.azure;
  const prefix = ss ? "Microsoft.Compute/virtualMachineScaleSets/virtualMachines" : "Microsoft.Compute/virtualMachines";
  return {
    write: `${prefix}/runCommands/write`,
    read: `${prefix}/runCommands/read`,
    put: (body: VirtualMachineRunCommand) =>
      ss
        ? api.virtualMachineScaleSetVMRunCommands.createOrUpdate(rg, ss.name, ss.instanceId, RUN_COMMAND_NAME, body)
        : api.virtualMachineRunCommands.createOrUpdate(rg, name, RUN_COMMAND_NAME, body),
    get: () =>
      ss
        ? api.virtualMachineScaleSetVMRunCommands.get(rg, ss.name, ss.instanceId, RUN_COMMAND_NAME, {
            expand: "instanceView",
          })
        : api.virtualMachineRunCommands.getByVirtualMachine(rg, name, RUN_COMMAND_NAME, { expand: "instanceView" }),
  };
}

/** What the VM's instance view says before anything is sent: skip it, fail it, or go on. */
async function precheck(api: ComputeApi, c: AzureCandidate): Promise<InstallOutcome | undefined> {
  // Scale set VMs were read with their instance view by the fetch moments ago; the PUT tells if that changed.
  if (c.azure.scaleSet) return undefined;
  let view;
  try {
    view = await api.virtualMachines.instanceView(c.azure.resourceGroup, c.azure.name);
  } catch (err) {
    if (azureErrorCode(err) === "ResourceNotFound" || azureErrorCode(err) === "NotFound")
      return { ...only(c), status: "skipped", reason: `${describeVm(c)} no longer exists` };
    // Reading failed for another reason: the run command's own answer says more than this error would.
    return undefined;
  }
  const state = powerState(view);
  if (state && state !== "running")
    return {
      ...only(c),
      status: "skipped",
      reason: `${describeVm(c)} is ${state} now; the next pass installs once it runs`,
    };
  const agent = view.vmAgent?.statuses?.[0]?.displayStatus;
  if (agent && /not ready/i.test(agent))
    return failed(
      c,
      "vm-agent-not-available",
      `the VM agent of ${describeVm(c)} is ${agent}, so it cannot run commands`,
      "check the VM runs the Azure Linux agent (walinuxagent) and can reach Azure (168.63.129.16 and storage), " +
        "or restart it; the next pass retries",
    );
  return undefined;
}

/** Rejects after `ms` unless `p` settles first. */
function within<T>(p: PromiseLike<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(Object.assign(new Error(`${what} did not finish within ${ms / 1000} s`), { code: "Timeout" })),
      ms,
    );
  });
  return Promise.race([Promise.resolve(p), timeout]).finally(() => clearTimeout(timer));
}

/** The outcome of a finished run command, from its instance view. */
function classify(c: AzureCandidate, rc: VirtualMachineRunCommand, timeoutS: number): InstallOutcome {
  const view = rc.instanceView ?? {};
  const stdoutTail = outputTail(view.output);
  const stderrTail = outputTail(view.error);
  const state = view.executionState ?? rc.provisioningState ?? "Unknown";
  const code = view.exitCode;
  if (state === "Succeeded" && (code ?? 0) === 0)
    return { ...only(c), status: "succeeded", exitCode: 0, stdoutTail, ...(stderrTail && { stderrTail }) };
  const tails = { stdoutTail, stderrTail, ...(typeof code === "number" && { exitCode: code }) };
  if (state === "TimedOut")
    return {
      ...failed(
        c,
        "script-failure",
        `the installer did not finish within ${timeoutS} s on ${describeVm(c)}`,
        "run the installer by hand on the VM to see where it hangs (often: no route to the runtime)",
      ),
      ...tails,
    };
  if (state === "Failed" || (typeof code === "number" && code !== 0)) {
    const last = stderrTail.split("\n").pop();
    return {
      ...failed(
        c,
        "script-failure",
        `the installer exited with code ${code ?? "unknown"} on ${describeVm(c)}${last ? `: ${last}` : ""}`,
        "read stderrTail; if curl could not reach the runtime, open the path from the VM to it (network security " +
          "groups, install.proxy_addr); curl's exit code 90 means the runtime's TLS key does not match the pin",
      ),
      ...tails,
    };
  }
  return {
    ...failed(
      c,
      "invocation-failure",
      `the run command on ${describeVm(c)} ended ${state}${view.executionMessage ? `: ${view.executionMessage}` : ""}`,
      "the next pass retries; if it persists, read the run command's instance view in the portal",
    ),
    ...tails,
  };
}

/** Installs on one VM; never throws. */
async function installOne(api: ComputeApi, c: AzureCandidate, script: string, timeoutS: number) {
  const early = await precheck(api, c);
  if (early) return early;
  const rc = runCommands(api, c);
  const body: VirtualMachineRunCommand = {
    location: c.region,
    source: { script },
    asyncExecution: false,
    timeoutInSeconds: timeoutS,
  };
  let put: VirtualMachineRunCommand | undefined;
  try {
    put = (await within(rc.put(body), (timeoutS + 120) * 1000, "the run command")) as VirtualMachineRunCommand;
  } catch (err) {
    // A run command whose script failed ends its operation Failed, an error without ARM's code: its instance view
    // says why. Errors ARM answered with a code (denied, no agent, deallocated) are the outcome themselves.
    const e = err as { code?: unknown; statusCode?: unknown };
    if (typeof e?.code === "string" || typeof e?.statusCode === "number")
      return armFailure(c, err, "creating the run command", rc.write);
  }
  try {
    return classify(c, await rc.get(), timeoutS);
  } catch (err) {
    if (put?.instanceView) return classify(c, put, timeoutS);
    return armFailure(c, err, "reading the run command's result", rc.read);
  }
}

/**
 * Installs on Azure candidates with managed run commands and returns one outcome per candidate, in order. At most
 * `maxInFlight` (10) VMs at once; one VM's failure never stops the others.
 */
export async function installViaRunCommand(
  candidates: Candidate[],
  req: AzureInstallRequest,
): Promise<InstallOutcome[]> {
  const clients = req.clients ?? azureApis();
  const timeoutS = req.timeoutSeconds ?? DEFAULT_RUN_COMMAND_TIMEOUT_S;
  const nonce = req.nonce ?? (() => crypto.randomBytes(8).toString("hex"));
  const args = matcherInstallerArgs(req.matcher.install, req.endpoint);
  const commands = [false, true].map((rejoin) => runShellScriptCommands({ ...args, rejoin }));
  const limit = concurrencyLimit(req.maxInFlight ?? DEFAULT_AZURE_INSTALL_CONCURRENCY);
  try {
    return await Promise.all(
      candidates.map((c) =>
        limit(async () => {
          const az = c as Partial<AzureCandidate>;
          if (!az.azure)
            return failed(
              c,
              "invocation-failure",
              `VM ${c.instanceId} carries no resource group and name (it did not come from the Azure fetcher)`,
              "the next pass fetches it again",
            );
          const script = runCommandScript(commands[c.rejoin ? 1 : 0], nonce());
          return installOne(clients.compute(c.account), az as AzureCandidate, script, timeoutS).catch((e) =>
            armFailure(az as AzureCandidate, e, "installing", "Microsoft.Compute/virtualMachines/runCommands/write"),
          );
        }),
      ),
    );
  } finally {
    if (!req.clients) await clients.close();
  }
}
