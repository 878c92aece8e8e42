/**
 * The Azure VM fetcher: lists the running Linux VMs an Azure matcher selects over its subscriptions (or every
 * Enabled subscription the identity can see), standalone VMs and the VMs of uniform scale sets, a bounded number of
 * subscriptions at once. A failing listing is reported in its ScopeReport (subscription × region) with ARM's code
 * and the fix, and never stops the other subscriptions. The types below are the structural subset of Microsoft's
 * clients enrollment calls, which the real clients satisfy as they are, so tests hand in plain fakes.
 */
import type {
  VirtualMachine,
  VirtualMachineInstanceView,
  VirtualMachineRunCommand,
  VirtualMachineScaleSet,
  VirtualMachineScaleSetVM,
} from "@azure/arm-compute";
import { createPipelineRequest } from "@azure/core-rest-pipeline";
import type { SubscriptionClient } from "@azure/arm-subscriptions";
import type { AzureMatcher } from "../../model";
import type { Candidate, FetchResult, ScopeReport } from "../../enroll/types";
import { AcquireScope, scopeLeftToOthers } from "../../enroll/clouds";
import { concurrencyLimit } from "../../util/concurrency";
import { sortFetchResult } from "../aws/fetch-support";
import { labelsMatch } from "../gcp/fetch";
import { AzureClients, azureClients } from "./clients";

/** The Compute operations enrollment calls, on one subscription's ComputeManagementClient. */
export interface ComputeApi {
  virtualMachines: {
    listAll(options?: { statusOnly?: string }): AsyncIterable<VirtualMachine>;
    list(resourceGroup: string, options?: { expand?: string }): AsyncIterable<VirtualMachine>;
    instanceView(resourceGroup: string, vmName: string): Promise<VirtualMachineInstanceView>;
  };
  virtualMachineScaleSets: { listAll(): AsyncIterable<VirtualMachineScaleSet> };
  virtualMachineScaleSetVMs: {
    list(
      resourceGroup: string,
      scaleSet: string,
      options?: { expand?: string },
    ): AsyncIterable<VirtualMachineScaleSetVM>;
  };
  virtualMachineRunCommands: {
    /** A long-running operation: awaiting it waits for the run command to finish (asyncExecution false). */
    createOrUpdate(rg: string, vm: string, name: string, body: VirtualMachineRunCommand): PromiseLike<unknown>;
    getByVirtualMachine(
      rg: string,
      vm: string,
      name: string,
      options?: { expand?: string },
    ): Promise<VirtualMachineRunCommand>;
  };
  virtualMachineScaleSetVMRunCommands: {
    createOrUpdate(
      rg: string,
      scaleSet: string,
      instanceId: string,
      name: string,
      body: VirtualMachineRunCommand,
    ): PromiseLike<unknown>;
    get(
      rg: string,
      scaleSet: string,
      instanceId: string,
      name: string,
      options?: { expand?: string },
    ): Promise<VirtualMachineRunCommand>;
  };
}

/** A subscription as `GET /subscriptions` lists it. */
export interface AzureSubscription {
  subscriptionId?: string;
  state?: string;
}

/** What fetch, install and the stale check call; {@link azureApis} makes it from Microsoft's clients. */
export interface AzureApis {
  compute(subscriptionId: string): ComputeApi;
  /** Every subscription the identity can see (`subscriptions: ["*"]`). */
  subscriptions(): AsyncIterable<AzureSubscription>;
  close(): Promise<void>;
}

/** Microsoft's clients as {@link AzureApis}: the default of fetch, install and the stale check. */
export function azureApis(clients: AzureClients = azureClients()): AzureApis {
  return {
    compute: (s) => clients.compute(s),
    subscriptions: () => listSubscriptions(clients.subscriptions()),
    close: () => clients.close(),
  };
}

/**
 * `GET /subscriptions`, page by page, through the SubscriptionClient's pipeline (credential, endpoint, retries):
 * @azure/arm-subscriptions 6 has no operation for it (it moved to @azure/arm-resources-subscriptions).
 */
async function* listSubscriptions(client: SubscriptionClient): AsyncIterable<AzureSubscription> {
  let url: string | undefined = `${client.$host.replace(/\/+$/, "")}/subscriptions?api-version=2022-12-01`;
  const seen = new Set<string>();
  while (url && !seen.has(url)) {
    seen.add(url);
    const res = await client.sendRequest(createPipelineRequest({ url, method: "GET" }));
    let body: { value?: AzureSubscription[]; nextLink?: string; error?: { code?: string; message?: string } } = {};
    try {
      body = JSON.parse(res.bodyAsText ?? "{}");
    } catch {
      // Not JSON: the status below says what happened.
    }
    if (res.status !== 200)
      throw Object.assign(new Error(body.error?.message ?? `GET /subscriptions answered ${res.status}`), {
        statusCode: res.status,
        code: body.error?.code ?? `HTTP_${res.status}`,
      });
    yield* body.value ?? [];
    url = body.nextLink || undefined;
  }
}

/** A stable code for an ARM or credential error: ARM's own (`AuthorizationFailed`, ...), else what is known. */
export function azureErrorCode(err: unknown): string {
  const e = err as { code?: unknown; statusCode?: unknown; name?: unknown } | undefined;
  if (typeof e?.code === "string" && e.code) return e.code;
  if (e?.name === "CredentialUnavailableError" || e?.name === "AuthenticationError") return String(e.name);
  if (typeof e?.statusCode === "number") return `HTTP_${e.statusCode}`;
  return "UNKNOWN";
}

/** The first line of an error's message, bounded: enough to read in a report. */
export function azureErrorMessage(err: unknown): string {
  return String((err as { message?: unknown })?.message ?? err)
    .split("\n")[0]
    .slice(0, 300);
}

const CREDENTIAL_CODES = /^(CredentialUnavailableError|AuthenticationError|InvalidAuthenticationToken.*|HTTP_401)$/;

/** The fix for a denied or failed ARM call, in words a person can act on. */
export function azureFix(code: string, action: string, subscription: string): string {
  if (code === "AuthorizationFailed" || code === "HTTP_403")
    return (
      `grant ${action} on subscription ${subscription} to the discovery identity; ` +
      "`discovery policy azure --config FILE` prints the custom role"
    );
  if (CREDENTIAL_CODES.test(code))
    return (
      "give the discovery service Azure credentials (AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, " +
      "workload identity or a managed identity)"
    );
  if (code === "SubscriptionNotFound" || code === "InvalidSubscriptionId")
    return `check that subscription ${subscription} exists and is in the discovery identity's tenant`;
  if (code === "ResourceGroupNotFound") return `check the resource group names of the matcher (${subscription})`;
  if (code === "TooManyRequests" || code === "HTTP_429") return "ARM throttled the reads; the next pass retries";
  return "the next pass retries; if it persists, check the request above";
}

/** A scope error: ARM's code, what we were doing, what ARM said, and the fix. */
export function azureScopeError(err: unknown, doing: string, action: string, subscription: string) {
  const code = azureErrorCode(err);
  return { code, message: `${doing}: ${azureErrorMessage(err)}. Fix: ${azureFix(code, action, subscription)}` };
}

/** Where install finds a VM: its resource group and name, or its scale set and instance id. */
export interface AzureVmRef {
  resourceGroup: string;
  /** The VM's name (a scale set VM's is `<scale set>_<instance id>`). */
  name: string;
  scaleSet?: { name: string; instanceId: string };
}

/** A candidate of the Azure fetcher: the VM's ARM coordinates travel with it to the installer. */
export interface AzureCandidate extends Candidate {
  azure: AzureVmRef;
}

/** The resource group named in an ARM id (`/subscriptions/s/resourceGroups/G/...`). */
export function resourceGroupOf(id: string | undefined): string {
  return /\/resourceGroups\/([^/]+)/i.exec(id ?? "")?.[1] ?? "";
}

/** The power state of an instance view (`running`, `deallocated`, ...), or undefined when it names none. */
export function powerState(view: { statuses?: { code?: string }[] } | undefined): string | undefined {
  const code = view?.statuses?.find((s) => s.code?.startsWith("PowerState/"))?.code;
  return code?.slice("PowerState/".length).toLowerCase();
}

/** Whether a VM runs Linux: its OS disk's type, else (no type given) a Linux configuration. */
const isLinux = (v: Pick<VirtualMachine, "storageProfile" | "osProfile">, osType?: string) => {
  const os = osType ?? v.storageProfile?.osDisk?.osType;
  return os ? os.toLowerCase() === "linux" : !!v.osProfile?.linuxConfiguration;
};

const isWildcard = (list: string[]) => list.length === 1 && list[0] === "*";
const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/** How {@link fetchAzureVms} reaches Azure and reports progress. */
export interface AzureFetchOptions {
  /** Default: Microsoft's clients, endpoint from the environment ({@link azureApis}). */
  clients?: AzureApis;
  /** Subscriptions scanned at once; default 8. */
  concurrency?: number;
  /** Called as each scope finishes. */
  onScope?: (report: ScopeReport) => void;
  /**
   * Asked before each subscription's listings, as subscription × `*`: one listing covers all of its regions, so the
   * subscription is what one replica scans. A held subscription is reported, not listed.
   */
  acquireScope?: AcquireScope;
}

/** Subscriptions scanned at once unless told otherwise: ARM's read limit is per subscription and identity. */
export const DEFAULT_AZURE_FETCH_CONCURRENCY = 8;

/** What one subscription's scan found. */
interface SubscriptionScan {
  found: AzureCandidate[];
  /** Every region a listing named (any VM, matched or not): scanned scopes for a `*` matcher. */
  regions: Set<string>;
  errors: { code: string; message: string }[];
  apiCalls: number;
}

/** Whether a VM in `location` and resource group `rg` with `tags` is one the matcher selects. */
function placeMatches(m: AzureMatcher, location: string, rg: string, tags: Record<string, string> | undefined) {
  return (
    (isWildcard(m.regions) || m.regions.some((r) => same(r, location))) &&
    (isWildcard(m.resource_groups) || m.resource_groups.some((g) => same(g, rg))) &&
    labelsMatch(m.tags, tags ?? {})
  );
}

/** A candidate for one VM: node name `<subscription>-<vm id>`, as the azure join names it. */
export function azureCandidate(
  subscription: string,
  vm: { vmId?: string; location: string; tags?: Record<string, string>; timeCreated?: Date },
  ref: AzureVmRef,
  state = "running",
): AzureCandidate {
  const vmId = String(vm.vmId).toLowerCase();
  return {
    cloud: "azure",
    account: subscription,
    region: vm.location.toLowerCase(),
    instanceId: vmId,
    nodeName: `${subscription}-${vmId}`,
    state,
    tags: { ...(vm.tags ?? {}) },
    platform: "Linux",
    ...(vm.timeCreated && { launchTime: new Date(vm.timeCreated).toISOString() }),
    azure: ref,
  };
}

/**
 * Every VM of one subscription the matcher's resource groups hold (standalone, then uniform scale sets), with its
 * instance view. Listing errors are collected in `scan`, never thrown; the stale check reuses it with `all` set.
 */
export async function* subscriptionVms(
  api: ComputeApi,
  subscription: string,
  m: Pick<AzureMatcher, "resource_groups">,
  scan: Pick<SubscriptionScan, "errors" | "apiCalls">,
): AsyncIterable<{
  vm: VirtualMachine | VirtualMachineScaleSetVM;
  ref: AzureVmRef;
  /** A scale set VM's: the scale set's tags and OS type. */
  scaleSet?: { tags?: Record<string, string>; osType?: string };
}> {
  const fail = (err: unknown, doing: string, action: string) => {
    scan.errors.push(azureScopeError(err, doing, action, subscription));
  };
  const vmRead = "Microsoft.Compute/virtualMachines/read";
  const groups = isWildcard(m.resource_groups) ? [undefined] : [...new Set(m.resource_groups)];
  for (const rg of groups) {
    try {
      scan.apiCalls++;
      const pages = rg
        ? api.virtualMachines.list(rg, { expand: "instanceView" })
        : api.virtualMachines.listAll({ statusOnly: "true" });
      for await (const vm of pages) {
        const group = resourceGroupOf(vm.id) || rg || "";
        const ref = { resourceGroup: group, name: vm.name ?? "" };
        if (!vm.instanceView && vm.name) {
          // An api-version that ignores $expand on a resource group's list: ask for the one view.
          scan.apiCalls++;
          yield { vm: { ...vm, instanceView: await api.virtualMachines.instanceView(group, vm.name) }, ref };
        } else yield { vm, ref };
      }
    } catch (err) {
      const where = rg ? `resource group ${rg}` : `subscription ${subscription}`;
      fail(err, `listing the virtual machines of ${where}`, vmRead);
    }
  }
  const sets: VirtualMachineScaleSet[] = [];
  try {
    scan.apiCalls++;
    for await (const ss of api.virtualMachineScaleSets.listAll())
      // Flexible scale sets' VMs are ordinary VMs, already listed above.
      if (ss.name && ss.orchestrationMode !== "Flexible") sets.push(ss);
  } catch (err) {
    fail(
      err,
      `listing the scale sets of subscription ${subscription}`,
      "Microsoft.Compute/virtualMachineScaleSets/read",
    );
  }
  for (const ss of sets) {
    const rg = resourceGroupOf(ss.id);
    if (!isWildcard(m.resource_groups) && !m.resource_groups.some((g) => same(g, rg))) continue;
    try {
      scan.apiCalls++;
      for await (const vm of api.virtualMachineScaleSetVMs.list(rg, ss.name!, { expand: "instanceView" })) {
        const instanceId = String(vm.instanceId ?? "");
        const ref = { resourceGroup: rg, name: vm.name ?? "", scaleSet: { name: ss.name!, instanceId } };
        const osType = vm.storageProfile?.osDisk?.osType ?? ss.virtualMachineProfile?.storageProfile?.osDisk?.osType;
        yield { vm, ref, scaleSet: { tags: ss.tags, osType } };
      }
    } catch (err) {
      fail(
        err,
        `listing the VMs of scale set ${ss.name} in resource group ${rg}`,
        "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
      );
    }
  }
}

/** Lists one subscription's running Linux VMs the matcher selects. */
async function scanSubscription(api: ComputeApi, subscription: string, m: AzureMatcher): Promise<SubscriptionScan> {
  const scan: SubscriptionScan = { found: [], regions: new Set(), errors: [], apiCalls: 0 };
  for await (const { vm, ref, scaleSet } of subscriptionVms(api, subscription, m, scan)) {
    if (!vm.location || !vm.vmId) continue;
    scan.regions.add(vm.location.toLowerCase());
    const keep =
      placeMatches(m, vm.location, ref.resourceGroup, scaleSet ? scaleSet.tags : vm.tags) &&
      isLinux(vm, scaleSet?.osType) &&
      powerState(vm.instanceView) === "running";
    if (keep) scan.found.push(azureCandidate(subscription, { ...vm, location: vm.location }, ref));
  }
  return scan;
}

/** The matcher's subscriptions, or every Enabled subscription the identity can see. */
async function subscriptionIds(m: AzureMatcher, clients: AzureApis, report: (r: ScopeReport) => void) {
  if (!isWildcard(m.subscriptions)) return [...new Set(m.subscriptions.map((s) => s.toLowerCase()))];
  const found: string[] = [];
  try {
    for await (const s of clients.subscriptions())
      if (s.subscriptionId && (s.state == null || s.state === "Enabled")) found.push(s.subscriptionId.toLowerCase());
  } catch (err) {
    const error = azureScopeError(
      err,
      "listing subscriptions (subscriptions: *)",
      "Microsoft.Resources/subscriptions/read",
      "*",
    );
    report({ cloud: "azure", account: "*", region: "*", instances: 0, apiCalls: 1, error });
  }
  return [...new Set(found)].sort();
}

/** One error for a scope that had several (resource groups, scale sets): the first code, every message. */
function joinErrors(errors: SubscriptionScan["errors"]): ScopeReport["error"] {
  if (errors.length === 0) return undefined;
  return { code: errors[0].code, message: [...new Set(errors.map((e) => e.message))].join("; ").slice(0, 2000) };
}

/**
 * Lists the running Linux VMs an Azure matcher selects. Scopes are subscription × region: every named region, or
 * with regions `*` every region a listing named (and `*` holding the error when a listing failed).
 */
export async function fetchAzureVms(matcher: AzureMatcher, opts: AzureFetchOptions = {}): Promise<FetchResult> {
  const clients = opts.clients ?? azureApis();
  const result: FetchResult = { candidates: [], scopes: [] };
  const report = (r: ScopeReport, found: Candidate[] = []) => {
    result.scopes.push(r);
    result.candidates.push(...found);
    opts.onScope?.(r);
  };
  const limit = concurrencyLimit(opts.concurrency ?? DEFAULT_AZURE_FETCH_CONCURRENCY);
  try {
    const subscriptions = await subscriptionIds(matcher, clients, report);
    await Promise.all(
      subscriptions.map((sub) =>
        limit(async () => {
          const left = await scopeLeftToOthers(opts.acquireScope, { cloud: "azure", account: sub, region: "*" });
          if (left) return report(left);
          const scan = await scanSubscription(clients.compute(sub), sub, matcher);
          const error = joinErrors(scan.errors);
          const named = !isWildcard(matcher.regions);
          const regions = named ? [...new Set(matcher.regions.map((r) => r.toLowerCase()))] : [...scan.regions];
          for (const region of regions.sort()) {
            const found = scan.found.filter((c) => c.region === region);
            const calls = region === regions[0] ? { apiCalls: scan.apiCalls } : {};
            report(
              {
                cloud: "azure",
                account: sub,
                region,
                instances: found.length,
                ...calls,
                ...(named && error && { error }),
              },
              found,
            );
          }
          if (error && !named) report({ cloud: "azure", account: sub, region: "*", instances: 0, error });
        }),
      ),
    );
  } finally {
    if (!opts.clients) await clients.close();
  }
  sortFetchResult(result);
  return result;
}
