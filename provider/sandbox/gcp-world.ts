import { createHash, randomBytes, randomInt } from "crypto";
import * as fs from "fs";
import * as path from "path";
import type { GcpIssuer } from "./gcp-issuer";
import { GcpLaunchOptions, parseGcpLaunchOptions } from "./gcp-launch-options";
import { GcpMetadataServer, startGcpMetadata } from "./gcp-metadata";
import { GcpGuest, startGcpGuest } from "./gcp-vm";

/** A metadata item as Compute carries it. */
export interface MetadataItem {
  key: string;
  value?: string;
}

/** One simulated GCE VM: its control-plane record and, while running, its metadata server and guest sshd. */
export interface GcpVm {
  id: string;
  name: string;
  project: string;
  projectNumber: string;
  zone: string;
  labels: Record<string, string>;
  status: "RUNNING" | "TERMINATED";
  serviceAccount: string;
  createdAt: Date;
  /** As GCE reports it: RFC 3339 with milliseconds and a -08:00 offset. */
  creationTimestamp: string;
  metadata: { fingerprint: string; items: MetadataItem[] };
  /** `<instances dir>/<id>`: the VM's disk. */
  dir: string;
  server?: GcpMetadataServer;
  guest?: GcpGuest;
}

/** The JSON view of a GCP VM for the control API and `sandbox launch --json`. */
export interface GcpVmView {
  cloud: "gcp";
  id: string;
  project: string;
  zone: string;
  name: string;
  created_at: string;
  ssh_port?: number;
  service_account: string;
  labels: Record<string, string>;
  status: string;
  metadata_host?: string;
  dir: string;
}

/** A zone operation; the fake's operations are done when returned. */
export interface ZoneOperation {
  id: string;
  name: string;
  project: string;
  zone: string;
  operationType: string;
  targetLink: string;
  targetId: string;
  insertTime: string;
}

/** A refusal Compute would answer with this HTTP status and message. */
export class GcpApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly reason = "invalid",
  ) {
    super(message);
  }
}

/** Compute's resource URLs, also in the fake (they are names, never fetched). */
export const COMPUTE_BASE = "https://www.googleapis.com/compute/v1";

const KEY_RESYNC_MS = 2_000;

/** GCP project numbers are opaque digits; the sandbox derives one per project id so it is stable. */
export function projectNumber(project: string): string {
  return String(parseInt(createHash("sha256").update(project).digest("hex").slice(0, 10), 16)).padStart(12, "1");
}

// GCE reports times in Pacific time with milliseconds: 2026-11-30T03:37:07.123-08:00.
function pacific(d: Date): string {
  return new Date(d.getTime() - 8 * 3600_000).toISOString().replace("Z", "-08:00");
}

const newFingerprint = () => randomBytes(8).toString("base64");

/**
 * The sandbox's GCP VMs: the state the fake Compute API serves and changes, plus the live parts of each VM. The
 * guests' authorized keys are re-derived from metadata every few seconds, so a `google-ssh` key stops working
 * once its `expireOn` passes, as with the guest agent.
 */
export class GcpWorld {
  private readonly vms = new Map<string, GcpVm>();
  private readonly operations = new Map<string, ZoneOperation>();
  private readonly timer: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly opts: { dir: string; issuer: GcpIssuer; sshPortsFile: string }) {
    fs.mkdirSync(opts.dir, { recursive: true });
    this.writePorts();
    this.timer = setInterval(() => this.resyncKeys(), KEY_RESYNC_MS);
    this.timer.unref();
  }

  /** Launches VMs; throws `GcpLaunchOptionError` for an argument that is not acceptable. */
  async launch(request: Record<string, unknown>): Promise<GcpVm[]> {
    if (this.stopped) throw new Error("the GCP world is stopped");
    const opts = parseGcpLaunchOptions(request);
    const made: GcpVm[] = [];
    try {
      for (let i = 0; i < opts.count; i++) made.push(await this.setUp(opts));
    } finally {
      this.writePorts();
    }
    return made;
  }

  /** VMs of a project, in one zone or (zone undefined) all. */
  list(project: string, zone?: string): GcpVm[] {
    return [...this.vms.values()].filter((v) => v.project === project && (zone === undefined || v.zone === zone));
  }

  /** Every VM, in launch order. */
  all(): GcpVm[] {
    return [...this.vms.values()];
  }

  /** The projects that hold VMs: what Resource Manager lists to the sandbox's credentials. */
  projects(): string[] {
    return [...new Set(this.all().map((v) => v.project))];
  }

  /**
   * The zones Compute lists to every project: a few real regions' zones, plus any zone a VM was launched in
   * (launch accepts any zone name), sorted.
   */
  zones(): string[] {
    const known = ["us-central1-a", "us-central1-b", "us-central1-c", "us-east1-b", "us-east1-c", "us-east1-d"];
    const more = ["europe-west1-b", "europe-west1-c", "europe-west1-d", "asia-east1-a", "asia-east1-b"];
    return [...new Set([...known, ...more, ...this.all().map((v) => v.zone)])].sort();
  }

  /** A VM by project, zone and name (or numeric id, as Compute also accepts); 404 when missing. */
  get(project: string, zone: string, name: string): GcpVm {
    const vm = this.list(project, zone).find((v) => v.name === name || v.id === name);
    if (!vm)
      throw new GcpApiError(
        404,
        `The resource 'projects/${project}/zones/${zone}/instances/${name}' was not found`,
        "notFound",
      );
    return vm;
  }

  /** `instances.setMetadata`: replaces the items when the fingerprint matches (412 otherwise). */
  setMetadata(vm: GcpVm, fingerprint: unknown, items: MetadataItem[]): ZoneOperation {
    if (typeof fingerprint !== "string" || fingerprint !== vm.metadata.fingerprint)
      throw new GcpApiError(
        412,
        "Supplied fingerprint does not match current metadata fingerprint.",
        "conditionNotMet",
      );
    vm.metadata = { fingerprint: newFingerprint(), items: items.map((i) => ({ key: i.key, value: i.value ?? "" })) };
    // The guest agent applies metadata within moments; the fake does it before the operation is even returned.
    vm.guest?.syncKeys(vm.metadata.items);
    return this.newOperation(vm, "setMetadata");
  }

  /** A zone operation by name or id; 404 when unknown. */
  operation(project: string, zone: string, name: string): ZoneOperation {
    // By name or id, as GCE takes either: the client's LRO wrapper hands callers the id as `name`.
    const op = this.operations.get(name) ?? [...this.operations.values()].find((o) => o.id === name);
    if (!op || op.project !== project || op.zone !== zone)
      throw new GcpApiError(
        404,
        `The resource 'projects/${project}/zones/${zone}/operations/${name}' was not found`,
        "notFound",
      );
    return op;
  }

  /** `instances.delete`, done at once: the VM, its metadata server and sshd are gone; undefined when unknown. */
  async delete(id: string): Promise<GcpVm | undefined> {
    const vm = this.vms.get(id);
    if (!vm) return undefined;
    this.vms.delete(id);
    this.writePorts();
    await Promise.allSettled([vm.server?.stop(), vm.guest?.stop()]);
    return vm;
  }

  /** Stops every metadata server and sshd; VM directories stay for inspection. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await Promise.allSettled(this.all().flatMap((v) => [v.server?.stop(), v.guest?.stop()]));
  }

  private newOperation(vm: GcpVm, operationType: string): ZoneOperation {
    const id = String(randomInt(1, 2 ** 47)) + String(randomInt(1000, 9999));
    const op: ZoneOperation = {
      id,
      name: `operation-${Date.now()}-${randomBytes(6).toString("hex")}`,
      project: vm.project,
      zone: vm.zone,
      operationType,
      targetLink: `${COMPUTE_BASE}/projects/${vm.project}/zones/${vm.zone}/instances/${vm.name}`,
      targetId: vm.id,
      insertTime: pacific(new Date()),
    };
    this.operations.set(op.name, op);
    return op;
  }

  private async setUp(opts: GcpLaunchOptions): Promise<GcpVm> {
    let id: string;
    // Compute's ids are 19-digit uint64s.
    do id = String(10n ** 18n + (BigInt("0x" + randomBytes(8).toString("hex")) % (8n * 10n ** 18n)));
    while (this.vms.has(id));
    const number = projectNumber(opts.project);
    const createdAt = new Date(Math.floor(Date.now() / 1000) * 1000);
    const items: MetadataItem[] = opts.oslogin ? [{ key: "enable-oslogin", value: "TRUE" }] : [];
    const vm: GcpVm = {
      id,
      name: `sandbox-${randomBytes(4).toString("hex")}`,
      project: opts.project,
      projectNumber: number,
      zone: opts.zone,
      labels: { ...opts.labels },
      status: opts.state === "running" ? "RUNNING" : "TERMINATED",
      serviceAccount: opts.serviceAccount ?? `${number}-compute@developer.gserviceaccount.com`,
      createdAt,
      creationTimestamp: pacific(createdAt),
      metadata: { fingerprint: newFingerprint(), items },
      dir: path.join(this.opts.dir, id),
    };
    fs.mkdirSync(vm.dir, { recursive: true });
    // Registered first, so that a half set-up VM is still stopped with the world.
    this.vms.set(id, vm);
    if (vm.status === "RUNNING") {
      vm.server = await startGcpMetadata({ ...vm, attributes: () => vm.metadata.items }, this.opts.issuer);
      vm.guest = await startGcpGuest(vm.dir, vm.server.host);
      vm.guest.syncKeys(vm.metadata.items);
    }
    return vm;
  }

  private resyncKeys(): void {
    for (const vm of this.vms.values()) {
      try {
        vm.guest?.syncKeys(vm.metadata.items);
      } catch {
        // the VM's directory went away under it; its next sync tries again
      }
    }
  }

  // The SSH port seam: instances say 127.0.0.1, and this file (DISCOVERY_GCP_SSH_PORTS_FILE) says which port.
  private writePorts(): void {
    const ports: Record<string, number> = {};
    for (const vm of this.vms.values()) if (vm.guest) ports[vm.id] = vm.guest.vm.sshPort;
    fs.writeFileSync(`${this.opts.sshPortsFile}.tmp`, JSON.stringify(ports, null, 2) + "\n");
    fs.renameSync(`${this.opts.sshPortsFile}.tmp`, this.opts.sshPortsFile);
  }
}

/** The JSON view of a VM. */
export function viewGcpVm(vm: GcpVm): GcpVmView {
  return {
    cloud: "gcp",
    id: vm.id,
    project: vm.project,
    zone: vm.zone,
    name: vm.name,
    created_at: vm.creationTimestamp,
    ...(vm.guest && { ssh_port: vm.guest.vm.sshPort }),
    service_account: vm.serviceAccount,
    labels: vm.labels,
    status: vm.status,
    ...(vm.server && { metadata_host: vm.server.host }),
    dir: vm.dir,
  };
}
