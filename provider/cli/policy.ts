import { Argument, Command } from "commander";
import { policyFor, POLICY_CLOUDS, PolicyCloud } from "../clouds/policies";
import { formatProblem, validateFiles } from "./validate";

/** `discovery policy aws|gcp|azure --config FILE`: least-privilege policy documents for the config's matchers, as JSON. */
export function policyCommand(): Command {
  return new Command("policy")
    .description(
      "print the least-privilege policies a config's matchers need (aws: IAM policies; gcp, azure: a custom role)",
    )
    .addArgument(new Argument("<cloud>", "the cloud to write policies for").choices([...POLICY_CLOUDS]))
    .requiredOption("-c, --config <file>", "a file of discovery_config documents, or a teleport.yaml / runtime config")
    .action((cloud: PolicyCloud, opts: { config: string }) => {
      const { resources, problems } = validateFiles([opts.config]);
      for (const p of problems) process.stderr.write(formatProblem(p) + "\n");
      if (problems.length > 0) {
        process.stderr.write(`${problems.length} problem${problems.length === 1 ? "" : "s"} found\n`);
        process.exitCode = 1;
        return;
      }
      const r = policyFor(cloud, resources);
      if ("error" in r) {
        process.stderr.write(`${opts.config}: ${r.error}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(JSON.stringify(r.output, null, 2) + "\n");
    });
}
