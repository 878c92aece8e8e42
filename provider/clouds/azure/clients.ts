/**
 * The Microsoft clients Azure enrollment and the azure join use, behind one small factory: fetch, install, the
 * stale check and the join's live check ask `AzureClients` for them, so unit tests hand in fakes and the sandbox
 * points the real ones at its fake ARM and Entra ID. Nothing here trusts anything only the sandbox has: the
 * credential is @azure/identity's DefaultAzureCredential (environment, workload identity, managed identity, ...),
 * and the endpoints are the ones an Azure Stack or sovereign-cloud user would set.
 */
import { ComputeManagementClient } from "@azure/arm-compute";
import { SubscriptionClient } from "@azure/arm-subscriptions";
import type { TokenCredential } from "@azure/core-auth";
import { DefaultAzureCredential } from "@azure/identity";

/** Where the Azure clients send their requests: Azure's public cloud unless told otherwise. */
export interface AzureEndpoint {
  /** Azure Resource Manager, e.g. `https://management.azure.com` (the default). */
  resourceManager?: string;
  /**
   * Entra ID's authority host (`AZURE_AUTHORITY_HOST`, which @azure/identity reads itself). Set to anything but
   * Azure's own, instance discovery (a call to login.microsoftonline.com) is turned off, as Azure Stack needs.
   */
  authorityHost?: string;
}

/**
 * The endpoints from the environment, read here and nowhere else: `AZURE_RESOURCE_MANAGER_ENDPOINT` (e.g.
 * `https://127.0.0.1:8443`; unset in Azure's public cloud) and the standard `AZURE_AUTHORITY_HOST`.
 */
export function azureEndpointFromEnv(env: NodeJS.ProcessEnv = process.env): AzureEndpoint {
  const arm = env.AZURE_RESOURCE_MANAGER_ENDPOINT?.replace(/\/+$/, "");
  const authority = env.AZURE_AUTHORITY_HOST?.replace(/\/+$/, "");
  return { ...(arm && { resourceManager: arm }), ...(authority && { authorityHost: authority }) };
}

const PUBLIC_AUTHORITY = "https://login.microsoftonline.com";

/** DefaultAzureCredential for `endpoint`'s authority host. */
export function azureCredential(endpoint: AzureEndpoint = azureEndpointFromEnv()): TokenCredential {
  const custom = endpoint.authorityHost && endpoint.authorityHost !== PUBLIC_AUTHORITY;
  return new DefaultAzureCredential({
    ...(endpoint.authorityHost && { authorityHost: endpoint.authorityHost }),
    ...(custom && { disableInstanceDiscovery: true }),
  });
}

/** Makes the clients; one set per fetch, install or check run, closed when it ends. */
export interface AzureClients {
  /** Compute for one subscription (virtual machines, scale set VMs, run commands). */
  compute(subscriptionId: string): ComputeManagementClient;
  /** The subscriptions the identity can see (`subscriptions: ["*"]`). */
  subscriptions(): SubscriptionClient;
  /** Releases whatever the clients hold. */
  close(): Promise<void>;
}

/**
 * Microsoft's own clients with one credential shared by all, at `endpoint`'s Resource Manager. The token scope is
 * `<resource manager>/.default`, which is Azure's `https://management.azure.com/.default` by default.
 */
export function azureClients(
  endpoint: AzureEndpoint = azureEndpointFromEnv(),
  credential: TokenCredential = azureCredential(endpoint),
): AzureClients {
  const arm = endpoint.resourceManager;
  const options = arm ? { endpoint: arm, credentials: { scopes: [`${arm}/.default`] } } : {};
  const computes = new Map<string, ComputeManagementClient>();
  let subscriptions: SubscriptionClient | undefined;
  return {
    compute(subscriptionId) {
      let c = computes.get(subscriptionId);
      if (!c) computes.set(subscriptionId, (c = new ComputeManagementClient(credential, subscriptionId, options)));
      return c;
    },
    subscriptions() {
      // An older generation of client: its endpoint is `$host` (and `endpoint` for the pipeline), its token scope
      // `credentialScopes`.
      subscriptions ??= new SubscriptionClient(
        credential,
        arm ? { endpoint: arm, $host: arm, credentialScopes: [`${arm}/.default`] } : {},
      );
      return subscriptions;
    },
    close: async () => {
      computes.clear();
      subscriptions = undefined;
    },
  };
}
