/**
 * Which Azure VMs still exist: the stale-node check of an enrollment pass, for one subscription and region. The
 * check has only vm ids (the join names nodes `<subscription>-<vm id>`), and ARM reads VMs by resource group and
 * name, so it lists the subscription's VMs (the matcher's resource groups, and uniform scale sets) as the fetch
 * does: a VM is gone only when a complete listing no longer holds its vm id, ARM's answer that it does not exist,
 * as a 404 (ResourceNotFound) would be. A stopped or deallocated VM still exists and may be started again. Any
 * failed listing throws, so "ARM did not answer" is never read as "gone".
 */
import type { ExistenceQuery } from "../../enroll/clouds";
import type { AzureMatcher } from "../../model";
import { AzureApis, azureApis, subscriptionVms } from "./fetch";

/** The vm ids of `query` (account = subscription) that ARM still lists. */
export async function existingAzureVms(
  matcher: Pick<AzureMatcher, "resource_groups">,
  query: ExistenceQuery,
  clients: AzureApis = azureApis(),
): Promise<Set<string>> {
  const wanted = new Set(query.instanceIds.map((id) => id.toLowerCase()));
  const found = new Set<string>();
  const scan = { errors: [] as { code: string; message: string }[], apiCalls: 0 };
  try {
    for await (const { vm } of subscriptionVms(clients.compute(query.account), query.account, matcher, scan)) {
      const id = vm.vmId?.toLowerCase();
      if (id && wanted.has(id)) found.add(id);
    }
  } finally {
    await clients.close();
  }
  // A resource group that no longer exists holds no VMs: that is an answer, not a failure.
  const failures = scan.errors.filter((e) => e.code !== "ResourceGroupNotFound");
  if (failures.length > 0)
    throw Object.assign(new Error(failures.map((e) => `${e.code}: ${e.message}`).join("; ")), {
      code: failures[0].code,
    });
  return new Set(query.instanceIds.filter((id) => found.has(id.toLowerCase())));
}
