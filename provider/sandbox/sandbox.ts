import { ChildProcess, spawn } from "child_process";
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { CreateOrganizationCommand, OrganizationsClient } from "@aws-sdk/client-organizations";
import pino, { Logger } from "pino";
import { stringify } from "yaml";
import { request } from "../http/client";
import { isAlive, packageBin } from "../deploy/local-process";
import { describeCertificate } from "../runtime/tls";
import { Fleet } from "./fleet";
import { AzureSandbox, startAzureSandbox } from "./azure-sandbox";
import { shellQuote } from "../util/shell";
import { GcpSandbox, startGcpSandbox } from "./gcp-sandbox";
import { loadOrCreateCa } from "./iid-signer";
import { freePort, Moto, MOTO_CREDENTIALS, startMoto } from "./moto";
import { MotoAccounts } from "./moto-accounts";
import { SandboxEventBus } from "./ec2-events";
import { readSandboxState, sandboxPaths, SandboxState, startControlApi } from "./sandbox-control";
import { startSsmSimulator } from "./ssm-simulator";

/**
 * The environment for the sandbox's processes: the caller's, without anything that points AWS, Google, Azure or
 * discovery clients elsewhere (a sourced env.sh of an older sandbox, a real profile, ADC file or managed
 * identity), so nothing can reach a real cloud.
 */
const CLOUD_VARIABLE =
  /^(AWS_|DISCOVERY_|GOOGLE_|GCE_|CLOUDSDK_|AZURE_|MSI_|IDENTITY_(ENDPOINT|HEADER)$|IMDS_ENDPOINT$)/;

export function isolatedEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(base))
    if (!CLOUD_VARIABLE.test(k) && k !== "NODE_EXTRA_CA_CERTS" && v !== undefined) env[k] = v;
  return env;
}

/** An organization in moto's default account, so iam tokens with `aws_organization_id` have one to name. */
async function seedMoto(moto: Moto, logger: Logger): Promise<string | undefined> {
  const org = new OrganizationsClient({ region: "us-east-1", endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS });
  try {
    const out = await org.send(new CreateOrganizationCommand({ FeatureSet: "ALL" }));
    return out.Organization?.Id;
  } catch (err) {
    logger.warn({ err }, "could not seed an organization in moto; aws_organization_id tokens will not match");
    return undefined;
  } finally {
    org.destroy();
  }
}

/** How `discovery sandbox start` shapes the sandbox runtime's discovery loop. */
export interface SandboxOptions {
  /** The runtime reads us-east-1's EC2 state-change queue (`discovery_service.events`). */
  events?: boolean;
  /** The runtime's poll_interval; default 15s. */
  pollInterval?: string;
}

interface RuntimeProcess {
  child: ChildProcess;
  url: string;
  pin: string;
  certFile: string;
  adminTokenFile: string;
  stop(): Promise<void>;
}

/** Writes runtime.yaml and runs `discovery serve` as a child process, returning once /readyz answers. */
async function startRuntimeProcess(
  dir: string,
  moto: Moto,
  ssmEndpoint: string,
  gcp: GcpSandbox,
  azure: AzureSandbox,
  logger: Logger,
  options: SandboxOptions & { eventsQueueUrl: string },
): Promise<RuntimeProcess> {
  const p = sandboxPaths(dir);
  const port = await freePort();
  const url = `https://127.0.0.1:${port}`;
  const config = {
    version: "v1",
    cluster_name: "sandbox.discovery.local",
    listen_addr: `127.0.0.1:${port}`,
    public_addr: url,
    storage: { type: "sqlite", path: "./data/discovery.db" },
    admin_token_file: "./data/admin.token",
    join: {
      aws: { extra_ca_certs: ["./sandbox-ca.pem"], sts_endpoint: moto.endpoint },
      // The fake Google issuer: identity tokens of sandbox GCP VMs verify against its JWKS only.
      gcp: gcp.joinConfig,
      // The sandbox's Azure root signs attested documents; its fake Entra ID's key set signs access tokens.
      azure: azure.joinConfig,
      // Every simulated instance joins from 127.0.0.1: one address, many nodes.
      rate_limit: { requests_per_minute: 6000, burst: 1000 },
    },
    // The runtime scans every discovery_config applied with group `sandbox`, so applying one enrolls by itself.
    discovery_service: {
      discovery_group: "sandbox",
      poll_interval: options.pollInterval ?? "15s",
      // `--events`: launches are enrolled at once from us-east-1's EC2 state-change queue.
      ...(options.events && { events: { aws: [{ sqs_queue_url: options.eventsQueueUrl, region: "us-east-1" }] } }),
    },
  };
  fs.writeFileSync(
    p.runtimeConfig,
    "# written by `discovery sandbox start`; rewritten on every start\n" + stringify(config),
  );
  const log = fs.openSync(p.runtimeLog, "a");
  const child = spawn(process.execPath, [packageBin(), "serve", "--config", p.runtimeConfig], {
    cwd: dir,
    env: {
      ...isolatedEnv(),
      // The runtime's ec2 checks (DescribeInstances, AssumeRole) go to moto as its default account.
      AWS_ENDPOINT_URL: moto.endpoint,
      // The runtime's own discovery loop sends its installs to the SSM simulator, as `discovery enroll` does.
      AWS_ENDPOINT_URL_SSM: ssmEndpoint,
      AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey,
      AWS_REGION: "us-east-1",
      // Its GCP calls (listing, live instance checks) go to the fake Google APIs.
      ...gcp.env,
      // And its Azure calls to the fake ARM, with the credential of the sandbox's Entra ID application, over
      // HTTPS with a certificate only the sandbox issued.
      ...azure.env,
      NODE_EXTRA_CA_CERTS: azure.tlsCertFile,
    },
    stdio: ["ignore", log, log],
  });
  fs.closeSync(log);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
  };
  const certFile = path.join(dir, "data", "tls.crt");
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`discovery serve exited with ${child.exitCode}; see ${p.runtimeLog}`);
    if (fs.existsSync(certFile)) {
      const ready = await request({ server: url, caFile: certFile }, "GET", "/readyz").catch(() => undefined);
      if (ready?.status === 200) break;
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the runtime did not answer on ${url} within 60 s; see ${p.runtimeLog}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const pin = describeCertificate(fs.readFileSync(certFile, "utf8")).publicKeyPin;
  logger.info({ url, pin }, "runtime ready");
  return { child, url, pin, certFile, adminTokenFile: path.join(dir, "data", "admin.token"), stop };
}

/** DIR/env.sh: what a shell needs to use the sandbox (`. DIR/env.sh`). */
function writeEnvFile(state: SandboxState): void {
  const vars: [string, string][] = [
    ["AWS_ENDPOINT_URL", state.moto],
    ["AWS_ENDPOINT_URL_SSM", state.ssm],
    ["AWS_ACCESS_KEY_ID", MOTO_CREDENTIALS.accessKeyId],
    ["AWS_SECRET_ACCESS_KEY", MOTO_CREDENTIALS.secretAccessKey],
    ["AWS_REGION", "us-east-1"],
    ["AWS_DEFAULT_REGION", "us-east-1"],
    ["DISCOVERY_SERVER", state.runtime.url],
    ["DISCOVERY_ADMIN_TOKEN", fs.readFileSync(state.runtime.adminTokenFile, "utf8").trim()],
    // The runtime's certificate and the fake Azure endpoints' (a bundle; the runtime's alone before Azure).
    ["NODE_EXTRA_CA_CERTS", state.caBundle ?? state.runtime.certFile],
    ["DISCOVERY_CA_PIN", state.runtime.pin],
    ...(state.organizationId ? [["DISCOVERY_SANDBOX_ORGANIZATION_ID", state.organizationId] as [string, string]] : []),
    ...(state.events ? [["DISCOVERY_SANDBOX_EVENTS_QUEUE_URL", state.events.queueUrl] as [string, string]] : []),
    ...Object.entries(state.gcp?.env ?? {}),
    ...Object.entries(state.azure?.env ?? {}),
  ];
  const lines = [
    `# discovery sandbox in ${state.dir} (pid ${state.pid}); use it with: . ${shellQuote(sandboxPaths(state.dir).env)}`,
    // A profile or session token left in the shell must not send sandbox calls anywhere else.
    "unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN GCE_METADATA_HOST CLOUDSDK_CONFIG AZURE_IMDS_ENDPOINT AZURE_USERNAME AZURE_PASSWORD AZURE_CLIENT_CERTIFICATE_PATH AZURE_FEDERATED_TOKEN_FILE IDENTITY_ENDPOINT IDENTITY_HEADER MSI_ENDPOINT MSI_SECRET",
    ...vars.map(([k, v]) => `export ${k}=${shellQuote(v)}`),
  ];
  fs.writeFileSync(sandboxPaths(state.dir).env, lines.join("\n") + "\n", { mode: 0o600 });
}

function writeAtomically(file: string, text: string): void {
  fs.writeFileSync(`${file}.tmp`, text, { mode: 0o600 });
  fs.renameSync(`${file}.tmp`, file);
}

/** Takes DIR/sandbox.pid for this process; false when another live sandbox process holds it. */
function claimPidFile(file: string): boolean {
  for (;;) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: "wx" });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const holder = Number(fs.readFileSync(file, "utf8").trim());
      if (holder && holder !== process.pid && isAlive(holder)) return false;
      fs.rmSync(file, { force: true }); // stale: its process is gone
    }
  }
}

/**
 * The sandbox daemon (`discovery sandbox _daemon --dir DIR`): moto, a runtime trusting the sandbox CA, the fleet,
 * the SSM simulator and the control API, until SIGTERM, SIGINT or POST /v1/stop. Logs go to stdout (the CLI
 * points it at DIR/sandbox.log); DIR/sandbox.json appears, last, once everything answers.
 */
export async function runSandboxDaemon(dirArg: string, options: SandboxOptions = {}): Promise<void> {
  const dir = path.resolve(dirArg);
  fs.mkdirSync(dir, { recursive: true });
  const p = sandboxPaths(dir);
  const logger = pino({ name: "discovery-sandbox" });
  if (!claimPidFile(p.pid)) {
    logger.info({ dir, state: readSandboxState(dir) }, "a sandbox is already running in this directory");
    return;
  }
  fs.rmSync(p.state, { force: true });
  // Instances live in moto's memory, which starts empty: their directories from a previous run mean nothing.
  fs.rmSync(p.instances, { recursive: true, force: true });

  const cleanups: { name: string; run: () => Promise<unknown> }[] = [];
  let stopping: Promise<void> | undefined;
  const shutdown = (reason: string, code = 0) =>
    (stopping ??= (async () => {
      logger.info({ reason }, "stopping the sandbox");
      for (const c of cleanups.reverse()) {
        await c.run().catch((err) => logger.error({ err, part: c.name }, "could not stop cleanly"));
      }
      fs.rmSync(p.state, { force: true });
      fs.rmSync(p.pid, { force: true });
      logger.info("sandbox stopped");
      process.exit(code);
    })());
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));

  try {
    const moto = await startMoto();
    cleanups.push({ name: "moto", run: () => moto.stop() });
    logger.info({ endpoint: moto.endpoint }, "moto ready");
    const accounts = new MotoAccounts(moto.endpoint);
    const signer = await loadOrCreateCa(p.caCert, p.caKey, "pulumi-discovery sandbox IID CA");
    const organizationId = await seedMoto(moto, logger);
    // The simulator needs the runtime's TLS pin and the runtime the simulator's address: the port is chosen first.
    const ssmPort = await freePort();
    const gcp = await startGcpSandbox(dir, p.instances);
    cleanups.push({ name: "gcp", run: () => gcp.stop() });
    logger.info({ endpoint: gcp.api.endpoint }, "fake Google APIs ready");
    const azure = await startAzureSandbox(dir, p.instances);
    cleanups.push({ name: "azure", run: () => azure.stop() });
    logger.info({ arm: azure.armEndpoint, entra: azure.authorityHost }, "fake Azure ready");
    // EC2 state-change events of launches, routed by moto's EventBridge to a queue per region (us-east-1's now).
    const events = new SandboxEventBus(moto.endpoint);
    const eventsQueue = await events.queue("us-east-1");
    const runtime = await startRuntimeProcess(dir, moto, `http://127.0.0.1:${ssmPort}`, gcp, azure, logger, {
      ...options,
      eventsQueueUrl: eventsQueue.url,
    });
    cleanups.push({ name: "runtime", run: () => runtime.stop() });
    const fleet = new Fleet({ dir: p.instances, accounts, signer, events });
    cleanups.push({ name: "fleet", run: () => fleet.stop() });
    const ssm = await startSsmSimulator({
      fleet,
      accounts,
      runtimeTls: { origin: new URL(runtime.url).origin, pin: runtime.pin },
      logger: logger.child({ component: "ssm" }),
      port: ssmPort,
    });
    cleanups.push({ name: "ssm simulator", run: () => ssm.close() });
    const token = randomBytes(24).toString("base64url");
    let state: SandboxState | undefined;
    const control = await startControlApi({
      fleet,
      gcp: gcp.world,
      gcpApi: gcp.api,
      azure: azure.world,
      azureArm: azure.arm,
      token,
      status: () => ({
        ...state,
        control: undefined,
        instances: fleet.list().length + gcp.world.all().length + azure.world.all().length,
      }),
      onStop: () => void shutdown("POST /v1/stop"),
      logger: logger.child({ component: "control" }),
    });
    cleanups.push({ name: "control API", run: () => control.close() });
    state = {
      pid: process.pid,
      dir,
      startedAt: new Date().toISOString(),
      control: { url: control.url, token },
      moto: moto.endpoint,
      ssm: ssm.endpoint,
      runtime: {
        url: runtime.url,
        pin: runtime.pin,
        certFile: runtime.certFile,
        adminTokenFile: runtime.adminTokenFile,
      },
      organizationId,
      events: { queueUrl: eventsQueue.url, region: "us-east-1" },
      gcp: { endpoint: gcp.api.endpoint, jwksUrl: gcp.api.jwksUrl, env: gcp.env },
      azure: {
        armEndpoint: azure.armEndpoint,
        authorityHost: azure.authorityHost,
        tenantId: azure.tenantId,
        jwksUrl: azure.jwksUrl,
        env: azure.env,
      },
      caBundle: p.caBundle,
    };
    writeAtomically(
      p.caBundle,
      fs.readFileSync(runtime.certFile, "utf8").trimEnd() + "\n" + fs.readFileSync(azure.tlsCertFile, "utf8"),
    );
    runtime.child.once("exit", (code) => void shutdown(`the runtime exited with ${code}; see ${p.runtimeLog}`, 1));
    writeEnvFile(state);
    writeAtomically(p.state, JSON.stringify(state, null, 2) + "\n");
    logger.info(
      { moto: moto.endpoint, ssm: ssm.endpoint, runtime: runtime.url, control: control.url },
      "sandbox ready",
    );
  } catch (err) {
    logger.error({ err }, "the sandbox could not start");
    await shutdown("start failed", 1);
  }
}
