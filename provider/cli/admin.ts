import * as fs from "fs";
import { Command, Option } from "commander";
import { stringify } from "yaml";
import { BUILTIN_INSTALLERS, KINDS } from "../model";
import { answerError, request, RuntimeTarget } from "../http/client";
import {
  ADMIN_TOKEN_HINT,
  parseServerUrl,
  RUNTIME_CERTIFICATE_HINT,
  SettingSource,
  TargetSources,
} from "../http/connect-errors";
import { formatProblem, formatWarning, validateFiles } from "./validate";
import { INSTANCE_ID_LABEL, nodeInstance } from "../clouds";

/** Adds the options that say which runtime to talk to. */
export function withTarget(cmd: Command): Command {
  return cmd
    .option("--server <url>", "runtime URL (default $DISCOVERY_SERVER)")
    .option(
      "--admin-token-file <file>",
      "the runtime's admin token file: its config's admin_token_file, ./data/admin.token next to the config by " +
        "default; discovery serve prints the path (default $DISCOVERY_ADMIN_TOKEN)",
    )
    .option("--ca-cert <file>", "CA certificate for the runtime's TLS (or set NODE_EXTRA_CA_CERTS)");
}

/** The options that name the runtime, as `apply`, `get`, `rm` and `enroll` take them. */
export type TargetOptions = { server?: string; adminTokenFile?: string; caCert?: string };

/** Where the CA that verifies the runtime comes from: `--ca-cert`, NODE_EXTRA_CA_CERTS, or the system's CAs. */
export function caSource(caCert: string | undefined): SettingSource {
  const fix = (how: string) => `${how}: ${RUNTIME_CERTIFICATE_HINT}`;
  if (caCert) return { from: `--ca-cert ${caCert}`, fix: fix("pass --ca-cert with the runtime's certificate") };
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (extra)
    return {
      from: `this machine's CAs or NODE_EXTRA_CA_CERTS (${extra})`,
      fix: fix("pass --ca-cert with the runtime's certificate, or set NODE_EXTRA_CA_CERTS to it"),
    };
  return {
    from: "this machine's CAs",
    fix: fix("pass --ca-cert with the runtime's certificate, or set NODE_EXTRA_CA_CERTS to it"),
  };
}

/** The admin token in `file`; a missing or empty file is an error naming the flag and where the token is. */
function readAdminTokenFile(file: string): string {
  let token: string;
  try {
    token = fs.readFileSync(file, "utf8").trim();
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message;
    throw new Error(`--admin-token-file ${file}: ${reason}; name the runtime's admin_token_file: ${ADMIN_TOKEN_HINT}`);
  }
  if (!token)
    throw new Error(
      `--admin-token-file ${file}: the file is empty; name the runtime's admin_token_file: ${ADMIN_TOKEN_HINT}`,
    );
  return token;
}

/**
 * The runtime and admin token from the options or the environment, each with its source so a failed call says
 * what to change; errors say which is missing.
 */
export function target(opts: TargetOptions, admin = true): RuntimeTarget {
  const sources: TargetSources = { ca: caSource(opts.caCert) };
  const server = opts.server || process.env.DISCOVERY_SERVER;
  if (!server) throw new Error("no runtime: pass --server URL or set DISCOVERY_SERVER");
  sources.server = opts.server
    ? { from: "--server", fix: "pass --server with the runtime's public_addr" }
    : { from: "DISCOVERY_SERVER", fix: "set DISCOVERY_SERVER to the runtime's public_addr, or pass --server" };
  let adminToken: string | undefined;
  if (opts.adminTokenFile) {
    adminToken = readAdminTokenFile(opts.adminTokenFile);
    sources.adminToken = {
      from: `--admin-token-file ${opts.adminTokenFile}`,
      fix: `pass --admin-token-file with the runtime's admin_token_file: ${ADMIN_TOKEN_HINT}`,
    };
  } else if (process.env.DISCOVERY_ADMIN_TOKEN) {
    adminToken = process.env.DISCOVERY_ADMIN_TOKEN;
    sources.adminToken = {
      from: "DISCOVERY_ADMIN_TOKEN",
      fix:
        "set DISCOVERY_ADMIN_TOKEN to the content of the runtime's admin_token_file, or pass --admin-token-file " +
        `with that file: ${ADMIN_TOKEN_HINT}`,
    };
  }
  if (admin && !adminToken)
    throw new Error("no admin token: pass --admin-token-file FILE or set DISCOVERY_ADMIN_TOKEN");
  parseServerUrl(server, sources);
  return { server, adminToken, caFile: opts.caCert, sources };
}

const ALIASES: Record<string, string> = {
  tokens: "token",
  installers: "installer",
  discovery_configs: "discovery_config",
  "discovery-config": "discovery_config",
  node: "nodes",
  enrollment: "enrollments",
  task: "tasks",
  events: "audit",
};

/** Lists served at `/v1/<name>` rather than as resource documents. */
const LISTS = ["nodes", "enrollments", "tasks", "audit"];
/** The key of each list's array in its answer. */
const LIST_KEYS: Record<string, string> = { audit: "events" };

type Row = Record<string, string>;

/** Prints rows as an aligned table with upper-case headers. */
export function table(rows: Row[], columns: string[]): string {
  const width = columns.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(width[i]))
      .join("  ")
      .trimEnd();
  return (
    [line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => r[c] ?? "")))].join("\n") +
    "\n"
  );
}

function nodeRows(
  nodes: {
    name: string;
    labels: Record<string, string>;
    join_method: string;
    joined_at: string;
    state?: string;
    stale_since?: string;
  }[],
): Row[] {
  return nodes.map((n) => ({
    name: n.name,
    method: n.join_method,
    account: nodeInstance(n.labels)?.account ?? "",
    region: nodeInstance(n.labels)?.region ?? "",
    instance: n.labels[INSTANCE_ID_LABEL] ?? "",
    joined: n.joined_at,
    state: n.state ?? "active",
    since: n.stale_since ?? "",
  }));
}

function taskRows(
  tasks: { name: string; cloud: string; issue_type: string; scope: string; instances: unknown[]; last_seen: string }[],
): Row[] {
  return tasks.map((t) => ({
    name: t.name,
    cloud: t.cloud,
    issue: t.issue_type,
    scope: t.scope,
    instances: String(t.instances.length),
    last_seen: t.last_seen,
  }));
}

/** Audit events as table rows, the reason cut to one readable line. */
function auditRows(
  events: { at: string; type: string; node?: string; code?: string; source?: string; reason?: string }[],
): Row[] {
  return events.map((e) => ({
    at: e.at,
    type: e.type,
    node: e.node ?? "",
    code: e.code ?? "",
    source: e.source ?? "",
    reason: (e.reason ?? "").replace(/\s+/g, " ").slice(0, 100),
  }));
}

/** A discovery_config's status in one cell: state, counts, and the error when there is one. */
function statusCell(st: Record<string, unknown> | undefined): string {
  if (!st) return " status=none (no runtime of this group has scanned it)";
  const err = st.error_message ? ` error="${String(st.error_message).slice(0, 120)}"` : "";
  return ` status=${st.state} found=${st.found} enrolled=${st.enrolled} failed=${st.failed}${err}`;
}

function resourceRows(
  docs: { kind: string; metadata: { name: string }; spec: Record<string, unknown>; status?: Record<string, unknown> }[],
): Row[] {
  return docs.map((d) => {
    const s = d.spec;
    let detail = "";
    if (d.kind === "token") detail = `${s.join_method} roles=${(s.roles as string[]).join(",")}`;
    else if (d.kind === "discovery_config")
      detail =
        `group=${s.discovery_group} aws=${(s.aws as unknown[]).length} gcp=${(s.gcp as unknown[]).length} ` +
        `azure=${(s.azure as unknown[]).length}${statusCell(d.status)}`;
    else if (d.kind === "installer") detail = `${String(s.script).length} bytes`;
    return { name: d.metadata.name, kind: d.kind, detail };
  });
}

/** `discovery apply`, `get` and `rm`: the admin calls of SPEC §2. */
export function adminCommands(): Command[] {
  const apply = withTarget(new Command("apply"))
    .description("validate documents locally, then store them in the runtime (all or nothing)")
    .requiredOption("-f, --file <path>", "a file of documents; repeat for several", (v: string, p: string[] = []) => [
      ...p,
      v,
    ])
    .action(async (opts) => {
      const { problems, warnings, runtimeConfigs } = validateFiles(opts.file);
      for (const w of warnings) process.stderr.write(formatWarning(w) + "\n");
      for (const f of runtimeConfigs)
        problems.push({
          file: f,
          line: 1,
          col: 1,
          path: ["file"],
          message:
            "is a runtime config (for discovery serve --config); apply token, installer or discovery_config documents",
        });
      if (problems.length) {
        for (const p of problems) process.stderr.write(formatProblem(p) + "\n");
        throw new Error(`${problems.length} problem(s) found; nothing was applied`);
      }
      const text = (opts.file as string[]).map((f) => fs.readFileSync(f, "utf8")).join("\n---\n");
      const t = target(opts);
      const a = await request(t, "PUT", "/v1/resources", text, "application/yaml");
      if (a.status !== 200) throw new Error(answerError(a, t));
      for (const r of (a.body as { resources: { kind: string; name: string; revision: number }[] }).resources)
        process.stdout.write(
          `${r.kind}/${r.name} ${r.revision === 1 ? "created" : `updated (revision ${r.revision})`}\n`,
        );
    });

  const get = withTarget(new Command("get"))
    .description("list resources, nodes, enrollments, open tasks or recent audit events; or show one resource or node")
    .argument("<kind>", `one of ${Object.keys(KINDS).join(", ")}, ${LISTS.join(", ")}`)
    .argument("[name]")
    .addOption(new Option("-o, --output <format>", "output format").choices(["table", "yaml", "json"]).default("table"))
    .action(async (kindArg: string, name: string | undefined, opts) => {
      const kind = ALIASES[kindArg] ?? kindArg;
      const t = target(opts);
      const print = (value: unknown, rows: () => string) =>
        process.stdout.write(
          opts.output === "json"
            ? JSON.stringify(value, null, 2) + "\n"
            : opts.output === "yaml"
              ? stringify(value)
              : rows(),
        );
      if (kind === "nodes" && name) {
        // One node: every field, labels and principals included (the list's table shows a summary).
        const a = await request(t, "GET", `/v1/nodes/${encodeURIComponent(name)}`);
        if (a.status !== 200) throw new Error(answerError(a, t));
        print(a.body, () => stringify(a.body));
        return;
      }
      if (LISTS.includes(kind)) {
        const a = await request(t, "GET", `/v1/${kind}`);
        if (a.status !== 200) throw new Error(answerError(a, t));
        const list = (a.body as Record<string, unknown[]>)[LIST_KEYS[kind] ?? kind] as never[];
        print(list, () =>
          kind === "nodes"
            ? table(nodeRows(list), ["name", "method", "account", "region", "instance", "joined", "state", "since"])
            : kind === "tasks"
              ? table(taskRows(list), ["name", "cloud", "issue", "scope", "instances", "last_seen"])
              : kind === "audit"
                ? table(auditRows(list), ["at", "type", "node", "code", "source", "reason"])
                : table(list, ["cloud", "account", "region", "instanceId", "status", "reason"]),
        );
        return;
      }
      if (!(kind in KINDS))
        throw new Error(`unknown kind "${kindArg}"; use one of ${Object.keys(KINDS).join(", ")}, ${LISTS.join(", ")}`);
      const path = name ? `/v1/resources/${kind}/${encodeURIComponent(name)}` : `/v1/resources/${kind}`;
      const a = await request(t, "GET", path);
      if (a.status !== 200) throw new Error(answerError(a, t));
      const docs = name ? [a.body] : (a.body as { resources: unknown[] }).resources;
      print(name ? a.body : docs, () => {
        const rows = resourceRows(docs as never[]);
        // The built-in installers are served by every runtime without being stored; the table shows them too.
        if (kind === "installer" && !name)
          for (const [i, builtin] of BUILTIN_INSTALLERS.entries())
            if (!rows.some((r) => r.name === builtin))
              rows.push({ name: builtin, kind, detail: `built-in (${i === 0 ? "agent" : "agentless"} mode)` });
        return table(rows, ["name", "kind", "detail"]);
      });
    });

  const rm = withTarget(new Command("rm"))
    .description("delete a resource, or a node record (`rm node NAME`: its instance may join again), from the runtime")
    .argument("<kind>")
    .argument("<name>")
    .action(async (kindArg: string, name: string, opts) => {
      const kind = ALIASES[kindArg] ?? kindArg;
      const route = kind === "nodes" ? "/v1/nodes" : `/v1/resources/${kind}`;
      const t = target(opts);
      const a = await request(t, "DELETE", `${route}/${encodeURIComponent(name)}`);
      if (a.status !== 200) throw new Error(answerError(a, t));
      const d = (a.body as { deleted: { kind: string; name: string } }).deleted;
      process.stdout.write(`${d.kind}/${d.name} deleted\n`);
    });
  return [apply, get, rm];
}
