import * as pulumi from "@pulumi/pulumi";
import { thinProvider } from "./thin-provider";
import type * as dynamic from "@pulumi/pulumi/dynamic";
import type { LocalRuntimeState } from "../deploy/local-process";
import type { WireRuntimeConfig } from "../deploy/runtime-config";

/** Inputs of a LocalRuntime as the engine hands them to the provider. */
export interface LocalRuntimeInputs {
  /** Absolute directory holding runtime.yaml, runtime.log, runtime.pid and (by default) data/. */
  stateDir: string;
  /** The runtime config as wire fields (snake_case), without listen_addr (and public_addr when unset). */
  config: WireRuntimeConfig;
  /** The address to listen on, e.g. 127.0.0.1. */
  host: string;
  /** The port asked for; 0 picks a free one (the previous one when it is still free). */
  requestedPort: number;
}

/** Outputs of a LocalRuntime: the inputs and what the started runtime is. */
export type LocalRuntimeOutputs = LocalRuntimeInputs & LocalRuntimeState;

// Absolute paths, captured by value when Pulumi serializes the provider: the provider process loads these
// modules from the package itself (linked or installed) instead of inlined copies of them.
const PROCESS_MODULE = require.resolve("../deploy/local-process");
const CONFIG_MODULE = require.resolve("../deploy/runtime-config");

function processes(): typeof import("../deploy/local-process") {
  return require(PROCESS_MODULE);
}

function configs(): typeof import("../deploy/runtime-config") {
  return require(CONFIG_MODULE);
}

/** JSON with object keys sorted, so two configs compare equal whatever order their fields came in. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}

/** Whether the runtime a state describes is still the process it started. */
function running(state: LocalRuntimeOutputs): boolean {
  return Boolean(state.pid && state.configFile) && processes().isRuntimeProcess(state.pid, state.configFile);
}

/**
 * `discovery serve` as a background process on this machine. Every input change restarts it, on the port it had
 * when that port is free. A process that is gone shows as a replacement at the next preview or up (which starts
 * it again), and as deleted at refresh.
 */
export const localRuntimeProvider: dynamic.ResourceProvider = {
  async check(_olds: LocalRuntimeInputs, news: LocalRuntimeInputs) {
    const failures: dynamic.CheckFailure[] = [];
    if (typeof news.stateDir !== "string" || !require("path").isAbsolute(news.stateDir))
      failures.push({ property: "stateDir", reason: "must be an absolute directory path" });
    if (!Number.isInteger(news.requestedPort) || news.requestedPort < 0 || news.requestedPort > 65535)
      failures.push({ property: "requestedPort", reason: "must be a port number, or 0 to pick a free one" });
    if (typeof news.host !== "string" || news.host === "")
      failures.push({ property: "host", reason: "must be an address to listen on, such as 127.0.0.1" });
    if (failures.length === 0) {
      try {
        const c = configs();
        const p = processes();
        c.checkWireConfig(p.localWireConfig(news.config, news.host, news.requestedPort || 1), {
          yaml: true,
          baseDir: news.stateDir,
        });
      } catch (err) {
        failures.push({ property: "config", reason: (err as Error).message });
      }
    }
    return { inputs: news, failures };
  },

  async diff(_id: string, olds: LocalRuntimeOutputs, news: LocalRuntimeInputs) {
    const replaces: string[] = [];
    for (const k of ["stateDir", "host", "requestedPort", "config"] as const)
      if (canonical(olds[k]) !== canonical(news[k])) replaces.push(k);
    if (replaces.length === 0 && !running(olds)) replaces.push("pid"); // stopped outside Pulumi: start it again
    // The new runtime takes over its state dir (create stops the process serving it), so it is created first and
    // the resources using its address and token see them unchanged. In another state dir the old process would
    // keep its port: that one is stopped first.
    return { changes: replaces.length > 0, replaces, deleteBeforeReplace: replaces.includes("stateDir") };
  },

  async create(inputs: LocalRuntimeInputs) {
    const state = await processes().startLocalRuntime({
      stateDir: inputs.stateDir,
      wire: inputs.config,
      host: inputs.host,
      port: inputs.requestedPort,
    });
    return { id: `${state.pid}@${inputs.stateDir}`, outs: { ...inputs, ...state } };
  },

  async read(id: string, props: LocalRuntimeOutputs) {
    if (!running(props)) return { id: "", props: {} }; // the process is gone: the engine drops the resource
    const p = processes();
    const caPins = await p
      .readCaPins(props.address, props.tlsCert, props.tlsPin, props.adminToken)
      .catch(() => undefined);
    return { id, props: { ...props, ...(caPins ? { caPins } : {}) } };
  },

  async delete(_id: string, props: LocalRuntimeOutputs) {
    const p = processes();
    // A replacement created since runs from the same state dir under a pid of its own: leave it alone.
    if (props.pid && props.configFile && p.pidFileNames(props.stateDir, props.pid))
      await p.stopRuntime(props.pid, props.configFile);
  },
};

/** Arguments of a LocalRuntime. */
export interface LocalRuntimeArgs {
  /** Absolute state directory. */
  stateDir: pulumi.Input<string>;
  /** The runtime config as wire fields (snake_case). */
  config: pulumi.Input<WireRuntimeConfig>;
  /** The address to listen on. */
  host: pulumi.Input<string>;
  /** The port to listen on; 0 picks a free one. */
  requestedPort: pulumi.Input<number>;
}

/** `discovery serve` on this machine (type `pulumi-nodejs:dynamic/discovery:LocalRuntime`). */
export class LocalRuntime extends pulumi.dynamic.Resource {
  /** https://HOST:PORT it answers on. */
  declare public readonly address: pulumi.Output<string>;
  /** The config's public_addr. */
  declare public readonly publicAddr: pulumi.Output<string>;
  /** The port it listens on. */
  declare public readonly port: pulumi.Output<number>;
  /** The process id. */
  declare public readonly pid: pulumi.Output<number>;
  /** PEM of its TLS certificate. */
  declare public readonly tlsCert: pulumi.Output<string>;
  /** `sha256//<base64>` pin of its TLS key. */
  declare public readonly tlsPin: pulumi.Output<string>;
  /** Trusted host and user CA public keys. */
  declare public readonly caPins: pulumi.Output<{ host: string[]; user: string[] }>;
  /** The admin token (secret). */
  declare public readonly adminToken: pulumi.Output<string>;
  /** Its config file. */
  declare public readonly configFile: pulumi.Output<string>;
  /** Its log file. */
  declare public readonly logFile: pulumi.Output<string>;

  /** Declares a runtime process serving from `args.stateDir`. */
  constructor(name: string, args: LocalRuntimeArgs, opts?: pulumi.CustomResourceOptions) {
    const outputs = {
      address: undefined,
      publicAddr: undefined,
      port: undefined,
      pid: undefined,
      tlsCert: undefined,
      tlsPin: undefined,
      caPins: undefined,
      adminToken: undefined,
      configFile: undefined,
      logFile: undefined,
    };
    super(
      thinProvider(__filename, "localRuntimeProvider"),
      name,
      { ...outputs, ...args },
      pulumi.mergeOptions(opts, { additionalSecretOutputs: ["adminToken"] }),
      "discovery",
      "LocalRuntime",
    );
  }
}
