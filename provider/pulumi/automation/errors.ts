import { formatPath, SourceProblem } from "../../model";
import type { StepReport } from "./events";

/** Stable codes of the Automation API face's refusals, for programs that branch on them. */
export type AutomationErrorCode =
  | "invalid_documents"
  | "no_documents"
  | "no_runtime"
  | "pulumi_cli_missing"
  | "pulumi_plugin_missing"
  | "operation_failed";

/** `FILE:LINE:COL: field.path: message`, or `documents[I]: field.path: message` for documents given as values. */
export function formatSourceProblem(p: SourceProblem): string {
  const where = p.line > 0 ? `${p.file}:${p.line}:${p.col}` : p.file;
  const field = p.path.length
    ? p.path.map((s, i) => (typeof s === "number" ? `[${s}]` : i ? `.${s}` : s)).join("")
    : "";
  return `${where}: ${field ? `${field}: ` : ""}${p.message}`;
}

/**
 * A refusal or failure of up, preview or destroy: `problems` holds every located document problem for
 * invalid_documents; `steps` the resource steps the engine reported before an operation_failed.
 */
export class AutomationError extends Error {
  constructor(
    public readonly code: AutomationErrorCode,
    message: string,
    public readonly problems: SourceProblem[] = [],
    public readonly steps: StepReport[] = [],
  ) {
    super(message);
    this.name = "AutomationError";
  }
}

/** The refusal of documents with problems: one line per problem, then what happened (nothing). */
export function invalidDocuments(problems: SourceProblem[]): AutomationError {
  const lines = problems.map(formatSourceProblem);
  const count = `${problems.length} problem${problems.length === 1 ? "" : "s"} found; nothing was changed`;
  return new AutomationError("invalid_documents", [...lines, count].join("\n"), problems);
}
