import type { Cloud } from "../model";

/**
 * The contracts between the cloud-agnostic enrollment pass (provider/enroll) and each cloud's fetcher and
 * installer (provider/clouds/<cloud>). A cloud implements `Fetcher` and `Installer`; enroll/ never names a
 * cloud's SDK.
 */

/** One instance a matcher selected. */
export interface Candidate {
  cloud: Cloud;
  /** AWS account id, GCP project id, or Azure subscription id. */
  account: string;
  /** AWS region, GCP zone, or Azure region. */
  region: string;
  instanceId: string;
  /** The node name the instance will join as, e.g. `<account>-<instance-id>` for EC2. */
  nodeName: string;
  /** Instance state as the cloud reports it, e.g. "running". */
  state: string;
  tags: Record<string, string>;
  privateIp?: string;
  privateDnsName?: string;
  /** e.g. "Linux/UNIX" or "windows". */
  platform?: string;
  launchTime?: string;
  /** Set by the pass after a forced reinstall: the installer must join even if the machine holds a certificate. */
  rejoin?: boolean;
  /** Set by the pass: the node exists but holds credentials from a CA key being rotated out; it joins again. */
  rotation?: boolean;
  /** Set by the pass: the install attempt its claim records; an installer that can names it in what it sends. */
  attempt?: string;
  /**
   * Set by the pass when `attempt` was begun by an earlier pass that may have sent a command (it died, or could
   * not tell): an installer that can look sent commands up follows that attempt's command instead of sending.
   */
  resume?: boolean;
}

/** What one account × region (or project × zone) scan found, or why it failed. */
export interface ScopeReport {
  cloud: Cloud;
  account: string;
  region: string;
  /** Instances that matched in this scope. */
  instances: number;
  /** API calls this scope made (for the benchmark's lower bound and for progress output). */
  apiCalls?: number;
  error?: { code: string; message: string };
  /**
   * Not listed by this replica: another replica of the discovery group holds the scope's lease (and lists it), or
   * this one has its share of the group's scopes. Neither an error nor "no instances": its nodes are left alone.
   */
  held?: ScopeHeld;
}

/** Why a scope was left to another replica: who holds its lease and until when (absent: nobody yet). */
export interface ScopeHeld {
  holder?: string;
  until?: string;
  reason: string;
}

/** Result of fetching one matcher. */
export interface FetchResult {
  candidates: Candidate[];
  scopes: ScopeReport[];
}

/** The outcome of installing on one instance. */
export interface InstallOutcome {
  instanceId: string;
  account: string;
  region: string;
  /** "succeeded": the installer ran and exited 0; "failed": it did not (see failureClass); "skipped": nothing sent. */
  status: "succeeded" | "failed" | "skipped";
  /** Stable failure class, e.g. ssm-agent-not-registered, ssm-agent-connection-lost, unsupported-os, script-failure, invocation-failure, permission-denied. */
  failureClass?: string;
  /** What went wrong, in a sentence. */
  reason?: string;
  /** What a person should do about it. */
  remediation?: string;
  exitCode?: number;
  /** The last lines of the installer's stderr. */
  stderrTail?: string;
  stdoutTail?: string;
  commandId?: string;
  /**
   * Set on a failure when a command of the candidate's attempt may have been sent and its result is unknown (SSM
   * unreachable after the send, no result by the deadline): the next pass resumes the attempt, so it neither backs
   * off nor sends a second command before looking for this one.
   */
  attempt?: string;
}

/** How installers reach the runtime. */
export interface RuntimeEndpoint {
  /** host:port the instance uses to reach the runtime. */
  proxyAddr: string;
  /** `sha256//<base64>` pin of the runtime's TLS public key, passed to curl --pinnedpubkey. */
  caPin?: string;
}
