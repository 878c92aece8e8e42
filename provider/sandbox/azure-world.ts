import { randomBytes, randomUUID } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { AzureLaunchOptions, AzureLaunchState, parseAzureLaunchOptions } from "./azure-launch-options";
import { AzureImdsKeys, AzureImdsServer, startAzureImds } from "./azure-imds";
import { AzureGuest, DEFAULT_RUN_TIMEOUT_S, RunCommandOutcome, runAzureScript, startAzureGuest } from "./azure-vm";

/** A refusal ARM would answer with this HTTP status, error code and message. */
export class AzureApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** One run command on a VM, as stored after its (synchronous) run. */
export interface RunCommandRecord {
  name: string;
  location: string;
  script: string;
  timeoutInSeconds: number;
  /** The properties the caller sent, echoed back as ARM does (parameters, asyncExecution, ...). */
  sent: Record<string, unknown>;
  outcome: RunCommandOutcome;
}

/** One simulated Azure VM: its control-plane record and, while running, its IMDS and guest. */
export interface AzureVm {
  /** The VM's unique id (`properties.vmId`): a lowercase UUID. */
  vmId: string;
  name: string;
  subscription: string;
  resourceGroup: string;
  region: string;
  tags: Record<string, string>;
  state: AzureLaunchState;
  agentless: boolean;
  /** False for `--no-agent`: the VM agent never reports, so run commands cannot reach it. */
  agent: boolean;
  /** The scale set of a scale-set VM, and its instance id there. */
  scaleSet?: string;
  instanceId?: string;
  /** As Azure writes `timeCreated`: seven fractional digits and +00:00. */
  timeCreated: string;
  principalId: string;
  clientId: string;
  /** `<instances dir>/<vm id>`: the VM's disk. */
  dir: string;
  imds?: AzureImdsServer;
  guest?: AzureGuest;
  runCommands: Map<string, RunCommandRecord>;
}

/** The JSON view of an Azure VM for the control API and `sandbox launch --json`. */
export interface AzureVmView {
  cloud: "azure";
  id: string;
  subscription: string;
  resource_group: string;
  region: string;
  name: string;
  created_at: string;
  ssh_port?: number;
  tags: Record<string, string>;
  state: AzureLaunchState;
  agent: boolean;
  scale_set?: string;
  instance_id?: string;
  imds_endpoint?: string;
  dir: string;
}

const PROVIDER = "providers/Microsoft.Compute";

/** The ARM resource id of a VM (or of a scale set's VM). */
export function vmResourceId(vm: AzureVm): string {
  const group = `/subscriptions/${vm.subscription}/resourceGroups/${vm.resourceGroup}/${PROVIDER}`;
  return vm.scaleSet
    ? `${group}/virtualMachineScaleSets/${vm.scaleSet}/virtualMachines/${vm.instanceId}`
    : `${group}/virtualMachines/${vm.name}`;
}

/** The managed identity's resource id as tokens name it (`xms_mirid`): the VM's, or its scale set's. */
export function identityResourceId(vm: AzureVm): string {
  const group = `/subscriptions/${vm.subscription}/resourcegroups/${vm.resourceGroup}/${PROVIDER}`;
  return vm.scaleSet ? `${group}/virtualMachineScaleSets/${vm.scaleSet}` : `${group}/virtualMachines/${vm.name}`;
}

/** `timeCreated` as ARM writes it: 2026-11-30T13:00:00.1234567+00:00. */
export function azureTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$10000+00:00");
}

const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/** The sandbox's Azure VMs: the state the fake ARM serves and changes, plus the live parts of each VM. */
export class AzureWorld {
  private readonly vms = new Map<string, AzureVm>();
  private stopped = false;

  constructor(private readonly opts: { dir: string; keys: AzureImdsKeys }) {
    fs.mkdirSync(opts.dir, { recursive: true });
  }

  /** Launches VMs; throws `AzureLaunchOptionError` for an argument that is not acceptable. */
  async launch(request: Record<string, unknown>): Promise<AzureVm[]> {
    if (this.stopped) throw new Error("the Azure world is stopped");
    const opts = parseAzureLaunchOptions(request);
    const made: AzureVm[] = [];
    for (let i = 0; i < opts.count; i++) made.push(await this.setUp(opts));
    return made;
  }

  /** Every VM, in launch order. */
  all(): AzureVm[] {
    return [...this.vms.values()];
  }

  /** The subscriptions that hold VMs: what the sandbox's identity can see. */
  subscriptions(): string[] {
    return [...new Set(this.all().map((v) => v.subscription))];
  }

  /** Standalone VMs of a subscription, in one resource group or (undefined) all; names compare as ARM's do. */
  list(subscription: string, resourceGroup?: string): AzureVm[] {
    return this.all().filter(
      (v) =>
        !v.scaleSet &&
        same(v.subscription, subscription) &&
        (resourceGroup === undefined || same(v.resourceGroup, resourceGroup)),
    );
  }

  /** The scale sets of a subscription: `{resourceGroup, name, region}` of each, from their VMs. */
  scaleSets(subscription: string): { resourceGroup: string; name: string; region: string; vms: AzureVm[] }[] {
    const sets = new Map<string, { resourceGroup: string; name: string; region: string; vms: AzureVm[] }>();
    for (const vm of this.all())
      if (vm.scaleSet && same(vm.subscription, subscription)) {
        const key = `${vm.resourceGroup}/${vm.scaleSet}`.toLowerCase();
        const set = sets.get(key) ?? { resourceGroup: vm.resourceGroup, name: vm.scaleSet, region: vm.region, vms: [] };
        set.vms.push(vm);
        sets.set(key, set);
      }
    return [...sets.values()];
  }

  /** A standalone VM by name; 404 ResourceNotFound when missing. */
  get(subscription: string, resourceGroup: string, name: string): AzureVm {
    const vm = this.list(subscription, resourceGroup).find((v) => same(v.name, name));
    if (!vm) throw notFound("virtualMachines", resourceGroup, name);
    return vm;
  }

  /** A scale set's VM by instance id; 404 ResourceNotFound when missing. */
  getScaleSetVm(subscription: string, resourceGroup: string, scaleSet: string, instanceId: string): AzureVm {
    const set = this.scaleSets(subscription).find((s) => same(s.resourceGroup, resourceGroup) && same(s.name, scaleSet)); // prettier-ignore
    const vm = set?.vms.find((v) => v.instanceId === instanceId);
    if (!vm) throw notFound("virtualMachineScaleSets", resourceGroup, `${scaleSet}/virtualMachines/${instanceId}`);
    return vm;
  }

  /** A VM by vm id (control API). */
  byId(vmId: string): AzureVm | undefined {
    return this.vms.get(vmId.toLowerCase());
  }

  /**
   * Creates (or replaces) a run command and runs its script at once, as `asyncExecution: false` does; refuses as
   * Azure does a deallocated VM (409 OperationNotAllowed) and one whose VM agent is not ready (409).
   */
  async runCommand(vm: AzureVm, name: string, body: any): Promise<RunCommandRecord> {
    const props = (body?.properties ?? {}) as Record<string, any>;
    const script = props.source?.script;
    if (typeof script !== "string" || !script)
      throw new AzureApiError(400, "InvalidParameter", "The value of parameter 'source.script' is invalid: a script is required."); // prettier-ignore
    if (vm.state !== "running" || !vm.imds || !vm.guest)
      throw new AzureApiError(409, "OperationNotAllowed", `Operation 'runCommand' is not allowed on VM '${vm.name}' since the VM is deallocated.`); // prettier-ignore
    if (!vm.agent)
      throw new AzureApiError(409, "VMAgentStatusCommunicationError", `VM '${vm.name}' has not reported status for VM agent or extensions. Verify that the OS is up and healthy, the VM has a running VM agent, and that it can establish outbound connections to Azure storage.`); // prettier-ignore
    const asked = Number(props.timeoutInSeconds ?? 0);
    const timeoutInSeconds = Number.isFinite(asked) && asked > 0 ? Math.floor(asked) : 0;
    const scriptFile = path.join(vm.dir, "runCommands", `${name.replace(/[^\w.-]/g, "_")}-${randomBytes(4).toString("hex")}.sh`); // prettier-ignore
    const outcome = await runAzureScript(vm.guest.disk, vm.imds.endpoint, script, timeoutInSeconds || DEFAULT_RUN_TIMEOUT_S, scriptFile); // prettier-ignore
    const record = {
      name,
      location: String(body?.location ?? vm.region),
      script,
      timeoutInSeconds,
      sent: props,
      outcome,
    };
    vm.runCommands.set(name.toLowerCase(), record);
    return record;
  }

  /** A run command by name; 404 when the VM has none of that name. */
  getRunCommand(vm: AzureVm, name: string): RunCommandRecord {
    const rc = vm.runCommands.get(name.toLowerCase());
    if (!rc) throw new AzureApiError(404, "NotFound", `The entity was not found in this Azure location.`);
    return rc;
  }

  /** Deletes a run command; false when there was none (ARM answers 204 then). */
  deleteRunCommand(vm: AzureVm, name: string): boolean {
    return vm.runCommands.delete(name.toLowerCase());
  }

  /** Starts or deallocates a VM: its IMDS and guest run only while it does. */
  async setState(vm: AzureVm, state: AzureLaunchState): Promise<AzureVm> {
    if (state === vm.state) return vm;
    vm.state = state;
    if (state === "running") await this.boot(vm);
    else await this.halt(vm);
    return vm;
  }

  /** Deletes a VM at once: it, its IMDS and sshd are gone; undefined when unknown. */
  async delete(vmId: string): Promise<AzureVm | undefined> {
    const vm = this.byId(vmId);
    if (!vm) return undefined;
    this.vms.delete(vm.vmId);
    await this.halt(vm);
    return vm;
  }

  /** Stops every IMDS and sshd; VM directories stay for inspection. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.allSettled(this.all().map((v) => this.halt(v)));
  }

  private async boot(vm: AzureVm): Promise<void> {
    vm.imds = await startAzureImds(
      {
        ...vm,
        resourceId: vmResourceId(vm),
        identityResourceId: identityResourceId(vm),
        computerName: vm.scaleSet ? `${vm.scaleSet}${vm.instanceId!.padStart(6, "0")}` : vm.name,
      },
      this.opts.keys,
    );
    vm.guest = await startAzureGuest(vm.dir, vm.imds.endpoint, vm.agentless);
  }

  private async halt(vm: AzureVm): Promise<void> {
    const { imds, guest } = vm;
    vm.imds = vm.guest = undefined;
    await Promise.allSettled([imds?.stop(), guest?.stop()]);
  }

  private async setUp(opts: AzureLaunchOptions): Promise<AzureVm> {
    const vmId = randomUUID();
    // A scale set's instance ids count up and are never reused, as Azure's.
    const set = this.scaleSets(opts.subscription).find((s) => same(s.name, opts.scaleSet ?? "") && same(s.resourceGroup, opts.resourceGroup)); // prettier-ignore
    const instanceId = opts.scaleSet ? String(Math.max(-1, ...(set?.vms ?? []).map((v) => Number(v.instanceId))) + 1) : undefined; // prettier-ignore
    const vm: AzureVm = {
      vmId,
      name: opts.scaleSet ? `${opts.scaleSet}_${instanceId}` : `sandbox-${randomBytes(4).toString("hex")}`,
      subscription: opts.subscription,
      resourceGroup: opts.resourceGroup,
      region: opts.region,
      tags: { ...opts.tags },
      state: opts.state,
      agentless: opts.agentless,
      agent: !opts.noAgent,
      ...(opts.scaleSet && { scaleSet: opts.scaleSet, instanceId }),
      timeCreated: azureTime(new Date()),
      principalId: randomUUID(),
      clientId: randomUUID(),
      dir: path.join(this.opts.dir, vmId),
      runCommands: new Map(),
    };
    fs.mkdirSync(vm.dir, { recursive: true });
    // Registered first, so that a half set-up VM is still stopped with the world.
    this.vms.set(vmId, vm);
    if (vm.state === "running") await this.boot(vm);
    return vm;
  }
}

function notFound(type: string, resourceGroup: string, name: string): AzureApiError {
  return new AzureApiError(
    404,
    "ResourceNotFound",
    `The Resource 'Microsoft.Compute/${type}/${name}' under resource group '${resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
  );
}

/** The JSON view of a VM. */
export function viewAzureVm(vm: AzureVm): AzureVmView {
  return {
    cloud: "azure",
    id: vm.vmId,
    subscription: vm.subscription,
    resource_group: vm.resourceGroup,
    region: vm.region,
    name: vm.name,
    created_at: vm.timeCreated,
    ...(vm.guest?.sshd && { ssh_port: vm.guest.sshd.sshPort }),
    tags: vm.tags,
    state: vm.state,
    agent: vm.agent,
    ...(vm.scaleSet && { scale_set: vm.scaleSet, instance_id: vm.instanceId }),
    ...(vm.imds && { imds_endpoint: vm.imds.endpoint }),
    dir: vm.dir,
  };
}
