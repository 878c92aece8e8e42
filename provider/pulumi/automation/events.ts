import type { EngineEvent, StepEventMetadata } from "@pulumi/pulumi/automation";

/** up, preview or destroy. */
export type Operation = "up" | "preview" | "destroy";

/** One resource step of an operation, as the engine reported it. */
export interface StepReport {
  /**
   * The engine's operation: create, update, delete, same, replace, create-replacement, delete-replaced, ...; a
   * create that takes over a document the runtime holds already reads update (see `adopts`).
   */
  op: string;
  /** The resource class: ProvisionToken, Installer, DiscoveryConfig or Enrollment. */
  type: string;
  /** The resource name: `kind/name`, or `enrollment/<config name>`. */
  name: string;
  /** The resource's URN. */
  urn: string;
  /** done, failed, or planned (preview). */
  status: "done" | "failed" | "planned";
  /** How long the step took (0 at preview). */
  durationMs: number;
  /** The top-level inputs that change (update, replace). */
  diffs?: string[];
  /** Enrollment at preview: the node names the matchers select that have not joined yet. */
  pending?: string[];
  /**
   * A create that takes over a document the runtime holds already (adopt, or this resource's own): reported as an
   * update of that document; the owner it had ("" when written outside Pulumi).
   */
  adopts?: string;
}

/** An error or warning the engine reported, with the resource it concerns. */
export interface Diagnostic {
  /** error or warning. */
  severity: string;
  /** The resource name, when the diagnostic is about one. */
  name?: string;
  /** The message, one or more lines. */
  message: string;
}

/** The last segment of a URN: the resource name. */
function nameOfUrn(urn: string): string {
  return urn.split("::").pop() ?? urn;
}

/** `pulumi-nodejs:dynamic/discovery:ProvisionToken` -> `ProvisionToken`. */
function shortType(type: string): string {
  return type.split(":").pop() ?? type;
}

/** The stack itself and default providers are machinery, not resources a user declared. */
function isMachinery(type: string): boolean {
  return type === "pulumi:pulumi:Stack" || type.startsWith("pulumi:providers:");
}

/** Steps a user need not see: the machinery's, and refresh reads (drift they find shows as the step after them). */
function isHidden(meta: StepEventMetadata): boolean {
  return isMachinery(meta.type) || meta.op === "refresh";
}

const PAST: Record<string, string> = { create: "created", update: "updated", delete: "deleted", same: "unchanged" };
const PLANNED: Record<string, string> = {
  create: "to create",
  update: "to update",
  delete: "to delete",
  same: "unchanged",
};

/** One progress line of a step: `create   ProvisionToken   token/ec2-token   done in 0.41s`; names padded to `width`. */
export function stepLine(s: StepReport, width = 0): string {
  let status: string;
  if (s.status === "planned") status = s.op === "same" ? "unchanged" : `would ${s.op}`;
  else if (s.status === "failed") status = `failed after ${(s.durationMs / 1000).toFixed(2)}s`;
  else status = s.op === "same" ? "unchanged" : `done in ${(s.durationMs / 1000).toFixed(2)}s`;
  const adopted = s.adopts === undefined ? "" : `, taking over the runtime's document (${s.adopts || "no owner"})`;
  const diffs = (s.diffs?.length && s.op !== "same" ? ` (${s.diffs.join(", ")})` : "") + adopted;
  const lines = [`${s.op.padEnd(8)} ${s.type.padEnd(16)} ${s.name.padEnd(width)}  ${status}${diffs}`];
  if (s.pending?.length) lines.push(`         pending: ${s.pending.join(", ")}`);
  return lines.join("\n");
}

/** The order operations are counted in: changes first, unchanged last. */
const OP_ORDER = ["create", "update", "replace", "create-replacement", "delete-replaced", "delete", "read", "refresh"];

/** Counts of steps by operation, changes first. */
export function countSteps(steps: StepReport[]): Record<string, number> {
  const rank = (op: string) => (op === "same" ? 99 : OP_ORDER.indexOf(op) < 0 ? 50 : OP_ORDER.indexOf(op));
  const out: Record<string, number> = {};
  for (const s of [...steps].sort((a, b) => rank(a.op) - rank(b.op))) out[s.op] = (out[s.op] ?? 0) + 1;
  return out;
}

/** Top-level inputs whose values differ between two states (the connection's secrets compare as masked). */
function changedInputs(meta: StepEventMetadata): string[] {
  if (meta.diffs?.length) return meta.diffs;
  const olds = meta.old?.inputs;
  const news = meta.new?.inputs;
  if (!olds || !news || meta.op === "same") return [];
  // `__` properties are the providers' bookkeeping, which the engine does not show either.
  const keys = new Set([...Object.keys(olds), ...Object.keys(news)].filter((k) => !k.startsWith("__")));
  return [...keys].filter((k) => JSON.stringify(olds[k]) !== JSON.stringify(news[k])).sort();
}

/** The last line of an operation: what changed (or would), on which stack, how long it took. */
export function summaryLine(operation: Operation, stack: string, steps: StepReport[], durationMs: number): string {
  const counts = Object.entries(countSteps(steps));
  const words = operation === "preview" ? PLANNED : PAST;
  const parts = counts.map(([op, n]) => `${n} ${words[op] ?? (operation === "preview" ? `to ${op}` : op)}`);
  const changed = counts.some(([op]) => op !== "same");
  const what = parts.length === 0 ? "no resources" : parts.join(", ");
  if (operation === "preview") return `preview of stack ${stack}: ${changed ? what : `no changes (${what})`}`;
  return `${operation} succeeded on stack ${stack} in ${(durationMs / 1000).toFixed(1)}s: ${what}`;
}

/** Folds engine events into step reports and diagnostics, calling `onStep` as each step finishes. */
export function stepTracker(onStep: (step: StepReport) => void, onDiagnostic: (d: Diagnostic) => void) {
  const started = new Map<string, { at: number; meta: StepEventMetadata }>();
  const steps: StepReport[] = [];
  const diagnostics: Diagnostic[] = [];
  const finish = (meta: StepEventMetadata, status: StepReport["status"]) => {
    if (isHidden(meta)) return;
    const key = `${meta.op} ${meta.urn}`;
    const begun = started.get(key);
    started.delete(key);
    // `__pending` since the Enrollment keeps it out of the engine's diff; `pending` in older states.
    const inputs = (begun?.meta ?? meta).new?.inputs;
    const pending = inputs?.__pending ?? inputs?.pending;
    // A create over a document the runtime holds (check found it and may take it) updates that document.
    const existing =
      meta.op === "create" ? (inputs?.__existing as { owner: string; changes: string[] } | undefined) : undefined;
    const diffs = existing ? existing.changes : changedInputs(begun?.meta ?? meta);
    const step: StepReport = {
      op: existing ? "update" : meta.op,
      type: shortType(meta.type),
      name: nameOfUrn(meta.urn),
      urn: meta.urn,
      status,
      durationMs: status === "planned" || !begun ? 0 : Date.now() - begun.at,
      ...(diffs.length ? { diffs } : {}),
      ...(existing ? { adopts: existing.owner } : {}),
      // Pending instances are what an update would enroll: news at preview, done with once the step ran.
      ...(status === "planned" && Array.isArray(pending) && shortType(meta.type) === "Enrollment"
        ? { pending: pending as string[] }
        : {}),
    };
    steps.push(step);
    onStep(step);
  };
  const onEvent = (e: EngineEvent) => {
    if (e.resourcePreEvent) {
      const meta = e.resourcePreEvent.metadata;
      started.set(`${meta.op} ${meta.urn}`, { at: Date.now(), meta });
    } else if (e.resOutputsEvent) {
      finish(e.resOutputsEvent.metadata, e.resOutputsEvent.planning ? "planned" : "done");
    } else if (e.resOpFailedEvent) {
      finish(e.resOpFailedEvent.metadata, "failed");
    } else if (e.diagnosticEvent) {
      const d = e.diagnosticEvent;
      // A provider's stderr arrives as info#err; the runtime-backed providers warn there with a `warning: ` line.
      const providerWarning = d.severity === "info#err" && d.message.startsWith("warning: ");
      if (d.severity !== "error" && d.severity !== "warning" && !providerWarning) return;
      // The engine's closing "update failed" says nothing the resource errors before it did not.
      if (!d.urn?.includes("::") && /^(update|preview|destroy|refresh) failed$/.test(d.message.trim())) return;
      const about = d.urn && !isMachinery(d.urn.split("::")[2] ?? "") ? nameOfUrn(d.urn) : undefined;
      const diagnostic: Diagnostic = {
        severity: providerWarning ? "warning" : d.severity,
        ...(about ? { name: about } : {}),
        message: (providerWarning ? d.message.slice("warning: ".length) : d.message).trim(),
      };
      diagnostics.push(diagnostic);
      onDiagnostic(diagnostic);
    }
  };
  return { onEvent, steps, diagnostics };
}

/** A diagnostic as one or more lines: `error: token/ec2-token: the runtime refused ...`. */
export function diagnosticLine(d: Diagnostic): string {
  return `${d.severity}: ${d.name ? `${d.name}: ` : ""}${d.message}`;
}
