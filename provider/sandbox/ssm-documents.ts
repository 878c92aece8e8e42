import { parse } from "yaml";

/** An SSM API error as the awsJson1_1 protocol carries it: `__type` is the code SDKs turn into an exception. */
export class SsmApiError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
    this.name = "SsmApiError";
  }
}

/** One step of a command as the simulated agent runs it; `name` is its PluginName. */
export interface StepPlan {
  name: string;
  action: string;
  /** aws:runShellScript: the script, one line an element. */
  runCommand?: string[];
  workingDirectory?: string;
  /** aws:downloadContent with sourceType HTTP. */
  download?: { url: string; destinationPath?: string };
  timeoutSeconds: number;
  onFailure?: "exit" | "successAndExit";
  onSuccess?: "exit";
  /** `precondition: {StringEquals: [platformType, X]}`: the step runs only on platform X. */
  platformType?: string;
  /** Why the sandbox cannot run this step (it fails with this reason). */
  unsupported?: string;
}

/** What a SendCommand runs on each instance. */
export interface CommandPlan {
  documentName: string;
  documentVersion: string;
  steps: StepPlan[];
  /** Shell steps run on Linux only: SSM refuses such a document for a Windows instance. */
  linuxOnly: boolean;
}

/** SendCommand's `Parameters`: every value is a list of strings, as the API has them. */
export type CommandParameters = Record<string, string[]>;

/** The document every discovery install uses by default; it has no content in moto, so it is built in. */
export const RUN_SHELL_SCRIPT = "AWS-RunShellScript";
const DEFAULT_EXECUTION_TIMEOUT_S = 3600;
const MAX_EXECUTION_TIMEOUT_S = 172800;

const invalidParameters = (message: string) => new SsmApiError("InvalidParameters", message);

function timeoutOf(value: unknown, what: string): number {
  if (value === undefined || value === "") return DEFAULT_EXECUTION_TIMEOUT_S;
  const n = typeof value === "number" ? value : Number(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_EXECUTION_TIMEOUT_S)
    throw invalidParameters(`${what} must be a whole number of seconds from 1 to ${MAX_EXECUTION_TIMEOUT_S}`);
  return n;
}

/** Plans AWS-RunShellScript: `commands` (required), `workingDirectory`, `executionTimeout`, nothing else. */
export function planRunShellScript(parameters: CommandParameters): CommandPlan {
  for (const name of Object.keys(parameters))
    if (!["commands", "workingDirectory", "executionTimeout"].includes(name))
      throw invalidParameters(`document ${RUN_SHELL_SCRIPT} does not support the parameter "${name}"`);
  const commands = parameters.commands;
  if (!commands?.length) throw invalidParameters(`document ${RUN_SHELL_SCRIPT} requires the parameter "commands"`);
  return {
    documentName: RUN_SHELL_SCRIPT,
    documentVersion: "1",
    linuxOnly: true,
    steps: [
      {
        name: "aws:runShellScript",
        action: "aws:runShellScript",
        runCommand: commands,
        workingDirectory: parameters.workingDirectory?.[0] || undefined,
        timeoutSeconds: timeoutOf(parameters.executionTimeout?.[0], "executionTimeout"),
      },
    ],
  };
}

type Declared = { type?: string; default?: unknown; allowedPattern?: unknown };

/** SSM refuses a value its parameter's allowedPattern does not match; documents rely on that to bound callers. */
function checkPattern(doc: string, key: string, decl: Declared | undefined, values: string[]): void {
  if (typeof decl?.allowedPattern !== "string") return;
  const pattern = new RegExp(decl.allowedPattern);
  const bad = values.find((v) => !pattern.test(v));
  if (bad !== undefined)
    throw invalidParameters(
      `document ${doc}: parameter "${key}" value ${JSON.stringify(bad)} failed to satisfy constraint: ` +
        `allowedPattern ${decl.allowedPattern}`,
    );
}

function parameterValues(doc: Record<string, unknown>, name: string, given: CommandParameters): CommandParameters {
  const declared = (doc.parameters ?? {}) as Record<string, Declared>;
  if (typeof declared !== "object" || Array.isArray(declared))
    throw new SsmApiError("InvalidDocument", `document ${name}: parameters must be a map`);
  for (const key of Object.keys(given))
    if (!Object.hasOwn(declared, key))
      throw invalidParameters(`document ${name} does not support the parameter "${key}"`);
  const values: CommandParameters = {};
  for (const [key, decl] of Object.entries(declared)) {
    if (given[key]) {
      checkPattern(name, key, decl, given[key]);
      values[key] = given[key];
    } else if (decl?.default !== undefined)
      values[key] = Array.isArray(decl.default) ? decl.default.map(String) : [String(decl.default)];
    else throw invalidParameters(`document ${name} requires the parameter "${key}"`);
  }
  return values;
}

const PLACEHOLDER = /\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}/g;

/** Substitutes `{{ name }}` everywhere; a list element that is one StringList placeholder becomes its items. */
function substitute(value: unknown, values: CommandParameters): unknown {
  if (typeof value === "string")
    return value.replace(PLACEHOLDER, (whole, key: string) => (values[key] ? values[key].join(",") : whole));
  if (Array.isArray(value))
    return value.flatMap((item) => {
      const only = typeof item === "string" ? /^\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}$/.exec(item) : null;
      return only && values[only[1]] ? values[only[1]] : [substitute(item, values)];
    });
  if (value && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, values)]));
  return value;
}

const stringList = (v: unknown): string[] | undefined =>
  Array.isArray(v) ? v.map(String) : typeof v === "string" ? v.split("\n") : undefined;

function planStep(raw: unknown, docName: string, index: number): StepPlan {
  if (!raw || typeof raw !== "object") throw new SsmApiError("InvalidDocument", `document ${docName}: bad step`);
  const step = raw as Record<string, unknown>;
  const action = String(step.action ?? "");
  const name = typeof step.name === "string" && step.name ? step.name : `step${index + 1}`;
  const inputs = (step.inputs ?? {}) as Record<string, unknown>;
  const plan: StepPlan = { name, action, timeoutSeconds: timeoutOf(inputs.timeoutSeconds, `${name}.timeoutSeconds`) };
  if (step.onFailure === "exit" || step.onFailure === "successAndExit") plan.onFailure = step.onFailure;
  if (step.onSuccess === "exit") plan.onSuccess = "exit";
  const pre = (step.precondition as { StringEquals?: unknown } | undefined)?.StringEquals;
  if (Array.isArray(pre) && pre[0] === "platformType" && typeof pre[1] === "string") plan.platformType = pre[1];
  if (action === "aws:runShellScript") {
    plan.runCommand = stringList(inputs.runCommand);
    if (!plan.runCommand?.length)
      throw new SsmApiError("InvalidDocument", `document ${docName}: step ${name} has no runCommand`);
    if (typeof inputs.workingDirectory === "string" && inputs.workingDirectory)
      plan.workingDirectory = inputs.workingDirectory;
  } else if (action === "aws:downloadContent") {
    // sourceInfo is a JSON string in most AWS examples and a map in YAML ones; both are accepted.
    let info = inputs.sourceInfo;
    if (typeof info === "string") {
      try {
        info = JSON.parse(info);
      } catch {
        throw new SsmApiError("InvalidDocument", `document ${docName}: step ${name}: sourceInfo is not JSON`);
      }
    }
    const url = (info as { url?: unknown } | undefined)?.url;
    if (inputs.sourceType !== "HTTP") plan.unsupported = `sourceType ${String(inputs.sourceType)} (only HTTP is)`;
    else if (typeof url !== "string" || !/^https?:\/\//.test(url))
      throw new SsmApiError("InvalidDocument", `document ${docName}: step ${name}: sourceInfo.url must be http(s)`);
    else
      plan.download = {
        url,
        destinationPath: typeof inputs.destinationPath === "string" ? inputs.destinationPath : undefined,
      };
  } else {
    plan.unsupported = `the action ${action || "(none)"}`;
  }
  return plan;
}

/** Plans a schema 2.2 Command document (its content as GetDocument returns it) with SendCommand's parameters. */
export function planDocument(
  name: string,
  version: string,
  content: string,
  parameters: CommandParameters,
): CommandPlan {
  let doc: unknown;
  try {
    doc = parse(content);
  } catch (err) {
    throw new SsmApiError("InvalidDocument", `document ${name} does not parse: ${(err as Error).message}`);
  }
  if (!doc || typeof doc !== "object") throw new SsmApiError("InvalidDocument", `document ${name} is not a map`);
  const d = doc as Record<string, unknown>;
  if (String(d.schemaVersion) !== "2.2")
    throw new SsmApiError(
      "InvalidDocument",
      `document ${name} has schemaVersion ${String(d.schemaVersion)}; the sandbox runs schema 2.2 Command documents`,
    );
  if (!Array.isArray(d.mainSteps) || d.mainSteps.length === 0)
    throw new SsmApiError("InvalidDocument", `document ${name} has no mainSteps`);
  const values = parameterValues(d, name, parameters);
  const steps = (substitute(d.mainSteps, values) as unknown[]).map((s, i) => planStep(s, name, i));
  return {
    documentName: name,
    documentVersion: version,
    steps,
    linuxOnly: steps.some((s) => s.action === "aws:runShellScript" && (s.platformType ?? "Linux") === "Linux"),
  };
}

/** SendCommand's `Parameters`, checked: a map of names to lists of strings. */
export function commandParameters(value: unknown): CommandParameters {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value))
    throw invalidParameters("Parameters must be a map of names to lists of strings");
  const out: CommandParameters = {};
  for (const [k, v] of Object.entries(value)) {
    if (!Array.isArray(v) || !v.every((s) => typeof s === "string"))
      throw invalidParameters(`parameter "${k}" must be a list of strings`);
    out[k] = v;
  }
  return out;
}
