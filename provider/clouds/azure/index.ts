/**
 * Azure as one CloudPlugin: the VM fetcher (standalone and uniform scale set VMs), the managed run command
 * installer, the stale check, the azure join (attested document + managed identity token, checked live), and
 * Azure node identity.
 */
import type { AzureMatcher } from "../../model";
import type { CloudPlugin } from "../plugin";
import { existingAzureVms } from "./existing";
import { fetchAzureVms } from "./fetch";
import { azureJoinMethod } from "./join";
import { AZURE_FAILURE_CLASSES, installViaRunCommand } from "./install-run-command";

/** `<subscription>-<vm id>`: the name an Azure VM joins as. */
export const azureNodeName = (subscription: string, vmId: string): string => `${subscription}-${vmId}`;

const PERMISSION_CODES =
  /^(AuthorizationFailed|HTTP_403|InvalidAuthenticationToken.*|HTTP_401|CredentialUnavailableError|AuthenticationError)$/;

/** The issue type and fix of an Azure scope that was denied; undefined (a fetch failure) for any other error. */
export function azureScopeProblem(e: {
  code: string;
  message: string;
}): { issueType: string; fix: string } | undefined {
  if (!PERMISSION_CODES.test(e.code)) return undefined;
  return {
    issueType: "permission-denied",
    fix:
      "Fix: assign the discovery identity the custom role `discovery policy azure --config FILE` prints " +
      "(Microsoft.Compute/virtualMachines/read, .../runCommands/write, ...) on the subscription.",
  };
}

/** Azure: registered in provider/clouds/index.ts. */
export const AZURE_PLUGIN: CloudPlugin<AzureMatcher> = {
  enrollment: {
    fetch: (matcher, ctx) => fetchAzureVms(matcher, { onScope: ctx.onScope, acquireScope: ctx.acquireScope }),
    install: (candidates, matcher, ctx) => installViaRunCommand(candidates, { matcher, endpoint: ctx.runtime }),
    existing: (matcher, query) => existingAzureVms(matcher, query),
    failureClasses: AZURE_FAILURE_CLASSES,
  },
  joinMethods: { azure: azureJoinMethod() },
  identity: { accountLabel: "discovery/subscription-id", regionLabel: "discovery/region", nodeName: azureNodeName },
  scopeProblem: azureScopeProblem,
};
