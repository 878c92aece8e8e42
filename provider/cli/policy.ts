import { Argument, Command } from "commander";
import type { AwsMatcher, DiscoveryConfig, GcpMatcher, Resource } from "../model";
import { discoveryPolicy, instancePolicy, PolicyDocument } from "../clouds/aws/policy";
import { formatProblem, validateFiles } from "./validate";

/** The clouds `discovery policy` writes policies for. */
export const POLICY_CLOUDS = ["aws", "gcp"] as const;
/** A cloud `discovery policy` writes policies for. */
export type PolicyCloud = (typeof POLICY_CLOUDS)[number];

/** A GCP custom role, in the shape `gcloud iam roles create --file` reads. */
export interface GcpRole {
  title: string;
  description: string;
  stage: "GA";
  includedPermissions: string[];
}

/**
 * The GCP role the discovery service needs for `matchers`: list and read VMs, add a temporary SSH key through
 * instance metadata, read the VM's host keys, and list zones or projects where the matchers say `*`.
 */
export function gcpDiscoveryRole(matchers: readonly GcpMatcher[]): GcpRole {
  const permissions = [
    "compute.instances.get",
    "compute.instances.list",
    "compute.instances.setMetadata",
    "compute.projects.get",
    // Host keys come from guest attributes (hostkeys/), so the SSH connection verifies the VM.
    "compute.instances.getGuestAttributes",
    // setMetadata on a VM that runs as a service account is refused without actAs on that account.
    "iam.serviceAccounts.actAs",
  ];
  // A region (us-central1, not a zone like us-central1-a) is resolved to its zones through zones.list.
  const listsZones = (l: string) => l === "*" || !/^[a-z]+-[a-z]+\d+-[a-z]$/.test(l);
  if (matchers.some((m) => m.locations.some(listsZones))) permissions.push("compute.zones.list");
  if (matchers.some((m) => m.project_ids.includes("*"))) permissions.push("resourcemanager.projects.list");
  return {
    title: "pulumi-discovery",
    description: "Lists Compute Engine VMs and runs the discovery installer on them over SSH (metadata keys).",
    stage: "GA",
    includedPermissions: [...new Set(permissions)].sort(),
  };
}

/** The AWS policies: `discovery` for the discovery service's role, `instance` for enrolled instances' profile. */
export function awsPolicies(matchers: readonly AwsMatcher[]): { discovery: PolicyDocument; instance: PolicyDocument } {
  return { discovery: discoveryPolicy(matchers), instance: instancePolicy(matchers) };
}

/**
 * What `discovery policy CLOUD` prints for the discovery_config resources (a teleport.yaml parses to one too):
 * the policy documents, or an error naming what is missing.
 */
export function policyFor(cloud: PolicyCloud, resources: Resource[]): { output: object } | { error: string } {
  const specs = resources.filter((r): r is DiscoveryConfig => r.kind === "discovery_config").map((c) => c.spec);
  const aws = specs.flatMap((s) => s.aws);
  const gcp = specs.flatMap((s) => s.gcp);
  if ((cloud === "aws" ? aws : gcp).length === 0)
    return {
      error:
        `no ${cloud} matchers: add one under spec.${cloud} of a discovery_config ` +
        `(or discovery_service.${cloud} of a teleport.yaml)`,
    };
  return { output: cloud === "aws" ? awsPolicies(aws) : gcpDiscoveryRole(gcp) };
}

/** `discovery policy aws|gcp --config FILE`: least-privilege policy documents for the config's matchers, as JSON. */
export function policyCommand(): Command {
  return new Command("policy")
    .description("print the least-privilege policies a config's matchers need (aws: IAM policies; gcp: a custom role)")
    .addArgument(new Argument("<cloud>", "the cloud to write policies for").choices([...POLICY_CLOUDS]))
    .requiredOption("-c, --config <file>", "a file of discovery_config documents, or a teleport.yaml / runtime config")
    .action((cloud: PolicyCloud, opts: { config: string }) => {
      const { resources, problems } = validateFiles([opts.config]);
      for (const p of problems) process.stderr.write(formatProblem(p) + "\n");
      if (problems.length > 0) {
        process.stderr.write(`${problems.length} problem${problems.length === 1 ? "" : "s"} found\n`);
        process.exitCode = 1;
        return;
      }
      const r = policyFor(cloud, resources);
      if ("error" in r) {
        process.stderr.write(`${opts.config}: ${r.error}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(JSON.stringify(r.output, null, 2) + "\n");
    });
}
