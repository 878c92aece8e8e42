import { azureMatcher } from "../../provider/model";
import { azureDiscoveryRole } from "../../provider/clouds/policies";
import { AZURE_PLUGIN } from "../../provider/clouds/azure";
import { CLOUD_PLUGINS, nodeInstance } from "../../provider/clouds";

const S1 = "11111111-1111-4111-8111-111111111111";
const S2 = "22222222-2222-4222-8222-222222222222";
const m = (subscriptions: string[]) => azureMatcher.parse({ subscriptions });

const COMPUTE = [
  "Microsoft.Compute/virtualMachineScaleSets/read",
  "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
  "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands/read",
  "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands/write",
  "Microsoft.Compute/virtualMachines/read",
  "Microsoft.Compute/virtualMachines/runCommands/read",
  "Microsoft.Compute/virtualMachines/runCommands/write",
];

describe("azureDiscoveryRole", () => {
  it("named subscriptions: the compute actions, assignable to those subscriptions only", () => {
    expect(azureDiscoveryRole([m([S2, S1]), m([S1])])).toEqual({
      Name: "pulumi-discovery",
      IsCustom: true,
      Description: "Lists Azure VMs and runs the discovery installer on them with a managed run command.",
      Actions: COMPUTE,
      NotActions: [],
      AssignableScopes: [`/subscriptions/${S1}`, `/subscriptions/${S2}`],
    });
  });

  it("subscriptions *: also subscriptions/read, assignable at /", () => {
    const role = azureDiscoveryRole([m(["*"]), m([S1])]);
    expect(role.Actions).toEqual([...COMPUTE, "Microsoft.Resources/subscriptions/read"]);
    expect(role.AssignableScopes).toEqual(["/"]);
  });

  it("names no delete: the run command is updated in place, never deleted", () => {
    expect(azureDiscoveryRole([m([S1])]).Actions.some((a) => a.endsWith("/delete"))).toBe(false);
  });
});

describe("AZURE_PLUGIN", () => {
  it("is registered, names nodes <subscription>-<vm id>, and reads an Azure node's labels", () => {
    expect(CLOUD_PLUGINS.azure).toBe(AZURE_PLUGIN);
    expect(AZURE_PLUGIN.identity.nodeName(S1, "vm-id")).toBe(`${S1}-vm-id`);
    expect(
      nodeInstance({
        "discovery/subscription-id": S1,
        "discovery/region": "eastus",
        "discovery/instance-id": "abc",
        "discovery/vm-id": "abc",
      }),
    ).toEqual({ cloud: "azure", account: S1, region: "eastus", instanceId: "abc" });
  });

  it("reads a denied scope as permission-denied with the role's fix, anything else as a fetch failure", () => {
    expect(AZURE_PLUGIN.scopeProblem!({ code: "AuthorizationFailed", message: "x" })).toEqual({
      issueType: "permission-denied",
      fix: expect.stringMatching(/discovery policy azure --config FILE/),
    });
    expect(AZURE_PLUGIN.scopeProblem!({ code: "TooManyRequests", message: "x" })).toBeUndefined();
  });
});
