import * as fs from "fs";
import { Command, Option } from "commander";
import {
  formatProblem,
  formatWarning,
  parseDocuments,
  parseYamlWith,
  Resource,
  SourceProblem,
  toJson,
  toYaml,
} from "../model";
import { checkRuntimeConfig, isRuntimeConfigValue } from "../runtime/config";

export { formatProblem, formatWarning };

/** Outcome of validating a set of files. */
export interface ValidateOutcome {
  resources: Resource[];
  problems: SourceProblem[];
  /** Accepted, but worth a look: well-formed regions this version does not know. */
  warnings: SourceProblem[];
  /** Files that are runtime configs (`discovery serve --config`), checked as such. */
  runtimeConfigs: string[];
}

/** Whether `text` is a runtime config: one YAML document, a mapping with a key only runtime configs have. */
function isRuntimeConfigText(text: string, file: string): boolean {
  const peek = parseYamlWith(text, file, (value) => ({ value, problems: [] }), { splitLists: false });
  return peek.problems.length === 0 && peek.values.length === 1 && isRuntimeConfigValue(peek.values[0]);
}

/**
 * Validates every document of every file (resource documents, teleport.yaml, runtime configs); unreadable files
 * become problems too. Nothing stops at the first problem: every file and every field is checked.
 */
export function validateFiles(files: string[]): ValidateOutcome {
  const out: ValidateOutcome = { resources: [], problems: [], warnings: [], runtimeConfigs: [] };
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message;
      out.problems.push({ file, line: 1, col: 1, path: ["file"], message: `cannot read: ${reason}` });
      continue;
    }
    const r = isRuntimeConfigText(text, file) ? checkRuntimeConfig(text, file) : parseDocuments(text, file);
    if ("resources" in r) out.resources.push(...r.resources);
    else out.runtimeConfigs.push(file);
    out.problems.push(...r.problems);
    out.warnings.push(...r.warnings);
  }
  return out;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** `discovery validate -f FILE [-f FILE ...] [-o yaml|json]`. */
export function validateCommand(): Command {
  return new Command("validate")
    .description(
      "check resource documents, teleport.yaml files and runtime configs; report every problem with its line",
    )
    .argument("[files...]", "more files of documents")
    .option("-f, --file <path>", "a file of documents; repeat for several", (v: string, prev: string[] = []) => [
      ...prev,
      v,
    ])
    .addOption(
      new Option("-o, --output <format>", "print the documents with defaults applied").choices(["yaml", "json"]),
    )
    .action((more: string[], opts: { file?: string[]; output?: "yaml" | "json" }, cmd: Command) => {
      const files = [...(opts.file ?? []), ...more];
      if (files.length === 0) cmd.error("error: name at least one file: discovery validate -f FILE [-f FILE ...]");
      const { resources, problems, warnings, runtimeConfigs } = validateFiles(files);
      for (const w of warnings) process.stderr.write(formatWarning(w) + "\n");
      for (const p of problems) process.stderr.write(formatProblem(p) + "\n");
      if (problems.length > 0) {
        process.stderr.write(`${plural(problems.length, "problem")} found\n`);
        process.exitCode = 1;
        return;
      }
      if (opts.output === "yaml") process.stdout.write(toYaml(resources));
      else if (opts.output === "json") process.stdout.write(toJson(resources));
      else {
        const names = [
          ...resources.map((r) => `${r.kind}/${r.metadata.name}`),
          ...runtimeConfigs.map((f) => `runtime config ${f}`),
        ].join(", ");
        const count = resources.length + runtimeConfigs.length;
        const warned = warnings.length ? ` (${plural(warnings.length, "warning")})` : "";
        process.stdout.write(`${plural(count, "document")} valid${names ? `: ${names}` : ""}${warned}\n`);
      }
    });
}
