import { randomBytes } from "crypto";
import * as http from "http";
import { collectBody } from "./azure-https";
import type { AddressInfo } from "net";
import type { GcpIssuer } from "./gcp-issuer";
import { COMPUTE_BASE, GcpApiError, GcpVm, GcpWorld, projectNumber, ZoneOperation } from "./gcp-world";

/**
 * The sandbox's fake Google APIs on one loopback HTTP port: Compute (the REST paths `@google-cloud/compute` v6
 * calls), Resource Manager projects (v3 search, v1 list), an OAuth2 token endpoint and the issuer's JWKS.
 *
 * A client reaches it with the official libraries unmodified: `GOOGLE_APPLICATION_CREDENTIALS` names an
 * `external_account_authorized_user` credential whose `token_url` is `<endpoint>/token` (a `service_account`
 * key would not do: google-auth-library v10 sends its JWT grant to oauth2.googleapis.com whatever `token_uri`
 * says), and each client is built with `{apiEndpoint: "127.0.0.1", port: PORT, protocol: "http"}` taken from
 * `GOOGLE_COMPUTE_ENDPOINT` / `GOOGLE_RESOURCE_MANAGER_ENDPOINT` (`fallback: true` for Resource Manager, whose
 * default is gRPC; Compute's default already is REST).
 */
export interface FakeGoogleApi {
  /** `http://127.0.0.1:PORT`. */
  endpoint: string;
  /** The issuer's key set, for `join.gcp.jwks_url`. */
  jwksUrl: string;
  /** Every authenticated API call, with the IAM permission it needs, so a test can check least privilege. */
  calls: GcpApiCall[];
  /** Refuses (403) every call needing a permission outside `permissions`, as IAM would; undefined allows all. */
  restrict(permissions: readonly string[] | undefined): void;
  close(): Promise<void>;
}

/** One call the fake answered (or refused). */
export interface GcpApiCall {
  method: string;
  path: string;
  permission: string;
  status: number;
}

/** What the fake serves, and to whom. */
export interface FakeGoogleApiOptions {
  world: GcpWorld;
  issuer: GcpIssuer;
  /** The refresh token (and OAuth client) of the sandbox credential file; anything else gets no access token. */
  refreshToken: string;
  clientId: string;
  clientSecret: string;
  /** When set, a call needing a permission outside it is refused with 403, as IAM would. */
  allowedPermissions?: ReadonlySet<string>;
}

const TOKEN_TTL_S = 3600;

/** Compute's JSON for an instance: only what clients read, in Compute's own spellings. */
function instanceJson(vm: GcpVm): Record<string, unknown> {
  const zoneUrl = `${COMPUTE_BASE}/projects/${vm.project}/zones/${vm.zone}`;
  return {
    kind: "compute#instance",
    id: vm.id,
    name: vm.name,
    creationTimestamp: vm.creationTimestamp,
    zone: zoneUrl,
    status: vm.status,
    machineType: `${zoneUrl}/machineTypes/e2-small`,
    labels: vm.labels,
    labelFingerprint: "42WmSpB8rSM=",
    metadata: { kind: "compute#metadata", fingerprint: vm.metadata.fingerprint, items: vm.metadata.items },
    networkInterfaces: [
      {
        kind: "compute#networkInterface",
        name: "nic0",
        network: `${COMPUTE_BASE}/projects/${vm.project}/global/networks/default`,
        networkIP: "127.0.0.1",
        accessConfigs: [],
      },
    ],
    serviceAccounts: [{ email: vm.serviceAccount, scopes: ["https://www.googleapis.com/auth/cloud-platform"] }],
    selfLink: `${zoneUrl}/instances/${vm.name}`,
  };
}

/**
 * A zone operation as Compute shows it: the call that starts one answers while it still runs (as Google's does,
 * so clients wait on it with zoneOperations.wait); reading it again finds it done.
 */
function operationJson(op: ZoneOperation, done = true): Record<string, unknown> {
  const zoneUrl = `${COMPUTE_BASE}/projects/${op.project}/zones/${op.zone}`;
  return {
    kind: "compute#operation",
    id: op.id,
    name: op.name,
    zone: zoneUrl,
    operationType: op.operationType,
    targetLink: op.targetLink,
    targetId: op.targetId,
    status: done ? "DONE" : "RUNNING",
    progress: done ? 100 : 0,
    insertTime: op.insertTime,
    startTime: op.insertTime,
    ...(done && { endTime: op.insertTime }),
    selfLink: `${zoneUrl}/operations/${op.name}`,
  };
}

/** Compute's `filter`, the common subset: `field = value` / `field != value` terms joined by spaces or AND. */
export function matchesFilter(filter: string | null, vm: GcpVm): boolean {
  if (!filter?.trim()) return true;
  const fields = (f: string): string | undefined =>
    f.startsWith("labels.")
      ? vm.labels[f.slice(7)]
      : ({ name: vm.name, status: vm.status, id: vm.id } as Record<string, string>)[f];
  const term = /\(?\s*([a-zA-Z][\w.-]*)\s*(=|!=|eq|ne)\s*"?([^"()\s]*)"?\s*\)?/y;
  let rest = filter.trim();
  while (rest) {
    term.lastIndex = 0;
    const m = term.exec(rest);
    if (!m) throw new GcpApiError(400, `Invalid value for field 'filter': '${filter}'.`);
    const [, field, op, value] = m;
    const actual = fields(field);
    const equal = actual !== undefined && actual === value;
    if ((op === "=" || op === "eq") !== equal) return false;
    rest = rest.slice(m[0].length).replace(/^\s*(AND\s+)?/i, "");
  }
  return true;
}

function page<T>(all: T[], query: URLSearchParams): { items: T[]; nextPageToken?: string } {
  const max = Math.min(Math.max(Number(query.get("maxResults") ?? 500) || 500, 1), 500);
  const start = query.get("pageToken") ? Number(Buffer.from(query.get("pageToken")!, "base64url").toString()) : 0;
  if (!Number.isInteger(start) || start < 0) throw new GcpApiError(400, "Invalid value for field 'pageToken'.");
  const items = all.slice(start, start + max);
  const next = start + max < all.length ? Buffer.from(String(start + max)).toString("base64url") : undefined;
  return { items, ...(next && { nextPageToken: next }) };
}

type Route = { permission: string; run: (q: URLSearchParams, body: any) => unknown };

/** The route for a request, with the permission GCP's IAM checks for it. */
function route(world: GcpWorld, method: string, p: string): Route | undefined {
  let m: RegExpExecArray | null;
  const inst = (project: string, zone: string, name: string) => world.get(project, zone, name);
  if (method === "GET" && (m = /^\/compute\/v1\/projects\/([^/]+)\/zones\/([^/]+)\/instances$/.exec(p))) {
    const [, project, zone] = m;
    return {
      permission: "compute.instances.list",
      run: (q) => {
        const { items, nextPageToken } = page(
          world.list(project, zone).filter((v) => matchesFilter(q.get("filter"), v)),
          q,
        );
        return {
          kind: "compute#instanceList",
          items: items.map(instanceJson),
          ...(nextPageToken && { nextPageToken }),
        };
      },
    };
  }
  if (method === "GET" && (m = /^\/compute\/v1\/projects\/([^/]+)$/.exec(p))) {
    const id = m[1];
    return {
      permission: "compute.projects.get",
      // Project-wide metadata: where enable-oslogin is usually set; the sandbox's projects set nothing.
      run: () => ({
        kind: "compute#project",
        id: projectNumber(id),
        name: id,
        commonInstanceMetadata: { kind: "compute#metadata", fingerprint: "cHJvamVjdA==", items: [] },
        selfLink: `${COMPUTE_BASE}/projects/${id}`,
      }),
    };
  }
  if (method === "GET" && (m = /^\/compute\/v1\/projects\/([^/]+)\/zones$/.exec(p))) {
    const project = m[1];
    return {
      permission: "compute.zones.list",
      run: (q) => {
        const { items, nextPageToken } = page(world.zones(), q);
        return {
          kind: "compute#zoneList",
          items: items.map((z) => ({
            kind: "compute#zone",
            name: z,
            region: `${COMPUTE_BASE}/projects/${project}/regions/${z.replace(/-[a-z]$/, "")}`,
            status: "UP",
            selfLink: `${COMPUTE_BASE}/projects/${project}/zones/${z}`,
          })),
          ...(nextPageToken && { nextPageToken }),
        };
      },
    };
  }
  if (method === "GET" && (m = /^\/compute\/v1\/projects\/([^/]+)\/aggregated\/instances$/.exec(p))) {
    const project = m[1];
    return {
      permission: "compute.instances.list",
      run: (q) => {
        const { items, nextPageToken } = page(
          world.list(project).filter((v) => matchesFilter(q.get("filter"), v)),
          q,
        );
        const byZone: Record<string, { instances?: unknown[]; warning?: unknown }> = {};
        // As Google's: the first page names every zone, those without VMs with a NO_RESULTS_ON_PAGE warning.
        if (!q.get("pageToken"))
          for (const z of world.zones())
            byZone[`zones/${z}`] = {
              warning: { code: "NO_RESULTS_ON_PAGE", message: "There are no results for scope 'zones/" + z + "' on this page." }, // prettier-ignore
            };
        for (const vm of items) {
          const entry = (byZone[`zones/${vm.zone}`] = { instances: byZone[`zones/${vm.zone}`]?.instances ?? [] });
          entry.instances.push(instanceJson(vm));
        }
        return { kind: "compute#instanceAggregatedList", items: byZone, ...(nextPageToken && { nextPageToken }) };
      },
    };
  }
  if (
    (m =
      /^\/compute\/v1\/projects\/([^/]+)\/zones\/([^/]+)\/instances\/([^/]+)(\/setMetadata|\/getGuestAttributes)?$/.exec(
        p,
      ))
  ) {
    const [, project, zone, name, verb] = m;
    if (method === "GET" && !verb)
      return { permission: "compute.instances.get", run: () => instanceJson(inst(project, zone, name)) };
    if (method === "POST" && verb === "/setMetadata")
      return {
        permission: "compute.instances.setMetadata",
        run: (_q, body) => {
          const items = Array.isArray(body?.items) ? body.items : [];
          if (items.some((i: any) => typeof i?.key !== "string"))
            throw new GcpApiError(400, "Invalid value for field 'resource.items'.");
          return operationJson(world.setMetadata(inst(project, zone, name), body?.fingerprint, items), false);
        },
      };
    if (method === "GET" && verb === "/getGuestAttributes")
      return {
        permission: "compute.instances.getGuestAttributes",
        run: (q) => {
          const vm = inst(project, zone, name);
          const queryPath = q.get("queryPath") ?? "";
          const keys = vm.guest?.hostKeys ?? {};
          const all = Object.entries(keys).map(([key, value]) => ({ namespace: "hostkeys", key, value }));
          const items = all.filter((a) => `${a.namespace}/${a.key}`.startsWith(queryPath));
          if (!items.length)
            throw new GcpApiError(404, `The resource 'guestAttributes/${queryPath}' was not found`, "notFound");
          return { kind: "compute#guestAttributes", queryPath, selfLink: "", queryValue: { items } };
        },
      };
  }
  if ((m = /^\/compute\/v1\/projects\/([^/]+)\/zones\/([^/]+)\/operations\/([^/]+?)(\/wait)?$/.exec(p))) {
    const [, project, zone, name, wait] = m;
    if ((method === "GET" && !wait) || (method === "POST" && wait))
      return {
        permission: "compute.zoneOperations.get",
        run: () => operationJson(world.operation(project, zone, name)),
      };
  }
  const project = (id: string) => ({
    name: `projects/${projectNumber(id)}`,
    projectId: id,
    displayName: id,
    state: "ACTIVE",
    parent: "organizations/0",
  });
  if (method === "GET" && p === "/v3/projects:search")
    return { permission: "resourcemanager.projects.get", run: () => ({ projects: world.projects().map(project) }) };
  if (method === "GET" && p === "/v1/projects")
    return {
      permission: "resourcemanager.projects.get",
      run: () => ({
        projects: world
          .projects()
          .map((id) => ({ projectId: id, projectNumber: projectNumber(id), name: id, lifecycleState: "ACTIVE" })),
      }),
    };
  return undefined;
}

const errorJson = (status: number, message: string, reason: string) => ({
  error: { code: status, message, errors: [{ message, domain: "global", reason }] },
});

/** Starts the fake Google APIs on a free loopback port. */
export async function startFakeGoogleApi(opts: FakeGoogleApiOptions): Promise<FakeGoogleApi> {
  const tokens = new Map<string, number>(); // access token -> expiry (ms)
  const calls: GcpApiCall[] = [];
  let allowed = opts.allowedPermissions;
  const basic = "Basic " + Buffer.from(`${opts.clientId}:${opts.clientSecret}`).toString("base64");

  function token(form: URLSearchParams, authorization: string | undefined): [number, unknown] {
    if (form.get("grant_type") !== "refresh_token")
      return [
        400,
        { error: "unsupported_grant_type", error_description: "the sandbox issues tokens for its refresh token only" },
      ];
    if (authorization !== basic || form.get("refresh_token") !== opts.refreshToken)
      return [400, { error: "invalid_grant", error_description: "Bad Request" }];
    const access = "ya29.sandbox-" + randomBytes(24).toString("base64url");
    tokens.set(access, Date.now() + TOKEN_TTL_S * 1000);
    return [
      200,
      {
        access_token: access,
        expires_in: TOKEN_TTL_S,
        token_type: "Bearer",
        scope: "https://www.googleapis.com/auth/cloud-platform",
      },
    ];
  }

  function handle(req: http.IncomingMessage, raw: string): [number, unknown, Record<string, string>?] {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const method = req.method ?? "GET";
    if (method === "POST" && url.pathname === "/token")
      return token(new URLSearchParams(raw), req.headers.authorization);
    // Google serves its keys with an expiry; verifiers cache them until then.
    if (method === "GET" && url.pathname === "/oauth2/v3/certs")
      return [200, opts.issuer.jwks, { "cache-control": "public, max-age=300" }];
    const r = route(opts.world, method, url.pathname);
    if (!r) return [404, errorJson(404, `no such method: ${method} ${url.pathname}`, "notFound")];
    const record = (status: number) => calls.push({ method, path: url.pathname, permission: r.permission, status });
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? "")?.[1];
    const expiry = bearer ? tokens.get(bearer) : undefined;
    if (expiry === undefined || expiry < Date.now()) {
      record(401);
      return [401, errorJson(401, "Request is missing required authentication credential.", "required")];
    }
    if (allowed && !allowed.has(r.permission)) {
      record(403);
      return [403, errorJson(403, `Required '${r.permission}' permission`, "forbidden")];
    }
    try {
      const body = raw ? JSON.parse(raw) : {};
      const out = r.run(url.searchParams, body);
      record(200);
      return [200, out];
    } catch (err) {
      const e = err instanceof GcpApiError ? err : new GcpApiError(400, (err as Error).message);
      record(e.status);
      return [e.status, errorJson(e.status, e.message, e.reason)];
    }
  }

  const server = http.createServer((req, res) => {
    collectBody(req, (raw) => {
      const [status, json, headers] = handle(req, raw);
      res.writeHead(status, { "content-type": "application/json; charset=UTF-8", ...headers });
      res.end(JSON.stringify(json));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    endpoint,
    jwksUrl: `${endpoint}/oauth2/v3/certs`,
    calls,
    restrict: (permissions) => (allowed = permissions && new Set(permissions)),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
