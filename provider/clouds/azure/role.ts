/** The Azure custom role the discovery service needs; `discovery policy azure` and the SDK print it. */
import type { AzureMatcher } from "../../model";

/** An Azure custom role definition, in the shape `az role definition create --role-definition` reads. */
export interface AzureRole {
  Name: string;
  IsCustom: true;
  Description: string;
  Actions: string[];
  NotActions: string[];
  AssignableScopes: string[];
}

/**
 * The Azure role the discovery service needs for `matchers`: list VMs and uniform scale sets' VMs with their
 * instance views, create and read the managed run command that installs, and list subscriptions where the
 * matchers say `*`. The run command is updated in place and never deleted, so no delete action.
 */
export function azureDiscoveryRole(matchers: readonly AzureMatcher[]): AzureRole {
  const actions = [
    // virtualMachines.listAll / list and, before an install, instanceView; the azure join's live check is a get.
    "Microsoft.Compute/virtualMachines/read",
    // Uniform scale sets (virtualMachineScaleSets.listAll) and their VMs (virtualMachineScaleSetVMs.list).
    "Microsoft.Compute/virtualMachineScaleSets/read",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
    // The install: createOrUpdate, then the instance view of the run command (exit code, output).
    "Microsoft.Compute/virtualMachines/runCommands/write",
    "Microsoft.Compute/virtualMachines/runCommands/read",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands/write",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands/read",
  ];
  const everywhere = matchers.some((m) => m.subscriptions.includes("*"));
  if (everywhere) actions.push("Microsoft.Resources/subscriptions/read");
  const scopes = everywhere
    ? ["/"]
    : [...new Set(matchers.flatMap((m) => m.subscriptions.map((s) => `/subscriptions/${s.toLowerCase()}`)))].sort();
  return {
    Name: "pulumi-discovery",
    IsCustom: true,
    Description: "Lists Azure VMs and runs the discovery installer on them with a managed run command.",
    Actions: [...new Set(actions)].sort(),
    NotActions: [],
    AssignableScopes: scopes,
  };
}
