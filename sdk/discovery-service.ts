import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import {
  checkVmConfig,
  checkWireConfig,
  matchersOf,
  splitListenAddr,
  WireRuntimeConfig,
  wireConfig,
} from "../provider/deploy/runtime-config";
import { localWireConfig, packageRoot } from "../provider/deploy/local-process";
import { gcpDiscoveryRole } from "../provider/clouds/policies";
import { discoveryPolicy } from "../provider/clouds/aws/policy";
import { LocalRuntime } from "../provider/pulumi/local-runtime";
import type { AwsTargetArgs } from "../provider/pulumi/service-aws";
import type { GcpTargetArgs } from "../provider/pulumi/service-gcp";
import type { VmOutputs, VmPlan } from "../provider/pulumi/service-vm";
import type { AwsMatcherArgs, GcpMatcherArgs } from "./policy-config";

export type { AwsTargetArgs } from "../provider/pulumi/service-aws";
export type { GcpTargetArgs } from "../provider/pulumi/service-gcp";

/** Where a DiscoveryService runs. */
export type DiscoveryServiceTarget = "local" | "aws" | "gcp";

/** The runtime config of SPEC §3 in camelCase (relative paths: see DiscoveryServiceArgs.config). */
export interface RuntimeConfigArgs {
  /** Cluster name (the gcp join audience); default discovery.local. */
  clusterName?: string;
  /** host:port to listen on. local: port 0 picks a free one; aws/gcp: only the port counts (default 3080). */
  listenAddr?: string;
  /** https URL nodes and installers use; default the deployment's own address. */
  publicAddr?: string;
  /** local only: TLS certificate and key files; default a self-signed certificate made by the runtime. */
  tls?: { certFile: string; keyFile: string };
  /** sqlite (default; local: STATE_DIR/data/discovery.db) or postgres. */
  storage?: { type: "sqlite"; path: string } | { type: "postgres"; url: string };
  /** local only: the admin token file; default STATE_DIR/data/admin.token. */
  adminTokenFile?: string;
  /** local only: OpenSSH Ed25519 keys the host and user CAs start from. */
  certificateAuthorities?: { hostKeyFile?: string; userKeyFile?: string };
  /** Join settings. */
  join?: {
    aws?: { extraCaCerts?: string[]; stsEndpoint?: string };
    gcp?: { issuer?: string; jwksUrl?: string };
    rateLimit?: { requestsPerMinute: number; burst: number };
    /** Lifetime of the host certificates joins issue, e.g. 24h; at most (and by default) 720h. */
    certificateTtl?: string;
  };
  /** Audit log: events older than `retention` (a duration; default 720h, 30 days) are deleted. */
  audit?: { retention?: string };
  /** `requireAdminToken: true`: GET /metrics answers 401 without the admin bearer token (default false). */
  metrics?: { requireAdminToken?: boolean };
  /** The runtime's own discovery loop, as a teleport.yaml's discovery_service. */
  discoveryService?: {
    enabled?: boolean;
    /**
     * The group this runtime belongs to: with it, the runtime also scans every stored DiscoveryConfig
     * whose `discoveryGroup` is the same (without it, only the matchers written here, as group "default").
     */
    discoveryGroup?: string;
    pollInterval?: string;
    aws?: AwsMatcherArgs[];
    gcp?: GcpMatcherArgs[];
    azure?: Record<string, unknown>[];
  };
}

/** Settings of the local target. */
export interface LocalTargetArgs {
  /** Directory of runtime.yaml, runtime.log and data/; default .discovery/<stack>/<name> in the program's directory. */
  stateDir?: string;
  /** Address to listen on; default the config's listenAddr host, else 127.0.0.1. */
  host?: string;
  /** Port; default the config's listenAddr port, else 0 (a free one, kept across restarts while it stays free). */
  port?: number;
}

/** Arguments of a DiscoveryService. */
export interface DiscoveryServiceArgs {
  /** local: a process on this machine; aws: an EC2 instance; gcp: a Compute Engine instance. */
  target: DiscoveryServiceTarget;
  /**
   * The runtime config (SPEC §3): an object in camelCase, or YAML text as `discovery serve` reads it. Plain values,
   * not Outputs: the IAM policy, the custom role and the SSM documents are derived from its matchers when the
   * program runs. local: relative paths are relative to the program's directory.
   */
  config?: RuntimeConfigArgs | string;
  /** local target settings. */
  local?: LocalTargetArgs;
  /** aws target settings (region, instance, network). */
  aws?: AwsTargetArgs;
  /** gcp target settings (project, zone, instance, network). */
  gcp?: GcpTargetArgs;
  /** aws/gcp: npm spec of the runtime the VM installs (a version, tarball URL or git URL); default this package's version. */
  package?: string;
  /** aws/gcp: Node.js major version the VM installs from nodejs.org; default 22. */
  nodeVersion?: string;
}

const TARGETS: readonly string[] = ["local", "aws", "gcp"];

/** Config path fields that name files: made absolute against the program's directory for the local target. */
function absolutize(wire: WireRuntimeConfig, base: string): WireRuntimeConfig {
  const abs = (p: unknown) => (typeof p === "string" ? path.resolve(base, p) : p);
  const out: WireRuntimeConfig = { ...wire };
  const tls = wire.tls as { cert_file?: string; key_file?: string } | undefined;
  if (tls) out.tls = { ...tls, cert_file: abs(tls.cert_file), key_file: abs(tls.key_file) };
  const storage = wire.storage as { type?: string; path?: string } | undefined;
  if (storage?.type === "sqlite" && storage.path) out.storage = { ...storage, path: abs(storage.path) };
  if (wire.admin_token_file) out.admin_token_file = abs(wire.admin_token_file);
  const cas = wire.certificate_authorities as { host_key_file?: string; user_key_file?: string } | undefined;
  if (cas) out.certificate_authorities = Object.fromEntries(Object.entries(cas).map(([k, v]) => [k, abs(v)]));
  const join = wire.join as { aws?: { extra_ca_certs?: string[] } } | undefined;
  if (join?.aws?.extra_ca_certs)
    out.join = { ...join, aws: { ...join.aws, extra_ca_certs: join.aws.extra_ca_certs.map((f) => abs(f) as string) } };
  return out;
}

/** This package's version, for the default `package` spec. */
function ownVersion(): string {
  return (require(path.join(packageRoot(), "package.json")) as { version: string }).version;
}

/**
 * The discovery runtime (`discovery serve`) deployed to this machine, an EC2 instance or a Compute Engine
 * instance. Its outputs connect the other resources of the program to it:
 * `new ProvisionToken("t", {..., server: svc.address, adminToken: svc.adminToken, caCert: svc.tlsCert})`.
 */
export class DiscoveryService extends pulumi.ComponentResource {
  /** https URL the runtime answers on. */
  declare public readonly address: pulumi.Output<string>;
  /** Trusted SSH host and user CA public keys (as GET /v1/cas lists them): for known_hosts and TrustedUserCAKeys. */
  declare public readonly caPins: pulumi.Output<{ host: string[]; user: string[] }>;
  /** `sha256//<base64>` pin of the runtime's TLS key (curl --pinnedpubkey, DISCOVERY_CA_PIN). */
  declare public readonly tlsPin: pulumi.Output<string>;
  /** The runtime's TLS certificate (PEM): `caCert` of the resources that talk to it, or curl --cacert. */
  declare public readonly tlsCert: pulumi.Output<string>;
  /** The admin API's bearer token (secret). */
  declare public readonly adminToken: pulumi.Output<string>;
  /** aws/gcp: the instance id. */
  declare public readonly instanceId: pulumi.Output<string | undefined>;
  /** local: the runtime's process id. */
  declare public readonly pid: pulumi.Output<number | undefined>;

  /** Deploys the runtime to `args.target`. */
  constructor(name: string, args: DiscoveryServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    // The args are the component's inputs, so policy packs see them; a config holding a postgres URL (and its
    // password) is kept secret in the state.
    const postgres = JSON.stringify(args?.config ?? "").includes("postgres");
    super(
      "discovery:index:DiscoveryService",
      name,
      { ...args, ...(postgres ? { config: pulumi.secret(args.config) } : {}) },
      opts,
    );
    if (!args || !TARGETS.includes(args.target))
      throw new Error(`target: must be "local", "aws" or "gcp", not ${JSON.stringify(args?.target)}`);
    for (const other of TARGETS)
      if (other !== args.target && (args as unknown as Record<string, unknown>)[other] !== undefined)
        throw new Error(`${other}: settings for target "${other}" given, but target is "${args.target}"`);
    const yaml = typeof args.config === "string";
    const wire = wireConfig(args.config);
    let outs: Omit<VmOutputs, "instanceId"> & { instanceId?: pulumi.Output<string>; pid?: pulumi.Output<number> };
    if (args.nodeVersion !== undefined && !/^\d{2,}$/.test(args.nodeVersion))
      throw new Error(`nodeVersion: must be a Node.js major version such as "22", not ${args.nodeVersion}`);
    if (args.target === "local") outs = this.local(name, args.local ?? {}, wire, yaml);
    else {
      const { port, runtime } = checkVmConfig(wire, args.target, yaml);
      const plan: VmPlan = {
        name,
        parent: this,
        wire,
        runtime,
        port,
        packageSpec: args.package ?? `pulumi-discovery@${ownVersion()}`,
        nodeMajor: args.nodeVersion ?? "22",
      };
      const matchers = matchersOf(runtime);
      if (args.target === "aws") {
        const { deployAws } =
          require("../provider/pulumi/service-aws") as typeof import("../provider/pulumi/service-aws");
        outs = deployAws(plan, args.aws ?? {}, matchers.aws.length ? discoveryPolicy(matchers.aws) : undefined);
      } else {
        const { deployGcp } =
          require("../provider/pulumi/service-gcp") as typeof import("../provider/pulumi/service-gcp");
        const role = matchers.gcp.length ? gcpDiscoveryRole(matchers.gcp) : undefined;
        outs = deployGcp(
          plan,
          args.gcp ?? {},
          role && { title: role.title, description: role.description, permissions: role.includedPermissions },
        );
      }
    }
    this.address = outs.address;
    this.caPins = outs.caPins;
    this.tlsPin = outs.tlsPin;
    this.tlsCert = outs.tlsCert;
    this.adminToken = pulumi.secret(outs.adminToken);
    this.instanceId = outs.instanceId ?? pulumi.output(undefined);
    this.pid = outs.pid ?? pulumi.output(undefined);
    this.registerOutputs({
      address: this.address,
      caPins: this.caPins,
      tlsPin: this.tlsPin,
      tlsCert: this.tlsCert,
      adminToken: this.adminToken,
      instanceId: this.instanceId,
      pid: this.pid,
    });
  }

  private local(name: string, local: LocalTargetArgs, userWire: WireRuntimeConfig, yaml: boolean) {
    const listen = typeof userWire.listen_addr === "string" ? splitListenAddr(userWire.listen_addr) : undefined;
    const host = local.host ?? listen?.host ?? "127.0.0.1";
    const port = local.port ?? listen?.port ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new Error(`local.port: must be a port number, or 0 to pick a free one, not ${port}`);
    const stateDir = path.resolve(local.stateDir ?? path.join(".discovery", pulumi.getStack(), name));
    const { listen_addr: _listen, ...wire } = absolutize(userWire, process.cwd());
    checkWireConfig(localWireConfig(wire, host, port || 1), { yaml, baseDir: stateDir });
    const runtime = new LocalRuntime(
      `${name}-runtime`,
      { stateDir, config: wire, host, requestedPort: port },
      { parent: this },
    );
    return {
      address: runtime.address,
      caPins: runtime.caPins,
      tlsPin: runtime.tlsPin,
      tlsCert: runtime.tlsCert,
      adminToken: runtime.adminToken,
      pid: runtime.pid,
    };
  }
}
