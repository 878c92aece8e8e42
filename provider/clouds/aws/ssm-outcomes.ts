/** How SSM's answers read as install outcomes a person can act on: refusals before sending, and finished runs. */
import type { GetCommandInvocationCommandOutput, InstanceInformation } from "@aws-sdk/client-ssm";
import type { Candidate, InstallOutcome } from "../../enroll/types";
import type { SsmFailureClass } from "./ssm-failure-classes";
import { INSTALLER_STEPS } from "./ssm-document";
import { errMessage, errName } from "./ssm-client";

/** Where the discovery role's policy comes from, for permission failures. */
export const POLICY_HINT = "`discovery policy aws --config FILE` prints the policy the discovery role needs";
/** What makes an instance reachable by SSM, for agent failures. */
export const PROFILE_HINT =
  "attach an instance profile with AmazonSSMManagedInstanceCore (or `discovery policy aws`'s instance policy), " +
  "check the SSM agent is installed and running (systemctl status amazon-ssm-agent), and that the instance " +
  "reaches the ssm, ssmmessages and ec2messages endpoints (internet, NAT gateway or VPC endpoints)";

const DENIED = /^AccessDenied(Exception)?$/;

/** The last `maxLines` lines of `text`, at most `maxChars` characters: the part of a log that says why. */
export function outputTail(text: string | undefined, maxLines = 20, maxChars = 2048): string {
  const lines = (text ?? "").replace(/\s+$/, "").split("\n");
  const tail = lines.slice(-maxLines).join("\n");
  return tail.length > maxChars ? tail.slice(tail.length - maxChars) : tail;
}

/** The fields of a candidate an outcome carries (spreading a Candidate would bring the others along). */
export const only = (c: Candidate) => ({ instanceId: c.instanceId, account: c.account, region: c.region });

/** A failed outcome of `failureClass`, with its reason and fix. */
export function failed(
  c: Candidate,
  failureClass: SsmFailureClass,
  reason: string,
  remediation: string,
): InstallOutcome {
  return { ...only(c), status: "failed", failureClass, reason, remediation };
}

/** The outcome of an API error: permission-denied names the action and account; anything else is an invocation failure. */
export function apiFailure(c: Candidate, action: string, e: unknown, extraFix = ""): InstallOutcome {
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
export function precheck(c: Candidate, info: InstanceInformation | undefined): InstallOutcome | undefined {
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
export function classify(
  c: Candidate,
  r: GetCommandInvocationCommandOutput,
  url: string,
  step?: string,
): InstallOutcome {
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
