import { azureMatcher } from "../../provider/model";
import { azureApis, fetchAzureVms } from "../../provider/clouds/azure/fetch";
import type { AzureClients } from "../../provider/clouds/azure/clients";
import type { ScopeReport } from "../../provider/enroll/types";
import { FakeAzure } from "./azure-fake";

const S1 = "11111111-1111-4111-8111-111111111111";
const S2 = "22222222-2222-4222-8222-222222222222";
const S3 = "33333333-3333-4333-8333-333333333333";
const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

const matcher = (m: Record<string, unknown>) => azureMatcher.parse({ types: ["vm"], ...m });
const ids = (r: { candidates: { instanceId: string }[] }) => r.candidates.map((c) => c.instanceId);

function fleet() {
  const az = new FakeAzure();
  az.subscriptionList = [
    { subscriptionId: S1, state: "Enabled" },
    { subscriptionId: S2, state: "Enabled" },
    { subscriptionId: S3, state: "Disabled" },
  ];
  az.vm({ sub: S1, rg: "Prod-RG", name: "web-1", vmId: id(1), location: "eastus", tags: { env: "prod" } });
  az.vm({ sub: S1, rg: "prod-rg", name: "web-2", vmId: id(2), location: "westeurope", tags: { env: "dev" } });
  az.vm({ sub: S1, rg: "other", name: "win", vmId: id(3), location: "eastus", os: "Windows" });
  az.vm({ sub: S1, rg: "other", name: "off", vmId: id(4), location: "eastus", power: "deallocated" });
  az.vm({ sub: S1, rg: "other", name: "stopped", vmId: id(5), location: "eastus", power: "stopped" });
  az.vm({ sub: S2, rg: "rg2", name: "db", vmId: id(6), location: "eastus", tags: { env: "prod", team: "db" } });
  az.vm({ sub: S3, rg: "rg3", name: "disabled-sub", vmId: id(7), location: "eastus" });
  return az;
}

describe("fetchAzureVms", () => {
  it("subscriptions *: every Enabled subscription, running Linux VMs only, with what install needs", async () => {
    const az = fleet();
    const scopes: ScopeReport[] = [];
    const r = await fetchAzureVms(matcher({ subscriptions: ["*"] }), { clients: az, onScope: (s) => scopes.push(s) });
    expect(ids(r)).toEqual([id(1), id(2), id(6)]);
    expect(r.candidates[0]).toEqual({
      cloud: "azure",
      account: S1,
      region: "eastus",
      instanceId: id(1),
      nodeName: `${S1}-${id(1)}`,
      state: "running",
      tags: { env: "prod" },
      platform: "Linux",
      azure: { resourceGroup: "Prod-RG", name: "web-1" },
    });
    // One scope per subscription × region a listing named; the disabled subscription is never read.
    expect(r.scopes.map((s) => `${s.account.slice(0, 2)}/${s.region}/${s.instances}/${s.error?.code ?? ""}`)).toEqual([
      "11/eastus/1/",
      "11/westeurope/1/",
      "22/eastus/1/",
    ]);
    expect(scopes).toHaveLength(3);
    expect(az.calls.some((c) => c.includes(S3))).toBe(false);
    expect(az.calls).toContain("Microsoft.Resources/subscriptions/read /subscriptions");
  });

  it("resource groups are matched case-insensitively and listed one by one", async () => {
    const az = fleet();
    const r = await fetchAzureVms(matcher({ subscriptions: [S1], resource_groups: ["PROD-rg"] }), { clients: az });
    expect(ids(r)).toEqual([id(1), id(2)]);
    expect(az.calls.filter((c) => c.startsWith("Microsoft.Compute/virtualMachines/read"))).toEqual([
      `Microsoft.Compute/virtualMachines/read /subscriptions/${S1}/resourceGroups/PROD-rg`,
    ]);
    expect(az.calls.some((c) => c.includes("subscriptions/read"))).toBe(false);
  });

  it("regions: only the named ones, each reported (also when empty)", async () => {
    const az = fleet();
    const r = await fetchAzureVms(matcher({ subscriptions: [S1, S2], regions: ["westeurope", "northeurope"] }), {
      clients: az,
    });
    expect(ids(r)).toEqual([id(2)]);
    expect(r.scopes.map((s) => `${s.account.slice(0, 2)}/${s.region}/${s.instances}`)).toEqual([
      "11/northeurope/0",
      "11/westeurope/1",
      "22/northeurope/0",
      "22/westeurope/0",
    ]);
  });

  it("tags: a value, a list, * as value and * as key", async () => {
    const az = fleet();
    const run = async (tags: Record<string, unknown>) =>
      ids(await fetchAzureVms(matcher({ subscriptions: [S1, S2], tags }), { clients: az }));
    expect(await run({ env: "prod" })).toEqual([id(1), id(6)]);
    expect(await run({ env: ["dev", "prod"], team: "db" })).toEqual([id(6)]);
    expect(await run({ team: "*" })).toEqual([id(6)]);
    expect(await run({ "*": "*" })).toEqual([id(1), id(2), id(6)]);
  });

  it("uniform scale sets' running Linux VMs, matched by the scale set's tags; flexible ones are ordinary VMs", async () => {
    const az = fleet();
    az.scaleSets.push(
      { sub: S2, rg: "ss-rg", name: "pool", location: "eastus", tags: { env: "prod" } },
      { sub: S2, rg: "ss-rg", name: "winpool", location: "eastus", tags: { env: "prod" }, os: "Windows" },
      { sub: S2, rg: "ss-rg", name: "flex", location: "eastus", tags: { env: "prod" }, mode: "Flexible" },
    );
    az.vm({
      sub: S2,
      rg: "ss-rg",
      name: "pool_0",
      vmId: id(10),
      location: "eastus",
      scaleSet: { name: "pool", instanceId: "0" },
    });
    az.vm({
      sub: S2,
      rg: "ss-rg",
      name: "pool_1",
      vmId: id(11),
      location: "eastus",
      power: "deallocated",
      scaleSet: { name: "pool", instanceId: "1" },
    });
    az.vm({
      sub: S2,
      rg: "ss-rg",
      name: "win_0",
      vmId: id(12),
      location: "eastus",
      scaleSet: { name: "winpool", instanceId: "0" },
    });
    const r = await fetchAzureVms(matcher({ subscriptions: [S2], tags: { env: "prod" } }), { clients: az });
    expect(ids(r)).toEqual([id(6), id(10)]);
    expect(r.candidates[1]).toMatchObject({
      nodeName: `${S2}-${id(10)}`,
      azure: { resourceGroup: "ss-rg", name: "pool_0", scaleSet: { name: "pool", instanceId: "0" } },
    });
    expect(az.calls.filter((c) => c.includes("virtualMachineScaleSets/virtualMachines/read"))).toHaveLength(2);
  });

  it("reads every page", async () => {
    const az = new FakeAzure();
    az.pageSize = 3;
    for (let n = 1; n <= 10; n++) az.vm({ sub: S1, rg: "rg", name: `vm-${n}`, vmId: id(n), location: "eastus" });
    const r = await fetchAzureVms(matcher({ subscriptions: [S1] }), { clients: az });
    expect(r.candidates).toHaveLength(10);
    expect(az.pages).toBe(4 + 1);
  });

  it("a denied subscription is a scope error with ARM's code and the fix; the others are still scanned", async () => {
    const az = fleet();
    az.denied.add(`${S1} Microsoft.Compute/virtualMachines/read`);
    const r = await fetchAzureVms(matcher({ subscriptions: ["*"], regions: ["eastus"] }), { clients: az });
    expect(ids(r)).toEqual([id(6)]);
    const bad = r.scopes.find((s) => s.account === S1)!;
    expect(bad.error?.code).toBe("AuthorizationFailed");
    expect(bad.error?.message).toMatch(
      new RegExp(
        `^listing the virtual machines of subscription ${S1}: The client .* does not have authorization.*` +
          `Fix: grant Microsoft.Compute/virtualMachines/read on subscription ${S1} to the discovery identity; ` +
          "`discovery policy azure --config FILE` prints the custom role$",
      ),
    );
    expect(r.scopes.find((s) => s.account === S2)).toEqual({
      cloud: "azure",
      account: S2,
      region: "eastus",
      instances: 1,
      apiCalls: 2,
    });
  });

  it("regions *: a failed listing is reported under region *, with what the other listings found", async () => {
    const az = fleet();
    az.denied.add(`${S2} Microsoft.Compute/virtualMachineScaleSets/read`);
    const r = await fetchAzureVms(matcher({ subscriptions: [S2] }), { clients: az });
    expect(ids(r)).toEqual([id(6)]);
    expect(r.scopes.map((s) => `${s.region}/${s.instances}/${s.error?.code ?? ""}`)).toEqual([
      "*/0/AuthorizationFailed",
      "eastus/1/",
    ]);
    expect(r.scopes[0].error?.message).toMatch(/grant Microsoft.Compute\/virtualMachineScaleSets\/read/);
  });

  it("subscriptions * that cannot be listed is one scope error", async () => {
    const az = fleet();
    az.denied.add("* Microsoft.Resources/subscriptions/read");
    const r = await fetchAzureVms(matcher({ subscriptions: ["*"] }), { clients: az });
    expect(r.candidates).toEqual([]);
    expect(r.scopes).toEqual([
      expect.objectContaining({
        account: "*",
        region: "*",
        error: expect.objectContaining({ code: "AuthorizationFailed" }),
      }),
    ]);
  });

  it("scans at most `concurrency` subscriptions at once", async () => {
    const az = new FakeAzure();
    let active = 0;
    let most = 0;
    const subs = Array.from({ length: 6 }, (_, i) => `${i}${S1.slice(1)}`);
    const compute = az.compute.bind(az);
    az.compute = (sub) => {
      const api = compute(sub);
      const listAll = api.virtualMachines.listAll;
      api.virtualMachines.listAll = (o) =>
        (async function* () {
          most = Math.max(most, ++active);
          await new Promise((r) => setTimeout(r, 5));
          yield* listAll(o);
          active--;
        })();
      return api;
    };
    await fetchAzureVms(matcher({ subscriptions: subs }), { clients: az, concurrency: 2 });
    expect(most).toBe(2);
  });
});

describe("azureApis", () => {
  it("lists subscriptions page by page through the SubscriptionClient's pipeline, and throws ARM's error", async () => {
    const requests: string[] = [];
    const pages: Record<string, object> = {
      "https://arm.test/subscriptions?api-version=2022-12-01": {
        value: [{ subscriptionId: S1, state: "Enabled" }],
        nextLink: "https://arm.test/subscriptions?page=2",
      },
      "https://arm.test/subscriptions?page=2": { value: [{ subscriptionId: S2, state: "Warned" }] },
    };
    const client = {
      $host: "https://arm.test/",
      sendRequest: async (req: { url: string; method: string }) => {
        requests.push(`${req.method} ${req.url}`);
        const body = pages[req.url];
        return body
          ? { status: 200, bodyAsText: JSON.stringify(body) }
          : { status: 403, bodyAsText: JSON.stringify({ error: { code: "AuthorizationFailed", message: "no" } }) };
      },
    };
    const apis = azureApis({
      subscriptions: () => client,
      compute: () => ({}),
      close: async () => {},
    } as unknown as AzureClients);
    const got = [];
    for await (const s of apis.subscriptions()) got.push(s.subscriptionId);
    expect(got).toEqual([S1, S2]);
    expect(requests).toEqual([
      "GET https://arm.test/subscriptions?api-version=2022-12-01",
      "GET https://arm.test/subscriptions?page=2",
    ]);
    delete pages["https://arm.test/subscriptions?page=2"];
    await expect(
      (async () => {
        for await (const _ of apis.subscriptions());
      })(),
    ).rejects.toMatchObject({ code: "AuthorizationFailed", statusCode: 403, message: "no" });
  });
});

describe("fetchAzureVms under scope leases", () => {
  it("leases a subscription as one scope (one listing covers its regions) and lists none another replica holds", async () => {
    const az = fleet();
    const held = { holder: "B", until: "2025-03-01T00:00:20.000Z", reason: "held by replica B" };
    const asked: string[] = [];
    const r = await fetchAzureVms(matcher({ subscriptions: [S1, S2] }), {
      clients: az,
      acquireScope: async (s) => (
        asked.push(`${s.cloud} ${s.account}/${s.region}`),
        s.account === S1 ? held : undefined
      ),
    });
    expect(asked.sort()).toEqual([`azure ${S1}/*`, `azure ${S2}/*`]);
    expect(az.calls.some((c) => c.includes(S1))).toBe(false);
    expect(ids(r)).toEqual([id(6)]);
    expect(r.scopes.filter((s) => s.held)).toEqual([{ cloud: "azure", account: S1, region: "*", instances: 0, held }]);
  });
});
