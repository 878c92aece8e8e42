/**
 * Exactly-once installs through SSM, which has no idempotency token for SendCommand: each command names the
 * install attempt it belongs to in its Comment, and a pass that takes over an attempt whose fate is unknown (its
 * runtime died after claiming, or SSM could not be asked) looks that attempt's command up with
 * ListCommandInvocations and follows it instead of sending a second one. Also here: how a failed call reads, as
 * "nothing was sent" (throttled, unreachable) or "it may have been sent".
 */
import { ListCommandInvocationsCommand, SSMClient } from "@aws-sdk/client-ssm";
import type { Candidate, InstallOutcome } from "../../enroll/types";
import type { SsmFailureClass } from "./ssm-failure-classes";
import { errMessage, errName, isThrottledSsm, ssmCall, SsmRetry } from "./ssm-client";
import { only } from "./ssm-outcomes";

const PREFIX = "pulumi-discovery";
const ATTEMPT = /^pulumi-discovery attempt ([0-9a-f]{8,32}):/;

/** The Comment of an installer command: the attempt first, so SSM's 100-character cut never drops it. */
export function attemptComment(scriptName: string, attempt?: string): string {
  return (attempt ? `${PREFIX} attempt ${attempt}: install ${scriptName}` : `${PREFIX}: install ${scriptName}`).slice(
    0,
    100,
  );
}

/** The attempt a command's Comment names, if it is one of ours. */
export function commentAttempt(comment: string | undefined): string | undefined {
  return ATTEMPT.exec(comment ?? "")?.[1];
}

/** Socket errors raised before a request left this host: SSM never saw it. */
const NOT_CONNECTED = /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|EADDRNOTAVAIL)$/;
/** Socket errors that may come after the request reached SSM. */
const CUT_OFF = /^(ECONNRESET|ETIMEDOUT|EPIPE|ECONNABORTED|TimeoutError|RequestTimeout|UND_ERR_SOCKET)$/;

/** How a failed SSM call reads: SSM throttled it, could not be reached, or answered (or may have, `uncertain`). */
export type CallFailure = "throttled" | "unreachable" | "uncertain" | "answered";

/**
 * The socket error code of a failed call (Node's `code`, or a nested cause's), if there is one. The SDK wraps an
 * error it does not recognise as one ("AWS SDK error wrapper for Error: connect ECONNREFUSED ..."): then the
 * code is read from the message.
 */
function socketCode(e: unknown): string | undefined {
  const err = e as { code?: unknown; cause?: { code?: unknown }; errors?: { code?: unknown }[] };
  const code = err?.code ?? err?.cause?.code ?? err?.errors?.[0]?.code;
  if (typeof code === "string") return code;
  return /\b(E[A-Z]{4,}|UND_ERR_[A-Z_]+)\b/.exec(errMessage(e))?.[1];
}

/** What a failed call said, without the SDK's wrapper words. */
const said = (e: unknown) =>
  errMessage(e).replace(/^AWS SDK error wrapper for (Error: )?/, "") || socketCode(e) || errName(e);

/** Reads a failed SSM call (see {@link CallFailure}). */
export function callFailure(e: unknown): CallFailure {
  if (isThrottledSsm(e)) return "throttled";
  const code = socketCode(e) ?? errName(e);
  if (NOT_CONNECTED.test(code)) return "unreachable";
  const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  if (CUT_OFF.test(code) || /socket hang up|timed? ?out/i.test(errMessage(e)) || (status ?? 0) >= 500)
    return "uncertain";
  return status === undefined ? "uncertain" : "answered";
}

/** The SSM endpoint a client of `region` calls, for messages: the configured one, else AWS's. */
export function ssmEndpoint(endpoint: string | undefined, region: string): string {
  return (
    endpoint ??
    process.env.AWS_ENDPOINT_URL_SSM ??
    process.env.AWS_ENDPOINT_URL ??
    `https://ssm.${region}.amazonaws.com`
  );
}

/**
 * The outcome of a call that failed without anything being sent: throttled past the retries, or SSM unreachable.
 * Both are transient classes (no backoff); `attempt` is kept when the candidate's attempt is still unresolved.
 */
export function notSentFailure(
  c: Candidate,
  action: string,
  e: unknown,
  kind: "throttled" | "unreachable",
  endpoint: string,
  attempt?: string,
): InstallOutcome {
  const where = `account ${c.account} (${c.region})`;
  const failureClass: SsmFailureClass = kind === "throttled" ? "throttled" : "endpoint-unreachable";
  return {
    ...only(c),
    status: "failed",
    failureClass,
    reason:
      kind === "throttled"
        ? `${action} was throttled in ${where} past the retries (${errName(e)}: ${said(e)}); nothing was sent`
        : `${action} could not reach SSM at ${endpoint} for ${where}: ${said(e)}; nothing was sent`,
    remediation:
      kind === "throttled"
        ? "nothing to do: the next pass tries again without backing off; if it persists, another client is " +
          "spending this account's SSM request rate (see discovery_ssm throttling in /metrics)"
        : `check that ${endpoint} is reachable from the runtime (network, proxy, VPC endpoint); the next pass ` +
          "tries again without backing off",
    ...(attempt && { attempt }),
  };
}

/** The command of `attempt` on an instance, if SSM has one: a page at a time, newest first, as SSM lists them. */
export async function findAttemptCommand(
  client: SSMClient,
  retry: SsmRetry,
  instanceId: string,
  attempt: string,
): Promise<string | undefined> {
  let NextToken: string | undefined;
  do {
    const page = await ssmCall(retry, () =>
      client.send(new ListCommandInvocationsCommand({ InstanceId: instanceId, MaxResults: 50, NextToken })),
    );
    for (const inv of page.CommandInvocations ?? [])
      if (inv.CommandId && inv.InstanceId === instanceId && commentAttempt(inv.Comment) === attempt)
        return inv.CommandId;
    NextToken = page.NextToken;
  } while (NextToken);
  return undefined;
}
