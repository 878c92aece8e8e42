import * as fs from "fs";
import { Command } from "commander";
import type { DeployResult, Operation } from "../pulumi/automation";
import { snakify } from "../model";
import { table, withTarget } from "./admin";

const DESCRIPTIONS: Record<Operation, string> = {
  up: "create, update and delete the runtime's resources to match the documents (Pulumi Automation API)",
  preview: "show what up would change, and with --enroll the instances it would enroll",
  destroy: "remove every resource the stack declared from the runtime",
};

/** Options of up, preview and destroy as commander hands them over. */
interface AutomationOptions {
  config?: string[];
  stack: string;
  stateDir?: string;
  backendUrl?: string;
  passphraseFile?: string;
  pulumi?: string;
  server?: string;
  adminTokenFile?: string;
  caCert?: string;
  enroll?: boolean;
  joinTimeout?: string;
  refresh?: boolean;
  adopt?: boolean;
  json?: boolean;
}

function readAdminToken(file: string): string {
  try {
    return fs.readFileSync(file, "utf8").trim();
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message;
    throw new Error(`--admin-token-file ${file}: ${reason}`);
  }
}

/** What up printed for people on stdout: each enrollment's instances, when there are any. */
function enrollmentText(result: DeployResult): string {
  let out = "";
  for (const e of result.enrollments) {
    if (!e.instances) continue;
    const rows = e.instances.map((i) => ({
      instance_id: i.instanceId,
      account: i.account,
      region: i.region,
      status: i.status,
      reason: i.reason ?? "",
    }));
    out += `enrollment ${e.name}: enrolled: ${e.enrolled ?? 0}, failed: ${e.failed ?? 0}\n`;
    if (rows.length) out += table(rows, ["instance_id", "account", "region", "status", "reason"]);
  }
  return out;
}

function operationCommand(operation: Operation): Command {
  const cmd = new Command(operation)
    .description(DESCRIPTIONS[operation])
    .option(
      "--config <file>",
      "documents (YAML or JSON; teleport.yaml style; a runtime config names the runtime too); repeat for several",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option("--stack <name>", "the stack", "dev")
    .option(
      "--state-dir <dir>",
      "state, workspace and passphrase (default $DISCOVERY_STATE_DIR or ~/.pulumi-discovery)",
    )
    .option("--backend-url <url>", "a Pulumi backend instead of file://<state-dir>/backend")
    .option(
      "--passphrase-file <file>",
      "passphrase of the stack's secrets (default $PULUMI_CONFIG_PASSPHRASE, else <state-dir>/passphrase)",
    )
    .option("--pulumi <path>", "the Pulumi CLI (default pulumi on PATH)")
    .option("--json", "print a JSON summary on stdout");
  withTarget(cmd);
  if (operation !== "destroy")
    cmd
      .option("--enroll", "also enroll what each discovery_config matches: an Enrollment resource per config")
      .option("--join-timeout <seconds>", "with --enroll: how long an installed instance may take to join", "120")
      .option("--refresh", "read the resources back from the runtime first, so drift shows")
      .option(
        "--adopt",
        "take over documents the runtime holds already (applied with discovery apply, or by another stack) " +
          "instead of refusing them",
      );
  return cmd.action(async (opts: AutomationOptions, self: Command) => {
    const files = opts.config ?? [];
    if (operation !== "destroy" && files.length === 0)
      self.error(`error: name the documents: discovery ${operation} --config FILE [--config FILE ...]`);
    const joinTimeout = Number(opts.joinTimeout ?? 120);
    if (!Number.isInteger(joinTimeout) || joinTimeout <= 0)
      self.error(`error: --join-timeout must be a whole number of seconds, not ${opts.joinTimeout}`);
    const { AutomationError, deployDocuments } = await import("../pulumi/automation");
    try {
      const result = await deployDocuments({
        operation,
        config: files,
        stack: opts.stack,
        stateDir: opts.stateDir,
        backendUrl: opts.backendUrl,
        passphraseFile: opts.passphraseFile,
        pulumiPath: opts.pulumi,
        connection: {
          server: opts.server,
          adminToken: opts.adminTokenFile ? readAdminToken(opts.adminTokenFile) : undefined,
          caFile: opts.caCert,
        },
        enroll: opts.enroll,
        joinTimeoutSeconds: joinTimeout,
        refresh: opts.refresh,
        adopt: opts.adopt,
        onProgress: (line) => process.stderr.write(line + "\n"),
      });
      if (opts.json)
        process.stdout.write(JSON.stringify({ result: "succeeded", ...(snakify(result) as object) }) + "\n");
      else process.stdout.write(enrollmentText(result));
    } catch (err) {
      if (!(err instanceof AutomationError)) throw err;
      if (opts.json) {
        const { code, message, problems, steps } = err;
        const error = { code, message, ...(problems.length ? { problems } : {}) };
        const out = { result: "failed", operation, stack: opts.stack, error, steps };
        process.stdout.write(JSON.stringify(snakify(out)) + "\n");
      }
      if (err.code === "operation_failed") {
        // Each resource's error is already on stderr, in the progress; say only that the operation failed.
        process.stderr.write(`discovery: ${err.message.split("\n")[0].replace(/:$/, "")}\n`);
        process.exitCode = 1;
        return;
      }
      // Refused documents are reported as validate reports them, one FILE:LINE:COL line each.
      if (err.code !== "invalid_documents") throw err;
      process.stderr.write(err.message + "\n");
      process.exitCode = 1;
    }
  });
}

/** `discovery up|preview|destroy --config FILE [--stack NAME]`: the Automation API over the documents (SPEC §2). */
export function automationCommands(): Command[] {
  return (["up", "preview", "destroy"] as const).map(operationCommand);
}
