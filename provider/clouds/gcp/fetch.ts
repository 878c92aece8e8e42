/**
 * The GCE fetcher: lists the RUNNING VMs a GCP matcher selects over its projects (or every project the credentials
 * can see) and zones (named, a region's, or all through one aggregated listing per project), a bounded number of
 * listings at once. A failing project or zone is reported in its ScopeReport, with the fix, and never stops others.
 */
import type { GcpMatcher } from "../../model";
import type { Candidate, FetchResult, ScopeReport } from "../../enroll/types";
import { AcquireScope, scopeLeftToOthers } from "../../enroll/clouds";
import { concurrencyLimit } from "../../util/concurrency";
import { sortFetchResult } from "../aws/fetch-support";
import { GceInstance, GcpClients, gcpErrorCode, gcpErrorMessage, googleClients } from "./clients";

/** How {@link fetchGce} reaches Google and reports progress. */
export interface GceFetchOptions {
  /** Default: Google's clients, endpoint from the environment ({@link googleClients}). */
  clients?: GcpClients;
  /** Listings (project zone lists, zone scans) in flight at once; default 8. */
  concurrency?: number;
  /** maxResults of one instances.list page; default 500 (the API's maximum). */
  pageSize?: number;
  /** Called as each scope finishes. */
  onScope?: (report: ScopeReport) => void;
  /** Asked before each zone's listing (project × `*` before an aggregated one): a held scope is reported, not listed. */
  acquireScope?: AcquireScope;
}

/** Listings in flight at once unless told otherwise: Compute's read quota is per project per minute, and modest. */
export const DEFAULT_GCE_FETCH_CONCURRENCY = 8;
/** The most instances one instances.list page returns. */
export const GCE_LIST_PAGE = 500;
// Server-side, so stopped VMs never cross the wire; the check is repeated locally for stand-ins that ignore it.
const RUNNING_FILTER = "status = RUNNING";
// The async iterators fetch page after page themselves; saying so silences gax's AutopaginateTrueWarning.
const NO_AUTOPAGINATE = { autoPaginate: false as const };

/** A zone name (`us-central1-a`), as opposed to a region (`us-central1`). */
export function isZone(location: string): boolean {
  return /^[a-z]+-[a-z]+\d+-[a-z]$/.test(location);
}

/** Last path segment of a resource URL (`.../zones/us-central1-a` → `us-central1-a`). */
const lastSegment = (url: string | null | undefined) => (url ?? "").split("/").pop() ?? "";

/** Whether labels match a matcher's: every key must match; `*` as key matches all, as value any value. */
export function labelsMatch(want: Record<string, unknown>, labels: Record<string, string>): boolean {
  return Object.entries(want).every(([key, raw]) => {
    if (key === "*") return true;
    const have = labels[key];
    if (have === undefined) return false;
    const values = (Array.isArray(raw) ? raw : [raw]).map(String);
    return values.includes("*") || values.includes(have);
  });
}

/** Whether the VM runs as one of the service accounts (always, when the matcher names none). */
export function serviceAccountMatches(want: string[] | undefined, i: GceInstance): boolean {
  if (!want?.length) return true;
  const emails = (i.serviceAccounts ?? []).map((s) => (s.email ?? "").toLowerCase());
  return want.some((w) => emails.includes(w.toLowerCase()));
}

/**
 * A candidate for one VM. The node name is `<project>-<zone>-<instance id>`; the VM's name travels in
 * privateDnsName as GCE's zonal internal DNS name (`<name>.<zone>.c.<project>.internal`), which install reads back.
 */
export function gceCandidate(project: string, zone: string, i: GceInstance): Candidate {
  const id = String(i.id);
  const ip = i.networkInterfaces?.[0]?.networkIP;
  return {
    cloud: "gcp",
    account: project,
    region: zone,
    instanceId: id,
    nodeName: `${project}-${zone}-${id}`,
    state: i.status ?? "UNKNOWN",
    tags: { ...(i.labels ?? {}) } as Record<string, string>,
    ...(ip ? { privateIp: ip } : {}),
    ...(i.name ? { privateDnsName: `${i.name}.${zone}.c.${project}.internal` } : {}),
    ...(i.creationTimestamp ? { launchTime: new Date(i.creationTimestamp).toISOString() } : {}),
  };
}

/** The fix for a denied or failed listing, in words a person can act on. */
function fixFor(code: string, permission: string, project: string): string {
  if (code === "PERMISSION_DENIED")
    return `grant ${permission} on project ${project} to the discovery credentials (e.g. roles/compute.viewer)`;
  if (code === "UNAUTHENTICATED")
    return "give the discovery service application default credentials (GOOGLE_APPLICATION_CREDENTIALS or a VM service account)";
  if (code === "NOT_FOUND") return `check that project ${project} exists and has the Compute Engine API enabled`;
  if (code === "RESOURCE_EXHAUSTED") return "Compute read quota exhausted; the next pass retries (or raise the quota)";
  return "the next pass retries; if it persists, check the request above";
}

/** A scope error: Google's code, what we were doing, what Google said, and the fix. */
export function gceScopeError(err: unknown, doing: string, permission: string, project: string) {
  const code = gcpErrorCode(err);
  return { code, message: `${doing}: ${gcpErrorMessage(err)}. Fix: ${fixFor(code, permission, project)}` };
}

/** What one fetch shares among its listings. */
class Run {
  readonly candidates: Candidate[] = [];
  readonly scopes: ScopeReport[] = [];
  readonly limit: <T>(task: () => Promise<T>) => Promise<T>;
  constructor(
    readonly matcher: GcpMatcher,
    readonly clients: GcpClients,
    readonly opts: GceFetchOptions,
  ) {
    this.limit = concurrencyLimit(opts.concurrency ?? DEFAULT_GCE_FETCH_CONCURRENCY);
  }
  keep(i: GceInstance): boolean {
    return (
      i.status === "RUNNING" &&
      i.id != null &&
      labelsMatch(this.matcher.labels, (i.labels ?? {}) as Record<string, string>) &&
      serviceAccountMatches(this.matcher.service_accounts, i)
    );
  }
  /** True when the scope was left to another replica (and reported so): the caller lists nothing. */
  async leftToOthers(account: string, region: string): Promise<boolean> {
    const left = await scopeLeftToOthers(this.opts.acquireScope, { cloud: "gcp", account, region });
    if (left) this.report(left);
    return !!left;
  }
  report(r: Omit<ScopeReport, "cloud">, found: Candidate[] = []): void {
    const full: ScopeReport = { cloud: "gcp", ...r };
    this.scopes.push(full);
    this.candidates.push(...found);
    this.opts.onScope?.(full);
  }
}

/** Lists the RUNNING VMs a GCP matcher selects; scopes are project × zone (`*` when a project failed as a whole). */
export async function fetchGce(matcher: GcpMatcher, opts: GceFetchOptions = {}): Promise<FetchResult> {
  const clients = opts.clients ?? googleClients();
  const run = new Run(matcher, clients, opts);
  try {
    const projects = await projectIds(run);
    await Promise.all(projects.map((p) => scanProject(p, run)));
  } finally {
    if (!opts.clients) await clients.close();
  }
  sortFetchResult(run);
  return { candidates: run.candidates, scopes: run.scopes };
}

const isWildcard = (list: string[]) => list.length === 1 && list[0] === "*";

/** The matcher's projects, or every ACTIVE project Resource Manager lets the credentials see. */
async function projectIds(run: Run): Promise<string[]> {
  if (!isWildcard(run.matcher.project_ids)) return [...new Set(run.matcher.project_ids)];
  const found: string[] = [];
  try {
    for await (const p of run.clients.projects().searchProjectsAsync({ query: "state:ACTIVE" }, NO_AUTOPAGINATE))
      if (p.projectId && (p.state == null || p.state === "ACTIVE" || p.state === 1)) found.push(p.projectId);
  } catch (err) {
    const error = gceScopeError(err, "searching projects (project_ids: *)", "resourcemanager.projects.get", "*");
    run.report({ account: "*", region: "*", instances: 0, apiCalls: 1, error });
  }
  return [...new Set(found)].sort();
}

/** Resolves a project's zones, then scans each, or lists all zones at once for locations `*`. */
async function scanProject(project: string, run: Run): Promise<void> {
  if (isWildcard(run.matcher.locations ?? ["*"])) return run.limit(() => scanAggregated(project, run));
  const zones = new Set<string>();
  const regions = run.matcher.locations.filter((l) => !isZone(l));
  for (const l of run.matcher.locations) if (isZone(l)) zones.add(l);
  if (regions.length) {
    try {
      const all = await run.limit(async () => {
        const out: { name: string; region: string }[] = [];
        for await (const z of run.clients.zones().listAsync({ project }, NO_AUTOPAGINATE))
          if (z.name) out.push({ name: z.name, region: lastSegment(z.region) });
        return out;
      });
      for (const z of all) if (regions.includes(z.region)) zones.add(z.name);
    } catch (err) {
      const error = gceScopeError(err, `listing the zones of project ${project}`, "compute.zones.list", project);
      for (const region of regions) run.report({ account: project, region, instances: 0, apiCalls: 1, error });
    }
  }
  await Promise.all([...zones].sort().map((zone) => run.limit(() => scanZone(project, zone, run))));
}

/** One zone's matching VMs, page by page; pages already read stay candidates when a later one fails. */
async function scanZone(project: string, zone: string, run: Run): Promise<void> {
  if (await run.leftToOthers(project, zone)) return;
  const found: Candidate[] = [];
  let apiCalls = 0;
  let error: ScopeReport["error"];
  try {
    let pageToken: string | undefined;
    const seen = new Set<string>();
    do {
      apiCalls++;
      const [items, , raw] = await run.clients
        .instances()
        .list(
          { project, zone, filter: RUNNING_FILTER, maxResults: run.opts.pageSize ?? GCE_LIST_PAGE, pageToken },
          { autoPaginate: false },
        );
      for (const i of items ?? []) if (run.keep(i)) found.push(gceCandidate(project, zone, i));
      pageToken = raw?.nextPageToken || undefined;
      // A token seen before would loop forever; Google never does that, a stand-in might.
      if (pageToken && seen.has(pageToken)) break;
      if (pageToken) seen.add(pageToken);
    } while (pageToken);
  } catch (err) {
    error = gceScopeError(err, `instances.list in project ${project}, zone ${zone}`, "compute.instances.list", project);
  }
  run.report({ account: project, region: zone, instances: found.length, apiCalls, ...(error ? { error } : {}) }, found);
}

/** Every zone of a project in one aggregated listing (locations `*`); one report per zone the listing names. */
async function scanAggregated(project: string, run: Run): Promise<void> {
  if (await run.leftToOthers(project, "*")) return;
  const byZone = new Map<string, Candidate[]>();
  try {
    const pages = run.clients
      .instances()
      .aggregatedListAsync(
        { project, filter: RUNNING_FILTER, maxResults: run.opts.pageSize ?? GCE_LIST_PAGE },
        NO_AUTOPAGINATE,
      );
    for await (const [key, scoped] of pages) {
      if (!key.startsWith("zones/")) continue;
      const zone = lastSegment(key);
      const list = byZone.get(zone) ?? [];
      for (const i of scoped?.instances ?? []) if (run.keep(i)) list.push(gceCandidate(project, zone, i));
      byZone.set(zone, list);
    }
  } catch (err) {
    const error = gceScopeError(
      err,
      `instances.aggregatedList in project ${project}`,
      "compute.instances.list",
      project,
    );
    run.report({ account: project, region: "*", instances: 0, apiCalls: 1, error });
    // Zones already read are kept: discovery only adds, so a partial listing is still useful.
  }
  for (const [zone, found] of byZone) run.report({ account: project, region: zone, instances: found.length }, found);
}
