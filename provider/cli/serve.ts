import * as fs from "fs";
import { Command } from "commander";
import * as sshpk from "sshpk";
import { formatProblem, formatWarning } from "../model";
import { checkRuntimeConfig, RuntimeConfig } from "../runtime/config";
import { assertPrivateFiles } from "../runtime/file-modes";
import { startRuntime } from "../runtime/server";
import { openStore } from "../runtime/store";

/**
 * Loads a runtime config; prints each warning and each problem as a `FILE:LINE:COL` line, and on problems sets
 * exit code 1 and returns undefined.
 */
export function configOrReport(file: string): RuntimeConfig | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message;
    process.stderr.write(`${file}: cannot read: ${reason}; check the --config path\n`);
    process.exitCode = 1;
    return undefined;
  }
  const { config, problems, warnings } = checkRuntimeConfig(text, file);
  for (const w of warnings) process.stderr.write(formatWarning(w) + "\n");
  for (const p of problems) process.stderr.write(formatProblem(p) + "\n");
  if (!config) process.exitCode = 1;
  return config;
}

/**
 * Starts the store's host and user CAs from `certificate_authorities` key files when it has none yet, so a
 * deployment that made the keys ahead (DiscoveryService on aws or gcp) knows the CA public keys before the
 * runtime first starts. A store that already holds a CA keeps it: the files only seed.
 */
export async function seedCertAuthorities(config: RuntimeConfig): Promise<void> {
  const files = Object.entries(config.caKeyFiles).filter((e): e is ["host" | "user", string] => Boolean(e[1]));
  if (files.length === 0) return;
  const keys = files.map(([type, file]) => {
    const field = `certificate_authorities.${type}_key_file`;
    let key: sshpk.PrivateKey;
    try {
      key = sshpk.parsePrivateKey(fs.readFileSync(file, "utf8"), "auto", { filename: file });
    } catch (err) {
      throw new Error(`${field}: cannot load ${file}: ${(err as Error).message}`);
    }
    if (key.type !== "ed25519")
      throw new Error(`${field}: ${file} holds a ${key.type} key; make an Ed25519 one (ssh-keygen -t ed25519)`);
    return {
      type,
      active: {
        publicKey: key.toPublic().toString("ssh"),
        privateKey: key.toString("openssh"),
        createdAt: new Date().toISOString(),
      },
      previous: [],
    };
  });
  const store = await openStore(config.storage);
  try {
    for (const ca of keys) if (!(await store.getCertAuthority(ca.type))) await store.initCertAuthority(ca);
  } finally {
    await store.close();
  }
}

/** `discovery serve --config FILE`: the runtime, until SIGINT or SIGTERM (then a graceful shutdown). */
export function serveCommand(): Command {
  return new Command("serve")
    .description("run the discovery runtime (HTTP API, joins, installers)")
    .requiredOption(
      "--config <file>",
      'the runtime config, a YAML file (docs/OPERATIONS.md, "Config", in this package)',
    )
    .action(async (opts: { config: string }) => {
      const config = configOrReport(opts.config);
      if (!config) return;
      // Before seeding opens the store: a store other users can read is refused, not written to.
      assertPrivateFiles(config);
      await seedCertAuthorities(config);
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
