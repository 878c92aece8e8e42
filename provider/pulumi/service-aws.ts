/**
 * DiscoveryService's aws target, with @pulumi/aws (an optional peer, loaded only here): an IAM role and instance
 * profile with the generated discovery policy, a security group, an Elastic IP (so the address, and the TLS
 * certificate for it, are known before the instance boots), the secrets in an SSM SecureString parameter, an EC2
 * instance whose user data installs and starts `discovery serve`, and the custom SSM documents the matchers use.
 */
import * as pulumi from "@pulumi/pulumi";
import type * as awsTypes from "@pulumi/aws";
import type { AwsMatcher } from "../model";
import { deployEc2Events } from "./service-aws-events";
import {
  publicAddress,
  requirePeer,
  runtimeKeys,
  secretBundleOf,
  keyOutputs,
  VmOutputs,
  VmPlan,
  vmBootScript,
} from "./service-vm";

/** Settings of the aws target. */
export interface AwsTargetArgs {
  /** Region of the instance and its SSM parameter; default the stack config aws:region. */
  region?: string;
  /**
   * Regions to create the matchers' custom SSM documents in; default each matcher's own regions. Needed when a
   * matcher with a custom document says `regions: ["*"]`.
   */
  regions?: string[];
  /** EC2 instance type; default t3.small. */
  instanceType?: string;
  /** AMI id; default the latest Amazon Linux 2023 for the instance type's architecture (public SSM parameter). */
  ami?: pulumi.Input<string>;
  /** Subnet of the instance (a public one: the runtime's address is an Elastic IP); default the default VPC's. */
  subnetId?: pulumi.Input<string>;
  /** VPC of the security group; default the default VPC. Must hold subnetId. */
  vpcId?: pulumi.Input<string>;
  /** EC2 key pair for SSH; default none (use SSM Session Manager or EC2 Instance Connect). */
  keyName?: pulumi.Input<string>;
  /** CIDR blocks that may reach the runtime's port (nodes join through it); default ["0.0.0.0/0"]. */
  ingressCidrs?: string[];
  /** CIDR blocks that may reach SSH (port 22); default none, so port 22 stays closed. */
  sshCidrs?: string[];
  /** Root volume size in GiB; default 20. */
  rootVolumeSize?: number;
  /** Tags for every resource. */
  tags?: Record<string, string>;
  /**
   * Enroll new instances of the runtime's region at once: an EventBridge rule for EC2 state changes, an SQS queue
   * it fills, read access to that queue for the runtime, and the queue in its `discovery_service.events`. The poll
   * stays the safety net (and covers other regions). Default false.
   */
  ec2Events?: boolean;
}

type Aws = typeof awsTypes;

/** The Amazon Linux 2023 architecture of an instance type: Graviton families (t4g, m7g, c6gn...) are arm64. */
export function amiArchitecture(instanceType: string): "arm64" | "x86_64" {
  return /^[a-z]+\d+g[a-z]*\./.test(instanceType) ? "arm64" : "x86_64";
}

/** One custom SSM document the matchers send, per region, with the install mode it carries. */
export interface SsmDocumentPlan {
  name: string;
  region: string;
  mode: "agent" | "agentless";
  /** The matchers' install.proxy_addr, which the document fixes; undefined: the runtime's own address. */
  proxyAddr?: string;
}

/**
 * The custom SSM documents (not AWS-owned) the matchers in this account use, in their regions or `regions`.
 * Matchers that assume a role run SendCommand in another account: their documents belong there.
 */
export function ssmDocumentsFor(matchers: readonly AwsMatcher[], regions: string[] | undefined): SsmDocumentPlan[] {
  const out = new Map<string, SsmDocumentPlan>();
  const modes = new Map<string, string>();
  const proxies = new Map<string, string | undefined>();
  matchers.forEach((m, i) => {
    const name = m.ssm.document_name;
    if (/^(aws|amazon)/i.test(name) || m.assume_role?.role_arn || m.organization) return;
    const mode = m.install.mode;
    if (modes.has(name) && modes.get(name) !== mode)
      throw new Error(
        `config.discoveryService.aws[${i}].ssm.documentName: ${name} is used with install modes ` +
          `${modes.get(name)} and ${mode}; one document has one mode, so give each mode its own document name`,
      );
    modes.set(name, mode);
    // The document fixes the address instances download from, so its matchers must agree on it.
    const proxyAddr = m.install.proxy_addr;
    if (proxies.has(name) && proxies.get(name) !== proxyAddr)
      throw new Error(
        `config.discoveryService.aws[${i}].install.proxyAddr: ${proxyAddr ?? "(the runtime's address)"} differs ` +
          `from ${proxies.get(name) ?? "(the runtime's address)"} of another matcher with the SSM document ${name}, ` +
          `which fixes one address; give the matchers the same proxyAddr or their own document names`,
      );
    proxies.set(name, proxyAddr);
    const where = regions ?? m.regions;
    if (where.includes("*"))
      throw new Error(
        `aws.regions: config.discoveryService.aws[${i}] uses every region (*) with the custom SSM document ${name}; ` +
          `list the regions to create the document in`,
      );
    for (const region of where) out.set(`${region}/${name}`, { name, region, mode, proxyAddr });
  });
  return [...out.values()].sort((a, b) => (a.region + a.name < b.region + b.name ? -1 : 1));
}

/** Declares the aws target's resources under `plan.parent`. */
export function deployAws(plan: VmPlan, args: AwsTargetArgs, discoveryPolicy: object | undefined): VmOutputs {
  const aws = requirePeer<Aws>("@pulumi/aws", "aws");
  const region = args.region ?? new pulumi.Config("aws").get("region");
  if (!region) throw new Error("aws.region: name the region to deploy to, or set the stack config aws:region");
  const documents = ssmDocumentsFor(
    (plan.runtime.discoveryService?.enabled ? plan.runtime.discoveryService.aws : []) ?? [],
    args.regions,
  );
  const { name, parent } = plan;
  const opts = { parent };
  const tags = { "pulumi-discovery": name, ...(args.tags ?? {}) };
  const instanceType = args.instanceType ?? "t3.small";

  const role = new aws.iam.Role(
    `${name}-role`,
    {
      description: `pulumi-discovery runtime ${name}`,
      assumeRolePolicy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [{ Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }],
      }),
      tags,
    },
    opts,
  );
  if (discoveryPolicy)
    new aws.iam.RolePolicy(`${name}-discovery`, { role: role.id, policy: JSON.stringify(discoveryPolicy) }, opts);
  // Joins check the instance, whatever the matchers are: ec2 that it runs, iam also its instance profile's role.
  new aws.iam.RolePolicy(
    `${name}-join`,
    {
      role: role.id,
      policy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          { Sid: "Ec2JoinCheck", Effect: "Allow", Action: ["ec2:DescribeInstances"], Resource: ["*"] },
          {
            Sid: "IamJoinCheck",
            Effect: "Allow",
            Action: ["iam:GetInstanceProfile"],
            Resource: ["arn:*:iam::*:instance-profile/*"],
          },
        ],
      }),
    },
    opts,
  );
  const wire = args.ec2Events ? deployEc2Events(aws, { name, parent, region, role, wire: plan.wire, tags }) : undefined;
  const profile = new aws.iam.InstanceProfile(`${name}-profile`, { role: role.name, tags }, opts);

  const ingress = [
    {
      description: "discovery runtime: API, installers and joins",
      protocol: "tcp",
      fromPort: plan.port,
      toPort: plan.port,
      cidrBlocks: args.ingressCidrs ?? ["0.0.0.0/0"],
    },
    ...(args.sshCidrs?.length
      ? [{ description: "SSH", protocol: "tcp", fromPort: 22, toPort: 22, cidrBlocks: args.sshCidrs }]
      : []),
  ];
  const sg = new aws.ec2.SecurityGroup(
    `${name}-sg`,
    {
      region,
      vpcId: args.vpcId,
      description: `pulumi-discovery runtime ${name}`,
      ingress,
      egress: [{ protocol: "-1", fromPort: 0, toPort: 0, cidrBlocks: ["0.0.0.0/0"], ipv6CidrBlocks: ["::/0"] }],
      tags,
    },
    opts,
  );
  const eip = new aws.ec2.Eip(`${name}-eip`, { region, domain: "vpc", tags }, opts);

  const keys = runtimeKeys(plan, [eip.publicIp, eip.publicDns]);
  const secrets = new aws.ssm.Parameter(
    `${name}-secrets`,
    {
      region,
      type: "SecureString",
      description: `pulumi-discovery runtime ${name}: TLS key, SSH CA keys, admin token`,
      value: secretBundleOf(keys),
      tags,
    },
    opts,
  );
  new aws.iam.RolePolicy(
    `${name}-secrets-read`,
    {
      role: role.id,
      policy: secrets.arn.apply((arn) =>
        JSON.stringify({
          Version: "2012-10-17",
          Statement: [{ Sid: "ReadRuntimeSecrets", Effect: "Allow", Action: ["ssm:GetParameter"], Resource: [arn] }],
        }),
      ),
    },
    opts,
  );

  const address = publicAddress(plan, eip.publicIp);
  const ami =
    args.ami ??
    aws.ssm.getParameterOutput(
      {
        region,
        name: `/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${amiArchitecture(instanceType)}`,
      },
      opts,
    ).value;
  const instance = new aws.ec2.Instance(
    `${name}-instance`,
    {
      region,
      ami,
      instanceType,
      subnetId: args.subnetId,
      vpcSecurityGroupIds: [sg.id],
      iamInstanceProfile: profile.name,
      keyName: args.keyName,
      userData: vmBootScript(
        plan,
        keys,
        address,
        secrets.name.apply((n) => ({ source: "aws-ssm" as const, region, name: n })),
        { AWS_REGION: region },
        wire,
      ),
      // cloud-init runs user data on the first boot only: a new config needs a new instance.
      userDataReplaceOnChange: true,
      metadataOptions: { httpTokens: "required", httpEndpoint: "enabled", httpPutResponseHopLimit: 1 },
      rootBlockDevice: { volumeSize: args.rootVolumeSize ?? 20, volumeType: "gp3", encrypted: true },
      tags: { Name: name, ...tags },
    },
    opts,
  );
  new aws.ec2.EipAssociation(
    `${name}-eip-association`,
    { region, allocationId: eip.allocationId, instanceId: instance.id },
    opts,
  );

  for (const d of documents) {
    new aws.ssm.Document(
      `${name}-ssm-${d.region}-${d.name}`,
      {
        region: d.region,
        name: d.name,
        documentType: "Command",
        documentFormat: "JSON",
        // Fixed to this runtime: the role's SendCommand on the document can run only what the runtime serves.
        content: pulumi
          .all([address, keys.tlsPin])
          .apply(([addr, caPin]) => documentContent(d.mode, { proxyAddr: d.proxyAddr ?? hostPort(addr), caPin })),
        tags,
      },
      opts,
    );
  }
  return { address, instanceId: instance.id, ...keyOutputs(keys) };
}

/** host:port of an https URL, port included, as the runtime gives it to its installs (publicHostPort). */
function hostPort(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || "443"}`;
}

/** The installer document's content (the same as aws.SsmInstallerDocument's), loaded only for this target. */
function documentContent(mode: "agent" | "agentless", runtime: { proxyAddr: string; caPin: string }): string {
  const ssm = require("../clouds/aws/ssm-document") as typeof import("../clouds/aws/ssm-document");
  return ssm.documentContent(mode, runtime);
}
