/**
 * Installs on EC2 instances through SSM Run Command, as Teleport's ssm_install.go does: check each instance's
 * SSM registration first, send the installer in batches of 50, then read every instance's result and turn it
 * into an outcome a person can act on.
 */
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  GetCommandInvocationCommandOutput,
  InstanceInformation,
  SendCommandCommand,
  SSMClient,
} from "@aws-sdk/client-ssm";
import { DEFAULT_SSM_DOCUMENT, type AwsMatcher } from "../../model";
import type { Candidate, InstallOutcome, RuntimeEndpoint } from "../../enroll/types";
import type { SsmFailureClass } from "./ssm-failure-classes";
import { mapLimit } from "../../util/concurrency";
import { realSleep } from "../../util/retry";
import { documentArn, instanceArn } from "./policy";
import { INSTALLER_STEPS, InstallerArgs, installerParameters, proxyHost, refusedParameter } from "./ssm-document";
import { errMessage, errName, ssmCall, ssmClient, SsmClientOptions, SsmRetry } from "./ssm-client";

export type { AwsCredentials, SsmClientOptions, SsmRetry } from "./ssm-client";

/** The most instance ids one ssm:SendCommand (and one DescribeInstanceInformation filter) accepts. */
export const SSM_BATCH_SIZE = 50;

/** Everything installViaSsm needs besides the candidates. */
export interface SsmInstallRequest {
  /** The matcher the candidates came from: its ssm.document_name and install block decide what is sent. */
  matcher: AwsMatcher;
  /** Where instances fetch the installer; the matcher's install.proxy_addr wins over its proxyAddr. */
  endpoint: RuntimeEndpoint;
  /** Join token name; default the matcher's install.join_params.token_name. */
  tokenName?: string;
  client?: SsmClientOptions;
  /** Between two GetCommandInvocation rounds; default 2 s. */
  pollIntervalMs?: number;
  /** When to stop waiting for results; what is still running then fails. Default: 10 minutes from now. */
  deadline?: Date;
  /** Throttling retries: attempts per call (default 6), the first backoff ceiling (default 250 ms), a counter. */
  retry?: SsmRetry;
}

const POLICY_HINT = "`discovery policy aws --config FILE` prints the policy the discovery role needs";
const PROFILE_HINT =
  "attach an instance profile with AmazonSSMManagedInstanceCore (or `discovery policy aws`'s instance policy), " +
  "check the SSM agent is installed and running (systemctl status amazon-ssm-agent), and that the instance " +
  "reaches the ssm, ssmmessages and ec2messages endpoints (internet, NAT gateway or VPC endpoints)";

// Terminal statuses (Status) and details (StatusDetails) of a command invocation; anything else is still running.
const TERMINAL_STATUS = new Set(["Success", "Failed", "Cancelled", "TimedOut"]);
const TERMINAL_DETAILS = new Set(["DeliveryTimedOut", "Undeliverable", "Terminated", "ExecutionTimedOut"]);
const DENIED = /^AccessDenied(Exception)?$/;

/** The last `maxLines` lines of `text`, at most `maxChars` characters: the part of a log that says why. */
export function outputTail(text: string | undefined, maxLines = 20, maxChars = 2048): string {
  const lines = (text ?? "").replace(/\s+$/, "").split("\n");
  const tail = lines.slice(-maxLines).join("\n");
  return tail.length > maxChars ? tail.slice(tail.length - maxChars) : tail;
}

/** One account × region's worth of candidates and the client that reaches them. */
interface Scope {
  account: string;
  region: string;
  client: SSMClient;
  retry: SsmRetry;
}

const call = <T>(scope: Scope, fn: () => Promise<T>): Promise<T> => ssmCall(scope.retry, fn);

// Spreading a Candidate would bring its other fields along; keep only what an outcome carries.
const only = (c: Candidate) => ({ instanceId: c.instanceId, account: c.account, region: c.region });

function failed(c: Candidate, failureClass: SsmFailureClass, reason: string, remediation: string): InstallOutcome {
  return { ...only(c), status: "failed", failureClass, reason, remediation };
}

/** The outcome of an API error: permission-denied names the action and account; anything else is an invocation failure. */
function apiFailure(c: Candidate, action: string, e: unknown, extraFix = ""): InstallOutcome {
  const where = `account ${c.account} (${c.region})`;
  if (DENIED.test(errName(e)))
    return failed(
      c,
      "permission-denied",
      `${action} was denied in ${where}: ${errMessage(e)}`,
      `allow ${action} for the discovery role in ${where}${extraFix}; ${POLICY_HINT}`,
    );
  return failed(
    c,
    "invocation-failure",
    `${action} failed in ${where}: ${errName(e)}: ${errMessage(e)}`,
    `retry the next pass; if it persists, check the SSM service in ${c.region} and the request above`,
  );
}

/** Why SSM will not run a command on an instance, or undefined when it will. */
function precheck(c: Candidate, info: InstanceInformation | undefined): InstallOutcome | undefined {
  if (!info)
    return failed(
      c,
      "ssm-agent-not-registered",
      `instance ${c.instanceId} is not registered with SSM in account ${c.account} (${c.region})`,
      PROFILE_HINT,
    );
  if (info.PingStatus !== "Online")
    return failed(
      c,
      "ssm-agent-connection-lost",
      `the SSM agent on ${c.instanceId} is ${info.PingStatus ?? "not online"}` +
        (info.LastPingDateTime ? ` (last seen ${new Date(info.LastPingDateTime).toISOString()})` : ""),
      `check the instance is running and its SSM agent is up; then ${PROFILE_HINT}`,
    );
  if (info.PlatformType !== "Linux")
    return failed(
      c,
      "unsupported-os",
      `${c.instanceId} runs ${info.PlatformType ?? "an unknown platform"}` +
        `${info.PlatformName ? ` (${info.PlatformName} ${info.PlatformVersion ?? ""})`.replace(" )", ")") : ""}; ` +
        "the installer runs on Linux only",
      "exclude the instance from the matcher (a tag it lacks), or enroll it another way",
    );
  return undefined;
}

const DETAIL_REASONS: Record<string, [string, string]> = {
  Undeliverable: [
    "SSM could not deliver the command: the instance stopped, was terminated, or its agent cannot reach SSM",
    PROFILE_HINT,
  ],
  DeliveryTimedOut: ["the SSM agent did not pick the command up before the delivery timeout", PROFILE_HINT],
  Terminated: ["the instance was terminated while the command ran", "nothing to do unless the instance comes back"],
  ExecutionTimedOut: [
    "the installer ran longer than the command's timeout",
    "run the installer by hand on the instance to see where it hangs (often: no route to the runtime)",
  ],
  Cancelled: ["the command was cancelled", "the next pass sends it again"],
};

/** The outcome of a finished invocation (or one plugin step of it). */
function classify(c: Candidate, r: GetCommandInvocationCommandOutput, url: string, step?: string): InstallOutcome {
  const base = { commandId: r.CommandId, stdoutTail: outputTail(r.StandardOutputContent) };
  const stderrTail = outputTail(r.StandardErrorContent);
  const code = r.ResponseCode;
  // A success keeps its output too: if the node then never joins, that output is the first thing to read.
  if (r.Status === "Success")
    return { ...only(c), ...base, ...(stderrTail && { stderrTail }), status: "succeeded", exitCode: code ?? 0 };
  const download = step === INSTALLER_STEPS[0];
  // Only a script that ran and failed has an exit code worth reporting; a timed-out run's code is the kill's.
  if (r.Status === "Failed" && typeof code === "number" && code > 0)
    return {
      ...failed(
        c,
        "script-failure",
        download
          ? `downloading the installer from ${url} failed (step ${INSTALLER_STEPS[0]}, exit code ${code})` +
              `${stderrTail ? `: ${stderrTail.split("\n").pop()}` : ""}`
          : `the installer exited with code ${code}${stderrTail ? `: ${stderrTail.split("\n").pop()}` : ""}`,
        download
          ? `make ${url} reachable from the instance (security groups, install.proxy_addr); curl's exit code 90 ` +
              "means the runtime's TLS key does not match the pin (caPin) the document was given"
          : "read stderrTail; if curl could not reach the runtime, open the path from the instance to it " +
              "(security groups, install.proxy_addr); rerun the command on the instance to reproduce",
      ),
      ...base,
      exitCode: code,
      stderrTail,
    };
  const detail = r.StatusDetails ?? r.Status ?? "unknown";
  const [why, fix] = DETAIL_REASONS[detail] ?? [`the command ended ${detail} without an exit code`, PROFILE_HINT];
  return { ...failed(c, "invocation-failure", `${why} (${detail})`, fix), ...base, stderrTail };
}

type Outcomes = Map<string, InstallOutcome>;

/** One sent invocation being watched. */
interface Watch {
  candidate: Candidate;
  commandId: string;
  /** Index into INSTALLER_STEPS for custom documents; undefined for the single-step stock document. */
  step?: number;
  lastStatus?: string;
}

/** Checks one invocation; returns its outcome once finished, undefined while it runs. */
async function check(scope: Scope, w: Watch, url: string): Promise<InstallOutcome | undefined> {
  for (;;) {
    const plugin = w.step === undefined ? undefined : INSTALLER_STEPS[w.step];
    let r: GetCommandInvocationCommandOutput;
    try {
      r = await call(scope, () =>
        scope.client.send(
          new GetCommandInvocationCommand({
            CommandId: w.commandId,
            InstanceId: w.candidate.instanceId,
            PluginName: plugin,
          }),
        ),
      );
    } catch (e) {
      // SSM answers this for a moment after SendCommand, before the invocation is recorded.
      if (errName(e) === "InvocationDoesNotExist") return undefined;
      return { ...apiFailure(w.candidate, "ssm:GetCommandInvocation", e), commandId: w.commandId };
    }
    const done = TERMINAL_STATUS.has(r.Status ?? "") || TERMINAL_DETAILS.has(r.StatusDetails ?? "");
    if (!done) {
      w.lastStatus = r.StatusDetails ?? r.Status;
      return undefined;
    }
    r = { ...r, CommandId: w.commandId };
    if (r.Status === "Success" && w.step !== undefined && w.step < INSTALLER_STEPS.length - 1) {
      w.step++;
      continue;
    }
    return classify(w.candidate, r, url, plugin);
  }
}

/** DescribeInstanceInformation for up to 50 instances: what SSM knows about each, by instance id. */
async function describeInstances(s: Scope, chunk: Candidate[]): Promise<Map<string, InstanceInformation>> {
  const infos = new Map<string, InstanceInformation>();
  let NextToken: string | undefined;
  do {
    const page = await call(s, () =>
      s.client.send(
        new DescribeInstanceInformationCommand({
          Filters: [{ Key: "InstanceIds", Values: chunk.map((c) => c.instanceId) }],
          MaxResults: SSM_BATCH_SIZE,
          NextToken,
        }),
      ),
    );
    for (const info of page.InstanceInformationList ?? []) if (info.InstanceId) infos.set(info.InstanceId, info);
    NextToken = page.NextToken;
  } while (NextToken);
  return infos;
}

/** Checks and sends in chunks of 50; records refusals in `out` and returns what was sent, to be watched. */
async function send(
  s: Scope,
  all: Candidate[],
  document: string,
  args: InstallerArgs,
  out: Outcomes,
): Promise<Watch[]> {
  const watches: Watch[] = [];
  const parameters = installerParameters(document, args);
  // SSM would refuse the whole batch with InvalidParameters; say which setting is wrong before sending.
  const refused = document === DEFAULT_SSM_DOCUMENT ? undefined : refusedParameter(parameters);
  if (refused) {
    const fix =
      "correct the matcher's install block (install.proxy_addr, install.join_params) or the runtime's public " +
      "address; the token name and script name must be plain names";
    for (const c of all) out.set(c.instanceId, failed(c, "invocation-failure", refused, fix));
    return watches;
  }
  for (let i = 0; i < all.length; i += SSM_BATCH_SIZE) {
    const chunk = all.slice(i, i + SSM_BATCH_SIZE);
    let infos: Map<string, InstanceInformation>;
    try {
      infos = await describeInstances(s, chunk);
    } catch (e) {
      for (const c of chunk) out.set(c.instanceId, apiFailure(c, "ssm:DescribeInstanceInformation", e));
      continue;
    }
    const ready = chunk.filter((c) => {
      const refusal = precheck(c, infos.get(c.instanceId));
      if (refusal) out.set(c.instanceId, refusal);
      return !refusal;
    });
    if (ready.length === 0) continue;
    try {
      const sent = await call(s, () =>
        s.client.send(
          new SendCommandCommand({
            DocumentName: document,
            InstanceIds: ready.map((c) => c.instanceId),
            Parameters: parameters,
            Comment: `pulumi-discovery: install ${args.scriptName}`.slice(0, 100),
          }),
        ),
      );
      const commandId = sent.Command?.CommandId ?? "";
      const step = document === DEFAULT_SSM_DOCUMENT ? undefined : 0;
      for (const c of ready) watches.push({ candidate: c, commandId, step });
    } catch (e) {
      const fix = ` on ${documentArn(s.region, document, s.account)} and ${instanceArn(s.region)}`;
      for (const c of ready) out.set(c.instanceId, apiFailure(c, "ssm:SendCommand", e, fix));
    }
  }
  return watches;
}

/** Polls every watched invocation until it finishes or the deadline passes; records outcomes in `out`. */
async function watch(s: Scope, watches: Watch[], url: string, req: SsmInstallRequest, out: Outcomes): Promise<void> {
  const deadline = (req.deadline ?? new Date(Date.now() + 10 * 60_000)).getTime();
  let pending = watches;
  while (pending.length > 0) {
    const still: Watch[] = [];
    await mapLimit(pending, 8, async (w) => {
      const outcome = await check(s, w, url);
      if (outcome) out.set(w.candidate.instanceId, outcome);
      else still.push(w);
    });
    pending = still;
    const left = deadline - Date.now();
    if (pending.length > 0 && left <= 0) {
      for (const w of pending) {
        const reason = `no result before the deadline: the command was still ${w.lastStatus ?? "not started"}`;
        const fix = "the next pass checks again; if it stays pending, check the instance's SSM agent is running";
        out.set(w.candidate.instanceId, {
          ...failed(w.candidate, "invocation-failure", reason, fix),
          commandId: w.commandId,
        });
      }
      return;
    }
    if (pending.length > 0) await realSleep(Math.min(req.pollIntervalMs ?? 2000, left));
  }
}

/** Installs on one account × region's candidates; returns outcomes keyed by instance id. */
async function installScope(candidates: Candidate[], req: SsmInstallRequest, scope: Omit<Scope, "client">) {
  const out: Outcomes = new Map();
  const all = [...new Map(candidates.map((c) => [c.instanceId, c])).values()];
  const { client, credentials } = ssmClient(req.client, scope.account, scope.region);
  try {
    await credentials?.();
  } catch (e) {
    client.destroy();
    for (const c of all) out.set(c.instanceId, apiFailure(c, "sts:AssumeRole (credentials for the account)", e));
    return out;
  }
  const { matcher } = req;
  const args: InstallerArgs = {
    mode: matcher.install.mode,
    token: req.tokenName ?? matcher.install.join_params.token_name,
    scriptName: matcher.install.script_name,
    proxyAddr: proxyHost(matcher.install.proxy_addr ?? req.endpoint.proxyAddr),
    method: matcher.install.join_params.method,
    caPin: req.endpoint.caPin,
    sshdConfig: matcher.install.sshd_config,
  };
  const url = `https://${args.proxyAddr}/webapi/scripts/installer/${args.scriptName}`;
  try {
    const s: Scope = { ...scope, client };
    // Instances of a forced reinstall get an installer told to join again; the rest the ordinary one.
    const watches: Watch[] = [];
    for (const rejoin of [false, true]) {
      const group = all.filter((c) => !!c.rejoin === rejoin);
      if (group.length) watches.push(...(await send(s, group, matcher.ssm.document_name, { ...args, rejoin }, out)));
    }
    await watch(s, watches, url, req, out);
  } finally {
    client.destroy();
  }
  return out;
}

/**
 * Installs on AWS candidates through SSM Run Command and returns one outcome per candidate, in order. Instances
 * SSM cannot reach are reported without sending anything; the rest get the installer in batches of 50 per
 * account and region, with the matcher's document (AWS-RunShellScript, or a custom installer document).
 */
export async function installViaSsm(candidates: Candidate[], req: SsmInstallRequest): Promise<InstallOutcome[]> {
  const retry = req.retry ?? {};
  const groups = new Map<string, Candidate[]>();
  for (const c of candidates) {
    const key = `${c.account}/${c.region}`;
    const group = groups.get(key);
    if (group) group.push(c);
    else groups.set(key, [c]);
  }
  const results = new Map<string, Map<string, InstallOutcome>>();
  // Accounts and regions have separate API buckets, so scopes run side by side (a few at a time).
  await mapLimit([...groups.entries()], 8, async ([key, group]) => {
    const { account, region } = group[0];
    try {
      results.set(key, await installScope(group, req, { account, region, retry }));
    } catch (e) {
      // One scope's surprise must not cost the other scopes their outcomes.
      results.set(key, new Map(group.map((c) => [c.instanceId, apiFailure(c, "installing through SSM", e)])));
    }
  });
  return candidates.map((c) => results.get(`${c.account}/${c.region}`)!.get(c.instanceId)!);
}
