import * as path from "path";
import { Command } from "commander";
import { AzureLaunchOptionError, parseAzureLaunchOptions } from "../sandbox/azure-launch-options";
import { GcpLaunchOptionError, parseGcpLaunchOptions } from "../sandbox/gcp-launch-options";
import { LaunchOptionError, parseLaunchOptions, parseTagList } from "../sandbox/launch-options";
import { runSandboxDaemon, type SandboxOptions } from "../sandbox/sandbox";
import { parseDuration } from "../model";
import { launchInSandbox, startSandbox, stopSandbox } from "../sandbox/sandbox-client";
import { sandboxPaths } from "../sandbox/sandbox-control";
import { createSandboxAccount } from "../sandbox/organization";

const FLAGS: Record<LaunchOptionError["field"], string> = {
  account: "--account",
  region: "--region",
  tags: "--tags",
  count: "--count",
  agentless: "--agentless",
  state: "--state",
  platform: "--platform",
  ssmStatus: "--ssm-status",
  project: "--project",
  zone: "--zone",
  labels: "--labels",
  serviceAccount: "--service-account",
  oslogin: "--oslogin",
};

const AZURE_FLAGS: Record<AzureLaunchOptionError["field"], string> = {
  subscription: "--subscription",
  resourceGroup: "--resource-group",
  region: "--region",
  tags: "--tags",
  count: "--count",
  agentless: "--agentless",
  state: "--state",
  noAgent: "--no-agent",
  scaleSet: "--scale-set",
};

// Launch errors name the field as the API spells it; on the command line they name the flag.
function flagError(err: unknown): unknown {
  if (err instanceof LaunchOptionError || err instanceof GcpLaunchOptionError)
    return new Error(`${FLAGS[err.field]}: ${err.message}`);
  if (err instanceof AzureLaunchOptionError) return new Error(`${AZURE_FLAGS[err.field]}: ${err.message}`);
  return err;
}

interface LaunchFlags {
  dir: string;
  cloud: string;
  account?: string;
  region?: string;
  tags?: string;
  project?: string;
  zone?: string;
  labels?: string;
  serviceAccount?: string;
  oslogin?: boolean;
  count?: string;
  agentless?: boolean;
  state?: string;
  platform?: string;
  ssmStatus?: string;
  subscription?: string;
  resourceGroup?: string;
  scaleSet?: string;
  /** commander's `--no-agent`: false when given. */
  agent?: boolean;
  json?: boolean;
}

const count = (text = "1") => (/^\d+$/.test(text) ? Number(text) : text);

async function launchAws(opts: LaunchFlags): Promise<string[]> {
  const input = {
    account: opts.account,
    region: opts.region,
    tags: opts.tags === undefined ? undefined : parseTagList(opts.tags),
    count: count(opts.count),
    agentless: opts.agentless === true,
    state: opts.state ?? "running",
    platform: opts.platform,
    ssmStatus: opts.ssmStatus,
  };
  // Checked here too, so a bad flag is reported without a sandbox to ask.
  const launch = parseLaunchOptions(input);
  const instances = await launchInSandbox(opts.dir, { ...launch });
  if (!opts.json) return instances.map((i) => i.instanceId);
  return instances.map((i) =>
    JSON.stringify({
      cloud: "aws",
      id: i.instanceId,
      account: i.account,
      region: i.region,
      name: i.tags.Name ?? i.instanceId,
      created_at: i.launchedAt,
      ...(i.sshPort !== undefined && { ssh_port: i.sshPort }),
    }),
  );
}

async function launchGcp(opts: LaunchFlags): Promise<string[]> {
  if (opts.platform !== undefined || opts.ssmStatus !== undefined)
    throw new Error("--platform and --ssm-status are SSM knobs, for --cloud aws only");
  let labels: Record<string, string> | undefined;
  try {
    labels = opts.labels === undefined ? undefined : parseTagList(opts.labels);
  } catch (err) {
    throw new GcpLaunchOptionError("labels", (err as Error).message.replace(/\btags?\b/g, "label"));
  }
  const launch = parseGcpLaunchOptions({
    project: opts.project,
    zone: opts.zone,
    labels,
    count: count(opts.count),
    serviceAccount: opts.serviceAccount,
    oslogin: opts.oslogin === true,
    agentless: opts.agentless === true,
    state: opts.state ?? "running",
  });
  const vms = await launchInSandbox(opts.dir, { cloud: "gcp", ...launch });
  if (!opts.json) return vms.map((v) => v.id);
  return vms.map((v) =>
    JSON.stringify({
      cloud: "gcp",
      id: v.id,
      project: v.project,
      zone: v.zone,
      name: v.name,
      created_at: v.created_at,
      ...(v.ssh_port !== undefined && { ssh_port: v.ssh_port }),
      service_account: v.service_account,
    }),
  );
}

async function launchAzure(opts: LaunchFlags): Promise<string[]> {
  if (opts.platform !== undefined || opts.ssmStatus !== undefined)
    throw new Error("--platform and --ssm-status are SSM knobs, for --cloud aws only");
  let tags: Record<string, string> | undefined;
  try {
    tags = opts.tags === undefined ? undefined : parseTagList(opts.tags);
  } catch (err) {
    throw new AzureLaunchOptionError("tags", (err as Error).message);
  }
  const launch = parseAzureLaunchOptions({
    subscription: opts.subscription,
    resourceGroup: opts.resourceGroup,
    region: opts.region,
    tags,
    count: count(opts.count),
    agentless: opts.agentless === true,
    state: opts.state ?? "running",
    noAgent: opts.agent === false,
    scaleSet: opts.scaleSet,
  });
  const vms = await launchInSandbox(opts.dir, { cloud: "azure", ...launch });
  if (!opts.json) return vms.map((v) => v.id);
  return vms.map((v) =>
    JSON.stringify({
      cloud: "azure",
      id: v.id,
      subscription: v.subscription,
      resource_group: v.resource_group,
      region: v.region,
      name: v.name,
      created_at: v.created_at,
      ...(v.ssh_port !== undefined && { ssh_port: v.ssh_port }),
      ...(v.scale_set !== undefined && { scale_set: v.scale_set, instance_id: v.instance_id }),
    }),
  );
}

function launchCommand(): Command {
  return new Command("launch")
    .description("launch simulated instances (or GCP or Azure VMs) in the sandbox and print their ids, one per line")
    .requiredOption("--dir <dir>", "the sandbox directory")
    .option("--cloud <cloud>", "aws, gcp or azure", "aws")
    .option("--account <id>", "aws: 12-digit account id (any; other than 123456789012 is an assumed role)")
    .option("--region <region>", "aws: region, e.g. us-east-1; azure: region, e.g. eastus")
    .option("--tags <k=v[,k=v]>", "aws: instance tags; azure: VM tags")
    .option("--subscription <id>", "azure: subscription id (any UUID)")
    .option("--resource-group <name>", "azure: resource group")
    .option("--no-agent", "azure: the VM agent never reports, so run commands fail")
    .option("--scale-set <name>", "azure: launch the VMs into this (Uniform) scale set")
    .option("--project <id>", "gcp: project id (any)")
    .option("--zone <zone>", "gcp: zone, e.g. us-central1-a")
    .option("--labels <k=v[,k=v]>", "gcp: instance labels")
    .option("--service-account <email>", "gcp: the VM's service account (default: the project's compute default)")
    .option("--oslogin", "gcp: metadata enable-oslogin=TRUE, so the VM ignores ssh-keys")
    .option("--count <n>", "how many instances", "1")
    .option("--agentless", "aws, azure: give each instance a real sshd (OpenSSH mode); gcp VMs always have one")
    .option("--state <state>", "aws: running or stopped; gcp: running or terminated; azure: running or deallocated")
    .option("--platform <platform>", "aws: what SSM reports, Linux or Windows")
    .option("--ssm-status <status>", "aws: the SSM agent, Online, ConnectionLost or unregistered")
    .option("--json", "print one JSON object per instance instead of its id")
    .action(async (opts: LaunchFlags) => {
      try {
        const launchers: Record<string, (o: LaunchFlags) => Promise<string[]>> = {
          aws: launchAws,
          gcp: launchGcp,
          azure: launchAzure,
        };
        const launcher = Object.hasOwn(launchers, opts.cloud) ? launchers[opts.cloud] : undefined;
        if (!launcher) throw new Error("--cloud: must be aws, gcp or azure");
        const lines = await launcher(opts);
        process.stdout.write(lines.map((l) => l + "\n").join(""));
      } catch (err) {
        throw flagError(err);
      }
    });
}

/** The runtime options of `sandbox start`, checked: a bad --poll-interval is refused before anything starts. */
function sandboxOptions(opts: { events?: boolean; pollInterval: string }): SandboxOptions {
  const ms = parseDuration(opts.pollInterval);
  if (ms === undefined || ms <= 0)
    throw new Error(`--poll-interval: "${opts.pollInterval}" is not a duration; write it like 15s or 5m`);
  return { events: opts.events === true, pollInterval: opts.pollInterval };
}

/** `discovery sandbox start|stop|launch`: a whole local world (moto, simulated fleet, SSM, runtime) on loopback. */
export function sandboxCommand(): Command {
  const cmd = new Command("sandbox").description(
    "a local world for trying discovery without a cloud: moto, a simulated fleet and SSM, fake GCP and Azure, and a runtime",
  );
  cmd.addCommand(
    new Command("start")
      .description("start the sandbox in the background and write DIR/env.sh and DIR/runtime.yaml")
      .requiredOption("--dir <dir>", "where the sandbox keeps its state, logs and instances")
      .option("--events", "the runtime enrolls launches at once from the EC2 state-change queue (us-east-1)")
      .option("--poll-interval <duration>", "the runtime's poll_interval, e.g. 5m", "15s")
      .action(async (opts: { dir: string; events?: boolean; pollInterval: string }) => {
        const { state, alreadyRunning } = await startSandbox(opts.dir, sandboxOptions(opts));
        const env = sandboxPaths(state.dir).env;
        process.stdout.write(
          (alreadyRunning
            ? `a sandbox is already running in ${state.dir} (pid ${state.pid})\n`
            : `sandbox running in ${state.dir} (pid ${state.pid})\n` +
              `  runtime ${state.runtime.url}\n  moto    ${state.moto}\n  ssm     ${state.ssm}\n` +
              (state.gcp ? `  gcp     ${state.gcp.endpoint}\n` : "") +
              (state.azure ? `  azure   ${state.azure.armEndpoint} (Entra ID ${state.azure.authorityHost})\n` : "")) +
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
  cmd.addCommand(
    new Command("account")
      .description(
        "make a member account in the sandbox's AWS organization (as organizations create-account), in a unit when asked; prints its id",
      )
      .requiredOption("--dir <dir>", "the sandbox directory")
      .requiredOption("--name <name>", "the account's name, e.g. payments-prod")
      .option("--unit <name>", "the organizational unit to move it into, made under the root when missing")
      .option("--json", "print {account, name, parent} instead of the id")
      .action(async (opts: { dir: string; name: string; unit?: string; json?: boolean }) => {
        const made = await createSandboxAccount(opts.dir, opts.name, opts.unit);
        process.stdout.write(opts.json ? JSON.stringify(made) + "\n" : made.account + "\n");
      }),
  );
  // The daemon `start` spawns; not for people.
  cmd.addCommand(
    new Command("_daemon")
      .requiredOption("--dir <dir>", "the sandbox directory")
      .option("--events")
      .option("--poll-interval <duration>", "", "15s")
      .action(async (opts: { dir: string; events?: boolean; pollInterval: string }) =>
        runSandboxDaemon(opts.dir, sandboxOptions(opts)),
      ),
    { hidden: true },
  );
  return cmd;
}
