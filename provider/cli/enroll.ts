import { Command } from "commander";
import { httpBackend } from "../enroll/http-backend";
import { InstanceResult, ProgressEvent, runEnrollmentPass } from "../enroll/pass";
import type { StaleReport } from "../enroll/stale";
import { Cloud, CLOUDS, parseDuration } from "../model";
import { serverEndpoint } from "../runtime/certificate-pin";
import { table, target, TargetOptions, withTarget } from "./admin";
import { formatWarning } from "./validate";
import { EnrollInputError, EnrollInputs, loadEnrollInputs } from "./enroll-inputs";
import { answerError, request, RuntimeTarget, targetCa } from "../http/client";
import { runtimeOf } from "../http/runtime-of";

/** A reason with its failure class and fix, as one line a person can act on. */
function reasonText(r: InstanceResult): string | undefined {
  if (!r.reason) return undefined;
  const parts = [r.failure_class ? `${r.failure_class}: ${r.reason}` : r.reason];
  if (r.exit_code !== undefined) parts.push(`exit code ${r.exit_code}`);
  if (r.remediation) parts.push(`fix: ${r.remediation}`);
  return parts.join("; ");
}

function progressLine(e: ProgressEvent): string {
  if (e.type === "scope") {
    const s = e.scope;
    const what = s.error ? `FAILED ${s.error.code}: ${s.error.message}` : `${s.instances} instance(s)`;
    return `scanned ${s.cloud} ${s.account}/${s.region}: ${what}`;
  }
  if (e.type === "install") return `sending install commands to ${e.instances} ${e.cloud} instance(s)`;
  return `joined: ${e.node} (${e.joined} joined, ${e.waiting} still waiting)`;
}

/** `discovery enroll --once` exit code when the pass ran but at least one instance failed (1 is an error). */
export const ENROLL_FAILED_EXIT = 3;

/** The runtime the options name, and how instances reach it: the pin read over a verified connection. */
async function optionsRuntime(opts: TargetOptions) {
  const t = target(opts);
  return { target: t, endpoint: await serverEndpoint(t.server, targetCa(t), t.sources) };
}

/** Where the pass records and how instances reach the runtime: the runtime config's, else the options'. */
async function runtimeFor(inputs: EnrollInputs, opts: TargetOptions) {
  const found = inputs.runtime ? runtimeOf(inputs.runtime) : await optionsRuntime(opts);
  // Before any cloud is scanned: an unreachable runtime or a refused admin token is said at once, with its fix.
  const a = await request(found.target, "GET", "/v1/cas");
  if (a.status !== 200) throw new Error(answerError(a, found.target));
  return found;
}

/**
 * The cloud and instance id of a `--reinstall` value: `cloud:ID`, or a bare ID of the one cloud the config's
 * matchers name.
 */
export function reinstallTarget(value: string, matchers: EnrollInputs["matchers"]): { cloud: Cloud; id: string } {
  const m = /^([a-z]+):(.+)$/.exec(value);
  if (m && (CLOUDS as readonly string[]).includes(m[1])) return { cloud: m[1] as Cloud, id: m[2] };
  const named = CLOUDS.filter((c) => (matchers[c] ?? []).length > 0);
  if (named.length === 1) return { cloud: named[0], id: value };
  throw new EnrollInputError(
    `--reinstall ${value}: the config has matchers for ${named.join(" and ") || "no cloud"}; ` +
      `name the cloud, e.g. --reinstall ${named[0] ?? "aws"}:${value}`,
  );
}

/** Forgets each instance in the runtime so the pass that follows installs on it again. */
async function forget(t: RuntimeTarget, values: string[], matchers: EnrollInputs["matchers"]): Promise<void> {
  const targets = values.map((v) => reinstallTarget(v, matchers));
  for (const { cloud, id } of targets) {
    const a = await request(t, "POST", "/v1/enrollments/reinstall", { cloud, instance_id: id });
    if (a.status !== 200) throw new Error(`--reinstall ${id}: ${answerError(a, t)}`);
    const r = a.body as { nodes_removed: string[]; enrollments_cleared: number };
    process.stderr.write(
      `reinstall ${id}: node ${r.nodes_removed.join(", ") || "(none)"} removed, ${r.enrollments_cleared} enrollment record(s) cleared\n`,
    );
  }
}

type EnrollOptions = TargetOptions & {
  config: string[];
  once?: boolean;
  json?: boolean;
  joinTimeout: string;
  reinstall?: string[];
  retryFailed?: boolean;
};

/** `discovery enroll --config FILE [--config FILE ...] --once [--json] [--reinstall ID]`: enrollment passes (SPEC §2). */
export function enrollCommand(): Command {
  const repeat = (v: string, p: string[] = []) => [...p, v];
  return withTarget(new Command("enroll"))
    .description("discover instances the files' matchers select and enroll them through the runtime")
    .requiredOption(
      "--config <file>",
      "runtime config, teleport.yaml with discovery_service, or discovery_config documents; repeat to combine",
      repeat,
    )
    .option(
      "--once",
      `one pass, then exit: 0, or ${ENROLL_FAILED_EXIT} when any instance failed (otherwise a pass every poll_interval)`,
    )
    .option("--json", 'print {"instances":[...]} on stdout')
    .option("--join-timeout <seconds>", "how long an installed instance may take to join", "120")
    .option(
      "--retry-failed",
      "install on instances that failed before now, instead of waiting out their backoff (the first pass only)",
    )
    .option(
      "--reinstall <[cloud:]instance-id>",
      "forget this instance's enrollment and node first, so the pass installs on it again (cloud: aws, gcp or azure; needed when the config names several); implies --once",
      repeat,
    )
    .action(async (opts: EnrollOptions) => {
      let inputs: EnrollInputs;
      try {
        inputs = loadEnrollInputs(opts.config);
      } catch (err) {
        if (!(err instanceof EnrollInputError)) throw err;
        process.stderr.write(err.message + "\n");
        process.exitCode = 1;
        return;
      }
      for (const w of inputs.warnings) process.stderr.write(formatWarning(w) + "\n");
      const { target: t, endpoint } = await runtimeFor(inputs, opts);
      if (opts.reinstall?.length) {
        try {
          await forget(t, opts.reinstall, inputs.matchers);
        } catch (err) {
          if (!(err instanceof EnrollInputError)) throw err;
          process.stderr.write(err.message + "\n");
          process.exitCode = 1;
          return;
        }
      }
      const tty = process.stderr.isTTY;
      let retryFailed = !!opts.retryFailed;
      for (;;) {
        const result = await runEnrollmentPass({
          matchers: inputs.matchers,
          backend: httpBackend(t),
          runtime: endpoint,
          joinTimeoutMs: Number(opts.joinTimeout) * 1000,
          staleNodeGraceMs: parseDuration(inputs.staleNodeGrace),
          retryFailed,
          onProgress: tty || !opts.json ? (e) => process.stderr.write(progressLine(e) + "\n") : undefined,
        });
        // Without progress lines (--json to a pipe), a scope that could not be scanned is still said on stderr.
        if (!(tty || !opts.json))
          for (const s of result.scopes.filter((x) => x.error))
            process.stderr.write(progressLine({ type: "scope", scope: s }) + "\n");
        for (const line of nodeLines(result.nodes)) process.stderr.write(line + "\n");
        const instances = result.instances.map((r) => ({
          cloud: r.cloud,
          account: r.account,
          region: r.region,
          instance_id: r.instance_id,
          node_name: r.node_name,
          status: r.status,
          ...(r.reason ? { reason: reasonText(r) } : {}),
        }));
        if (opts.json) process.stdout.write(JSON.stringify({ instances }) + "\n");
        else {
          const rows = instances.map((i) => ({ ...i, reason: i.reason ?? "" }));
          process.stdout.write(table(rows, ["instance_id", "account", "region", "status", "reason"]));
          const failedScopes = result.scopes.filter((s) => s.error).length;
          process.stdout.write(
            `${result.scopes.length} scope(s) scanned (${failedScopes} failed), ${instances.length} instance(s), ${result.commandsSent} command(s) sent, ` +
              `${instances.filter((i) => i.status === "enrolled").length} enrolled\n`,
          );
        }
        if (opts.once || opts.reinstall?.length) {
          // A pipeline can tell "ran, but some instances failed" (their reasons are in the output) from an error.
          if (instances.some((i) => i.status === "failed")) process.exitCode = ENROLL_FAILED_EXIT;
          return;
        }
        retryFailed = false;
        await new Promise((r) => setTimeout(r, parseDuration(inputs.pollInterval) ?? 300_000));
      }
    });
}

/** One stderr line per node the stale check changed, and per scope it could not check. */
function nodeLines(r: StaleReport | undefined): string[] {
  if (!r) return [];
  return [
    ...r.staled.map((n) => `node ${n} is stale: its instance is terminated or gone`),
    ...r.activated.map((n) => `node ${n} is active again: its instance exists`),
    ...r.removed.map((n) => `node ${n} removed: stale for longer than the grace period`),
    ...r.unchecked.map(
      (u) => `could not check nodes in ${u.cloud} ${u.account}/${u.region} (left as they were): ${u.error}`,
    ),
  ];
}
