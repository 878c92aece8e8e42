/** The Automation API face: up, preview and destroy of resource documents, as an inline Pulumi program. */
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { EngineEvent, OutputMap } from "@pulumi/pulumi/automation";
import type { EnrollmentInstance } from "../enrollment";
import { loadDocuments, RuntimeConnection } from "./documents";
import { AutomationError } from "./errors";
import {
  Diagnostic,
  diagnosticLine,
  Operation,
  StepReport,
  stepLine,
  stepTracker,
  summaryLine,
  countSteps,
} from "./events";
import { enrollmentName, inlineProgram } from "./program";
import { findPulumiCli, pulumiRoot } from "./pulumi-cli";

export { AutomationError, formatSourceProblem } from "./errors";
export type { AutomationErrorCode } from "./errors";
export type { Declaration, LoadedDocuments, RuntimeConnection } from "./documents";
export { loadDocuments } from "./documents";
export type { Diagnostic, Operation, StepReport } from "./events";

/** The Pulumi project of the stacks this module makes, unless told otherwise. */
export const DEFAULT_PROJECT = "discovery";
/** The stack used unless told otherwise. */
export const DEFAULT_STACK = "dev";

/** Options of deployDocuments. */
export interface DeployOptions {
  /** up (create, update, delete to match the documents), preview (what up would do) or destroy (remove them all). */
  operation: Operation;
  /** Files of documents (YAML or JSON, teleport.yaml style, or a runtime config); required for up and preview. */
  config?: string | string[];
  /** Documents as values (what the YAML parses to), validated as files are. */
  documents?: unknown[];
  /** The stack; default "dev". */
  stack?: string;
  /** The Pulumi project name; default "discovery". */
  projectName?: string;
  /** Where the state, the workspace and the generated passphrase live; default $DISCOVERY_STATE_DIR or ~/.pulumi-discovery. */
  stateDir?: string;
  /** The Pulumi backend; default file://<stateDir>/backend. */
  backendUrl?: string;
  /** The runtime; each field overrides a runtime config among `config`, which overrides DISCOVERY_SERVER / DISCOVERY_ADMIN_TOKEN. */
  connection?: RuntimeConnection;
  /** Declare an Enrollment per discovery_config: up runs a pass when instances are pending (preview lists them). */
  enroll?: boolean;
  /** How long an installed instance may take to join; default 120. */
  joinTimeoutSeconds?: number;
  /** Refresh the resources from the runtime before the operation, so drift shows. */
  refresh?: boolean;
  /** Take over documents the runtime holds already (applied with `discovery apply`, or by another stack). */
  adopt?: boolean;
  /** The Pulumi CLI; default `pulumi` on PATH (then this checkout's .tools/bin). */
  pulumiPath?: string;
  /** A file holding the passphrase of the stack's secrets; default $PULUMI_CONFIG_PASSPHRASE(_FILE), else <stateDir>/passphrase. */
  passphraseFile?: string;
  /** More environment for the engine and the providers it runs (AWS_ENDPOINT_URL, say). */
  env?: Record<string, string>;
  /** Every engine event, as the Automation API delivers it. */
  onEvent?: (event: EngineEvent) => void;
  /** Each resource step as it finishes. */
  onStep?: (step: StepReport) => void;
  /** Progress for people: a line per step, error and warning, then a summary line. */
  onProgress?: (line: string) => void;
}

/** An enrollment's outcome: pending instances at preview; counts and per-instance results after up. */
export interface EnrollmentReport {
  /** The discovery_config whose matchers it enrolls. */
  name: string;
  /** Node names the matchers select that have not joined yet (preview). */
  pending: string[];
  /** Instances enrolled now or before (up). */
  enrolled?: number;
  /** Instances whose enrollment failed (up). */
  failed?: number;
  /** Each selected instance's outcome (up). */
  instances?: EnrollmentInstance[];
}

/** What an operation did (or, for preview, would do). */
export interface DeployResult {
  /** The operation. */
  operation: Operation;
  /** The stack. */
  stack: string;
  /** The backend the state is in. */
  backendUrl: string;
  /** Steps by engine operation (create, update, delete, same, replace, ...), the stack itself not counted. */
  changes: Record<string, number>;
  /** Every resource step. */
  steps: StepReport[];
  /** Per Enrollment. */
  enrollments: EnrollmentReport[];
  /** The stack outputs after up (secrets read "[secret]"): resources and enrollments. */
  outputs: Record<string, unknown>;
  /** Warnings the engine reported. */
  warnings: Diagnostic[];
  /** How long it took. */
  durationMs: number;
}

/** The passphrase source for the stack's secrets: the option, the environment, else a generated file kept with the state. */
function passphraseEnv(opts: DeployOptions, env: NodeJS.ProcessEnv, stateDir: string): Record<string, string> {
  if (opts.passphraseFile) return { PULUMI_CONFIG_PASSPHRASE_FILE: path.resolve(opts.passphraseFile) };
  if (env.PULUMI_CONFIG_PASSPHRASE !== undefined || env.PULUMI_CONFIG_PASSPHRASE_FILE) return {};
  const file = path.join(stateDir, "passphrase");
  if (!fs.existsSync(file))
    fs.writeFileSync(file, randomBytes(32).toString("base64url") + "\n", { mode: 0o600, flag: "wx" });
  return { PULUMI_CONFIG_PASSPHRASE_FILE: file };
}

function plainOutputs(outputs: OutputMap): Record<string, unknown> {
  return Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, v.secret ? "[secret]" : v.value]));
}

/** The engine's error diagnostics, or the end of its stderr when it gave none. */
function failureText(diagnostics: Diagnostic[], err: unknown): string {
  const errors = diagnostics.filter((d) => d.severity === "error");
  if (errors.length) return errors.map(diagnosticLine).join("\n");
  const text = String((err as { stderr?: string }).stderr || (err as Error).message || err).trim();
  return text.split("\n").slice(-10).join("\n");
}

/**
 * Runs up, preview or destroy of the resources the documents declare, as an inline Pulumi program on a local file
 * backend (by default). Documents are validated first: any problem refuses the whole set before anything changes
 * (an AutomationError with code invalid_documents and every located problem). One operation at a time per process.
 */
export async function deployDocuments(opts: DeployOptions): Promise<DeployResult> {
  const began = Date.now();
  // The environment the engine starts from: this process's, with the caller's additions.
  const baseEnv: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  const named = opts.config === undefined ? [] : Array.isArray(opts.config) ? opts.config : [opts.config];
  // A file named twice is read once (its documents are not duplicates of themselves).
  const files = named.filter((f, i) => named.findIndex((g) => path.resolve(g) === path.resolve(f)) === i);
  const loaded = loadDocuments({ files, documents: opts.documents });
  if (opts.operation !== "destroy" && loaded.declarations.length === 0)
    throw new AutomationError(
      "no_documents",
      `${files.join(", ") || "the documents"} declare${files.length === 1 ? "s" : ""} no token, installer or discovery_config; ` +
        `add documents, or run destroy to remove what the stack holds`,
    );
  const connection: RuntimeConnection = {
    server: opts.connection?.server || loaded.connection.server || baseEnv.DISCOVERY_SERVER || undefined,
    adminToken:
      opts.connection?.adminToken || loaded.connection.adminToken || baseEnv.DISCOVERY_ADMIN_TOKEN || undefined,
    caFile: opts.connection?.caFile || loaded.connection.caFile || undefined,
  };
  if (opts.operation !== "destroy" && (!connection.server || !connection.adminToken))
    throw new AutomationError(
      "no_runtime",
      `no ${connection.server ? "admin token" : "runtime"} to declare the documents in: pass --server URL and ` +
        `--admin-token-file FILE, set DISCOVERY_SERVER and DISCOVERY_ADMIN_TOKEN, or add the runtime's config (SPEC §3) with --config`,
    );
  const cli = findPulumiCli(opts.pulumiPath, baseEnv.PATH ?? "");

  const stackName = opts.stack ?? DEFAULT_STACK;
  const projectName = opts.projectName ?? DEFAULT_PROJECT;
  const stateDir = path.resolve(
    opts.stateDir || baseEnv.DISCOVERY_STATE_DIR || path.join(os.homedir(), ".pulumi-discovery"),
  );
  const workDir = path.join(stateDir, "workspace");
  const backendDir = path.join(stateDir, "backend");
  const backendUrl = opts.backendUrl ?? `file://${backendDir}`;
  fs.mkdirSync(workDir, { recursive: true, mode: 0o700 });
  if (!opts.backendUrl) fs.mkdirSync(backendDir, { recursive: true, mode: 0o700 });

  const envVars: Record<string, string> = {
    PULUMI_HOME: path.join(stateDir, "home"),
    ...opts.env,
    ...(baseEnv.PULUMI_HOME ? { PULUMI_HOME: baseEnv.PULUMI_HOME } : {}),
    // The CLI's own folder first: the plugins released with it are the ones to run.
    PATH: [...cli.pathPrepend, baseEnv.PATH ?? ""].join(path.delimiter),
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    ...passphraseEnv(opts, baseEnv, stateDir),
  };
  const auto = await import("@pulumi/pulumi/automation");
  const pulumiCommand = await auto.PulumiCommand.get({ root: pulumiRoot(cli.binary, stateDir) });
  const program = inlineProgram(loaded.declarations, {
    server: connection.server,
    adminToken: connection.adminToken,
    // Kept in each resource's state, so a later destroy or refresh trusts the runtime without the file.
    caCert: connection.caFile ? fs.readFileSync(connection.caFile, "utf8") : undefined,
    enroll: opts.enroll,
    joinTimeoutSeconds: opts.joinTimeoutSeconds,
    adopt: opts.adopt,
  });
  const stack = await auto.LocalWorkspace.createOrSelectStack(
    { projectName, stackName, program },
    {
      workDir,
      pulumiCommand,
      envVars,
      projectSettings: {
        name: projectName,
        runtime: "nodejs",
        description: "discovery resources declared by documents (discovery up|preview|destroy)",
        backend: { url: backendUrl },
      },
    },
  );

  const progress = opts.onProgress ?? (() => undefined);
  const names = loaded.declarations.map((d) => d.resourceName);
  if (opts.enroll)
    for (const d of loaded.declarations)
      if (d.resource.kind === "discovery_config") names.push(enrollmentName(d.resource.metadata.name));
  const width = Math.max(24, ...names.map((n) => n.length));
  const tracker = stepTracker(
    (s) => {
      opts.onStep?.(s);
      progress(stepLine(s, width));
    },
    (d) => progress(diagnosticLine(d)),
  );
  const onEvent = (e: EngineEvent) => {
    opts.onEvent?.(e);
    tracker.onEvent(e);
  };
  let outputs: Record<string, unknown> = {};
  try {
    const common = { onEvent, color: "never" as const, refresh: opts.refresh };
    if (opts.operation === "up") outputs = plainOutputs((await stack.up(common)).outputs);
    else if (opts.operation === "preview") await stack.preview(common);
    else await stack.destroy(common);
  } catch (err) {
    throw new AutomationError(
      "operation_failed",
      `${opts.operation} failed on stack ${stackName}:\n${failureText(tracker.diagnostics, err)}`,
      [],
      tracker.steps,
    );
  }
  const durationMs = Date.now() - began;
  progress(summaryLine(opts.operation, stackName, tracker.steps, durationMs));
  return {
    operation: opts.operation,
    stack: stackName,
    backendUrl,
    changes: countSteps(tracker.steps),
    steps: tracker.steps,
    enrollments: enrollmentReports(tracker.steps, outputs),
    outputs,
    warnings: tracker.diagnostics.filter((d) => d.severity === "warning"),
    durationMs,
  };
}

/** Per Enrollment: pending instances from its step, and the outcome of its pass from the stack outputs. */
function enrollmentReports(steps: StepReport[], outputs: Record<string, unknown>): EnrollmentReport[] {
  const byName = new Map<string, EnrollmentReport>();
  const prefix = enrollmentName("");
  for (const s of steps.filter((s) => s.type === "Enrollment")) {
    const name = s.name.startsWith(prefix) ? s.name.slice(prefix.length) : s.name;
    byName.set(name, { name, pending: s.op === "delete" ? [] : (s.pending ?? []) });
  }
  // After up, the pass has run: nothing is pending any more, and the outputs hold what it did.
  for (const outcome of (outputs.enrollments ?? []) as Omit<EnrollmentReport, "pending">[])
    byName.set(outcome.name, { ...outcome, pending: [] });
  return [...byName.values()];
}
