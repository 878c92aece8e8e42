/**
 * Azure through a whole enrollment pass: the registered plugin's fetch and install over the in-memory Azure, a VM
 * whose run command "joins" it (a node recorded with the azure join's labels) enrolled, the others failed with
 * their class, and the tasks they open grouped by subscription and region.
 */
import { AZURE_PLUGIN } from "../../provider/clouds/azure";
import { fetchAzureVms } from "../../provider/clouds/azure/fetch";
import { installViaRunCommand } from "../../provider/clouds/azure/install-run-command";
import { existingAzureVms } from "../../provider/clouds/azure/existing";
import { storeBackend } from "../../provider/enroll/backend";
import type { CloudEnrollment } from "../../provider/enroll/clouds";
import { runEnrollmentPass } from "../../provider/enroll/pass";
import { storeDocuments, tokenDocument } from "../fixtures/store-documents";
import { azureMatcher, type AzureMatcher } from "../../provider/model";
import { SqliteStore } from "../../provider/runtime/store";
import { deriveTasks } from "../../provider/runtime/tasks";
import { FakeAzure } from "./azure-fake";

const S1 = "11111111-1111-4111-8111-111111111111";
const S2 = "22222222-2222-4222-8222-222222222222";
const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

describe("an enrollment pass over Azure", () => {
  it("enrolls the VM that joins, records each failure's class, and opens tasks by subscription/region", async () => {
    const store = new SqliteStore(":memory:");
    await store.migrate();
    const allow = { azure: { allow: [{ subscription: S1 }, { subscription: S2 }] } };
    await storeDocuments(store, tokenDocument("azure-discovery-token", "azure", allow));
    const az = new FakeAzure();
    const joinAs = (sub: string, n: number) => () => {
      // What the installer's `discovery join --method azure` leaves behind: a node with the attested labels.
      void store.insertNode({
        name: `${sub}-${id(n)}`,
        labels: {
          "discovery/origin": "cloud",
          "discovery/subscription-id": sub,
          "discovery/vm-id": id(n),
          "discovery/instance-id": id(n),
          "discovery/region": "eastus",
          "discovery/resource-group": "rg",
        },
        joinMethod: "azure",
        token: "azure-discovery-token",
        hostPublicKey: `ssh-ed25519 AAAA${n}`,
        principals: [],
        joinedAt: new Date().toISOString(),
      });
      return { exitCode: 0, output: "joined" };
    };
    az.vm({ sub: S1, rg: "rg", name: "web", vmId: id(1), location: "eastus", run: joinAs(S1, 1) });
    az.vm({
      sub: S1,
      rg: "rg",
      name: "broken",
      vmId: id(2),
      location: "eastus",
      run: () => ({ exitCode: 3, error: "boom" }),
    });
    az.vm({ sub: S1, rg: "rg", name: "noagent", vmId: id(3), location: "eastus", agent: "Not Ready" });
    az.vm({ sub: S2, rg: "rg", name: "denied", vmId: id(4), location: "westus" });
    az.denied.add(`${S2} Microsoft.Compute/virtualMachines/runCommands/write`);
    const azure: CloudEnrollment<AzureMatcher> = {
      ...AZURE_PLUGIN.enrollment,
      fetch: (m, ctx) => fetchAzureVms(m, { clients: az, onScope: ctx.onScope }),
      install: (cs, m, ctx) => installViaRunCommand(cs, { matcher: m, endpoint: ctx.runtime, clients: az }),
      existing: (m, q) => existingAzureVms(m, q, az),
    };
    const pass = (subscriptions: string[], joinTimeoutMs = 100) =>
      runEnrollmentPass({
        matchers: { aws: [], gcp: [], azure: [azureMatcher.parse({ subscriptions })] },
        backend: storeBackend(store),
        runtime: { proxyAddr: "127.0.0.1:3080" },
        joinTimeoutMs,
        pollMs: 10,
        clouds: (name) => (name === "azure" ? (azure as CloudEnrollment) : undefined),
        staleNodeGraceMs: 3600_000,
      });
    const r = await pass([S1, S2], 2000);
    expect(r.instances.map((i) => [i.account.slice(0, 2), i.instance_id, i.status, i.failure_class])).toEqual([
      ["11", id(1), "enrolled", undefined],
      ["11", id(2), "failed", "script-failure"],
      ["11", id(3), "failed", "vm-agent-not-available"],
      ["22", id(4), "failed", "missing-run-command-permission"],
    ]);
    expect(r.instances[1]).toMatchObject({ exit_code: 3, stderr_tail: "boom" });
    // The run command reached web and broken only: the agent check and the denied PUT sent nothing.
    expect(r.commandsSent).toBe(2);
    expect(r.nodes).toEqual({ staled: [], activated: [], removed: [], unchecked: [] });

    const tasks = deriveTasks(await store.listEnrollments(), [], new Date(), 3600_000);
    expect(tasks.map((t) => [t.cloud, t.issue_type, t.scope, t.instances.map((i) => i.instance_id)])).toEqual([
      ["azure", "missing-run-command-permission", `${S2}/westus`, [id(4)]],
      ["azure", "script-failure", `${S1}/eastus`, [id(2)]],
      ["azure", "vm-agent-not-available", `${S1}/eastus`, [id(3)]],
    ]);
    expect(tasks[0].fix).toMatch(/grant Microsoft.Compute\/virtualMachines\/runCommands\/write on subscription/);

    // A second pass: web is already enrolled and nothing runs on it again.
    const before = az.vms[0].scripts.length;
    const again = await pass([S1]);
    expect(again.instances.find((i) => i.instance_id === id(1))?.status).toBe("already_enrolled");
    expect(az.vms[0].scripts.length).toBe(before);

    // The VM is deleted: the next pass's stale check marks its node stale.
    az.vms.splice(0, 1);
    const third = await pass([S1]);
    expect(third.nodes?.staled).toEqual([`${S1}-${id(1)}`]);
    await store.close();
  });
});
