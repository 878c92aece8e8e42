import { Command } from "commander";
import { ConfigError, loadRuntimeConfig, RuntimeConfig } from "../runtime/config";
import { startRuntime } from "../runtime/server";

/** Loads a runtime config; on problems prints each `FILE:LINE:COL` line, sets exit code 1 and returns undefined. */
export function configOrReport(file: string): RuntimeConfig | undefined {
  try {
    return loadRuntimeConfig(file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(err.message + "\n");
    process.exitCode = 1;
    return undefined;
  }
}

/** `discovery serve --config FILE`: the runtime, until SIGINT or SIGTERM (then a graceful shutdown). */
export function serveCommand(): Command {
  return new Command("serve")
    .description("run the discovery runtime (HTTP API, joins, installers)")
    .requiredOption("--config <file>", "runtime config (SPEC §3)")
    .action(async (opts: { config: string }) => {
      const config = configOrReport(opts.config);
      if (!config) return;
      const runtime = await startRuntime(config);
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        runtime.logger.info({ signal }, "shutting down: finishing requests in flight");
        runtime
          .close()
          .then(() => process.exit(0))
          .catch((err) => {
            runtime.logger.error({ err }, "shutdown failed");
            process.exit(1);
          });
      };
      process.on("SIGINT", () => stop("SIGINT"));
      process.on("SIGTERM", () => stop("SIGTERM"));
    });
}
