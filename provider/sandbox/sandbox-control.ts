import * as fs from "fs";
import * as http from "http";
import { collectBody } from "./azure-https";
import type { AddressInfo } from "net";
import * as path from "path";
import type { Logger } from "pino";
import { Fleet, viewInstance } from "./fleet";
import type { FakeGoogleApi } from "./gcp-api";
import type { FakeArmControls } from "./azure-arm";
import { AzureLaunchOptionError } from "./azure-launch-options";
import { AzureWorld, viewAzureVm } from "./azure-world";
import { GcpLaunchOptionError } from "./gcp-launch-options";
import { GcpWorld, viewGcpVm } from "./gcp-world";
import { LaunchOptionError, parseLaunchOptions, SsmPlatform, SsmStatus } from "./launch-options";

/** What a running sandbox writes to `DIR/sandbox.json` (mode 0600) once everything answers. */
export interface SandboxState {
  pid: number;
  dir: string;
  startedAt: string;
  /** The control API: loopback HTTP, every call with `Authorization: Bearer <token>`. */
  control: { url: string; token: string };
  moto: string;
  ssm: string;
  runtime: { url: string; pin: string; certFile: string; adminTokenFile: string };
  /** The organization seeded in moto's default account, for iam tokens with `aws_organization_id`. */
  organizationId?: string;
  /** The SQS queue moto's EventBridge fills with us-east-1's EC2 state-change events (other regions: same name). */
  events?: { queueUrl: string; region: string };
  /** The fake Google APIs (Compute, Resource Manager, OAuth2, the issuer's JWKS) and the env that points at them. */
  gcp?: { endpoint: string; jwksUrl: string; env: Record<string, string> };
  /** The fake ARM and Entra ID (HTTPS), the tenant, the key set, and the env that points at them. */
  azure?: { armEndpoint: string; authorityHost: string; tenantId: string; jwksUrl: string; env: Record<string, string> }; // prettier-ignore
  /** `DIR/ca-bundle.pem`: the runtime's certificate and the fake Azure endpoints', what NODE_EXTRA_CA_CERTS names. */
  caBundle?: string;
}

/** The files of a sandbox directory. */
export function sandboxPaths(dir: string) {
  return {
    pid: path.join(dir, "sandbox.pid"),
    state: path.join(dir, "sandbox.json"),
    log: path.join(dir, "sandbox.log"),
    env: path.join(dir, "env.sh"),
    runtimeConfig: path.join(dir, "runtime.yaml"),
    runtimeLog: path.join(dir, "runtime.log"),
    caCert: path.join(dir, "sandbox-ca.pem"),
    caKey: path.join(dir, "sandbox-ca.key"),
    caBundle: path.join(dir, "ca-bundle.pem"),
    instances: path.join(dir, "instances"),
  };
}

/** The state of the sandbox in `dir`, if it wrote one. */
export function readSandboxState(dir: string): SandboxState | undefined {
  try {
    return JSON.parse(fs.readFileSync(sandboxPaths(dir).state, "utf8")) as SandboxState;
  } catch {
    return undefined;
  }
}

/** An answer of the control API. */
export interface ControlAnswer {
  status: number;
  body: any; // JSON of several shapes, read by callers that know which
}

/** Calls a sandbox's control API. */
export async function callControl(
  state: SandboxState,
  method: string,
  route: string,
  body?: unknown,
): Promise<ControlAnswer> {
  const res = await fetch(state.control.url + route, {
    method,
    headers: {
      authorization: `Bearer ${state.control.token}`,
      ...(body !== undefined && { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(300_000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed };
}

/** What the control API serves. */
export interface ControlApiOptions {
  fleet: Fleet;
  /** The GCP VMs, launched with `{cloud: "gcp", ...}`. */
  gcp: GcpWorld;
  /** The fake Google APIs: their call log (GET /v1/gcp/calls) and permission set (PUT /v1/gcp/permissions). */
  gcpApi: Pick<FakeGoogleApi, "calls" | "restrict">;
  /** The Azure VMs, launched with `{cloud: "azure", ...}`. */
  azure: AzureWorld;
  /** The fake ARM: its call log (GET /v1/azure/calls) and RBAC actions (PUT /v1/azure/actions). */
  azureArm: FakeArmControls;
  token: string;
  /** Summary for GET /v1/status. */
  status: () => Record<string, unknown>;
  /** Called after POST /v1/stop has been answered. */
  onStop: () => void;
  logger?: Logger;
}

/** A running control API. */
export interface ControlApi {
  url: string;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** The Azure routes of the control API; undefined for any other. */
async function azureRoute(
  opts: ControlApiOptions,
  method: string,
  url: string,
  body: Record<string, unknown>,
): Promise<[number, unknown] | undefined> {
  if (method === "GET" && url === "/v1/azure/calls") return [200, { calls: opts.azureArm.calls }];
  if (method === "PUT" && url === "/v1/azure/actions") {
    const { actions } = body;
    if (actions !== null && (!Array.isArray(actions) || actions.some((x) => typeof x !== "string")))
      throw new HttpError(400, "must be a list of Azure RBAC actions, or null for all", "actions");
    opts.azureArm.restrict((actions as string[] | null) ?? undefined);
    return [200, { actions }];
  }
  const vmPath = /^\/v1\/azure\/vms\/([0-9a-fA-F-]{36})$/.exec(url);
  if (vmPath && method === "DELETE") {
    const gone = await opts.azure.delete(vmPath[1]);
    if (!gone) throw new HttpError(404, `no Azure VM ${vmPath[1]} in this sandbox`);
    opts.logger?.info({ vm: gone.vmId, name: gone.name }, "deleted an Azure VM");
    return [200, { deleted: viewAzureVm(gone) }];
  }
  if (vmPath && method === "PATCH") {
    const vm = opts.azure.byId(vmPath[1]);
    if (!vm) throw new HttpError(404, `no Azure VM ${vmPath[1]} in this sandbox`);
    if (body.state !== "running" && body.state !== "deallocated")
      throw new HttpError(400, "must be running or deallocated", "state");
    return [200, viewAzureVm(await opts.azure.setState(vm, body.state))];
  }
  if (method === "POST" && url === "/v1/launch" && body.cloud === "azure") {
    const { cloud: _cloud, ...request } = body;
    try {
      const made = await opts.azure.launch(request);
      opts.logger?.info({ ...request, instances: made.map((v) => v.vmId) }, "launched Azure VMs");
      return [200, { instances: made.map(viewAzureVm) }];
    } catch (err) {
      if (err instanceof AzureLaunchOptionError) throw new HttpError(400, err.message, err.field);
      throw err;
    }
  }
  return undefined;
}

const SSM_STATUSES: SsmStatus[] = ["Online", "ConnectionLost", "unregistered"];
const PLATFORMS: SsmPlatform[] = ["Linux", "Windows"];

/**
 * Starts the sandbox's control API on a free loopback port:
 * `GET /v1/status`, `POST /v1/launch` (LaunchOptions as JSON) -> `{instances}`, `GET /v1/instances`,
 * `PATCH /v1/instances/{id}` `{ssmStatus?, platform?}` (the SSM knobs), `POST /v1/stop`; with `cloud: "gcp"`,
 * launch takes GcpLaunchOptions and answers `{instances: GcpVmView[]}`; `GET /v1/gcp/calls` is the fake Google
 * APIs' call log, `PUT /v1/gcp/permissions` `{permissions: [...] | null}` what they allow, and
 * `DELETE /v1/gcp/instances/{id}` deletes a VM as `instances.delete` would. With `cloud: "azure"`, launch takes
 * AzureLaunchOptions and answers `{instances: AzureVmView[]}`; `GET /v1/azure/calls` is the fake ARM's call log,
 * `PUT /v1/azure/actions` `{actions: [...] | null}` the RBAC actions it allows, `DELETE /v1/azure/vms/{vmId}`
 * deletes a VM and `PATCH /v1/azure/vms/{vmId}` `{state: running|deallocated}` starts or deallocates one.
 * Errors are `{error: {message, field?}}`.
 */
export async function startControlApi(opts: ControlApiOptions): Promise<ControlApi> {
  const { fleet, logger } = opts;
  async function route(method: string, url: string, body: Record<string, unknown>): Promise<[number, unknown]> {
    if (method === "GET" && url === "/v1/status") return [200, opts.status()];
    if (method === "GET" && url === "/v1/instances")
      return [
        200,
        {
          instances: fleet.list().map(viewInstance),
          gcp: opts.gcp.all().map(viewGcpVm),
          azure: opts.azure.all().map(viewAzureVm),
        },
      ];
    const azure = await azureRoute(opts, method, url, body);
    if (azure) return azure;
    if (method === "GET" && url === "/v1/gcp/calls") return [200, { calls: opts.gcpApi.calls }];
    if (method === "PUT" && url === "/v1/gcp/permissions") {
      const { permissions } = body;
      if (permissions !== null && (!Array.isArray(permissions) || permissions.some((x) => typeof x !== "string")))
        throw new HttpError(400, "must be a list of IAM permissions, or null for all", "permissions");
      opts.gcpApi.restrict((permissions as string[] | null) ?? undefined);
      return [200, { permissions }];
    }
    const gcpVm = /^\/v1\/gcp\/instances\/(\d+)$/.exec(url);
    if (method === "DELETE" && gcpVm) {
      const gone = await opts.gcp.delete(gcpVm[1]);
      if (!gone) throw new HttpError(404, `no GCP VM ${gcpVm[1]} in this sandbox`);
      logger?.info({ instance: gone.id, project: gone.project, zone: gone.zone }, "deleted a GCP VM");
      return [200, { deleted: viewGcpVm(gone) }];
    }
    if (method === "POST" && url === "/v1/launch" && body.cloud === "gcp") {
      const { cloud: _cloud, ...request } = body;
      try {
        const made = await opts.gcp.launch(request);
        logger?.info({ ...request, instances: made.map((v) => v.id) }, "launched GCP VMs");
        return [200, { instances: made.map(viewGcpVm) }];
      } catch (err) {
        if (err instanceof GcpLaunchOptionError) throw new HttpError(400, err.message, err.field);
        throw err;
      }
    }
    if (method === "POST" && url === "/v1/launch") {
      let launch;
      try {
        const { cloud: _cloud, ...request } = body;
        launch = parseLaunchOptions(request);
      } catch (err) {
        if (err instanceof LaunchOptionError) throw new HttpError(400, err.message, err.field);
        throw err;
      }
      const made = await fleet.launch(launch);
      logger?.info({ ...launch, instances: made.map((i) => i.instanceId) }, "launched");
      return [200, { instances: made.map(viewInstance) }];
    }
    const knob = /^\/v1\/instances\/(i-[0-9a-f]+)$/.exec(url);
    if (method === "PATCH" && knob) {
      if (!fleet.get(knob[1])) throw new HttpError(404, `no instance ${knob[1]} in this sandbox`);
      const { ssmStatus, platform } = body;
      if (ssmStatus !== undefined && !SSM_STATUSES.includes(ssmStatus as SsmStatus))
        throw new HttpError(400, `must be one of ${SSM_STATUSES.join(", ")}`, "ssmStatus");
      if (platform !== undefined && !PLATFORMS.includes(platform as SsmPlatform))
        throw new HttpError(400, `must be one of ${PLATFORMS.join(", ")}`, "platform");
      const inst = fleet.update(knob[1], {
        ssmStatus: ssmStatus as SsmStatus | undefined,
        platform: platform as SsmPlatform | undefined,
      });
      return [200, viewInstance(inst)];
    }
    if (method === "POST" && url === "/v1/stop") {
      setImmediate(opts.onStop);
      return [202, { stopping: true }];
    }
    throw new HttpError(404, `no route ${method} ${url}`);
  }

  const server = http.createServer((req, res) => {
    const send = (status: number, json: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(json));
    };
    if (req.headers.authorization !== `Bearer ${opts.token}`)
      return send(401, { error: { message: "the control token (DIR/sandbox.json) is required" } });
    collectBody(req, (raw) => {
      let body: Record<string, unknown> = {};
      try {
        body = raw ? (JSON.parse(raw) as Record<string, unknown>) : {};
      } catch {
        return send(400, { error: { message: "the body is not JSON" } });
      }
      route(req.method ?? "GET", (req.url ?? "/").split("?")[0], body ?? {})
        .then(([status, json]) => send(status, json))
        .catch((err: Error) => {
          if (err instanceof HttpError) return send(err.status, { error: { message: err.message, field: err.field } });
          logger?.error({ err }, "control API call failed");
          send(500, { error: { message: err.message } });
        });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
