/**
 * Stale nodes: a node whose instance is terminated or gone is marked stale by the next pass that can see its
 * account and region, and removed once it has been stale for the grace period; one whose instance is back is made
 * active again. Only nodes with the labels a join verified (account, instance, region or zone) are considered, and
 * only in scopes a matcher of this pass scanned without error, with that matcher's credentials (a scope left to
 * another replica of the group, which holds its lease, was not scanned here: its nodes are that replica's to
 * check). A check that fails changes nothing: "the cloud did not answer" is never read as "the instance is gone".
 */
import type { EnrollmentBackend, KnownNode } from "./backend";
import { cloudEnrollment, nodeInstance } from "../clouds";
import type { CloudEnrollment } from "./clouds";

/** The matcher that scanned one account × region without error, by `account/region`. */
export type ScannedScopes = Map<string, { cloud: string; matcher: unknown }>;

/** What a stale check did, by node name. */
export interface StaleReport {
  staled: string[];
  activated: string[];
  removed: string[];
  /** Scopes whose check failed: their nodes were left as they were. */
  unchecked: { cloud: string; account: string; region: string; error: string }[];
}

/** Everything a stale check needs. */
export interface StaleCheckOptions {
  backend: EnrollmentBackend;
  scanned: ScannedScopes;
  /** `account/instance-id` of every instance this pass found running (known to exist, no call needed). */
  running: Set<string>;
  /** How long a node stays stale before it is removed. */
  graceMs: number;
  now: Date;
  /** The clouds' implementations; default the registered ones (tests pass fakes). */
  clouds?: (name: string) => CloudEnrollment | undefined;
}

/** The verified place of a node's instance, or undefined for nodes that did not join as a cloud instance. */
function placeOf(n: KnownNode): { account: string; region: string; instanceId: string } | undefined {
  const at = nodeInstance(n.labels);
  return at?.region && at.instanceId
    ? { account: at.account, region: at.region, instanceId: at.instanceId }
    : undefined;
}

/** Checks the nodes of every scanned scope and records what changed. */
export async function reconcileStaleNodes(o: StaleCheckOptions): Promise<StaleReport> {
  const report: StaleReport = { staled: [], activated: [], removed: [], unchecked: [] };
  const clouds = o.clouds ?? cloudEnrollment;
  const exists: KnownNode[] = [];
  const gone: KnownNode[] = [];
  const groups = new Map<string, { cloud: string; matcher: unknown; nodes: KnownNode[]; ids: string[] }>();
  for (const n of await o.backend.nodes()) {
    const p = placeOf(n);
    if (!p) continue;
    if (o.running.has(`${p.account}/${p.instanceId}`)) {
      exists.push(n);
      continue;
    }
    const scope = o.scanned.get(`${p.account}/${p.region}`);
    if (!scope || !clouds(scope.cloud)?.existing) continue;
    const k = `${scope.cloud}/${p.account}/${p.region}`;
    const g = groups.get(k) ?? { ...scope, nodes: [], ids: [] };
    g.nodes.push(n);
    g.ids.push(p.instanceId);
    groups.set(k, g);
  }
  for (const [k, g] of groups) {
    const [cloud, account, region] = k.split("/");
    let found: Set<string>;
    try {
      found = await clouds(cloud)!.existing!(g.matcher, { account, region, instanceIds: g.ids });
    } catch (err) {
      report.unchecked.push({ cloud, account, region, error: (err as Error).message });
      continue;
    }
    g.nodes.forEach((n, i) => (found.has(g.ids[i]) ? exists : gone).push(n));
  }
  const staleBefore = new Date(o.now.getTime() - o.graceMs).toISOString();
  // Gone nodes go to both lists: the store marks those not yet stale and removes those stale for the grace period.
  const update = {
    stale: gone.map((n) => n.name),
    active: exists.filter((n) => n.staleSince).map((n) => n.name),
    remove: gone.filter((n) => n.staleSince && n.staleSince <= staleBefore).map((n) => n.name),
    at: o.now.toISOString(),
    staleBefore,
  };
  if (update.stale.length + update.active.length === 0) return report;
  const changes = await o.backend.updateStaleness(update);
  return { ...report, ...changes };
}
