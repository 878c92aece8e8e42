/**
 * The Google clients GCP enrollment uses, behind one small factory: the fetcher and installer ask `GcpClients` for
 * them, so unit tests hand in fakes and the sandbox points the real ones at a fake control plane. The types below
 * are the structural subset of Google's clients we call, which the real clients satisfy as they are.
 */
import {
  InstancesClient,
  ProjectsClient as ComputeProjectsClient,
  ZoneOperationsClient,
  ZonesClient,
  protos,
} from "@google-cloud/compute";
import { ProjectsClient } from "@google-cloud/resource-manager";
import { GoogleAuth } from "google-auth-library";

type ClientOptions = NonNullable<ConstructorParameters<typeof InstancesClient>[0]>;

/** A Compute Engine instance as the API returns it. */
export type GceInstance = protos.google.cloud.compute.v1.IInstance;
/** Instance or project metadata (`items` and its `fingerprint`). */
export type GceMetadata = protos.google.cloud.compute.v1.IMetadata;

/** The InstancesClient methods enrollment calls. */
export interface InstancesApi {
  list(
    req: { project: string; zone: string; filter?: string; maxResults?: number; pageToken?: string },
    opts: { autoPaginate: false },
  ): Promise<[GceInstance[], unknown, { nextPageToken?: string | null } | undefined]>;
  aggregatedListAsync(
    req: { project: string; filter?: string; maxResults?: number },
    opts?: { autoPaginate: false },
  ): AsyncIterable<[string, { instances?: GceInstance[] | null }]>;
  get(req: { project: string; zone: string; instance: string }): Promise<[GceInstance, ...unknown[]]>;
  getGuestAttributes(req: {
    project: string;
    zone: string;
    instance: string;
    queryPath?: string;
  }): Promise<[protos.google.cloud.compute.v1.IGuestAttributes, ...unknown[]]>;
  /** Resolves once the request is accepted, with the zone operation to wait on ({@link ZoneOperationsApi}). */
  setMetadata(req: {
    project: string;
    zone: string;
    instance: string;
    metadataResource: GceMetadata;
  }): Promise<[{ latestResponse?: GceOperation }, ...unknown[]]>;
}

/** A zone operation as the API returns it. */
export type GceOperation = protos.google.cloud.compute.v1.IOperation;

/** ZoneOperationsClient.wait: returns when the operation is done or after about two minutes, whichever is first. */
export interface ZoneOperationsApi {
  wait(req: { project: string; zone: string; operation: string }): Promise<[GceOperation, ...unknown[]]>;
}

/** The ZonesClient method enrollment calls (resolving a region, or `*`, to zones). */
export interface ZonesApi {
  listAsync(
    req: { project: string; filter?: string },
    opts?: { autoPaginate: false },
  ): AsyncIterable<protos.google.cloud.compute.v1.IZone>;
}

/** Resource Manager's project search (projects `*`). */
export interface ProjectSearchApi {
  searchProjectsAsync(
    req: { query?: string },
    opts?: { autoPaginate: false },
  ): AsyncIterable<{ projectId?: string | null; state?: unknown }>;
}

/** Compute's project get: the project-wide metadata, where `enable-oslogin` is usually set. */
export interface ComputeProjectsApi {
  get(req: { project: string }): Promise<[{ commonInstanceMetadata?: GceMetadata | null }, ...unknown[]]>;
}

/** Makes the clients; one set per fetch or install run, closed when it ends. */
export interface GcpClients {
  instances(): InstancesApi;
  zoneOperations(): ZoneOperationsApi;
  zones(): ZonesApi;
  projects(): ProjectSearchApi;
  computeProjects(): ComputeProjectsApi;
  /** Releases whatever the clients hold (sockets, auth). */
  close(): Promise<void>;
}

/** Where the Google clients send their requests: Google unless told otherwise. */
export interface GcpEndpoint {
  /** host or host:port of a stand-in for compute.googleapis.com (the sandbox's fake control plane). */
  apiEndpoint?: string;
  /** `http` only for a loopback fake; Google is always https. */
  protocol?: "http" | "https";
  /** A stand-in for cloudresourcemanager.googleapis.com; default the compute stand-in, if any. */
  resourceManagerEndpoint?: string;
}

/**
 * The endpoint from the environment, read here and nowhere else: `GOOGLE_COMPUTE_ENDPOINT` (e.g.
 * `http://127.0.0.1:8085`) and `GOOGLE_RESOURCE_MANAGER_ENDPOINT`, both unset in production.
 */
export function gcpEndpointFromEnv(env: NodeJS.ProcessEnv = process.env): GcpEndpoint {
  const parse = (raw: string | undefined) => {
    if (!raw) return undefined;
    const u = new URL(/^[a-z]+:\/\//.test(raw) ? raw : `https://${raw}`);
    return { host: u.host, protocol: u.protocol === "http:" ? ("http" as const) : ("https" as const) };
  };
  const compute = parse(env.GOOGLE_COMPUTE_ENDPOINT);
  const rm = parse(env.GOOGLE_RESOURCE_MANAGER_ENDPOINT);
  if (!compute && !rm) return {};
  return {
    ...(compute && { apiEndpoint: compute.host, protocol: compute.protocol }),
    ...(rm && { resourceManagerEndpoint: rm.host }),
    ...(!compute && rm && { protocol: rm.protocol }),
  };
}

/**
 * Google's own clients over REST (`fallback: true`, so a plain http endpoint works and no gRPC is loaded), with
 * application default credentials, also against an http endpoint (a loopback fake only): the sandbox's credentials
 * file names its own token endpoint, so nothing here trusts a token only the sandbox has.
 */
export function googleClients(endpoint: GcpEndpoint = gcpEndpointFromEnv()): GcpClients {
  // One ADC for every client of the set, on Node's own fetch: gaxios would otherwise import node-fetch
  // dynamically, which Jest's module runtime cannot. gax bundles its own google-auth-library typings; the class is
  // the same at run time.
  const auth = new GoogleAuth({
    scopes: ["https://www.googleapis.com/auth/cloud-platform"],
    clientOptions: { transporterOptions: { fetchImplementation: fetch } },
  }) as unknown as ClientOptions["auth"];
  const options = (host: string | undefined): ClientOptions => {
    if (!host) return { fallback: true, auth };
    const [servicePath, port] = host.split(/:(?=\d+$)/);
    return {
      fallback: true as const,
      auth,
      apiEndpoint: servicePath,
      ...(port && { port: Number(port) }),
      ...(endpoint.protocol === "http" && { protocol: "http" }),
    };
  };
  const made: { close(): Promise<void> }[] = [];
  const once = <T extends { close(): Promise<void> }>(make: () => T) => {
    let c: T | undefined;
    return () => {
      if (!c) made.push((c = make()));
      return c;
    };
  };
  const rmHost = endpoint.resourceManagerEndpoint ?? endpoint.apiEndpoint;
  return {
    instances: once(() => new InstancesClient(options(endpoint.apiEndpoint))) as () => InstancesApi,
    zoneOperations: once(() => new ZoneOperationsClient(options(endpoint.apiEndpoint))) as () => ZoneOperationsApi,
    zones: once(() => new ZonesClient(options(endpoint.apiEndpoint))) as () => ZonesApi,
    projects: once(() => new ProjectsClient(options(rmHost))) as () => ProjectSearchApi,
    computeProjects: once(() => new ComputeProjectsClient(options(endpoint.apiEndpoint))) as () => ComputeProjectsApi,
    close: async () => {
      await Promise.all(made.map((c) => c.close().catch(() => undefined)));
    },
  };
}

/** gRPC status names by number: Google's REST errors carry the number mapped from the HTTP status. */
const GRPC_CODES: Record<number, string> = {
  3: "INVALID_ARGUMENT",
  4: "DEADLINE_EXCEEDED",
  5: "NOT_FOUND",
  7: "PERMISSION_DENIED",
  8: "RESOURCE_EXHAUSTED",
  9: "FAILED_PRECONDITION",
  10: "ABORTED",
  13: "INTERNAL",
  14: "UNAVAILABLE",
  16: "UNAUTHENTICATED",
};
const HTTP_CODES: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  409: "ABORTED",
  412: "FAILED_PRECONDITION",
  429: "RESOURCE_EXHAUSTED",
  500: "INTERNAL",
  503: "UNAVAILABLE",
};

/** A stable code for a Google API error (`PERMISSION_DENIED`, ...), or the socket error code when none answered. */
export function gcpErrorCode(err: unknown): string {
  const e = err as { code?: unknown; status?: unknown; response?: { status?: number } } | undefined;
  if (typeof e?.code === "number" && GRPC_CODES[e.code]) return GRPC_CODES[e.code];
  if (typeof e?.code === "number" && HTTP_CODES[e.code]) return HTTP_CODES[e.code];
  if (typeof e?.status === "string" && /^[A-Z_]+$/.test(e.status)) return e.status;
  if (typeof e?.code === "string" && /^[A-Z_]+$/.test(e.code)) return e.code;
  const http = typeof e?.status === "number" ? e.status : e?.response?.status;
  if (typeof http === "number") return HTTP_CODES[http] ?? `HTTP_${http}`;
  return "UNKNOWN";
}

/** The first line of an error's message, bounded: enough to read in a report. */
export function gcpErrorMessage(err: unknown): string {
  let said = String((err as { message?: unknown })?.message ?? err);
  // Over REST, gax sometimes passes Google's JSON error body through as the message; its `message` is the sentence.
  if (said.startsWith("{"))
    try {
      said = String(JSON.parse(said)?.error?.message ?? said);
    } catch {
      // Not JSON after all: keep it as it is.
    }
  return said.split("\n")[0].slice(0, 300);
}
