/**
 * The azure join method as a cloud registers it: request checks, the runtime's verification with one Entra ID key
 * cache per JWKS URL and the live check on Microsoft's Compute client, and the node side from IMDS.
 */
import type { CloudJoinMethod } from "../plugin";
import { JwksCache, type JwksCacheOptions } from "../gcp/jwks";
import { attestAzure, AzureCallError, AzureVirtualMachines, checkAzureJoinRequest } from "./attest-azure";
import { azureClients, azureEndpointFromEnv } from "./clients";
import { azureNodeFields } from "./imds";

/** Stand-ins for the network, for unit tests: the VM read and the JWKS fetch. */
export interface AzureJoinSeams {
  vms?: AzureVirtualMachines;
  jwks?: JwksCacheOptions;
}

/** `virtualMachines.get` with its instance view, on {@link azureClients} (DefaultAzureCredential, ARM seam). */
export function computeVirtualMachines(clients = azureClients()): AzureVirtualMachines {
  return {
    async get(subscriptionId, resourceGroup, name) {
      try {
        const vm = await clients
          .compute(subscriptionId)
          .virtualMachines.get(resourceGroup, name, { expand: "instanceView" });
        const power = vm.instanceView?.statuses?.find((s) => s.code?.startsWith("PowerState/"));
        return { vmId: vm.vmId, location: vm.location, powerState: power?.code };
      } catch (err) {
        const e = err as { statusCode?: number; code?: string; message?: string };
        if (e?.statusCode === 404) return undefined;
        if (typeof e?.statusCode !== "number") throw err;
        throw new AzureCallError(e.statusCode, e.code ?? String(e.statusCode), String(e.message ?? ""));
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
