/** The failure classes installViaSsm reports, and which of them mean SSM ran nothing on the instance. */
import type { FailureClass } from "../../enroll/clouds";

/** A failure class installViaSsm reports. */
export type SsmFailureClass =
  | "ssm-agent-not-registered"
  | "ssm-agent-connection-lost"
  | "unsupported-os"
  | "script-failure"
  | "invocation-failure"
  | "permission-denied"
  | "ssm-document-missing"
  | "endpoint-unreachable"
  | "throttled";

/** Every class, with whether a command was sent: only script-failure, invocation-failure and permission-denied may follow a SendCommand. */
export const SSM_FAILURE_CLASSES: Record<SsmFailureClass, FailureClass> = {
  "ssm-agent-not-registered": {
    commandSent: false,
    summary: "the instance is not registered with SSM",
    notReadyAtBoot: true,
  },
  "ssm-agent-connection-lost": {
    commandSent: false,
    summary: "the instance's SSM agent is not online",
    notReadyAtBoot: true,
  },
  "unsupported-os": { commandSent: false, summary: "the instance does not run Linux" },
  "script-failure": { commandSent: true, summary: "the installer ran and exited non-zero" },
  "invocation-failure": { commandSent: true, summary: "SSM did not run the command to completion" },
  "permission-denied": { commandSent: true, summary: "an SSM call was denied to the discovery role" },
  "ssm-document-missing": {
    commandSent: false,
    summary: "the matcher's SSM document does not exist in the instance's account and region",
  },
  "endpoint-unreachable": {
    commandSent: false,
    transient: true,
    summary: "SSM could not be reached (connection refused, no route, DNS) before anything was sent",
  },
  throttled: {
    commandSent: false,
    transient: true,
    summary: "SSM kept throttling the calls past the retries, before anything was sent",
  },
};
