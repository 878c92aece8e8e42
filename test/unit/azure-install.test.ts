import { azureMatcher } from "../../provider/model";
import { azureCandidate, AzureCandidate, AzureVmRef } from "../../provider/clouds/azure/fetch";
import { AZURE_FAILURE_CLASSES, installViaRunCommand } from "../../provider/clouds/azure/install-run-command";
import type { Candidate } from "../../provider/enroll/types";
import { FakeAzure, FakeVm } from "./azure-fake";

const SUB = "11111111-1111-4111-8111-111111111111";
const PIN = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
const matcher = azureMatcher.parse({ subscriptions: [SUB] });

let az: FakeAzure;
beforeEach(() => {
  az = new FakeAzure();
});

function vm(n: number, o: Partial<FakeVm> = {}): AzureCandidate {
  const v = az.vm({ sub: SUB, rg: "rg", name: `vm-${n}`, vmId: id(n), location: "eastus", ...o });
  const ref: AzureVmRef = { resourceGroup: v.rg, name: v.name, ...(v.scaleSet && { scaleSet: v.scaleSet }) };
  return azureCandidate(SUB, v, ref);
}

const install = (cs: Candidate[], o: { maxInFlight?: number; nonce?: () => string } = {}) =>
  installViaRunCommand(cs, {
    matcher,
    endpoint: { proxyAddr: "runtime.example:3080", caPin: PIN },
    clients: az,
    ...o,
  });

describe("installViaRunCommand", () => {
  it("runs the installer with a managed run command and reports its output", async () => {
    const c = vm(1, { run: () => ({ exitCode: 0, output: "joined as node x\n" }) });
    const [o] = await install([c]);
    expect(o).toEqual({
      instanceId: id(1),
      account: SUB,
      region: "eastus",
      status: "succeeded",
      exitCode: 0,
      stdoutTail: "joined as node x",
    });
    const put = az.runCommands.get(
      `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-1/discovery-install`,
    );
    expect(put).toMatchObject({ location: "eastus", asyncExecution: false, timeoutInSeconds: 600 });
    expect(az.calls.map((x) => x.split(" ")[0])).toEqual([
      "Microsoft.Compute/virtualMachines/read",
      "Microsoft.Compute/virtualMachines/runCommands/write",
      "Microsoft.Compute/virtualMachines/runCommands/read",
    ]);
  });

  it("the script carries a fresh nonce, the token name, method azure and the CA pin, shell-quoted", async () => {
    const c = vm(1);
    await install([c]);
    await install([c]);
    const [first, second] = az.vms[0].scripts;
    const nonce = /^# ([0-9a-f]{16})\n/;
    expect(first).toMatch(nonce);
    expect(second).toMatch(nonce);
    expect(nonce.exec(first)![1]).not.toBe(nonce.exec(second)![1]);
    expect(first.replace(nonce, "")).toBe(second.replace(nonce, ""));
    expect(first).toContain("export DISCOVERY_JOIN_METHOD='azure'");
    expect(first).toContain(`export DISCOVERY_CA_PIN='${PIN}'`);
    expect(first).toContain(
      `--pinnedpubkey '${PIN}' -k 'https://runtime.example:3080/webapi/scripts/installer/default-installer'`,
    );
    expect(first).toContain("DISCOVERY_TOKEN='azure-discovery-token' sh");
    expect(first).not.toContain("DISCOVERY_REJOIN");
    await install([{ ...c, rejoin: true } as Candidate]);
    expect(az.vms[0].scripts[2]).toContain("export DISCOVERY_REJOIN='true'");
  });

  it("a script that exits non-zero is a script-failure with its exit code and stderr tail", async () => {
    const c = vm(1, {
      run: () => ({ exitCode: 7, output: "fetching\n", error: "line 1\ncurl: (7) Failed to connect\n" }),
    });
    const [o] = await install([c]);
    expect(o).toMatchObject({
      status: "failed",
      failureClass: "script-failure",
      exitCode: 7,
      reason: "the installer exited with code 7 on VM vm-1 (resource group rg): curl: (7) Failed to connect",
      stderrTail: "line 1\ncurl: (7) Failed to connect",
      stdoutTail: "fetching",
    });
    expect(o.remediation).toMatch(/network security groups/);
  });

  it("a script that times out is a script-failure", async () => {
    const [o] = await install([vm(1, { run: () => "TimedOut" })]);
    expect(o).toMatchObject({
      failureClass: "script-failure",
      reason: "the installer did not finish within 600 s on VM vm-1 (resource group rg)",
    });
  });

  it("a VM agent that is not ready: vm-agent-not-available, from the instance view before anything is sent", async () => {
    const [o] = await install([vm(1, { agent: "Not Ready" })]);
    expect(o).toMatchObject({
      status: "failed",
      failureClass: "vm-agent-not-available",
      reason: "the VM agent of VM vm-1 (resource group rg) is Not Ready, so it cannot run commands",
    });
    expect(o.remediation).toMatch(/walinuxagent/);
    expect(az.vms[0].scripts).toEqual([]);
    expect(AZURE_FAILURE_CLASSES["vm-agent-not-available"].commandSent).toBe(false);
  });

  it("VMAgentStatusCommunicationError from ARM: vm-agent-not-available (scale set VMs have no pre-check)", async () => {
    az.scaleSets.push({ sub: SUB, rg: "rg", name: "pool", location: "eastus" });
    const c = vm(1, { agent: "Not Ready", scaleSet: { name: "pool", instanceId: "3" } });
    const [o] = await install([c]);
    expect(o).toMatchObject({ failureClass: "vm-agent-not-available" });
    expect(o.reason).toMatch(
      /^creating the run command on VM 3 of scale set pool \(resource group rg\) failed: its VM agent does not report status \(VMAgentStatusCommunicationError\)/,
    );
  });

  it("a denied run command names the action, and the fix prints the role", async () => {
    az.denied.add(`${SUB} Microsoft.Compute/virtualMachines/runCommands/write`);
    const [o] = await install([vm(1)]);
    expect(o).toMatchObject({ status: "failed", failureClass: "missing-run-command-permission" });
    expect(o.reason).toMatch(/lacks Microsoft.Compute\/virtualMachines\/runCommands\/write/);
    expect(o.remediation).toBe(
      `grant Microsoft.Compute/virtualMachines/runCommands/write on subscription ${SUB} (or the VM's resource group) ` +
        "to the discovery identity; `discovery policy azure --config FILE` prints the custom role",
    );
  });

  it("a denied read of the result is missing-run-command-permission for runCommands/read", async () => {
    az.denied.add(`${SUB} Microsoft.Compute/virtualMachines/runCommands/read`);
    const [o] = await install([vm(1)]);
    expect(o).toMatchObject({ failureClass: "missing-run-command-permission" });
    expect(o.reason).toMatch(
      /^reading the run command's result on VM vm-1 .* lacks Microsoft.Compute\/virtualMachines\/runCommands\/read/,
    );
  });

  it("a VM found not running is skipped; one deallocated during the install is vm-not-running", async () => {
    const [skipped, stopped] = await install([vm(1, { power: "deallocated" }), vm(2, { deallocateOnPut: true })]);
    expect(skipped).toEqual({
      instanceId: id(1),
      account: SUB,
      region: "eastus",
      status: "skipped",
      reason: "VM vm-1 (resource group rg) is deallocated now; the next pass installs once it runs",
    });
    expect(stopped).toMatchObject({ status: "failed", failureClass: "vm-not-running" });
    expect(stopped.reason).toMatch(/OperationNotAllowed.*since the VM is deallocated/);
  });

  it("other ARM errors are invocation-failure; one VM's failure never stops the others", async () => {
    const cs = [vm(1), vm(2, { run: () => ({ exitCode: 1 }) }), vm(3)];
    const compute = az.compute.bind(az);
    az.compute = (sub) => {
      const api = compute(sub);
      const put = api.virtualMachineRunCommands.createOrUpdate;
      api.virtualMachineRunCommands.createOrUpdate = async (rg, name, ...rest) => {
        if (name === "vm-1")
          throw Object.assign(new Error("Internal error"), { statusCode: 500, code: "InternalServerError" });
        return put(rg, name, ...rest);
      };
      return api;
    };
    const out = await install(cs);
    expect(out.map((o) => [o.instanceId, o.status, o.failureClass])).toEqual([
      [id(1), "failed", "invocation-failure"],
      [id(2), "failed", "script-failure"],
      [id(3), "succeeded", undefined],
    ]);
    expect(out[0].reason).toBe(
      "creating the run command on VM vm-1 (resource group rg) failed (InternalServerError): Internal error",
    );
  });

  it("at most 10 VMs at once by default, and scale set VMs use the scale set VM run commands", async () => {
    az.runMs = 5;
    az.scaleSets.push({ sub: SUB, rg: "rg", name: "pool", location: "eastus" });
    const cs = Array.from({ length: 25 }, (_, n) =>
      vm(n + 1, n % 5 === 0 ? { scaleSet: { name: "pool", instanceId: String(n) } } : {}),
    );
    const out = await install(cs);
    expect(out.every((o) => o.status === "succeeded")).toBe(true);
    expect(az.maxInFlight).toBe(10);
    expect(
      az.calls.filter((x) =>
        x.startsWith("Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands/write"),
      ),
    ).toHaveLength(5);
  });

  it("a candidate without its Azure coordinates fails without a call", async () => {
    const { azure: _, ...bare } = vm(1);
    const [o] = await install([bare]);
    expect(o).toMatchObject({ status: "failed", failureClass: "invocation-failure" });
    expect(az.calls).toEqual([]);
  });
});
