import * as fs from "fs";
import * as path from "path";
import { Command } from "commander";
import "../clouds";
import { httpBackend } from "../enroll/http-backend";
import { InstanceResult, ProgressEvent, runEnrollmentPass } from "../enroll/pass";
import type { RuntimeConfig } from "../runtime/config";
import { describeCertificate } from "../runtime/tls";
import { table } from "./admin";
import { configOrReport } from "./serve";

/** The runtime a config names: its URL, admin token, TLS certificate and public-key pin. */
export function runtimeOf(config: RuntimeConfig) {
  const certFile = config.tls?.certFile ?? path.join(config.dataDir, "tls.crt");
  if (!fs.existsSync(certFile))
    throw new Error(`${certFile} does not exist: start the runtime (discovery serve) first`);
  if (!fs.existsSync(config.adminTokenFile))
    throw new Error(`${config.adminTokenFile} does not exist: start the runtime first`);
  return {
    target: {
      server: config.publicAddr,
      adminToken: fs.readFileSync(config.adminTokenFile, "utf8").trim(),
      caFile: certFile,
    },
    endpoint: {
      proxyAddr: config.publicHostPort,
      caPin: describeCertificate(fs.readFileSync(certFile, "utf8")).publicKeyPin,
    },
  };
}

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

/** `discovery enroll --config FILE --once [--json]`: an enrollment pass over the config's matchers (SPEC §2). */
export function enrollCommand(): Command {
  return new Command("enroll")
    .description("discover instances the config's matchers select and enroll them through the runtime it names")
    .requiredOption("--config <file>", "runtime config (SPEC §3) with a discovery_service section")
    .option("--once", "one pass, then exit (otherwise a pass every poll_interval)")
    .option("--json", 'print {"instances":[...]} on stdout')
    .option("--join-timeout <seconds>", "how long an installed instance may take to join", "120")
    .action(async (opts: { config: string; once?: boolean; json?: boolean; joinTimeout: string }) => {
      const config = configOrReport(opts.config);
      if (!config) return;
      const ds = config.discoveryService;
      if (!ds || !ds.enabled || ds.aws.length + ds.gcp.length + ds.azure.length === 0)
        throw new Error(`${opts.config}: discovery_service has no matchers; add aws, gcp or azure matchers`);
      const { target, endpoint } = runtimeOf(config);
      const tty = process.stderr.isTTY;
      for (;;) {
        const result = await runEnrollmentPass({
          matchers: ds,
          backend: httpBackend(target),
          runtime: endpoint,
          joinTimeoutMs: Number(opts.joinTimeout) * 1000,
          onProgress: tty || !opts.json ? (e) => process.stderr.write(progressLine(e) + "\n") : undefined,
        });
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
        if (opts.once) return;
        const parse = (await import("../model")).parseDuration;
        await new Promise((r) => setTimeout(r, parse(ds.poll_interval) ?? 300_000));
      }
    });
}
