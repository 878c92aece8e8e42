import * as fs from "fs";
import { Command, Option } from "commander";
import { formatPath, parseDocuments, Resource, SourceProblem, toJson, toYaml } from "../model";

/** Outcome of validating a set of files. */
export interface ValidateOutcome {
  resources: Resource[];
  problems: SourceProblem[];
}

/** Validates every document of every file; unreadable files become problems too. */
export function validateFiles(files: string[]): ValidateOutcome {
  const out: ValidateOutcome = { resources: [], problems: [] };
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message;
      out.problems.push({ file, line: 1, col: 1, path: ["file"], message: `cannot read: ${reason}` });
      continue;
    }
    const r = parseDocuments(text, file);
    out.resources.push(...r.resources);
    out.problems.push(...r.problems);
  }
  return out;
}

/** `FILE:LINE:COL: field.path: message`, the format editors and CI annotate. */
export function formatProblem(p: SourceProblem): string {
  return `${p.file}:${p.line}:${p.col}: ${formatPath(p.path)}: ${p.message}`;
}

/** `discovery validate -f FILE [-f FILE ...] [-o yaml|json]`. */
export function validateCommand(): Command {
  return new Command("validate")
    .description("check resource documents (YAML or JSON) against the model; report every problem with its line")
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
      const { resources, problems } = validateFiles(files);
      for (const p of problems) process.stderr.write(formatProblem(p) + "\n");
      if (problems.length > 0) {
        process.stderr.write(`${problems.length} problem${problems.length === 1 ? "" : "s"} found\n`);
        process.exitCode = 1;
        return;
      }
      if (opts.output === "yaml") process.stdout.write(toYaml(resources));
      else if (opts.output === "json") process.stdout.write(toJson(resources));
      else {
        const names = resources.map((r) => `${r.kind}/${r.metadata.name}`).join(", ");
        process.stdout.write(
          `${resources.length} document${resources.length === 1 ? "" : "s"} valid${names ? `: ${names}` : ""}\n`,
        );
      }
    });
}
