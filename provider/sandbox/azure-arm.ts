import type * as http from "http";
import { instanceViewJson, runCommandJson, scaleSetJson, vmJson } from "./azure-arm-json";
import type { JsonReply } from "./azure-https";
import { AccessTokenClaims, verifyAccessToken } from "./azure-entra";
import type { GcpIssuer } from "./gcp-issuer";
import { AzureApiError, AzureVm, AzureWorld } from "./azure-world";

/** One ARM call the fake answered (or refused), with the RBAC action it needs. */
export interface AzureApiCall {
  method: string;
  path: string;
  action: string;
  status: number;
}

/** The fake ARM's call log and RBAC knob, as the control API exposes them. */
export interface FakeArmControls {
  /** Every authenticated call, so a test can check least privilege. */
  calls: AzureApiCall[];
  /** Refuses (403 AuthorizationFailed) every action outside `actions`, as RBAC would; undefined allows all. */
  restrict(actions: readonly string[] | undefined): void;
}

/** ARM lists page at this many items (small, so clients' nextLink handling is exercised). */
export const ARM_PAGE_SIZE = 5;

type Route = { action: string; scope: string; run: (q: URLSearchParams, body: any) => Promise<JsonReply> | JsonReply };

const A = {
  subscriptions: "Microsoft.Resources/subscriptions/read",
  vmRead: "Microsoft.Compute/virtualMachines/read",
  ssRead: "Microsoft.Compute/virtualMachineScaleSets/read",
  ssVmRead: "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
  rc: "Microsoft.Compute/virtualMachines/runCommands",
  ssRc: "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands",
};

/** A page of `all` from `$skiptoken`, with an absolute `nextLink` (ARM's style) when more remain. */
export function armPage<T>(all: T[], url: URL): { value: T[]; nextLink?: string } {
  const start = Number(url.searchParams.get("$skiptoken") ?? 0);
  const from = Number.isInteger(start) && start >= 0 ? start : 0;
  const value = all.slice(from, from + ARM_PAGE_SIZE);
  if (from + ARM_PAGE_SIZE >= all.length) return { value };
  const next = new URL(url.href);
  next.searchParams.set("$skiptoken", String(from + ARM_PAGE_SIZE));
  return { value, nextLink: next.href };
}

const expanded = (q: URLSearchParams) => (q.get("$expand") ?? "").toLowerCase() === "instanceview";
const G = "(?:resourceGroups|resourcegroups)"; // as ARM, resource group segments in either casing
const PROVIDER = "providers/Microsoft\\.Compute";

/** The route for a request, with the RBAC action and scope ARM checks for it. */
function route(world: AzureWorld, method: string, url: URL): Route | undefined {
  const p = url.pathname.replace(/\/+$/, "");
  let m: RegExpExecArray | null;
  const ok = (json: unknown): JsonReply => [200, json];
  if (method === "GET" && p === "/subscriptions")
    return {
      action: A.subscriptions,
      scope: "/subscriptions",
      run: () =>
        ok(
          armPage(
            world.subscriptions().map((s) => ({
              id: `/subscriptions/${s}`,
              subscriptionId: s,
              displayName: `sandbox ${s.slice(0, 8)}`,
              state: "Enabled",
              subscriptionPolicies: { locationPlacementId: "Public_2014-09-01", quotaId: "PayAsYouGo_2014-09-01", spendingLimit: "Off" }, // prettier-ignore
              authorizationSource: "RoleBased",
            })),
            url,
          ),
        ),
    };
  if ((m = new RegExp(`^/subscriptions/([^/]+)(?:/${G}/([^/]+))?/${PROVIDER}/virtualMachines$`, "i").exec(p))) {
    const [, sub, rg] = m;
    if (method !== "GET") return undefined;
    return {
      action: A.vmRead,
      scope: rg ? `/subscriptions/${sub}/resourceGroups/${rg}` : `/subscriptions/${sub}`,
      run: (q) => {
        const statusOnly = (q.get("statusOnly") ?? "").toLowerCase() === "true";
        return ok(
          armPage(
            world.list(sub, rg).map((v) => vmJson(v, statusOnly || expanded(q))),
            url,
          ),
        );
      },
    };
  }
  if ((m = new RegExp(`^/subscriptions/([^/]+)/${PROVIDER}/virtualMachineScaleSets$`, "i").exec(p))) {
    const sub = m[1];
    if (method !== "GET") return undefined;
    return {
      action: A.ssRead,
      scope: `/subscriptions/${sub}`,
      run: () =>
        ok(
          armPage(
            world.scaleSets(sub).map((s) => scaleSetJson(sub, s)),
            url,
          ),
        ),
    };
  }
  const ssBase = `^/subscriptions/([^/]+)/${G}/([^/]+)/${PROVIDER}/virtualMachineScaleSets/([^/]+)/virtualMachines`;
  if ((m = new RegExp(`${ssBase}$`, "i").exec(p))) {
    const [, sub, rg, ss] = m;
    if (method !== "GET") return undefined;
    return {
      action: A.ssVmRead,
      scope: p.replace(/\/virtualMachines$/i, ""),
      run: (q) => {
        const set = world.scaleSets(sub).find((s) => s.resourceGroup.toLowerCase() === rg.toLowerCase() && s.name.toLowerCase() === ss.toLowerCase()); // prettier-ignore
        if (!set) throw new AzureApiError(404, "ResourceNotFound", `The Resource 'Microsoft.Compute/virtualMachineScaleSets/${ss}' under resource group '${rg}' was not found.`); // prettier-ignore
        return ok(
          armPage(
            set.vms.map((v) => vmJson(v, expanded(q))),
            url,
          ),
        );
      },
    };
  }
  if ((m = new RegExp(`${ssBase}/([^/]+)(/runCommands/([^/]+))?$`, "i").exec(p))) {
    const [, sub, rg, ss, id, rcPath, rcName] = m;
    const vm = () => world.getScaleSetVm(sub, rg, ss, id);
    if (!rcPath)
      return method === "GET" ? { action: A.ssVmRead, scope: p, run: (q) => ok(vmJson(vm(), expanded(q))) } : undefined;
    return runCommandRoute(world, method, A.ssRc, p, vm, rcName);
  }
  const vmBase = `^/subscriptions/([^/]+)/${G}/([^/]+)/${PROVIDER}/virtualMachines/([^/]+)`;
  if ((m = new RegExp(`${vmBase}(/instanceView|/runCommands/([^/]+))?$`, "i").exec(p))) {
    const [, sub, rg, name, rest, rcName] = m;
    const vm = () => world.get(sub, rg, name);
    const scope = p.replace(/\/(instanceView|runCommands\/[^/]+)$/i, "");
    if (!rest)
      return method === "GET" ? { action: A.vmRead, scope, run: (q) => ok(vmJson(vm(), expanded(q))) } : undefined;
    if (rest.toLowerCase() === "/instanceview")
      return method === "GET" ? { action: A.vmRead, scope, run: () => ok(instanceViewJson(vm())) } : undefined;
    return runCommandRoute(world, method, A.rc, p, vm, rcName);
  }
  return undefined;
}

function runCommandRoute(
  world: AzureWorld,
  method: string,
  actions: string,
  scope: string,
  vm: () => AzureVm,
  name: string,
): Route | undefined {
  if (method === "PUT")
    return {
      action: `${actions}/write`,
      scope,
      run: async (_q, body) => {
        const target = vm();
        return [200, runCommandJson(target, await world.runCommand(target, name, body), true)];
      },
    };
  if (method === "GET")
    return {
      action: `${actions}/read`,
      scope,
      run: (q) => {
        const target = vm();
        return [200, runCommandJson(target, world.getRunCommand(target, name), expanded(q))];
      },
    };
  if (method === "DELETE")
    return {
      action: `${actions}/delete`,
      scope,
      run: () => (world.deleteRunCommand(vm(), name) ? [200, undefined] : [204, undefined]),
    };
  return undefined;
}

const armError = (status: number, code: string, message: string): JsonReply => [status, { error: { code, message } }];

/**
 * The fake ARM's request handler: bearer tokens the fake Entra ID issued (for this endpoint or Azure's
 * management audience), the routes of the contract, RBAC actions checked against the restriction and logged.
 */
export function armHandler(opts: { world: AzureWorld; issuer: GcpIssuer; audiences: () => string[] }) {
  const calls: AzureApiCall[] = [];
  let allowed: ReadonlySet<string> | undefined;
  const controls: FakeArmControls = {
    calls,
    restrict: (actions) => (allowed = actions && new Set(actions)),
  };
  async function handle(req: http.IncomingMessage, raw: string): Promise<JsonReply> {
    const url = new URL(req.url ?? "/", opts.audiences()[0]);
    const method = req.method ?? "GET";
    const r = route(opts.world, method, url);
    if (!r) return armError(404, "InvalidResourceType", `The resource type could not be found: ${method} ${url.pathname}`); // prettier-ignore
    const record = (status: number) => calls.push({ method, path: url.pathname, action: r.action, status });
    const bearer = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? "")?.[1];
    const claims: AccessTokenClaims | undefined = bearer
      ? verifyAccessToken(bearer, opts.issuer, opts.audiences())
      : undefined;
    if (!claims) {
      record(401);
      return [
        401,
        { error: { code: bearer ? "InvalidAuthenticationToken" : "AuthenticationFailed", message: bearer ? "The access token is invalid." : "Authentication failed. The 'Authorization' header is missing." } }, // prettier-ignore
        { "www-authenticate": `Bearer authorization_uri="https://login.windows.net/", error="invalid_token"` },
      ];
    }
    if (allowed && !allowed.has(r.action)) {
      record(403);
      return armError(403, "AuthorizationFailed", `The client '${claims.appid}' with object id '${claims.oid}' does not have authorization to perform action '${r.action}' over scope '${r.scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.`); // prettier-ignore
    }
    try {
      const body = raw ? JSON.parse(raw) : {};
      const out = await r.run(url.searchParams, body);
      record(out[0]);
      return out;
    } catch (err) {
      const e = err instanceof AzureApiError ? err : new AzureApiError(400, "BadRequest", (err as Error).message);
      record(e.status);
      return armError(e.status, e.code, e.message);
    }
  }
  return { handle, controls };
}
