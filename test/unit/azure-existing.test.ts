import { existingAzureVms } from "../../provider/clouds/azure/existing";
import { FakeAzure } from "./azure-fake";

const SUB = "11111111-1111-4111-8111-111111111111";
const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
const ALL = { resource_groups: ["*"] };

describe("existingAzureVms", () => {
  let az: FakeAzure;
  beforeEach(() => {
    az = new FakeAzure();
    az.vm({ sub: SUB, rg: "rg", name: "a", vmId: id(1), location: "eastus" });
    az.vm({ sub: SUB, rg: "rg", name: "b", vmId: id(2), location: "eastus", power: "deallocated" });
    az.scaleSets.push({ sub: SUB, rg: "rg", name: "pool", location: "eastus" });
    az.vm({
      sub: SUB,
      rg: "rg",
      name: "pool_0",
      vmId: id(3),
      location: "eastus",
      scaleSet: { name: "pool", instanceId: "0" },
    });
  });
  const query = (...n: number[]) => ({ account: SUB, region: "eastus", instanceIds: n.map(id) });

  it("a VM ARM no longer lists is gone; a deallocated one and a scale set VM still exist", async () => {
    const found = await existingAzureVms(ALL, query(1, 2, 3, 4), az);
    expect([...found].sort()).toEqual([id(1), id(2), id(3)]);
    expect(az.closed).toBe(1);
  });

  it("vm ids are compared case-insensitively and returned as asked", async () => {
    const upper = id(1).toUpperCase();
    expect([...(await existingAzureVms(ALL, { ...query(), instanceIds: [upper] }, az))]).toEqual([upper]);
  });

  it("a denied or failed listing throws: never read as gone", async () => {
    az.denied.add(`${SUB} Microsoft.Compute/virtualMachineScaleSets/read`);
    await expect(existingAzureVms(ALL, query(1, 4), az)).rejects.toMatchObject({
      code: "AuthorizationFailed",
      message: expect.stringMatching(/^AuthorizationFailed: listing the scale sets of subscription/),
    });
  });

  it("a resource group that no longer exists (ResourceGroupNotFound) holds no VMs", async () => {
    const found = await existingAzureVms({ resource_groups: ["gone-rg", "RG"] }, query(1, 4), az);
    expect([...found]).toEqual([id(1)]);
  });
});
