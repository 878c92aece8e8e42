import { gcpMatcher } from "../../provider/model";
import type { GceInstance, GcpClients } from "../../provider/clouds/gcp/clients";
import { fetchGce, isZone, labelsMatch } from "../../provider/clouds/gcp/fetch";

interface FakeVm {
  project: string;
  zone: string;
  id: number;
  status?: string;
  labels?: Record<string, string>;
  sa?: string;
}

const ZONES: Record<string, string> = {
  "us-central1-a": "us-central1",
  "us-central1-b": "us-central1",
  "europe-west1-b": "europe-west1",
};

/** Fake Google clients over a list of VMs; records calls and the most listings in flight at once. */
function fakeClients(vms: FakeVm[], o: { denied?: string[]; pageSize?: number; delayMs?: number } = {}) {
  const calls: string[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const denied = (project: string) => {
    if (o.denied?.includes(project))
      throw Object.assign(new Error(`Required 'compute.instances.list' permission for 'projects/${project}'`), {
        code: 7,
      });
  };
  const gate = async <T>(fn: () => T): Promise<T> => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      await new Promise((r) => setTimeout(r, o.delayMs ?? 1));
      return fn();
    } finally {
      inFlight--;
    }
  };
  const toApi = (v: FakeVm): GceInstance => ({
    id: String(v.id),
    name: `vm-${v.id}`,
    status: v.status ?? "RUNNING",
    labels: v.labels ?? {},
    serviceAccounts: v.sa ? [{ email: v.sa }] : [],
    networkInterfaces: [{ networkIP: `10.0.0.${v.id % 250}` }],
    creationTimestamp: "2026-01-02T03:04:05.000-08:00",
  });
  const clients: GcpClients = {
    instances: () => ({
      list: (req) =>
        gate(() => {
          calls.push(`list ${req.project}/${req.zone} ${req.pageToken ?? "-"}`);
          denied(req.project);
          // The fake ignores the server-side filter, as a stand-in might: the fetcher must filter itself.
          const all = vms.filter((v) => v.project === req.project && v.zone === req.zone).map(toApi);
          const size = o.pageSize ?? 1000;
          const start = Number(req.pageToken ?? 0);
          const next = start + size < all.length ? String(start + size) : undefined;
          return [all.slice(start, start + size), null, { nextPageToken: next }];
        }),
      aggregatedListAsync: (req) => ({
        async *[Symbol.asyncIterator]() {
          calls.push(`aggregated ${req.project}`);
          denied(req.project);
          for (const zone of Object.keys(ZONES)) {
            const instances = vms.filter((v) => v.project === req.project && v.zone === zone).map(toApi);
            yield [`zones/${zone}`, instances.length ? { instances } : {}] as [string, { instances?: GceInstance[] }];
          }
        },
      }),
      get: () => Promise.reject(new Error("unused")),
      getGuestAttributes: () => Promise.reject(new Error("unused")),
      setMetadata: () => Promise.reject(new Error("unused")),
    }),
    zoneOperations: () => ({ wait: () => Promise.reject(new Error("unused")) }),
    zones: () => ({
      listAsync: (req) => ({
        async *[Symbol.asyncIterator]() {
          calls.push(`zones ${req.project}`);
          for (const [name, region] of Object.entries(ZONES))
            yield { name, region: `https://www.googleapis.com/compute/v1/projects/${req.project}/regions/${region}` };
        },
      }),
    }),
    projects: () => ({
      searchProjectsAsync: () => ({
        async *[Symbol.asyncIterator]() {
          calls.push("searchProjects");
          yield { projectId: "proj-a", state: "ACTIVE" };
          yield { projectId: "proj-b", state: "ACTIVE" };
          yield { projectId: "proj-gone", state: "DELETE_REQUESTED" };
        },
      }),
    }),
    computeProjects: () => ({ get: () => Promise.reject(new Error("unused")) }),
    close: async () => undefined,
  };
  return { clients, calls, maxInFlight: () => maxInFlight };
}

const matcher = (m: Record<string, unknown>) => gcpMatcher.parse({ types: ["gce"], ...m });
const ids = (r: { candidates: { instanceId: string }[] }) => r.candidates.map((c) => c.instanceId);

const FLEET: FakeVm[] = [
  {
    project: "proj-a",
    zone: "us-central1-a",
    id: 1,
    labels: { env: "prod" },
    sa: "web@proj-a.iam.gserviceaccount.com",
  },
  { project: "proj-a", zone: "us-central1-a", id: 2, labels: { env: "dev" } },
  { project: "proj-a", zone: "us-central1-b", id: 3, labels: { env: "prod", team: "x" } },
  { project: "proj-a", zone: "us-central1-b", id: 4, labels: { env: "prod" }, status: "TERMINATED" },
  { project: "proj-a", zone: "europe-west1-b", id: 5, labels: { env: "stage" } },
  { project: "proj-b", zone: "us-central1-a", id: 6, labels: { env: "prod" } },
];

describe("GCE fetch", () => {
  it("matches labels by value, by list and by *; only RUNNING VMs", async () => {
    const f = fakeClients(FLEET);
    const one = await fetchGce(
      matcher({ project_ids: ["proj-a"], locations: ["us-central1"], labels: { env: "prod" } }),
      {
        clients: f.clients,
      },
    );
    expect(ids(one)).toEqual(["1", "3"]);
    const list = await fetchGce(
      matcher({ project_ids: ["proj-a"], locations: ["*"], labels: { env: ["dev", "stage"] } }),
      { clients: f.clients },
    );
    expect(ids(list)).toEqual(["5", "2"]);
    const any = await fetchGce(
      matcher({ project_ids: ["proj-a"], locations: ["us-central1-b"], labels: { team: "*" } }),
      {
        clients: f.clients,
      },
    );
    expect(ids(any)).toEqual(["3"]);
    expect(labelsMatch({ "*": "*" }, {})).toBe(true);
  });

  it("builds candidates with the <project>-<zone>-<id> node name", async () => {
    const f = fakeClients(FLEET);
    const r = await fetchGce(matcher({ project_ids: ["proj-b"], locations: ["us-central1-a"] }), {
      clients: f.clients,
    });
    expect(r.candidates).toEqual([
      {
        cloud: "gcp",
        account: "proj-b",
        region: "us-central1-a",
        instanceId: "6",
        nodeName: "proj-b-us-central1-a-6",
        state: "RUNNING",
        tags: { env: "prod" },
        privateIp: "10.0.0.6",
        privateDnsName: "vm-6.us-central1-a.c.proj-b.internal",
        launchTime: "2026-01-02T11:04:05.000Z",
      },
    ]);
    expect(r.scopes).toEqual([{ cloud: "gcp", account: "proj-b", region: "us-central1-a", instances: 1, apiCalls: 1 }]);
  });

  it("filters by service account", async () => {
    const f = fakeClients(FLEET);
    const r = await fetchGce(
      matcher({ project_ids: ["proj-a"], locations: ["*"], service_accounts: ["WEB@proj-a.iam.gserviceaccount.com"] }),
      { clients: f.clients },
    );
    expect(ids(r)).toEqual(["1"]);
  });

  it("resolves a region to its zones through the zone list", async () => {
    const f = fakeClients(FLEET);
    const r = await fetchGce(matcher({ project_ids: ["proj-a"], locations: ["us-central1", "europe-west1-b"] }), {
      clients: f.clients,
    });
    expect(r.scopes.map((s) => s.region)).toEqual(["europe-west1-b", "us-central1-a", "us-central1-b"]);
    expect(f.calls.filter((c) => c.startsWith("zones"))).toEqual(["zones proj-a"]);
    expect(isZone("us-central1")).toBe(false);
    expect(isZone("us-central1-a")).toBe(true);
  });

  it("* projects through Resource Manager (ACTIVE only) and * zones through one aggregated listing each", async () => {
    const f = fakeClients(FLEET);
    const r = await fetchGce(matcher({ project_ids: ["*"], locations: ["*"], labels: { env: "prod" } }), {
      clients: f.clients,
    });
    expect(r.candidates.map((c) => c.nodeName)).toEqual([
      "proj-a-us-central1-a-1",
      "proj-a-us-central1-b-3",
      "proj-b-us-central1-a-6",
    ]);
    expect(f.calls.sort()).toEqual(["aggregated proj-a", "aggregated proj-b", "searchProjects"]);
    expect(r.scopes.filter((s) => s.account === "proj-b").map((s) => [s.region, s.instances])).toEqual([
      ["europe-west1-b", 0],
      ["us-central1-a", 1],
      ["us-central1-b", 0],
    ]);
  });

  it("follows page tokens", async () => {
    const many = Array.from({ length: 7 }, (_, i) => ({ project: "proj-paged", zone: "us-central1-a", id: 100 + i }));
    const f = fakeClients(many, { pageSize: 3 });
    const r = await fetchGce(matcher({ project_ids: ["proj-paged"], locations: ["us-central1-a"] }), {
      clients: f.clients,
      pageSize: 3,
    });
    expect(ids(r)).toHaveLength(7);
    expect(f.calls).toEqual([
      "list proj-paged/us-central1-a -",
      "list proj-paged/us-central1-a 3",
      "list proj-paged/us-central1-a 6",
    ]);
    expect(r.scopes[0].apiCalls).toBe(3);
  });

  it("reports a denied project as a scope error with its fix; other projects still list", async () => {
    const f = fakeClients(FLEET, { denied: ["proj-a"] });
    const r = await fetchGce(matcher({ project_ids: ["proj-a", "proj-b"], locations: ["us-central1-a"] }), {
      clients: f.clients,
    });
    expect(ids(r)).toEqual(["6"]);
    const bad = r.scopes.find((s) => s.account === "proj-a");
    expect(bad?.error?.code).toBe("PERMISSION_DENIED");
    expect(bad?.error?.message).toMatch(/grant compute\.instances\.list on project proj-a/);
  });

  it("keeps at most `concurrency` listings in flight", async () => {
    const zones = Object.keys(ZONES);
    const vms = Array.from({ length: 30 }, (_, i) => ({ project: `p${i % 10}`, zone: zones[i % 3], id: i }));
    const f = fakeClients(vms, { delayMs: 5 });
    const r = await fetchGce(
      matcher({ project_ids: Array.from({ length: 10 }, (_, i) => `p${i}`), locations: zones }),
      { clients: f.clients, concurrency: 4 },
    );
    expect(r.scopes).toHaveLength(30);
    expect(ids(r)).toHaveLength(30);
    expect(f.maxInFlight()).toBe(4);
  });
});

describe("GCE fetch under scope leases", () => {
  const heldByB = { holder: "B", until: "2025-03-01T00:00:20.000Z", reason: "held by replica B" };

  it("asks before each zone and lists none that another replica holds, reporting it held instead", async () => {
    const f = fakeClients(FLEET);
    const asked: string[] = [];
    const r = await fetchGce(matcher({ project_ids: ["proj-a"], locations: ["us-central1"] }), {
      clients: f.clients,
      acquireScope: async (s) => (
        asked.push(`${s.cloud} ${s.account}/${s.region}`),
        s.region.endsWith("-b") ? heldByB : undefined
      ),
    });
    expect(asked.sort()).toEqual(["gcp proj-a/us-central1-a", "gcp proj-a/us-central1-b"]);
    expect(f.calls.filter((c) => c.startsWith("list"))).toEqual(["list proj-a/us-central1-a -"]);
    expect(ids(r)).toEqual(["1", "2"]);
    expect(r.scopes.find((s) => s.region === "us-central1-b")).toEqual({
      ...{ cloud: "gcp", account: "proj-a", region: "us-central1-b", instances: 0 },
      held: heldByB,
    });
  });

  it("leases a project's zones `*` as one scope, since one aggregated listing covers them", async () => {
    const f = fakeClients(FLEET);
    const r = await fetchGce(matcher({ project_ids: ["proj-a", "proj-b"], locations: ["*"] }), {
      clients: f.clients,
      acquireScope: async (s) => (s.account === "proj-a" && s.region === "*" ? heldByB : undefined),
    });
    expect(f.calls).toEqual(["aggregated proj-b"]);
    expect(ids(r)).toEqual(["6"]);
    expect(r.scopes.filter((s) => s.held).map((s) => `${s.account}/${s.region}`)).toEqual(["proj-a/*"]);
  });
});
