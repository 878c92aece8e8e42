import { Argument, Command } from "commander";
import { policyFor, POLICY_CLOUDS, PolicyCloud } from "../clouds/policies";
import { loadRuntimeConfig } from "../runtime/config";
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
      const { resources, problems, runtimeConfigs } = validateFiles([opts.config]);
      for (const p of problems) process.stderr.write(formatProblem(p) + "\n");
      if (problems.length > 0) {
        process.stderr.write(`${problems.length} problem${problems.length === 1 ? "" : "s"} found\n`);
        process.exitCode = 1;
        return;
      }
      // A runtime config checked above: its discovery_service (matchers, event queues) is read as the runtime reads it.
      const services = runtimeConfigs.flatMap((f) => loadRuntimeConfig(f).discoveryService ?? []);
      const r = policyFor(cloud, resources, services);
      if ("error" in r) {
        process.stderr.write(`${opts.config}: ${r.error}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(JSON.stringify(r.output, null, 2) + "\n");
    });
}
