/**
 * The runtime config (SPEC §3) a DiscoveryService deploys: the user's config (camelCase object or YAML text),
 * checked by the runtime's own loader, with the fields a target owns (addresses, paths on the VM) filled in.
 */
import { parse, stringify } from "yaml";
import { formatPath, snakify } from "../model";
import type { AwsMatcher, GcpMatcher } from "../model";
import { ConfigError, parseRuntimeConfig, RuntimeConfig } from "../runtime/config";

/** A runtime config as snake_case wire fields, not yet checked. */
export type WireRuntimeConfig = Record<string, unknown>;

/** Where a VM target keeps the runtime's files (the systemd unit may write only under DATA_DIR). */
export const VM_PATHS = {
  configDir: "/etc/discovery",
  config: "/etc/discovery/config.yaml",
  tlsCert: "/etc/discovery/tls.crt",
  tlsKey: "/etc/discovery/tls.key",
  hostCaKey: "/etc/discovery/host_ca.key",
  userCaKey: "/etc/discovery/user_ca.key",
  dataDir: "/var/lib/discovery",
  adminToken: "/var/lib/discovery/admin.token",
  database: "/var/lib/discovery/discovery.db",
} as const;

/** The port the runtime listens on when the config names none. */
export const DEFAULT_PORT = 3080;

/** The cluster name when the config names none. */
export const DEFAULT_CLUSTER_NAME = "discovery.local";

/** A placeholder host for checks made before the deployed address is known. */
const PLACEHOLDER_HOST = "runtime.invalid";

/**
 * The user's config as wire fields: YAML text is parsed as written (snake_case), an object is converted from
 * camelCase (tag and label keys kept). `version` and `cluster_name` get their defaults.
 */
export function wireConfig(config: object | string | undefined): WireRuntimeConfig {
  let value: unknown = {};
  if (typeof config === "string") {
    try {
      value = parse(config) ?? {};
    } catch (err) {
      throw new Error(`config: not valid YAML: ${(err as Error).message}`);
    }
  } else if (config !== undefined) value = snakify(config);
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new Error("config: must be a runtime config (an object, or YAML text of one) as in SPEC §3");
  return { version: "v1", cluster_name: DEFAULT_CLUSTER_NAME, ...(value as WireRuntimeConfig) };
}

/**
 * Checks `wire` with the runtime's loader, as `discovery serve` will; throws one error naming every problem as
 * `config.<camelCase path>` (or the snake_case path for YAML text, which the user wrote that way).
 */
export function checkWireConfig(wire: WireRuntimeConfig, opts: { yaml: boolean; baseDir?: string }): RuntimeConfig {
  try {
    return parseRuntimeConfig(stringify(wire), `${opts.baseDir ?? "/"}/config.yaml`);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const field = (p: (string | number)[]) =>
      "config." + formatPath(opts.yaml ? p : p.map((s) => (typeof s === "string" ? camelName(s) : s)));
    throw new Error(`invalid runtime config: ${err.problems.map((p) => `${field(p.path)}: ${p.message}`).join("; ")}`);
  }
}

function camelName(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** host and port of a `host:port` listen address (the port may be 0). */
export function splitListenAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  return { host: addr.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(addr.slice(i + 1)) };
}

/** `host:port`, with brackets around an IPv6 host. */
export function joinHostPort(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Fields a VM target makes itself: a file path in the user's config would name a file the VM does not have. */
const VM_OWNED = [
  ["tls", "the target makes the TLS certificate and key and ships them to the VM"],
  ["admin_token_file", "the target makes the admin token and ships it to the VM"],
  ["certificate_authorities", "the target makes the SSH CA keys and ships them to the VM"],
] as const;

/**
 * The config a VM target writes to /etc/discovery/config.yaml: listening on every interface, the deployment's
 * public address, its TLS files and CA keys, and the store under /var/lib/discovery unless postgres.
 */
export function vmWireConfig(wire: WireRuntimeConfig, publicAddr: string, port: number): WireRuntimeConfig {
  const storage = wire.storage as { type?: string; path?: string } | undefined;
  return {
    ...wire,
    listen_addr: joinHostPort("0.0.0.0", port),
    public_addr: (wire.public_addr as string | undefined) ?? publicAddr,
    tls: { cert_file: VM_PATHS.tlsCert, key_file: VM_PATHS.tlsKey },
    storage: storage?.type === "postgres" ? storage : { type: "sqlite", path: storage?.path ?? VM_PATHS.database },
    admin_token_file: VM_PATHS.adminToken,
    certificate_authorities: { host_key_file: VM_PATHS.hostCaKey, user_key_file: VM_PATHS.userCaKey },
  };
}

/**
 * Checks the user's config for a VM target before anything is created, and returns its port (from
 * `listen_addr`, else 3080). Throws naming the field when the config names files the target makes itself.
 */
export function checkVmConfig(
  wire: WireRuntimeConfig,
  target: "aws" | "gcp",
  yaml: boolean,
): { port: number; runtime: RuntimeConfig } {
  const name = (k: string) => (yaml ? `config.${k}` : `config.${camelName(k)}`);
  for (const [key, why] of VM_OWNED)
    if (wire[key] !== undefined) throw new Error(`${name(key)}: leave it out for target "${target}": ${why}`);
  const extraCas = (wire.join as { aws?: { extra_ca_certs?: unknown[] } } | undefined)?.aws?.extra_ca_certs;
  if (extraCas?.length)
    throw new Error(
      `${yaml ? "config.join.aws.extra_ca_certs" : "config.join.aws.extraCaCerts"}: files on this machine are not ` +
        `on the ${target} VM; leave it out (the embedded AWS region certificates are trusted)`,
    );
  const storage = wire.storage as { type?: string; path?: string } | undefined;
  if (storage?.type === "sqlite" && storage.path && !storage.path.startsWith(`${VM_PATHS.dataDir}/`))
    throw new Error(
      `${name("storage")}.path: the runtime may write only under ${VM_PATHS.dataDir} on the VM; ` +
        `use a path there or leave it out (${VM_PATHS.database})`,
    );
  const listen = typeof wire.listen_addr === "string" ? splitListenAddr(wire.listen_addr) : undefined;
  const port = listen?.port || DEFAULT_PORT;
  const placeholder = `https://${PLACEHOLDER_HOST}:${port}`;
  const runtime = checkWireConfig(vmWireConfig(wire, placeholder, port), { yaml });
  return { port, runtime };
}

/** The AWS and GCP matchers of a checked config's discovery_service (none when it is disabled). */
export function matchersOf(runtime: RuntimeConfig): { aws: AwsMatcher[]; gcp: GcpMatcher[] } {
  const ds = runtime.discoveryService;
  return { aws: ds?.enabled ? ds.aws : [], gcp: ds?.enabled ? ds.gcp : [] };
}
