import type * as dynamic from "@pulumi/pulumi/dynamic";
import { resolveServer, sameServer, UNKNOWN } from "./runtime-target";

/** Inputs of an Enrollment: matchers in camelCase (as DiscoveryConfig takes them) and the runtime connection. */
export interface EnrollmentInputs {
  aws?: unknown[];
  gcp?: unknown[];
  azure?: unknown[];
  server?: string;
  /** `server` came from DISCOVERY_SERVER at create: later passes use it, and refuse while the variable names another. */
  __serverFromEnvironment?: boolean;
  adminToken?: string;
  /** PEM of a CA (or the runtime's self-signed certificate) to trust for the runtime's TLS. */
  caCert?: string;
  joinTimeoutSeconds?: number;
  /**
   * Computed by check: every node name the matchers select, with its cloud, account and region. It does not depend
   * on who has joined, so the state's copy from the last update stays true: a preview shows exactly the instances
   * that appeared since (`+ name`) and nothing for an unchanged fleet.
   */
  selected?: Record<string, string>;
  /**
   * Computed by check: selected node names that have not joined yet, which make `diff` report an update. The `__`
   * prefix keeps it out of the engine's displayed diff: the last update's copy lists instances it has since enrolled.
   */
  __pending?: string[];
}

/** One instance's outcome, in camelCase. */
export interface EnrollmentInstance {
  cloud: string;
  account: string;
  region: string;
  instanceId: string;
  nodeName: string;
  status: string;
  reason?: string;
}

// Absolute paths, captured by value when Pulumi serializes the provider (see resource-document.ts).
const MODEL_MODULE = require.resolve("../model");
const PASS_MODULE = require.resolve("../enroll/pass");
const CLOUDS_MODULE = require.resolve("../clouds");
const HTTP_BACKEND_MODULE = require.resolve("../enroll/http-backend");
const HTTP_MODULE = require.resolve("../http/client");
const PIN_MODULE = require.resolve("../runtime/certificate-pin");

function hasUnknown(v: unknown): boolean {
  if (v === UNKNOWN) return true;
  if (Array.isArray(v)) return v.some(hasUnknown);
  return v !== null && typeof v === "object" && Object.values(v).some(hasUnknown);
}

/** The matchers of every cloud of model.CLOUDS, `[]` where none are given. */
function cloudInputs(inputs: EnrollmentInputs): Record<string, unknown[]> {
  const { CLOUDS }: typeof import("../model") = require(MODEL_MODULE);
  return Object.fromEntries(CLOUDS.map((c) => [c, inputs[c] ?? []]));
}

/** The matchers validated by the model (defaults applied), or the problems on camelCase properties. */
function matchers(inputs: EnrollmentInputs) {
  const m: typeof import("../model") = require(MODEL_MODULE);
  const spec = { discoveryGroup: "enrollment", ...cloudInputs(inputs) };
  const { resource, problems } = m.validateDocument(m.fromSdkArgs("discovery_config", { name: "enrollment", spec }));
  // No property: the engine then prints the reason alone, `aws[0].regions: ...`.
  const failures = problems.map((p) => ({ property: "", reason: m.sdkProblemText(p, { specAtTop: true }) }));
  return { spec: resource?.kind === "discovery_config" ? resource.spec : undefined, failures };
}

function target(inputs: EnrollmentInputs) {
  const server = inputs.server || process.env.DISCOVERY_SERVER;
  const adminToken = inputs.adminToken || process.env.DISCOVERY_ADMIN_TOKEN;
  if (!server || !adminToken)
    throw new Error(
      "no runtime: set server and adminToken, stack config discovery:server/adminToken, or DISCOVERY_SERVER/_ADMIN_TOKEN",
    );
  return { server, adminToken, ca: inputs.caCert || undefined };
}

/** How instances reach the runtime: its host:port and the pin of the TLS key this process verified. */
function endpoint(server: string, ca?: string) {
  const { serverEndpoint }: typeof import("../runtime/certificate-pin") = require(PIN_MODULE);
  return serverEndpoint(server, ca);
}

/** Node names the matchers select (with where they are), and those not in the inventory yet. */
async function selectedNodes(
  inputs: EnrollmentInputs,
): Promise<{ selected: Record<string, string>; pending: string[] }> {
  const { spec } = matchers(inputs);
  if (!spec) return { selected: {}, pending: [] };
  const { cloudEnrollment }: typeof import("../clouds") = require(CLOUDS_MODULE);
  const { enrolledNodes, isEnrolled }: typeof import("../enroll/pass") = require(PASS_MODULE);
  const { CLOUDS }: typeof import("../model") = require(MODEL_MODULE);
  const http: typeof import("../http/client") = require(HTTP_MODULE);
  const t = target(inputs);
  const nodes = await http.request(t, "GET", "/v1/nodes");
  if (nodes.status !== 200) throw new Error(`GET /v1/nodes: ${http.answerError(nodes)}`);
  // Joined as the pass sees it: by node name, or by the account and instance its cloud's labels name.
  const joined = enrolledNodes(
    (nodes.body as { nodes: { name: string; labels?: Record<string, string> }[] }).nodes.map((n) => ({
      name: n.name,
      labels: n.labels ?? {},
    })),
  );
  const runtime = await endpoint(t.server, t.ca);
  const found: [string, string, boolean][] = [];
  for (const cloud of CLOUDS) {
    const impl = cloudEnrollment(cloud);
    for (const m of (spec[cloud] as unknown[]) ?? []) {
      if (!impl) continue;
      for (const c of (await impl.fetch(m, { runtime })).candidates)
        found.push([c.nodeName, `${c.cloud} ${c.account}/${c.region}`, isEnrolled(joined, c)]);
    }
  }
  found.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const selected = Object.fromEntries(found.map(([name, where]) => [name, where]));
  const pending = [...new Set(found.filter(([, , done]) => !done).map(([name]) => name))];
  return { selected, pending };
}

async function enroll(inputs: EnrollmentInputs) {
  const { spec } = matchers(inputs);
  if (!spec) throw new Error("the matchers are invalid");
  const { runEnrollmentPass }: typeof import("../enroll/pass") = require(PASS_MODULE);
  const { httpBackend }: typeof import("../enroll/http-backend") = require(HTTP_BACKEND_MODULE);
  const t = target(inputs);
  const result = await runEnrollmentPass({
    matchers: spec,
    backend: httpBackend(t),
    runtime: await endpoint(t.server, t.ca),
    joinTimeoutMs: (inputs.joinTimeoutSeconds ?? 120) * 1000,
  });
  const instances: EnrollmentInstance[] = result.instances.map((i) => ({
    cloud: i.cloud,
    account: i.account,
    region: i.region,
    instanceId: i.instance_id,
    nodeName: i.node_name,
    status: i.status,
    ...(i.reason
      ? { reason: [i.failure_class, i.reason, i.remediation && `fix: ${i.remediation}`].filter(Boolean).join("; ") }
      : {}),
  }));
  // In node name order, whatever order the clouds listed them in: an unchanged fleet gives the same output.
  instances.sort((a, b) => (a.nodeName < b.nodeName ? -1 : a.nodeName > b.nodeName ? 1 : 0));
  const count = (s: string) => instances.filter((i) => i.status === s).length;
  return {
    ...inputs,
    __pending: [],
    instances,
    enrolled: count("enrolled") + count("already_enrolled"),
    failed: count("failed"),
    commandsSent: result.commandsSent,
  };
}

/**
 * Enrollment: on create and update, one enrollment pass over the matchers through the runtime; `check` lists the
 * instances that are not enrolled yet as `pending`, so `pulumi preview` shows what an update would enroll.
 */
export const enrollmentProvider: dynamic.ResourceProvider = {
  async check(olds: EnrollmentInputs, news: EnrollmentInputs) {
    // The runtime is recorded as the other resources record it: one from DISCOVERY_SERVER stays in the state, and
    // a later up or preview refuses while the variable names another runtime instead of enrolling through it.
    if (news.server !== UNKNOWN) {
      const r = resolveServer("this Enrollment", olds, news);
      if ("problem" in r) return { inputs: news, failures: [{ property: "", reason: `server: ${r.problem}` }] };
      if (r.fromEnvironment) news = { ...news, server: r.server, __serverFromEnvironment: true };
    }
    if (hasUnknown(news)) return { inputs: news };
    const { failures } = matchers(news);
    if (failures.length) return { inputs: news, failures };
    // A state written before `selected` existed carries `pending`, which would show as a change forever.
    const { pending: _legacy, ...rest } = news as EnrollmentInputs & { pending?: unknown };
    try {
      const { selected, pending } = await selectedNodes(rest);
      return { inputs: { ...rest, selected, __pending: pending } };
    } catch {
      // The runtime or the cloud may be unreachable at preview; the update will say why.
      return { inputs: { ...rest, selected: olds.selected ?? {}, __pending: [] } };
    }
  },
  async diff(_id: string, olds: EnrollmentInputs, news: EnrollmentInputs) {
    // Key order is not kept through the state (it comes back sorted), so compare canonical JSON.
    const { canonicalJson }: typeof import("../model") = require(MODEL_MODULE);
    const strip = (v: EnrollmentInputs) => canonicalJson(cloudInputs(v));
    const changes =
      strip(olds) !== strip(news) || (news.__pending?.length ?? 0) > 0 || !sameServer(olds.server, news.server);
    return { changes };
  },
  async create(inputs: EnrollmentInputs) {
    const outs = await enroll(inputs);
    return { id: `enrollment-${Date.now().toString(36)}`, outs };
  },
  async update(_id: string, _olds: EnrollmentInputs, news: EnrollmentInputs) {
    return { outs: await enroll(news) };
  },
  async read(id: string, props: EnrollmentInputs) {
    return { id, props };
  },
  async delete() {
    // Enrolled nodes stay enrolled: removing the resource stops future passes, it does not unjoin machines.
  },
};
