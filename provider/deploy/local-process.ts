/**
 * `discovery serve` as a background process on this machine (DiscoveryService's local target): start it
 * detached from a config in a state directory, wait until it answers over TLS with the expected key, find it
 * again by pid, and stop it.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import * as tls from "tls";
import { parse, stringify } from "yaml";
import { request } from "../http/client";
import { loadRuntimeConfig, RuntimeConfig } from "../runtime/config";
import { describeCertificate } from "../runtime/tls";
import { joinHostPort, splitListenAddr, WireRuntimeConfig } from "./runtime-config";

/** What a started local runtime is. */
export interface LocalRuntimeState {
  /** https://HOST:PORT the runtime answers on from this machine. */
  address: string;
  /** The config's public_addr: what installers and nodes use. */
  publicAddr: string;
  port: number;
  pid: number;
  /** PEM of the runtime's TLS certificate. */
  tlsCert: string;
  /** `sha256//<base64>` of its public key. */
  tlsPin: string;
  /** The trusted host and user CA public keys (GET /v1/cas). */
  caPins: { host: string[]; user: string[] };
  adminToken: string;
  configFile: string;
  logFile: string;
}

/** Whether the state dir's pid file names `pid` (a later start there writes its own). */
export function pidFileNames(stateDir: string, pid: number): boolean {
  try {
    return Number(fs.readFileSync(statePaths(stateDir).pid, "utf8").trim()) === pid;
  } catch {
    return false;
  }
}

/** Files of a state directory. */
export function statePaths(stateDir: string): { config: string; log: string; pid: string } {
  return {
    config: path.join(stateDir, "runtime.yaml"),
    log: path.join(stateDir, "runtime.log"),
    pid: path.join(stateDir, "runtime.pid"),
  };
}

/** This package's root directory (where its package.json is), from this file in the source and dist layouts. */
export function packageRoot(): string {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const pkg = path.join(dir, "package.json");
    if (fs.existsSync(pkg) && /"name":\s*"pulumi-discovery"/.test(fs.readFileSync(pkg, "utf8"))) return dir;
  }
  throw new Error(`cannot find the pulumi-discovery package above ${__dirname}`);
}

/** The `discovery` bin of this package (bin/discovery.js). */
export function packageBin(): string {
  return path.join(packageRoot(), "bin", "discovery.js");
}

/** Whether `pid` is a live process (a zombie counts as gone). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0] !== "Z";
  } catch {
    return process.platform !== "linux";
  }
}

/**
 * Whether `pid` is the runtime serving `configFile`: a pid can outlive its process and be reused, so only a
 * process whose command line names the config is ever signalled.
 */
export function isRuntimeProcess(pid: number, configFile: string): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return false;
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(configFile);
  } catch {
    return process.platform !== "linux"; // no /proc to ask: trust the pid
  }
}

function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once("error", () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** A free port on `host`, preferring `previous` (so a restarted runtime keeps its address) when it is free. */
export async function choosePort(host: string, previous?: number, waitMs = 3000): Promise<number> {
  // A runtime that just died may hold its port a moment longer: its side of a connection a client has not closed
  // yet sits in FIN_WAIT, which blocks a new listener on Linux even with SO_REUSEADDR. Wait for it a little.
  for (let waited = 0; previous; waited += 200) {
    if (await portIsFree(host, previous)) return previous;
    if (waited >= waitMs) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** The port of the config a state directory last ran with, if any. */
export function previousPort(stateDir: string): number | undefined {
  try {
    const listen = (parse(fs.readFileSync(statePaths(stateDir).config, "utf8")) as { listen_addr?: unknown })
      ?.listen_addr;
    return typeof listen === "string" ? splitListenAddr(listen).port || undefined : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One GET to the runtime, trusting only a server whose key has `pin` (the certificate need not name the host:
 * a user's certificate for a public name still serves on 127.0.0.1).
 */
export async function pinnedGet(
  address: string,
  urlPath: string,
  certPem: string,
  pin: string,
  adminToken?: string,
): Promise<{ status: number; body: unknown }> {
  const target = { server: address, adminToken, ca: [certPem, ...tls.rootCertificates], pin, timeoutMs: 10_000 };
  const { status, body } = await request(target, "GET", urlPath);
  return { status, body };
}

/** The last lines of a log file, for errors. */
export function logTail(file: string, lines = 20): string {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Stops the runtime `pid` serving `configFile` (SIGTERM, then SIGKILL after `graceMs`); a gone process is fine. */
export async function stopRuntime(pid: number, configFile: string, graceMs = 15_000): Promise<void> {
  if (!isRuntimeProcess(pid, configFile)) return;
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) {
      process.kill(pid, "SIGKILL");
      await sleep(200);
      break;
    }
    await sleep(100);
  }
}

/** The config a local runtime runs with: the user's, listening on `host:port`, its state under the state dir. */
export function localWireConfig(wire: WireRuntimeConfig, host: string, port: number): WireRuntimeConfig {
  const loopback = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  return {
    storage: { type: "sqlite", path: "./data/discovery.db" },
    admin_token_file: "./data/admin.token",
    ...wire,
    listen_addr: joinHostPort(host, port),
    public_addr: (wire.public_addr as string | undefined) ?? `https://${joinHostPort(loopback, port)}`,
  };
}

/**
 * Writes the config to `stateDir`/runtime.yaml and starts `discovery serve` on it in a session of its own (it
 * outlives the caller), stopping first a runtime left running there. Returns once /readyz answers with the
 * runtime's TLS key, with what a client needs to use it.
 */
export async function startLocalRuntime(opts: {
  stateDir: string;
  wire: WireRuntimeConfig;
  host: string;
  port: number;
  timeoutMs?: number;
}): Promise<LocalRuntimeState> {
  const paths = statePaths(opts.stateDir);
  fs.mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
  const stale = Number(fs.existsSync(paths.pid) ? fs.readFileSync(paths.pid, "utf8").trim() : NaN);
  await stopRuntime(stale, paths.config);
  const port = opts.port || (await choosePort(opts.host, previousPort(opts.stateDir)));
  const wire = localWireConfig(opts.wire, opts.host, port);
  // The config may hold a postgres URL with its password: only the owner reads it.
  fs.writeFileSync(
    paths.config,
    "# written by DiscoveryService (local); rewritten on every start\n" + stringify(wire),
    {
      mode: 0o600,
    },
  );
  const config: RuntimeConfig = loadRuntimeConfig(paths.config); // refuses a bad config before anything starts
  const log = fs.openSync(paths.log, "a");
  const child = spawn(process.execPath, [packageBin(), "serve", "--config", paths.config], {
    cwd: opts.stateDir,
    detached: true,
    stdio: ["ignore", log, log],
  });
  fs.closeSync(log);
  let exit: string | undefined;
  child.on("exit", (code, signal) => (exit = signal ? `signal ${signal}` : `code ${code}`));
  child.unref();
  const pid = child.pid!;
  fs.writeFileSync(paths.pid, `${pid}\n`);

  const loopback = opts.host === "0.0.0.0" || opts.host === "::" ? "127.0.0.1" : opts.host;
  const address = `https://${joinHostPort(loopback, port)}`;
  const certFile = config.tls?.certFile ?? path.join(config.dataDir, "tls.crt");
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (;;) {
    if (exit) throw new Error(`discovery serve exited (${exit}) before it was ready:\n${logTail(paths.log)}`);
    if (fs.existsSync(certFile)) {
      const cert = fs.readFileSync(certFile, "utf8");
      const pin = describeCertificate(cert).publicKeyPin;
      const ready = await pinnedGet(address, "/readyz", cert, pin).catch(() => undefined);
      if (ready?.status === 200) {
        const adminToken = fs.readFileSync(config.adminTokenFile, "utf8").trim();
        const caPins = await readCaPins(address, cert, pin, adminToken);
        return {
          address,
          publicAddr: config.publicAddr,
          port,
          pid,
          tlsCert: cert,
          tlsPin: pin,
          caPins,
          adminToken,
          configFile: paths.config,
          logFile: paths.log,
        };
      }
    }
    if (Date.now() > deadline) {
      await stopRuntime(pid, paths.config);
      throw new Error(
        `the runtime did not answer on ${address} within ${(opts.timeoutMs ?? 60_000) / 1000} s:\n${logTail(paths.log)}`,
      );
    }
    await sleep(200);
  }
}

/** The trusted host and user CA public keys, from GET /v1/cas. */
export async function readCaPins(
  address: string,
  cert: string,
  pin: string,
  adminToken: string,
): Promise<{ host: string[]; user: string[] }> {
  const a = await pinnedGet(address, "/v1/cas", cert, pin, adminToken);
  if (a.status !== 200) throw new Error(`GET /v1/cas answered ${a.status}: ${JSON.stringify(a.body).slice(0, 300)}`);
  const cas = a.body as Record<string, { public_keys?: string[] } | undefined>;
  return { host: cas.host?.public_keys ?? [], user: cas.user?.public_keys ?? [] };
}
