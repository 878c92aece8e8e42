/**
 * DiscoveryService's gcp target, with @pulumi/gcp (an optional peer, loaded only here): a service account, a
 * custom role with the generated permissions bound to it, a firewall rule, a static external address (so the
 * address, and the TLS certificate for it, are known before the VM boots), the secrets in Secret Manager, and a
 * Compute Engine instance whose startup script installs and starts `discovery serve`.
 */
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import type * as gcpTypes from "@pulumi/gcp";
import {
  keyOutputs,
  publicAddress,
  requirePeer,
  runtimeKeys,
  secretBundleOf,
  VmOutputs,
  VmPlan,
  vmBootScript,
} from "./service-vm";

/** Settings of the gcp target. */
export interface GcpTargetArgs {
  /** Project of every resource; default the stack config gcp:project. */
  project?: string;
  /** Zone of the instance, e.g. europe-west1-b; default the stack config gcp:zone. */
  zone?: string;
  /** Machine type; default e2-small. */
  machineType?: string;
  /** Boot image; default debian-cloud/debian-12. */
  image?: string;
  /** VPC network of the instance and the firewall rule; default `default`. */
  network?: pulumi.Input<string>;
  /** Subnetwork, for custom-mode networks. */
  subnetwork?: pulumi.Input<string>;
  /** CIDR ranges that may reach the runtime's port (nodes join through it); default ["0.0.0.0/0"]. */
  ingressCidrs?: string[];
  /** Boot disk size in GB; default 20. */
  diskSize?: number;
  /** Labels for the resources that take them. */
  labels?: Record<string, string>;
}

type Gcp = typeof gcpTypes;

/** The GCP ids of a deployment, stable for a project, stack and name and valid for each id's pattern. */
export function gcpIds(
  project: string,
  stack: string,
  name: string,
): { accountId: string; roleId: string; secretId: string } {
  const hash = crypto.createHash("sha256").update(`${project}/${stack}/${name}`).digest("hex").slice(0, 6);
  const slug =
    name
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "") || "runtime";
  return {
    // [a-z][a-z0-9-]{4,28}[a-z0-9]
    accountId: `disc-${slug.slice(0, 18).replace(/-+$/, "")}-${hash}`,
    // [a-zA-Z0-9_.]{3,64}; a deleted role's id is taken for weeks, and the provider undeletes it on create.
    roleId: `pulumiDiscovery_${slug.replace(/-/g, "_").slice(0, 40)}_${hash}`,
    secretId: `discovery-${slug.slice(0, 200)}-${hash}`,
  };
}

/** Declares the gcp target's resources under `plan.parent`. */
export function deployGcp(
  plan: VmPlan,
  args: GcpTargetArgs,
  role: { title: string; description: string; permissions: string[] } | undefined,
): VmOutputs {
  const gcp = requirePeer<Gcp>("@pulumi/gcp", "gcp");
  const config = new pulumi.Config("gcp");
  const project = args.project ?? config.get("project");
  if (!project) throw new Error("gcp.project: name the project to deploy to, or set the stack config gcp:project");
  const zone = args.zone ?? config.get("zone");
  if (!zone) throw new Error("gcp.zone: name the zone of the instance (e.g. europe-west1-b), or set gcp:zone");
  if (!/^[a-z]+-[a-z]+\d+-[a-z]$/.test(zone))
    throw new Error(`gcp.zone: ${zone} is not a zone; zones look like europe-west1-b`);
  const region = zone.replace(/-[a-z]$/, "");
  const { name, parent } = plan;
  const opts = { parent };
  const ids = gcpIds(project, pulumi.getStack(), name);
  const labels = {
    "pulumi-discovery": name
      .toLowerCase()
      .replace(/[^a-z0-9_-]/g, "-")
      .slice(0, 63),
    ...(args.labels ?? {}),
  };
  const network = args.network ?? "default";
  const networkTag = `discovery-${ids.secretId.slice(-6)}`;

  const account = new gcp.serviceaccount.Account(
    `${name}-sa`,
    { project, accountId: ids.accountId, displayName: `pulumi-discovery runtime ${name}` },
    opts,
  );
  const member = pulumi.interpolate`serviceAccount:${account.email}`;
  if (role) {
    const custom = new gcp.projects.IAMCustomRole(
      `${name}-role`,
      {
        project,
        roleId: ids.roleId,
        title: role.title,
        description: role.description,
        stage: "GA",
        permissions: role.permissions,
      },
      opts,
    );
    new gcp.projects.IAMMember(`${name}-role-binding`, { project, role: custom.name, member }, opts);
  }

  new gcp.compute.Firewall(
    `${name}-firewall`,
    {
      project,
      network,
      description: `pulumi-discovery runtime ${name}: API, installers and joins`,
      direction: "INGRESS",
      allows: [{ protocol: "tcp", ports: [String(plan.port)] }],
      sourceRanges: args.ingressCidrs ?? ["0.0.0.0/0"],
      targetTags: [networkTag],
    },
    opts,
  );
  const ip = new gcp.compute.Address(`${name}-address`, { project, region, addressType: "EXTERNAL", labels }, opts);

  const keys = runtimeKeys(plan, [ip.address]);
  const secret = new gcp.secretmanager.Secret(
    `${name}-secrets`,
    { project, secretId: ids.secretId, replication: { auto: {} }, labels },
    opts,
  );
  const version = new gcp.secretmanager.SecretVersion(
    `${name}-secrets-version`,
    { secret: secret.id, secretData: secretBundleOf(keys) },
    opts,
  );
  const access = new gcp.secretmanager.SecretIamMember(
    `${name}-secrets-access`,
    { project, secretId: secret.secretId, role: "roles/secretmanager.secretAccessor", member },
    opts,
  );

  const address = publicAddress(plan, ip.address);
  const source = pulumi.output({
    source: "gcp-secret-manager" as const,
    name: `projects/${project}/secrets/${ids.secretId}`,
  });
  const instance = new gcp.compute.Instance(
    `${name}-instance`,
    {
      project,
      zone,
      machineType: args.machineType ?? "e2-small",
      bootDisk: { initializeParams: { image: args.image ?? "debian-cloud/debian-12", size: args.diskSize ?? 20 } },
      networkInterfaces: [{ network, subnetwork: args.subnetwork, accessConfigs: [{ natIp: ip.address }] }],
      serviceAccount: { email: account.email, scopes: ["cloud-platform"] },
      // Runs on every boot; a change replaces the instance so the new config is what it boots with.
      metadataStartupScript: vmBootScript(plan, keys, address, source),
      shieldedInstanceConfig: { enableSecureBoot: true, enableVtpm: true, enableIntegrityMonitoring: true },
      tags: [networkTag],
      labels,
    },
    { parent, dependsOn: [version, access] },
  );
  return { address, instanceId: instance.instanceId, ...keyOutputs(keys) };
}
