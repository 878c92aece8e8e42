/** The GCP custom role the discovery service needs; `discovery policy gcp` and the SDK print it. */
import type { GcpMatcher } from "../../model";

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
    // instances.list finds VMs; instances.get reads one before its metadata changes, and checks a joining VM live.
    "compute.instances.get",
    "compute.instances.list",
    "compute.instances.setMetadata",
    // setMetadata answers with a zone operation, waited on (zoneOperations.wait) before SSH starts.
    "compute.zoneOperations.get",
    // The project's common metadata, where enable-oslogin is usually set.
    "compute.projects.get",
    // Host keys come from guest attributes (hostkeys/), so the SSH connection verifies the VM.
    "compute.instances.getGuestAttributes",
    // setMetadata on a VM that runs as a service account is refused without actAs on that account.
    "iam.serviceAccounts.actAs",
  ];
  // A region (us-central1, not a zone like us-central1-a) is resolved to its zones through zones.list; `*` is one
  // aggregated listing per project, which instances.list covers.
  const isRegion = (l: string) => l !== "*" && !/^[a-z]+-[a-z]+\d+-[a-z]$/.test(l);
  if (matchers.some((m) => m.locations.some(isRegion))) permissions.push("compute.zones.list");
  // Projects `*`: Resource Manager's search returns the projects on which the caller has projects.get.
  if (matchers.some((m) => m.project_ids.includes("*"))) permissions.push("resourcemanager.projects.get");
  return {
    title: "pulumi-discovery",
    description: "Lists Compute Engine VMs and runs the discovery installer on them over SSH (metadata keys).",
    stage: "GA",
    includedPermissions: [...new Set(permissions)].sort(),
  };
}
