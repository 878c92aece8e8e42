/**
 * An in-memory Azure for the enrollment's unit tests: subscriptions, VMs, uniform scale sets and managed run
 * commands behind the structural AzureApis, with ARM's error shapes, RBAC actions checked per call, and pages.
 */
import type { VirtualMachineRunCommand } from "@azure/arm-compute";
import type { AzureApis, ComputeApi } from "../../provider/clouds/azure/fetch";

/** What a run command's script does on a fake VM. */
export type FakeRun = { exitCode: number; output?: string; error?: string } | "TimedOut";

/** One VM, standalone or of a scale set. */
export interface FakeVm {
  sub: string;
  rg: string;
  name: string;
  vmId: string;
  location: string;
  tags?: Record<string, string>;
  os?: "Linux" | "Windows";
  power?: "running" | "deallocated" | "stopped";
  /** The VM agent's displayStatus; "Not Ready" makes the PUT fail as Azure's does. */
  agent?: string;
  scaleSet?: { name: string; instanceId: string };
  /** What the script does; default exit 0 with "installed". */
  run?: (script: string) => FakeRun;
  /** Deallocated between the instance view read and the PUT. */
  deallocateOnPut?: boolean;
  /** Every script a run command ran on it. */
  scripts: string[];
}

/** A uniform (or flexible) scale set. */
export interface FakeScaleSet {
  sub: string;
  rg: string;
  name: string;
  location: string;
  tags?: Record<string, string>;
  os?: "Linux" | "Windows";
  mode?: "Uniform" | "Flexible";
}

/** ARM's error as the SDK throws it (RestError's code and statusCode). */
export const armError = (statusCode: number, code: string, message: string) =>
  Object.assign(new Error(message), { statusCode, code });

const tick = () => new Promise((r) => setImmediate(r));

/** The fake cloud. */
export class FakeAzure implements AzureApis {
  vms: FakeVm[] = [];
  scaleSets: FakeScaleSet[] = [];
  subscriptionList: { subscriptionId: string; state: string }[] = [];
  /** `<subscription> <action>` pairs the identity lacks. */
  denied = new Set<string>();
  /** Items per page of every listing. */
  pageSize = 2;
  /** Every call, as `<action> <path>`. */
  calls: string[] = [];
  /** Pages served. */
  pages = 0;
  inFlight = 0;
  maxInFlight = 0;
  /** How long a run command takes (ms). */
  runMs = 0;
  closed = 0;
  runCommands = new Map<string, VirtualMachineRunCommand>();

  vm(v: Omit<FakeVm, "scripts"> & Partial<Pick<FakeVm, "scripts">>): FakeVm {
    const vm = { scripts: [], ...v };
    this.vms.push(vm);
    return vm;
  }

  async close() {
    this.closed++;
  }

  private check(sub: string, action: string, path: string) {
    this.calls.push(`${action} ${path}`);
    if (this.denied.has(`${sub} ${action}`))
      throw armError(
        403,
        "AuthorizationFailed",
        `The client 'discovery' with object id '0000' does not have authorization to perform action '${action}' ` +
          `over scope '${path}' or the scope is invalid.`,
      );
  }

  private async *paged<T>(items: T[]): AsyncIterable<T> {
    for (let i = 0; i < items.length || i === 0; i += this.pageSize) {
      this.pages++;
      await tick();
      yield* items.slice(i, i + this.pageSize);
    }
  }

  async *subscriptions() {
    this.check("*", "Microsoft.Resources/subscriptions/read", "/subscriptions");
    yield* this.paged(this.subscriptionList);
  }

  private view(v: FakeVm) {
    return {
      statuses: [{ code: "ProvisioningState/succeeded" }, { code: `PowerState/${v.power ?? "running"}` }],
      vmAgent: { statuses: [{ displayStatus: v.agent ?? "Ready" }] },
    };
  }

  private vmJson(v: FakeVm) {
    return {
      id: `/subscriptions/${v.sub}/resourceGroups/${v.rg}/providers/Microsoft.Compute/virtualMachines/${v.name}`,
      name: v.name,
      location: v.location,
      tags: v.tags,
      vmId: v.vmId,
      storageProfile: { osDisk: { osType: v.os ?? "Linux", createOption: "FromImage" } },
      instanceView: this.view(v),
    };
  }

  private find(sub: string, rg: string, name: string, ss?: { name: string; instanceId: string }) {
    const v = this.vms.find(
      (x) =>
        x.sub === sub &&
        x.rg.toLowerCase() === rg.toLowerCase() &&
        (ss ? x.scaleSet?.name === ss.name && x.scaleSet.instanceId === ss.instanceId : x.name === name && !x.scaleSet),
    );
    if (!v)
      throw armError(404, "ResourceNotFound", `The Resource '${name}' under resource group '${rg}' was not found.`);
    return v;
  }

  /** A run command on `v`: the agent, power state, the script, as the fake ARM of the contract does. */
  private async runCommand(v: FakeVm, key: string, body: VirtualMachineRunCommand) {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await new Promise((r) => setTimeout(r, this.runMs));
      if (v.deallocateOnPut) v.power = "deallocated";
      if ((v.power ?? "running") !== "running")
        throw armError(
          409,
          "OperationNotAllowed",
          `Operation 'runCommand' is not allowed on VM '${v.name}' since the VM is deallocated.`,
        );
      if (v.agent === "Not Ready")
        throw armError(
          409,
          "VMAgentStatusCommunicationError",
          `VM '${v.name}' has not reported status for VM agent or extensions. Verify that the OS is up and healthy, ` +
            "the VM has a running VM agent, and that it can establish outbound connections to Azure storage.",
        );
      const script = body.source?.script ?? "";
      v.scripts.push(script);
      const r: FakeRun = (v.run ?? (() => ({ exitCode: 0, output: "installed" })))(script);
      const instanceView =
        r === "TimedOut"
          ? { executionState: "TimedOut", exitCode: -1, output: "", error: "" }
          : {
              executionState: r.exitCode === 0 ? "Succeeded" : "Failed",
              exitCode: r.exitCode,
              output: r.output ?? "",
              error: r.error ?? "",
            };
      const rc = {
        ...body,
        provisioningState: instanceView.executionState === "Succeeded" ? "Succeeded" : "Failed",
        instanceView,
      } as VirtualMachineRunCommand;
      this.runCommands.set(key, rc);
      // The poller of a run command whose provisioning failed rejects without ARM's code, as core-lro does.
      if (rc.provisioningState === "Failed") throw new Error("The long-running operation has failed");
      return { ...rc, instanceView: undefined };
    } finally {
      this.inFlight--;
    }
  }

  private getRunCommand(key: string) {
    const rc = this.runCommands.get(key);
    if (!rc) throw armError(404, "ResourceNotFound", "The run command was not found.");
    return rc;
  }

  compute(sub: string): ComputeApi {
    const vmPath = (rg: string, name: string) =>
      `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Compute/virtualMachines/${name}`;
    const ssPath = (rg: string, ss: string) =>
      `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Compute/virtualMachineScaleSets/${ss}`;
    const standalone = () => this.vms.filter((v) => v.sub === sub && !v.scaleSet);
    return {
      virtualMachines: {
        listAll: (o) => {
          this.check(sub, "Microsoft.Compute/virtualMachines/read", `/subscriptions/${sub}`);
          if (o?.statusOnly !== "true") throw new Error("expected statusOnly=true");
          return this.paged(standalone().map((v) => this.vmJson(v)));
        },
        list: (rg, o) => {
          this.check(sub, "Microsoft.Compute/virtualMachines/read", `/subscriptions/${sub}/resourceGroups/${rg}`);
          if (o?.expand !== "instanceView") throw new Error("expected $expand=instanceView");
          if (rg === "gone-rg")
            throw armError(404, "ResourceGroupNotFound", `Resource group '${rg}' could not be found.`);
          return this.paged(
            standalone()
              .filter((v) => v.rg.toLowerCase() === rg.toLowerCase())
              .map((v) => this.vmJson(v)),
          );
        },
        instanceView: async (rg, name) => {
          this.check(sub, "Microsoft.Compute/virtualMachines/read", `${vmPath(rg, name)}/instanceView`);
          return this.view(this.find(sub, rg, name));
        },
      },
      virtualMachineScaleSets: {
        listAll: () => {
          this.check(sub, "Microsoft.Compute/virtualMachineScaleSets/read", `/subscriptions/${sub}`);
          return this.paged(
            this.scaleSets
              .filter((s) => s.sub === sub)
              .map((s) => ({
                id: ssPath(s.rg, s.name),
                name: s.name,
                location: s.location,
                tags: s.tags,
                orchestrationMode: s.mode ?? "Uniform",
                virtualMachineProfile: {
                  storageProfile: { osDisk: { osType: s.os ?? "Linux", createOption: "FromImage" } },
                },
              })),
          );
        },
      },
      virtualMachineScaleSetVMs: {
        list: (rg, ss, o) => {
          this.check(sub, "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read", ssPath(rg, ss));
          if (o?.expand !== "instanceView") throw new Error("expected $expand=instanceView");
          return this.paged(
            this.vms
              .filter((v) => v.sub === sub && v.scaleSet?.name === ss)
              .map((v) => ({
                id: `${ssPath(rg, ss)}/virtualMachines/${v.scaleSet!.instanceId}`,
                name: v.name,
                instanceId: v.scaleSet!.instanceId,
                location: v.location,
                vmId: v.vmId,
                instanceView: this.view(v),
              })),
          );
        },
      },
      virtualMachineRunCommands: {
        createOrUpdate: async (rg, vm, name, body) => {
          this.check(
            sub,
            "Microsoft.Compute/virtualMachines/runCommands/write",
            `${vmPath(rg, vm)}/runCommands/${name}`,
          );
          return this.runCommand(this.find(sub, rg, vm), `${vmPath(rg, vm)}/${name}`, body);
        },
        getByVirtualMachine: async (rg, vm, name, o) => {
          this.check(
            sub,
            "Microsoft.Compute/virtualMachines/runCommands/read",
            `${vmPath(rg, vm)}/runCommands/${name}`,
          );
          if (o?.expand !== "instanceView") throw new Error("expected $expand=instanceView");
          return this.getRunCommand(`${vmPath(rg, vm)}/${name}`);
        },
      },
      virtualMachineScaleSetVMRunCommands: {
        createOrUpdate: async (rg, ss, id, name, body) => {
          const p = `${ssPath(rg, ss)}/virtualMachines/${id}`;
          this.check(
            sub,
            "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands/write",
            `${p}/runCommands/${name}`,
          );
          return this.runCommand(this.find(sub, rg, "", { name: ss, instanceId: id }), `${p}/${name}`, body);
        },
        get: async (rg, ss, id, name, o) => {
          const p = `${ssPath(rg, ss)}/virtualMachines/${id}`;
          this.check(
            sub,
            "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands/read",
            `${p}/runCommands/${name}`,
          );
          if (o?.expand !== "instanceView") throw new Error("expected $expand=instanceView");
          return this.getRunCommand(`${p}/${name}`);
        },
      },
    } as ComputeApi;
  }
}
