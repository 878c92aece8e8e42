import * as path from "path";
import { Command } from "commander";
import { LaunchOptionError, LaunchOptions, parseLaunchOptions, parseTagList } from "../sandbox/launch-options";
import { runSandboxDaemon } from "../sandbox/sandbox";
import { launchInSandbox, startSandbox, stopSandbox } from "../sandbox/sandbox-client";
import { sandboxPaths } from "../sandbox/sandbox-control";

const FLAGS: Record<keyof LaunchOptions, string> = {
  account: "--account",
  region: "--region",
  tags: "--tags",
  count: "--count",
  agentless: "--agentless",
  state: "--state",
  platform: "--platform",
  ssmStatus: "--ssm-status",
};

// Launch errors name the field as the API spells it; on the command line they name the flag.
function flagError(err: unknown): unknown {
  return err instanceof LaunchOptionError ? new Error(`${FLAGS[err.field]}: ${err.message}`) : err;
}

interface LaunchFlags {
  dir: string;
  account: string;
  region: string;
  tags: string;
  count?: string;
  agentless?: boolean;
  state?: string;
  platform?: string;
  ssmStatus?: string;
}

function launchCommand(): Command {
  return new Command("launch")
    .description("launch simulated instances in the sandbox and print their ids, one per line")
    .requiredOption("--dir <dir>", "the sandbox directory")
    .requiredOption("--account <id>", "12-digit AWS account id (any; other than 123456789012 is an assumed role)")
    .requiredOption("--region <region>", "AWS region, e.g. us-east-1")
    .requiredOption("--tags <k=v[,k=v]>", "instance tags")
    .option("--count <n>", "how many instances", "1")
    .option("--agentless", "give each instance a real sshd (OpenSSH mode)")
    .option("--state <state>", "running or stopped", "running")
    .option("--platform <platform>", "what SSM reports: Linux or Windows", "Linux")
    .option("--ssm-status <status>", "the SSM agent: Online, ConnectionLost or unregistered", "Online")
    .action(async (opts: LaunchFlags) => {
      try {
        const input = {
          account: opts.account,
          region: opts.region,
          tags: parseTagList(opts.tags),
          count: /^\d+$/.test(opts.count ?? "1") ? Number(opts.count ?? "1") : opts.count,
          agentless: opts.agentless === true,
          state: opts.state,
          platform: opts.platform,
          ssmStatus: opts.ssmStatus,
        };
        // Checked here too, so a bad flag is reported without a sandbox to ask.
        const launch = parseLaunchOptions(input);
        const instances = await launchInSandbox(opts.dir, { ...launch });
        process.stdout.write(instances.map((i) => i.instanceId + "\n").join(""));
      } catch (err) {
        throw flagError(err);
      }
    });
}

/** `discovery sandbox start|stop|launch`: a whole local world (moto, simulated fleet, SSM, runtime) on loopback. */
export function sandboxCommand(): Command {
  const cmd = new Command("sandbox").description(
    "a local world for trying discovery without a cloud: moto, a simulated fleet and SSM, and a runtime",
  );
  cmd.addCommand(
    new Command("start")
      .description("start the sandbox in the background and write DIR/env.sh and DIR/runtime.yaml")
      .requiredOption("--dir <dir>", "where the sandbox keeps its state, logs and instances")
      .action(async (opts: { dir: string }) => {
        const { state, alreadyRunning } = await startSandbox(opts.dir);
        const env = sandboxPaths(state.dir).env;
        process.stdout.write(
          (alreadyRunning
            ? `a sandbox is already running in ${state.dir} (pid ${state.pid})\n`
            : `sandbox running in ${state.dir} (pid ${state.pid})\n` +
              `  runtime ${state.runtime.url}\n  moto    ${state.moto}\n  ssm     ${state.ssm}\n`) +
            `use it with: . ${env}\n`,
        );
      }),
  );
  cmd.addCommand(
    new Command("stop")
      .description("stop the sandbox and every process it started")
      .requiredOption("--dir <dir>", "the sandbox directory")
      .action(async (opts: { dir: string }) => {
        const { wasRunning } = await stopSandbox(opts.dir);
        const dir = path.resolve(opts.dir);
        process.stdout.write(wasRunning ? `sandbox in ${dir} stopped\n` : `no sandbox is running in ${dir}\n`);
      }),
  );
  cmd.addCommand(launchCommand());
  // The daemon `start` spawns; not for people.
  cmd.addCommand(
    new Command("_daemon")
      .requiredOption("--dir <dir>", "the sandbox directory")
      .action(async (opts: { dir: string }) => runSandboxDaemon(opts.dir)),
    { hidden: true },
  );
  return cmd;
}
