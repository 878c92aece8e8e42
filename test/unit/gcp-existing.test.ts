import type { GcpClients, InstancesApi } from "../../provider/clouds/gcp/clients";
import { existingGceInstances, EXISTENCE_CONCURRENCY } from "../../provider/clouds/gcp/existing";

/** Clients whose instances.get answers from `answers` by instance id: a status string, or an error to throw. */
function fakeClients(answers: Record<string, string | Error>) {
  const asked: string[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let closed = false;
  const get: InstancesApi["get"] = async (req) => {
    asked.push(`${req.project}/${req.zone}/${req.instance}`);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((r) => setTimeout(r, 5));
    inFlight--;
    const a = answers[req.instance];
    if (a === undefined) throw Object.assign(new Error("The resource was not found"), { code: 404 });
    if (a instanceof Error) throw a;
    return [{ id: req.instance, status: a }];
  };
  const unused = () => {
    throw new Error("unused");
  };
  const clients = {
    instances: () => ({ get }) as unknown as InstancesApi,
    zoneOperations: unused,
    zones: unused,
    projects: unused,
    computeProjects: unused,
    close: async () => {
      closed = true;
    },
  } as unknown as GcpClients;
  return { clients, asked, maxInFlight: () => maxInFlight, closed: () => closed };
}

describe("existingGceInstances (the GCP stale-node check)", () => {
  const query = (instanceIds: string[]) => ({ account: "proj-a", region: "us-central1-a", instanceIds });

  it("a deleted VM is gone; a running or stopped (TERMINATED) one still exists", async () => {
    const f = fakeClients({ "101": "RUNNING", "102": "TERMINATED", "103": "STOPPING" });
    const found = await existingGceInstances(query(["101", "102", "103", "104"]), f.clients);
    expect([...found].sort()).toEqual(["101", "102", "103"]);
    expect(f.asked.sort()).toEqual(["101", "102", "103", "104"].map((id) => `proj-a/us-central1-a/${id}`));
    expect(f.closed()).toBe(true);
  });

  it("a denied or failing call throws (never read as gone), and the clients are still closed", async () => {
    const denied = Object.assign(new Error("Required 'compute.instances.get' permission"), { code: 403 });
    const f = fakeClients({ "101": "RUNNING", "102": denied });
    await expect(existingGceInstances(query(["101", "102"]), f.clients)).rejects.toThrow(/compute.instances.get/);
    expect(f.closed()).toBe(true);
    const unavailable = fakeClients({ "101": Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }) });
    await expect(existingGceInstances(query(["101"]), unavailable.clients)).rejects.toThrow(/socket hang up/);
  });

  it("asks once per id, at most a bounded number at a time", async () => {
    const ids = Array.from({ length: 40 }, (_, i) => String(1000 + i));
    const f = fakeClients(Object.fromEntries(ids.map((id) => [id, "RUNNING"])));
    const found = await existingGceInstances(query([...ids, ...ids]), f.clients);
    expect(found.size).toBe(40);
    expect(f.asked).toHaveLength(40);
    expect(f.maxInFlight()).toBeLessThanOrEqual(EXISTENCE_CONCURRENCY);
    expect(f.maxInFlight()).toBeGreaterThan(1);
  });
});
