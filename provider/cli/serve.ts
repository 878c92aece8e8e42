import { Command } from "commander";
import { ConfigError, loadRuntimeConfig } from "../runtime/config";
import { startRuntime } from "../runtime/server";

/** `discovery serve --config FILE`: the runtime, until SIGINT or SIGTERM (then a graceful shutdown). */
export function serveCommand(): Command {
  return new Command("serve")
    .description("run the discovery runtime (HTTP API, joins, installers)")
    .requiredOption("--config <file>", "runtime config (SPEC §3)")
    .action(async (opts: { config: string }) => {
      let config;
      try {
        config = loadRuntimeConfig(opts.config);
      } catch (err) {
        if (err instanceof ConfigError) {
          process.stderr.write(err.message + "\n");
          process.exitCode = 1;
          return;
        }
        throw err;
      }
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
