import { MAX_LAUNCH_COUNT } from "./launch-options";

/** States a sandbox GCP VM launches into (`status` RUNNING or TERMINATED). */
export type GcpLaunchState = "running" | "terminated";

/** What to launch in the sandbox's fake GCP: VMs with a metadata server and a real sshd each. */
export interface GcpLaunchOptions {
  /** Any GCP project id. */
  project: string;
  /** A zone such as us-central1-a. */
  zone: string;
  labels: Record<string, string>;
  count: number;
  /** Default `<project number>-compute@developer.gserviceaccount.com`, as GCP's default service account. */
  serviceAccount?: string;
  /** Metadata `enable-oslogin=TRUE`: the guest ignores `ssh-keys`. */
  oslogin: boolean;
  /** Kept for symmetry with EC2; every GCP VM has sshd, since installs go over SSH. */
  agentless: boolean;
  state: GcpLaunchState;
}

/** A GCP launch argument that is not acceptable; `field` names it as the control API spells it. */
export class GcpLaunchOptionError extends Error {
  constructor(
    readonly field: keyof GcpLaunchOptions,
    message: string,
  ) {
    super(message);
    this.name = "GcpLaunchOptionError";
  }
}

const PROJECT = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
const ZONE = /^[a-z]+-[a-z]+[0-9]+-[a-z]$/;
// GCP's label rules: lowercase keys starting with a letter, values possibly empty.
const LABEL_KEY = /^[a-z][a-z0-9_-]{0,62}$/;
const LABEL_VALUE = /^[a-z0-9_-]{0,63}$/;
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;

function checkLabels(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new GcpLaunchOptionError("labels", "must be a map of label keys to values");
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (!LABEL_KEY.test(k)) throw new GcpLaunchOptionError("labels", `key ${JSON.stringify(k)} is not a GCP label key`);
    if (typeof v !== "string" || !LABEL_VALUE.test(v))
      throw new GcpLaunchOptionError("labels", `the value of ${JSON.stringify(k)} is not a GCP label value`);
    labels[k] = v;
  }
  if (Object.keys(labels).length > 64) throw new GcpLaunchOptionError("labels", "GCP allows at most 64 labels");
  return labels;
}

/** Validates GCP launch arguments (control API or CLI flags) and fills in the defaults. */
export function parseGcpLaunchOptions(input: Record<string, unknown>): GcpLaunchOptions {
  const { project, zone, count, serviceAccount } = input;
  if (typeof project !== "string" || !PROJECT.test(project))
    throw new GcpLaunchOptionError("project", `must be a GCP project id, not ${JSON.stringify(project)}`);
  if (typeof zone !== "string" || !ZONE.test(zone))
    throw new GcpLaunchOptionError("zone", `must be a zone such as us-central1-a, not ${JSON.stringify(zone)}`);
  const n = count === undefined ? 1 : count;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > MAX_LAUNCH_COUNT)
    throw new GcpLaunchOptionError(
      "count",
      `must be a whole number from 1 to ${MAX_LAUNCH_COUNT}, not ${String(count)}`,
    );
  if (serviceAccount !== undefined && (typeof serviceAccount !== "string" || !EMAIL.test(serviceAccount)))
    throw new GcpLaunchOptionError("serviceAccount", "must be a service account email");
  for (const flag of ["oslogin", "agentless"] as const)
    if (input[flag] !== undefined && typeof input[flag] !== "boolean")
      throw new GcpLaunchOptionError(flag, "must be true or false");
  const state = input.state ?? "running";
  if (state !== "running" && state !== "terminated")
    throw new GcpLaunchOptionError("state", `must be running or terminated, not ${JSON.stringify(state)}`);
  return {
    project,
    zone,
    labels: checkLabels(input.labels),
    count: n,
    serviceAccount: serviceAccount as string | undefined,
    oslogin: input.oslogin === true,
    agentless: input.agentless === true,
    state,
  };
}
