/**
 * Which GCE VMs still exist: the stale-node check of an enrollment pass, for one project and zone. A VM is gone
 * only when Compute says NOT_FOUND (deleted); a stopped VM (TERMINATED) still exists and may be started again, as
 * a stopped EC2 instance does. Any other failure throws, so "Compute did not answer" is never read as "gone".
 */
import type { ExistenceQuery } from "../../enroll/clouds";
import { concurrencyLimit } from "../../util/concurrency";
import { GcpClients, gcpErrorCode, googleClients } from "./clients";

/** instances.get calls in flight at once for one check. */
export const EXISTENCE_CONCURRENCY = 8;

/**
 * The instance ids of `query` (account = project, region = zone) that Compute still knows. Compute takes the
 * numeric id where the API says `instance`, so no listing is needed.
 */
export async function existingGceInstances(
  query: ExistenceQuery,
  clients: GcpClients = googleClients(),
): Promise<Set<string>> {
  const limit = concurrencyLimit(EXISTENCE_CONCURRENCY);
  const found = new Set<string>();
  const api = clients.instances();
  try {
    await Promise.all(
      [...new Set(query.instanceIds)].map((id) =>
        limit(async () => {
          try {
            await api.get({ project: query.account, zone: query.region, instance: id });
            found.add(id);
          } catch (err) {
            if (gcpErrorCode(err) !== "NOT_FOUND") throw err;
          }
        }),
      ),
    );
  } finally {
    await clients.close();
  }
  return found;
}
