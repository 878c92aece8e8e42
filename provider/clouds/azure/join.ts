/**
 * The azure join method as a cloud registers it: request checks, the runtime's verification with one Entra ID key
 * cache per JWKS URL and the live check on Microsoft's Compute client, and the node side from IMDS.
 */
import type { CloudJoinMethod } from "../plugin";
import { JwksCache, type JwksCacheOptions } from "../jwks";
import {
  attestAzure,
  azureAllowProblem,
  AzureCallError,
  AzureVirtualMachines,
  AzureVm,
  checkAzureJoinRequest,
} from "./attest-azure";
import { azureClients, azureEndpointFromEnv } from "./clients";
import { azureNodeFields } from "./imds";

/** Stand-ins for the network, for unit tests: the VM read and the JWKS fetch. */
export interface AzureJoinSeams {
  vms?: AzureVirtualMachines;
  jwks?: JwksCacheOptions;
}

/** What the join reads of a VM (standalone or of a scale set), with its power state from the instance view. */
function azureVm(vm: {
  vmId?: string;
  name?: string;
  location?: string;
  instanceView?: { statuses?: { code?: string }[] };
}): AzureVm {
  const power = vm.instanceView?.statuses?.find((s) => s.code?.startsWith("PowerState/"));
  return { vmId: vm.vmId, name: vm.name, location: vm.location, powerState: power?.code };
}

/** A 404 is "no such VM" (undefined); other ARM answers are AzureCallErrors; anything else is thrown as is. */
function armMiss(err: unknown): undefined {
  const e = err as { statusCode?: number; code?: string; message?: string };
  if (e?.statusCode === 404) return undefined;
  if (typeof e?.statusCode !== "number") throw err;
  throw new AzureCallError(e.statusCode, e.code ?? String(e.statusCode), String(e.message ?? ""));
}

/** `virtualMachines.get` with its instance view, on {@link azureClients} (DefaultAzureCredential, ARM seam). */
export function computeVirtualMachines(clients = azureClients()): AzureVirtualMachines {
  return {
    async get(subscriptionId, resourceGroup, name) {
      try {
        const vm = await clients
          .compute(subscriptionId)
          .virtualMachines.get(resourceGroup, name, { expand: "instanceView" });
        return azureVm(vm);
      } catch (err) {
        return armMiss(err);
      }
    },
    async scaleSetVm(subscriptionId, resourceGroup, scaleSet, vmId) {
      try {
        const pages = clients
          .compute(subscriptionId)
          .virtualMachineScaleSetVMs.list(resourceGroup, scaleSet, { expand: "instanceView" });
        for await (const vm of pages) if (vm.vmId?.toLowerCase() === vmId) return azureVm(vm);
        return undefined;
      } catch (err) {
        return armMiss(err);
      }
    },
  };
}

/**
 * The azure join method. The VM reader is made on first use and re-made when `AZURE_RESOURCE_MANAGER_ENDPOINT` or
 * `AZURE_AUTHORITY_HOST` change (tests point them at fakes).
 */
export function azureJoinMethod(seams: AzureJoinSeams = {}): CloudJoinMethod {
  const caches = new Map<string, JwksCache>();
  let live: { key: string; vms: AzureVirtualMachines } | undefined;
  const liveVms = (): AzureVirtualMachines => {
    if (seams.vms) return seams.vms;
    const key = JSON.stringify(azureEndpointFromEnv());
    if (live?.key !== key) live = { key, vms: computeVirtualMachines() };
    return live.vms;
  };
  return {
    needsChallenge: true,
    allowProblem: azureAllowProblem,
    validate: (body) => checkAzureJoinRequest(body),
    nodeFields: async (ctx) => {
      if (!ctx.challenge) throw new Error("an azure join needs the runtime's challenge");
      return azureNodeFields(ctx.challenge);
    },
    attest: async (body, ctx) => {
      const url = ctx.settings.azure.jwksUrl;
      let jwks = caches.get(url);
      if (!jwks) caches.set(url, (jwks = new JwksCache(url, seams.jwks)));
      const a = await attestAzure(body, {
        token: ctx.token,
        challenge: ctx.challenge,
        extraCaPems: ctx.settings.azure.extraCaPems,
        jwks,
        now: ctx.now,
        vms: liveVms(),
      });
      return { nodeName: a.nodeName, labels: a.labels, principals: a.principals };
    },
  };
}
