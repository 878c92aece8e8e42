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
import { mapLimit } from "../../util/concurrency";
import { realSleep } from "../../util/retry";
import { documentArn, instanceArn } from "./policy";
import { INSTALLER_STEPS, InstallerArgs, installerParameters, proxyHost, refusedParameter } from "./ssm-document";
import { errMessage, errName, ssmCall, ssmClient, SsmClientOptions, SsmRetry } from "./ssm-client";
import { apiFailure, classify, failed, precheck } from "./ssm-outcomes";
import { attemptComment, callFailure, findAttemptCommand, notSentFailure, ssmEndpoint } from "./ssm-attempts";

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

// Terminal statuses (Status) and details (StatusDetails) of a command invocation; anything else is still running.
const TERMINAL_STATUS = new Set(["Success", "Failed", "Cancelled", "TimedOut"]);
const TERMINAL_DETAILS = new Set(["DeliveryTimedOut", "Undeliverable", "Terminated", "ExecutionTimedOut"]);

export { outputTail } from "./ssm-outcomes";

/** One account × region's worth of candidates and the client that reaches them. */
interface Scope {
  account: string;
  region: string;
  client: SSMClient;
  retry: SsmRetry;
  /** The SSM endpoint the client calls, named in "could not reach" failures. */
  endpoint: string;
}

const call = <T>(scope: Scope, fn: () => Promise<T>): Promise<T> => ssmCall(scope.retry, fn);

/**
 * The outcome of a failed call made before anything was sent: throttled and unreachable are transient classes,
 * anything else as {@link apiFailure}.
 */
function beforeSendFailure(s: Scope, c: Candidate, action: string, e: unknown, attempt?: string): InstallOutcome {
  const kind = callFailure(e);
  if (kind === "throttled" || kind === "unreachable") return notSentFailure(c, action, e, kind, s.endpoint, attempt);
  return { ...apiFailure(c, action, e), ...(attempt && { attempt }) };
}

type Outcomes = Map<string, InstallOutcome>;

/** One sent invocation being watched. */
interface Watch {
  candidate: Candidate;
  commandId: string;
  /** Index into INSTALLER_STEPS for custom documents; undefined for the single-step stock document. */
  step?: number;
  lastStatus?: string;
  /** The attempt the command belongs to: a failure that leaves its result unknown keeps it for the next pass. */
  attempt?: string;
  /** Why the last check could not be made (SSM throttled or unreachable): said if the deadline passes. */
  lastError?: string;
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
      // The command was sent: while SSM cannot be asked, keep watching rather than report a result not known.
      if (callFailure(e) !== "answered") {
        w.lastError = `ssm:GetCommandInvocation: ${errName(e)}: ${errMessage(e) || "no answer"} (${scope.endpoint})`;
        return undefined;
      }
      return {
        ...apiFailure(w.candidate, "ssm:GetCommandInvocation", e),
        commandId: w.commandId,
        ...(w.attempt && { attempt: w.attempt }),
      };
    }
    w.lastError = undefined;
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
  attempt?: string,
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
      for (const c of chunk) out.set(c.instanceId, beforeSendFailure(s, c, "ssm:DescribeInstanceInformation", e));
      continue;
    }
    const ready = chunk.filter((c) => {
      const refusal = precheck(c, infos.get(c.instanceId));
      if (refusal) out.set(c.instanceId, refusal);
      return !refusal;
    });
    if (ready.length === 0) continue;
    try {
      const sent = await ssmCall(
        s.retry,
        () =>
          s.client.send(
            new SendCommandCommand({
              DocumentName: document,
              InstanceIds: ready.map((c) => c.instanceId),
              Parameters: parameters,
              Comment: attemptComment(args.scriptName, attempt),
            }),
          ),
        true,
      );
      const commandId = sent.Command?.CommandId ?? "";
      const step = document === DEFAULT_SSM_DOCUMENT ? undefined : 0;
      for (const c of ready) watches.push({ candidate: c, commandId, step, attempt });
    } catch (e) {
      const fix = ` on ${documentArn(s.region, document, s.account)} and ${instanceArn(s.region)}`;
      const kind = callFailure(e);
      for (const c of ready)
        out.set(
          c.instanceId,
          kind === "throttled" || kind === "unreachable"
            ? notSentFailure(c, "ssm:SendCommand", e, kind, s.endpoint)
            : // A server error or a cut connection may come after SSM recorded the command: the next pass looks it up.
              { ...apiFailure(c, "ssm:SendCommand", e, fix), ...(kind === "uncertain" && attempt && { attempt }) },
        );
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
        const reason =
          `no result before the deadline: the command was still ${w.lastStatus ?? "not started"}` +
          (w.lastError ? `; the last check failed: ${w.lastError}` : "");
        const fix = "the next pass checks again; if it stays pending, check the instance's SSM agent is running";
        out.set(w.candidate.instanceId, {
          ...failed(w.candidate, "invocation-failure", reason, fix),
          commandId: w.commandId,
          ...(w.attempt && { attempt: w.attempt }),
        });
      }
      return;
    }
    if (pending.length > 0) await realSleep(Math.min(req.pollIntervalMs ?? 2000, left));
  }
}

/**
 * Candidates resuming an attempt whose command may exist: those whose command SSM has (to be watched, not sent
 * again), and the rest to send. When SSM cannot be asked, the candidate fails keeping its attempt, unsent.
 */
async function resumeAttempts(s: Scope, all: Candidate[], out: Outcomes) {
  const found: [Candidate, string][] = [];
  const toSend: Candidate[] = [];
  await mapLimit(all, 8, async (c) => {
    if (!c.resume || !c.attempt) return void toSend.push(c);
    try {
      const commandId = await findAttemptCommand(s.client, s.retry, c.instanceId, c.attempt);
      if (commandId) found.push([c, commandId]);
      else toSend.push(c);
    } catch (e) {
      out.set(c.instanceId, beforeSendFailure(s, c, "ssm:ListCommandInvocations", e, c.attempt));
    }
  });
  return { found, toSend };
}

/** Installs on one account × region's candidates; returns outcomes keyed by instance id. */
async function installScope(
  candidates: Candidate[],
  req: SsmInstallRequest,
  scope: Omit<Scope, "client" | "endpoint">,
) {
  const out: Outcomes = new Map();
  const all = [...new Map(candidates.map((c) => [c.instanceId, c])).values()];
  const { client, credentials } = ssmClient(req.client, scope.account, scope.region);
  const endpoint = ssmEndpoint(req.client?.endpoint, scope.region);
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
    const s: Scope = { ...scope, client, endpoint };
    const document = matcher.ssm.document_name;
    const step = document === DEFAULT_SSM_DOCUMENT ? undefined : 0;
    const { found, toSend } = await resumeAttempts(s, all, out);
    const watches: Watch[] = found.map(([c, commandId]) => ({ candidate: c, commandId, step, attempt: c.attempt }));
    // One command per attempt, and a forced reinstall's instances get an installer told to join again.
    const groups = new Map<string, Candidate[]>();
    for (const c of toSend)
      groups.set(`${!!c.rejoin}/${c.attempt ?? ""}`, [...(groups.get(`${!!c.rejoin}/${c.attempt ?? ""}`) ?? []), c]);
    for (const group of groups.values()) {
      const { rejoin, attempt } = group[0];
      watches.push(...(await send(s, group, document, { ...args, rejoin: !!rejoin }, out, attempt)));
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
