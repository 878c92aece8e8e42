import type { RunCommandRecord } from "./azure-world";
import { AzureVm, identityResourceId, vmResourceId } from "./azure-world";

/** ARM's JSON for the instance view of a VM: provisioning and power states, and the VM agent's status. */
export function instanceViewJson(vm: AzureVm): Record<string, unknown> {
  const time = vm.timeCreated;
  const running = vm.state === "running";
  return {
    computerName: vm.scaleSet ? `${vm.scaleSet}${vm.instanceId!.padStart(6, "0")}` : vm.name,
    osName: "ubuntu",
    osVersion: "22.04",
    ...(running && {
      vmAgent: vm.agent
        ? {
            vmAgentVersion: "2.11.1.4",
            statuses: [
              { code: "ProvisioningState/succeeded", level: "Info", displayStatus: "Ready", message: "Guest Agent is running", time }, // prettier-ignore
            ],
          }
        : {
            vmAgentVersion: "Unknown",
            statuses: [
              { code: "ProvisioningState/Unavailable", level: "Warning", displayStatus: "Not Ready", message: "VM status blob is found but not yet populated.", time }, // prettier-ignore
            ],
          },
    }),
    statuses: [
      { code: "ProvisioningState/succeeded", level: "Info", displayStatus: "Provisioning succeeded", time },
      running
        ? { code: "PowerState/running", level: "Info", displayStatus: "VM running" }
        : { code: "PowerState/deallocated", level: "Info", displayStatus: "VM deallocated" },
    ],
  };
}

/** ARM's JSON for a VM (or a scale set's VM), with its instance view when asked for. */
export function vmJson(vm: AzureVm, withInstanceView: boolean): Record<string, unknown> {
  const view = instanceViewJson(vm);
  return {
    id: vmResourceId(vm),
    name: vm.name,
    type: vm.scaleSet
      ? "Microsoft.Compute/virtualMachineScaleSets/virtualMachines"
      : "Microsoft.Compute/virtualMachines",
    location: vm.region,
    tags: vm.tags,
    ...(vm.scaleSet && { instanceId: vm.instanceId, sku: { name: "Standard_B1s", tier: "Standard" } }),
    identity: { type: "SystemAssigned", principalId: vm.principalId, tenantId: undefined },
    properties: {
      vmId: vm.vmId,
      provisioningState: "Succeeded",
      timeCreated: vm.timeCreated,
      hardwareProfile: { vmSize: "Standard_B1s" },
      storageProfile: {
        imageReference: { publisher: "Canonical", offer: "0001-com-ubuntu-server-jammy", sku: "22_04-lts-gen2", version: "latest" }, // prettier-ignore
        osDisk: { osType: "Linux", name: `${vm.name}_OsDisk_1`, createOption: "FromImage" },
      },
      osProfile: {
        computerName: view.computerName,
        adminUsername: "azureuser",
        linuxConfiguration: { disablePasswordAuthentication: true, provisionVMAgent: vm.agent },
      },
      networkProfile: {
        networkInterfaces: [{ id: `${identityResourceId(vm).split("/providers/")[0]}/providers/Microsoft.Network/networkInterfaces/${vm.name}-nic` }], // prettier-ignore
      },
      ...(withInstanceView && { instanceView: view }),
    },
  };
}

/** ARM's JSON for a scale set (Uniform orchestration). */
export function scaleSetJson(
  subscription: string,
  set: { resourceGroup: string; name: string; region: string; vms: AzureVm[] },
) {
  return {
    id: `/subscriptions/${subscription}/resourceGroups/${set.resourceGroup}/providers/Microsoft.Compute/virtualMachineScaleSets/${set.name}`, // prettier-ignore
    name: set.name,
    type: "Microsoft.Compute/virtualMachineScaleSets",
    location: set.region,
    tags: set.vms[0]?.tags ?? {},
    sku: { name: "Standard_B1s", tier: "Standard", capacity: set.vms.length },
    properties: {
      provisioningState: "Succeeded",
      orchestrationMode: "Uniform",
      uniqueId: set.vms[0]?.vmId,
      virtualMachineProfile: { storageProfile: { osDisk: { osType: "Linux", createOption: "FromImage" } } },
    },
  };
}

/** ARM's JSON for a run command; the instance view only when asked for (the PUT's answer always has it). */
export function runCommandJson(vm: AzureVm, rc: RunCommandRecord, withInstanceView: boolean): Record<string, unknown> {
  const { outcome } = rc;
  const failed = outcome.executionState !== "Succeeded";
  return {
    id: `${vmResourceId(vm)}/runCommands/${rc.name}`,
    name: rc.name,
    type: vm.scaleSet
      ? "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands"
      : "Microsoft.Compute/virtualMachines/runCommands",
    location: rc.location,
    properties: {
      ...rc.sent,
      source: { script: rc.script },
      asyncExecution: false,
      timeoutInSeconds: rc.timeoutInSeconds,
      treatFailureAsDeploymentFailure: rc.sent.treatFailureAsDeploymentFailure ?? false,
      provisioningState: failed ? "Failed" : "Succeeded",
      ...(withInstanceView && {
        instanceView: {
          executionState: outcome.executionState,
          executionMessage: failed
            ? outcome.executionState === "TimedOut"
              ? "Execution timed out"
              : `Execution completed with exit code ${outcome.exitCode}`
            : "Execution completed",
          exitCode: outcome.exitCode,
          output: outcome.output,
          error: outcome.error,
          startTime: outcome.startTime,
          endTime: outcome.endTime,
          statuses: [],
        },
      }),
    },
  };
}
