/**
 * The GCP part of the benchmark control plane (bench/control-plane.ts): Compute Engine's instance listings over
 * REST as `@google-cloud/compute`'s InstancesClient speaks it, and an OAuth token endpoint for Google's ADC, so the
 * real clients and the real fetcher (`fetchGce`) run against it unchanged.
 *
 * Served: `POST /token` (any refresh grant gets a bearer token), `GET /compute/v1/projects/{p}/zones/{z}/instances`
 * and `GET /compute/v1/projects/{p}/aggregated/instances`, with `filter` (the `field = value` terms of
 * provider/sandbox/gcp-api.ts), `maxResults` (1 to 500) and `pageToken`. Instances are answered with the fields
 * Compute returns for a plain Linux VM (about 2.4 KB of JSON each). Compute counts read requests per project and
 * per minute, in fixed windows (https://cloud.google.com/compute/api-quota): past `readsPerMinute` in a window the
 * answer is 403 `rateLimitExceeded` until the next one. Anything else answers 400 naming the request.
 */
import { matchesFilter } from "../provider/sandbox/gcp-api";
import type { GcpVm } from "../provider/sandbox/gcp-world";
import type { PlaneAnswer } from "./control-plane-ec2";

/** One VM of the control plane, with its JSON built once. */
export interface PlaneVm {
  project: string;
  zone: string;
  id: string;
  name: string;
  status: "RUNNING";
  labels: Record<string, string>;
  networkIP: string;
  json: string;
}

const COMPUTE = "https://www.googleapis.com/compute/v1";
/** The bearer token `/token` hands out; calls without it get 401, as Google's would. */
export const BENCH_ACCESS_TOKEN = "bench-access-token";
/**
 * Google's ADC file for the plane, as the sandbox writes its own: a user credential whose file names the token
 * endpoint (`<endpoint>/token`), so the official clients fetch their token from the plane.
 */
export function benchAdcCredentials(endpoint: string): string {
  return JSON.stringify({
    type: "external_account_authorized_user",
    audience: "//iam.googleapis.com/locations/global/workforcePools/bench/providers/bench",
    client_id: "bench",
    client_secret: "bench",
    refresh_token: "bench",
    token_url: `${endpoint}/token`,
    universe_domain: "googleapis.com",
  });
}

/** Compute's default cap on `maxResults`. */
const MAX_PAGE = 500;

/** Compute's JSON for a plain Linux VM: every field the API returns for one, as `instances.get` shows it. */
export function gceInstanceJson(vm: Omit<PlaneVm, "json">, created: string): string {
  const zoneUrl = `${COMPUTE}/projects/${vm.project}/zones/${vm.zone}`;
  const region = vm.zone.replace(/-[a-z]$/, "");
  return JSON.stringify({
    kind: "compute#instance",
    id: vm.id,
    creationTimestamp: created,
    name: vm.name,
    tags: { fingerprint: "42WmSpB8rSM=" },
    machineType: `${zoneUrl}/machineTypes/e2-medium`,
    status: vm.status,
    zone: zoneUrl,
    canIpForward: false,
    networkInterfaces: [
      {
        kind: "compute#networkInterface",
        network: `${COMPUTE}/projects/${vm.project}/global/networks/default`,
        subnetwork: `${COMPUTE}/projects/${vm.project}/regions/${region}/subnetworks/default`,
        networkIP: vm.networkIP,
        name: "nic0",
        fingerprint: "8Jc4cSXpA1g=",
        stackType: "IPV4_ONLY",
      },
    ],
    disks: [
      {
        kind: "compute#attachedDisk",
        type: "PERSISTENT",
        mode: "READ_WRITE",
        source: `${zoneUrl}/disks/${vm.name}`,
        deviceName: vm.name,
        index: 0,
        boot: true,
        autoDelete: true,
        licenses: ["https://www.googleapis.com/compute/v1/projects/debian-cloud/global/licenses/debian-12-bookworm"],
        interface: "SCSI",
        guestOsFeatures: [{ type: "UEFI_COMPATIBLE" }, { type: "VIRTIO_SCSI_MULTIQUEUE" }, { type: "GVNIC" }],
        diskSizeGb: "10",
        architecture: "X86_64",
      },
    ],
    metadata: { kind: "compute#metadata", fingerprint: "Tm2R7qI-vYw=" },
    serviceAccounts: [
      {
        email: `${vm.project.replace(/[^a-z0-9]/g, "")}-compute@developer.gserviceaccount.com`,
        scopes: ["https://www.googleapis.com/auth/cloud-platform"],
      },
    ],
    selfLink: `${zoneUrl}/instances/${vm.name}`,
    scheduling: {
      onHostMaintenance: "MIGRATE",
      automaticRestart: true,
      preemptible: false,
      provisioningModel: "STANDARD",
    },
    cpuPlatform: "Intel Broadwell",
    labels: vm.labels,
    labelFingerprint: "nT7_dAxvnxE=",
    startRestricted: false,
    deletionProtection: false,
    shieldedInstanceConfig: { enableSecureBoot: false, enableVtpm: true, enableIntegrityMonitoring: true },
    shieldedInstanceIntegrityPolicy: { updateAutoLearnPolicy: true },
    confidentialInstanceConfig: { enableConfidentialCompute: false },
    fingerprint: "ZpkWcnlKLkM=",
    lastStartTimestamp: created,
    satisfiesPzi: true,
    keyRevocationActionType: "NONE",
  });
}

/** Compute's error body. */
function gceError(code: number, reason: string, message: string): PlaneAnswer {
  const status = { 400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED" }[code] ?? "UNKNOWN";
  return { status: code, body: JSON.stringify({ error: { code, message, errors: [{ message, domain: "global", reason }], status } }) }; // prettier-ignore
}

/** A page of `all` after `pageToken`, at most `maxResults`. */
function page<T>(all: readonly T[], query: URLSearchParams): { items: readonly T[]; next?: string } | PlaneAnswer {
  const raw = query.get("maxResults");
  const max = raw === null ? MAX_PAGE : Number(raw);
  if (!Number.isInteger(max) || max < 0 || max > MAX_PAGE)
    return gceError(400, "invalid", `Invalid value for field 'maxResults': '${raw}'. Must be in the range [0, 500].`);
  const token = query.get("pageToken");
  const start = token ? Number(Buffer.from(token, "base64url").toString()) : 0;
  if (!Number.isInteger(start) || start < 0 || start > all.length)
    return gceError(400, "invalid", "Invalid value for field 'pageToken'.");
  const size = max || MAX_PAGE;
  const next = start + size < all.length ? Buffer.from(String(start + size)).toString("base64url") : undefined;
  return { items: all.slice(start, start + size), ...(next && { next }) };
}

/** What Compute answers the statistics of the bench. */
export interface ComputeStats {
  calls: number;
  throttled: number;
  byAction: Record<string, number>;
  unknown: string[];
}

/**
 * The Compute side: `answer` takes a request the main control plane routed here (its path starts with
 * `/compute/v1/`, or it is `POST /token`) and answers it from `byProject`.
 */
export function computePlane(opts: { readsPerMinute: number; now?: () => number }) {
  const now = opts.now ?? Date.now;
  const byProject = new Map<string, PlaneVm[]>();
  const windows = new Map<string, { minute: number; reads: number }>();
  let serial = 0;

  /** One read of `project`'s per-minute quota; false once the window is spent. */
  const read = (project: string): boolean => {
    const minute = Math.floor(now() / 60_000);
    const w = windows.get(project);
    if (!w || w.minute !== minute) windows.set(project, { minute, reads: 1 });
    else if (++w.reads > opts.readsPerMinute) return false;
    return true;
  };

  const answer = (method: string, url: URL, authorization: string | undefined, stats: ComputeStats): PlaneAnswer => {
    if (method === "POST" && url.pathname === "/token") {
      stats.byAction["oauth:token"] = (stats.byAction["oauth:token"] ?? 0) + 1;
      return { status: 200, body: JSON.stringify({ access_token: BENCH_ACCESS_TOKEN, expires_in: 3600, token_type: "Bearer" }) }; // prettier-ignore
    }
    const zonal = /^\/compute\/v1\/projects\/([^/]+)\/zones\/([^/]+)\/instances$/.exec(url.pathname);
    const aggregated = /^\/compute\/v1\/projects\/([^/]+)\/aggregated\/instances$/.exec(url.pathname);
    const key = `compute:${method} ${zonal ? "instances.list" : aggregated ? "instances.aggregatedList" : url.pathname}`;
    stats.byAction[key] = (stats.byAction[key] ?? 0) + 1;
    if (method !== "GET" || !(zonal || aggregated)) {
      stats.unknown.push(key);
      console.error(`bench control plane: ${key} is not served`);
      return gceError(400, "badRequest", `${method} ${url.pathname} is not served by the bench control plane`);
    }
    if (authorization !== `Bearer ${BENCH_ACCESS_TOKEN}`)
      return gceError(401, "authError", "Request is missing required authentication credential.");
    const project = decodeURIComponent((zonal ?? aggregated)![1]);
    if (!read(project)) {
      stats.throttled++;
      return gceError(403, "rateLimitExceeded", `Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' of service 'compute.googleapis.com' for consumer 'project_number:${project}'.`); // prettier-ignore
    }
    const filter = url.searchParams.get("filter");
    let matching: PlaneVm[];
    try {
      const pool = byProject.get(project) ?? [];
      const zone = zonal ? decodeURIComponent(zonal[2]) : undefined;
      matching = pool.filter((v) => (zone === undefined || v.zone === zone) && matchesFilter(filter, v as unknown as GcpVm)); // prettier-ignore
    } catch {
      return gceError(400, "invalid", `Invalid value for field 'filter': '${filter}'.`);
    }
    const p = page(matching, url.searchParams);
    if ("status" in p) return p;
    const next = p.next ? `,"nextPageToken":"${p.next}"` : "";
    if (zonal) {
      const id = `projects/${project}/zones/${zonal[2]}/instances`;
      return { status: 200, body: `{"kind":"compute#instanceList","id":"${id}","items":[${p.items.map((v) => v.json).join(",")}]${next},"selfLink":"${COMPUTE}/${id}"}` }; // prettier-ignore
    }
    const byZone = new Map<string, string[]>();
    for (const v of p.items) (byZone.get(v.zone) ?? byZone.set(v.zone, []).get(v.zone)!).push(v.json);
    const items = [...byZone].map(([z, list]) => `"zones/${z}":{"instances":[${list.join(",")}]}`).join(",");
    const id = `projects/${project}/aggregated/instances`;
    return { status: 200, body: `{"kind":"compute#instanceAggregatedList","id":"${id}","items":{${items}}${next},"selfLink":"${COMPUTE}/${id}"}` }; // prettier-ignore
  };

  return {
    answer,
    /** Adds `count` RUNNING VMs to a project's zone; returns their names. */
    addVms(project: string, zone: string, count: number, labels: Record<string, string> = {}): string[] {
      const list = byProject.get(project) ?? [];
      byProject.set(project, list);
      const created = new Date().toISOString();
      const names: string[] = [];
      for (let k = 0; k < count; k++) {
        const n = ++serial;
        const base = {
          project,
          zone,
          id: String(4_000_000_000_000_000_000n + BigInt(n)),
          name: `vm-${n}`,
          status: "RUNNING" as const,
          labels,
          networkIP: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
        };
        list.push({ ...base, json: gceInstanceJson(base, created) });
        names.push(base.name);
      }
      return names;
    },
    /** Empties every quota window. */
    resetQuota: () => windows.clear(),
  };
}
