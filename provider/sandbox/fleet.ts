import * as fs from "fs";
import * as path from "path";
import {
  DescribeImagesCommand,
  EC2Client,
  Instance,
  RunInstancesCommand,
  StopInstancesCommand,
} from "@aws-sdk/client-ec2";
import { concurrencyLimit } from "../util/concurrency";
import { identityDocument, signIdentityDocument, TestSigner } from "./iid-signer";
import { FakeImds, startImds } from "./imds";
import { attachInstanceProfile, ensureInstanceProfile } from "./instance-profile";
import {
  LaunchOptions,
  parseLaunchOptions,
  type LaunchRequest,
  type LaunchState,
  type SsmPlatform,
  type SsmStatus,
} from "./launch-options";
import { MotoAccounts } from "./moto-accounts";
import { startVm, TestVm } from "./sshd";

/** The role of every simulated instance's instance profile (`discovery-node-profile`); its sessions are named after the instance. */
export const NODE_ROLE = "discovery-node";

/** One simulated instance: a real EC2 instance in moto, a directory for its disk, its IMDS, maybe an sshd. */
export interface FleetInstance {
  instanceId: string;
  account: string;
  region: string;
  availabilityZone: string;
  privateIp: string;
  tags: Record<string, string>;
  state: LaunchState;
  agentless: boolean;
  /** SSM knob: what DescribeInstanceInformation reports and whether commands are delivered. */
  ssmStatus: SsmStatus;
  /** SSM knob: the reported OS family; shell documents do not run on Windows. */
  platform: SsmPlatform;
  /** `<fleet dir>/<instance id>`: the instance's HOME and working directory. */
  dir: string;
  imds: FakeImds;
  /** The real sshd of an agentless instance. */
  vm?: TestVm;
  launchedAt: Date;
  /** When the ping status last changed, for LastPingDateTime. */
  pingChangedAt: Date;
}

/** A JSON view of an instance, for the control API and logs: its record without the live servers. */
export type FleetInstanceView = Omit<FleetInstance, "imds" | "vm" | "launchedAt" | "pingChangedAt"> & {
  imdsEndpoint: string;
  /** The agentless instance's sshd port. */
  sshPort?: number;
  /** When the instance was launched, RFC 3339. */
  launchedAt: string;
};

/** What a fleet needs: where instance directories go, moto, and the CA that signs identity documents. */
export interface FleetOptions {
  dir: string;
  accounts: MotoAccounts;
  signer: TestSigner;
  /** The simulated control plane's EC2 state-change events (pending, running) for each instance launched running. */
  events?: { emit(account: string, region: string, instanceIds: string[], states: string[]): Promise<void> };
}

const SETUP_CONCURRENCY = 16;

// AWS writes whole seconds in identity documents.
const wholeSeconds = (d: Date) => new Date(Math.floor(d.getTime() / 1000) * 1000).toISOString().replace(".000Z", "Z");

/**
 * The fleet simulator's instances. Only the control plane is simulated: instances exist in moto, their metadata
 * services serve documents signed by the sandbox CA, and whatever runs on them (SSM commands) runs for real.
 */
export class Fleet {
  private readonly instances = new Map<string, FleetInstance>();
  private readonly images = new Map<string, Promise<string>>();
  private readonly profiles = new Map<string, Promise<string>>();
  private stopped = false;

  constructor(private readonly opts: FleetOptions) {
    fs.mkdirSync(opts.dir, { recursive: true });
  }

  /** moto's endpoint, which the instances' AWS calls go to. */
  get motoEndpoint(): string {
    return this.opts.accounts.endpoint;
  }

  /**
   * Launches `count` instances (default 1) in moto, stopping them for `state: stopped`, and sets each one up.
   * Throws `LaunchOptionError` for an argument that is not acceptable.
   */
  async launch(request: LaunchRequest): Promise<FleetInstance[]> {
    if (this.stopped) throw new Error("the fleet is stopped");
    const opts = parseLaunchOptions({ ...request });
    const credentials = await this.opts.accounts.credentials(opts.account);
    const ec2 = new EC2Client({ region: opts.region, endpoint: this.motoEndpoint, credentials, maxAttempts: 3 });
    try {
      const Tags = Object.entries(opts.tags).map(([Key, Value]) => ({ Key, Value }));
      const out = await ec2.send(
        new RunInstancesCommand({
          ImageId: await this.imageId(ec2, opts.region),
          MinCount: opts.count,
          MaxCount: opts.count,
          InstanceType: "t3.micro",
          ...(Tags.length && { TagSpecifications: [{ ResourceType: "instance", Tags }] }),
        }),
      );
      const launched = out.Instances ?? [];
      const profileArn = await this.instanceProfile(opts.account);
      await attachInstanceProfile(
        ec2,
        launched.map((i) => i.InstanceId!),
        profileArn,
      );
      if (opts.state === "stopped")
        await ec2.send(new StopInstancesCommand({ InstanceIds: launched.map((i) => i.InstanceId!) }));
      // Registered one by one, so that when one set-up fails the others are still stopped with the fleet.
      const limit = concurrencyLimit(SETUP_CONCURRENCY);
      const made = await Promise.allSettled(
        launched.map((i) =>
          limit(async () => {
            const inst = await this.setUp(i, opts);
            this.instances.set(inst.instanceId, inst);
            return inst;
          }),
        ),
      );
      const failure = made.find((m): m is PromiseRejectedResult => m.status === "rejected");
      if (failure) throw failure.reason;
      // As AWS does once the instances boot: events for running ones, which EventBridge rules route on.
      if (opts.state !== "stopped")
        await this.opts.events?.emit(
          opts.account,
          opts.region,
          launched.map((i) => i.InstanceId!),
          ["pending", "running"],
        );
      return made.map((m) => (m as PromiseFulfilledResult<FleetInstance>).value);
    } finally {
      ec2.destroy();
    }
  }

  /** The instance with this id, if the fleet launched it. */
  get(instanceId: string): FleetInstance | undefined {
    return this.instances.get(instanceId);
  }

  /** Every instance, in launch order. */
  list(): FleetInstance[] {
    return [...this.instances.values()];
  }

  /** Turns the SSM knobs of an instance, e.g. to make its agent lose its connection. */
  update(instanceId: string, knobs: { ssmStatus?: SsmStatus; platform?: SsmPlatform }): FleetInstance {
    const inst = this.instances.get(instanceId);
    if (!inst) throw new Error(`no fleet instance ${instanceId}`);
    const before = pingStatus(inst);
    if (knobs.ssmStatus) inst.ssmStatus = knobs.ssmStatus;
    if (knobs.platform) inst.platform = knobs.platform;
    if (pingStatus(inst) !== before) inst.pingChangedAt = new Date();
    return inst;
  }

  /** The environment SSM commands run with on this instance: its own metadata service, disk and sshd. */
  commandEnv(inst: FleetInstance): Record<string, string> {
    const env: Record<string, string> = {
      PATH: "/usr/sbin:/usr/bin:/bin",
      HOME: inst.dir,
      TMPDIR: path.join(inst.dir, "tmp"),
      AWS_EC2_METADATA_SERVICE_ENDPOINT: inst.imds.endpoint,
      AWS_ENDPOINT_URL: this.motoEndpoint,
      // Also for agent-mode instances: the installer's default, /var/lib/discovery, is the host's, shared by all.
      DISCOVERY_DATA_DIR: inst.vm?.dataDir ?? path.join(inst.dir, "var-lib-discovery"),
    };
    if (inst.vm) {
      env.DISCOVERY_SSHD_CONFIG = inst.vm.sshdConfig;
      env.DISCOVERY_HOST_KEY = inst.vm.hostKey;
      env.DISCOVERY_SSHD_RESTART = inst.vm.restartCommand;
    }
    return env;
  }

  /**
   * Where the host paths an installer is told to use live on this instance's disk, longest first. Commands
   * name them outright (an enrollment exports DISCOVERY_SSHD_CONFIG=/etc/ssh/sshd_config), and the host's own
   * files must never be what a simulated instance edits.
   */
  diskMap(inst: FleetInstance): [string, string][] {
    const map: [string, string][] = [["/var/lib/discovery", this.commandEnv(inst).DISCOVERY_DATA_DIR]];
    if (inst.vm)
      map.unshift(["/etc/ssh/ssh_host_ed25519_key", inst.vm.hostKey], ["/etc/ssh/sshd_config", inst.vm.sshdConfig]);
    return map;
  }

  /** Stops every metadata service and sshd; instance directories stay for inspection. */
  async stop(): Promise<void> {
    this.stopped = true;
    const all = this.list();
    await Promise.allSettled(all.flatMap((i) => [i.imds.stop(), ...(i.vm ? [i.vm.stop()] : [])]));
  }

  /** The account's instance profile of {@link NODE_ROLE}, made once per account. */
  private instanceProfile(account: string): Promise<string> {
    let found = this.profiles.get(account);
    if (!found) {
      found = this.opts.accounts
        .credentials(account)
        .then((credentials) => ensureInstanceProfile(this.motoEndpoint, credentials, NODE_ROLE));
      found.catch(() => this.profiles.delete(account));
      this.profiles.set(account, found);
    }
    return found;
  }

  private imageId(ec2: EC2Client, region: string): Promise<string> {
    let found = this.images.get(region);
    if (!found) {
      found = ec2.send(new DescribeImagesCommand({})).then((out) => {
        const id = out.Images?.find((i) => /^ami-[0-9a-f]{8,17}$/.test(i.ImageId ?? ""))?.ImageId;
        if (!id) throw new Error(`moto has no image to launch in ${region}`);
        return id;
      });
      found.catch(() => this.images.delete(region));
      this.images.set(region, found);
    }
    return found;
  }

  private async setUp(i: Instance, opts: LaunchOptions): Promise<FleetInstance> {
    const instanceId = i.InstanceId!;
    const dir = path.join(this.opts.dir, instanceId);
    fs.mkdirSync(path.join(dir, "tmp"), { recursive: true });
    const now = new Date();
    const doc = identityDocument({
      accountId: opts.account,
      region: opts.region,
      availabilityZone: i.Placement?.AvailabilityZone ?? `${opts.region}a`,
      instanceId,
      imageId: i.ImageId,
      instanceType: i.InstanceType ?? "t3.micro",
      privateIp: i.PrivateIpAddress ?? null,
      pendingTime: wholeSeconds(now),
    });
    // RoleSessionName = instance id is what an instance profile's session looks like; the iam join names the node
    // after the instance once DescribeInstances shows this role's profile on it.
    const roleCredentials = await this.opts.accounts.assumeRole(
      `arn:aws:iam::${opts.account}:role/${NODE_ROLE}`,
      instanceId,
    );
    const imds = await startImds({
      document: doc,
      rsa2048: await signIdentityDocument(doc, this.opts.signer),
      role: { name: NODE_ROLE, credentials: roleCredentials },
    });
    let vm: TestVm | undefined;
    try {
      if (opts.agentless) vm = await startVm({ dir });
    } catch (err) {
      await imds.stop();
      throw err;
    }
    return {
      instanceId,
      account: opts.account,
      region: opts.region,
      availabilityZone: doc.availabilityZone,
      privateIp: i.PrivateIpAddress ?? "",
      tags: { ...opts.tags },
      state: opts.state,
      agentless: opts.agentless,
      ssmStatus: opts.ssmStatus,
      platform: opts.platform,
      dir,
      imds,
      vm,
      launchedAt: now,
      pingChangedAt: now,
    };
  }
}

/** SSM's PingStatus for an instance; undefined when its agent never registered. A stopped instance's is lost. */
export function pingStatus(inst: FleetInstance): "Online" | "ConnectionLost" | undefined {
  if (inst.ssmStatus === "unregistered") return undefined;
  return inst.state === "stopped" ? "ConnectionLost" : inst.ssmStatus;
}

/** The JSON view of an instance. */
export function viewInstance(inst: FleetInstance): FleetInstanceView {
  return {
    instanceId: inst.instanceId,
    account: inst.account,
    region: inst.region,
    availabilityZone: inst.availabilityZone,
    privateIp: inst.privateIp,
    tags: inst.tags,
    state: inst.state,
    agentless: inst.agentless,
    ssmStatus: inst.ssmStatus,
    platform: inst.platform,
    dir: inst.dir,
    imdsEndpoint: inst.imds.endpoint,
    ...(inst.vm && { sshPort: inst.vm.sshPort }),
    launchedAt: inst.launchedAt.toISOString(),
  };
}
