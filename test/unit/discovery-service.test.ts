/**
 * DiscoveryService's aws and gcp targets under Pulumi mocks: the resources a `pulumi up` would create, their
 * names, the IAM policy and custom role against the SDK's own builders, the firewall rules, and the VM's boot
 * script (run through bash's parser, and its embedded config through the runtime's loader).
 */
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import { systemdUnit } from "../../provider/deploy/bootstrap";
import { runtimeKeysProvider } from "../../provider/pulumi/runtime-keys";
import { parseRuntimeConfig } from "../../provider/runtime/config";
import { describeCertificate } from "../../provider/runtime/tls";
import { documentContent } from "../../provider/clouds/aws/ssm-document";
import * as aws from "../../sdk/aws";
import { DiscoveryService, DiscoveryServiceArgs, RuntimeConfigArgs } from "../../sdk/discovery-service";
import * as gcp from "../../sdk/gcp";

/** A resource the program registered, with the state the mock gave it. */
interface Registered {
  type: string;
  name: string;
  id: string;
  inputs: Record<string, any>;
  state: Record<string, any>;
}

const EIP = { publicIp: "203.0.113.10", publicDns: "ec2-203-0-113-10.compute-1.amazonaws.com" };
const GCP_IP = "198.51.100.7";
const AL2023_AMI = "ami-0a1b2c3d4e5f67890";
let registered: Registered[] = [];
let calls: { token: string; inputs: Record<string, any> }[] = [];

/** Cloud-side outputs the real providers would fill in, keyed by type. */
function cloudState(type: string, name: string, inputs: Record<string, any>): Record<string, any> {
  switch (type) {
    case "aws:iam/role:Role":
      return { name: `${name}-0f1e2d`, arn: `arn:aws:iam::123456789012:role/${name}-0f1e2d` };
    case "aws:iam/instanceProfile:InstanceProfile":
      return { name: `${name}-9a8b7c` };
    case "aws:ec2/eip:Eip":
      return { ...EIP, allocationId: "eipalloc-0123456789abcdef0" };
    case "aws:ec2/securityGroup:SecurityGroup":
      return { id: "sg-0123456789abcdef0" };
    case "aws:ssm/parameter:Parameter":
      return {
        name: `${name}-5d6e7f`,
        arn: `arn:aws:ssm:${inputs.region}:123456789012:parameter/${name}-5d6e7f`,
      };
    case "gcp:serviceaccount/account:Account":
      return { email: `${inputs.accountId}@${inputs.project}.iam.gserviceaccount.com` };
    case "gcp:projects/iAMCustomRole:IAMCustomRole":
      return { name: `projects/${inputs.project}/roles/${inputs.roleId}` };
    case "gcp:compute/address:Address":
      return { address: GCP_IP };
    case "gcp:secretmanager/secret:Secret":
      return { secretId: inputs.secretId };
    case "gcp:compute/instance:Instance":
      return { instanceId: "4611686018427387904" };
    default:
      return {};
  }
}

beforeAll(async () => {
  await pulumi.runtime.setMocks(
    {
      async newResource(args) {
        let state: Record<string, any> = { ...args.inputs, ...cloudState(args.type, args.name, args.inputs) };
        // The keys resource runs its real provider, so the pins and certificates below are real ones.
        if (args.type === "pulumi-nodejs:dynamic/discovery:RuntimeKeys")
          state = (await runtimeKeysProvider.create!(args.inputs)).outs;
        const id = state.id ?? `${args.name}-id`;
        registered.push({ type: args.type, name: args.name, id, inputs: args.inputs, state });
        return { id, state };
      },
      call(args) {
        calls.push({ token: args.token, inputs: args.inputs });
        if (args.token === "aws:ssm/getParameter:getParameter") return { ...args.inputs, value: AL2023_AMI };
        return args.inputs;
      },
    },
    "discovery-test",
    "dev",
    false,
  );
});

beforeEach(() => {
  registered = [];
  calls = [];
});

/** The value of an output. */
function value<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => resolve(v)));
}

/** Waits for a component's outputs, then until no more registrations arrive; returns the component's resources. */
async function settle(svc: DiscoveryService): Promise<Registered[]> {
  const name = await value(svc.urn).then((urn) => urn.split("::").pop()!);
  await value(pulumi.all([svc.address, svc.caPins, svc.tlsPin, svc.adminToken, svc.instanceId]));
  let count = -1;
  while (count !== registered.length) {
    count = registered.length;
    await new Promise((r) => setTimeout(r, 50));
  }
  return registered.filter((r) => r.name === name || r.name.startsWith(`${name}-`));
}

/** A secret input as the mocks see it (wrapped with the secret marker), unwrapped. */
function secretValue(v: any): string {
  expect(v?.["4dabf18193072939515e22adb298388d"]).toBe("1b47061264138c4ac30d75fd1eb44270");
  return v.value;
}

const one = (rs: Registered[], type: string, name: string) => {
  const found = rs.filter((r) => r.type === type && r.name === name);
  expect(found).toHaveLength(1);
  return found[0];
};

const bashParses = (script: string) => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pd-boot-")), "boot.sh");
  fs.writeFileSync(file, script);
  execFileSync("bash", ["-n", file]); // throws with bash's message on a syntax error
};

/** The here-document bash writes to `file`. */
function hereDoc(script: string, file: string): string {
  const m = new RegExp(`cat > ${file.replace(/[./]/g, "\\$&")} <<'(\\w+)'\\n([\\s\\S]*?)\\n\\1\\n`).exec(script);
  if (!m) throw new Error(`no here-document for ${file}`);
  return m[2] + "\n";
}

const AWS_MATCHERS: NonNullable<NonNullable<RuntimeConfigArgs["discoveryService"]>["aws"]> = [
  {
    types: ["ec2"],
    regions: ["us-east-1", "eu-west-1"],
    tags: { env: "prod", "team-name": ["a", "b"] },
    ssm: { documentName: "DiscoveryInstaller" },
    install: { joinParams: { tokenName: "aws-token", method: "iam" }, mode: "agentless" },
  },
  { types: ["ec2"], regions: ["us-west-2"], tags: { env: "dev" } }, // AWS-RunShellScript: nothing to create
  {
    regions: ["ap-south-1"],
    tags: { "*": "*" },
    assumeRole: { roleArn: "arn:aws:iam::210987654321:role/DiscoveryMember" },
    ssm: { documentName: "MemberInstaller" }, // lives in the member account, not this one
  },
];

const awsArgs = (over: Partial<DiscoveryServiceArgs> = {}): DiscoveryServiceArgs => ({
  target: "aws",
  config: {
    clusterName: "discovery.example",
    discoveryService: { discoveryGroup: "prod", pollInterval: "10m", aws: AWS_MATCHERS },
  },
  aws: { region: "us-east-1", ingressCidrs: ["10.0.0.0/8"], subnetId: "subnet-0abc", vpcId: "vpc-0abc" },
  package: "pulumi-discovery@0.1.0",
  ...over,
});

describe("DiscoveryService target aws", () => {
  it("creates the role, policies, profile, security group, address, secrets, instance and SSM documents", async () => {
    const rs = await settle(new DiscoveryService("disc", awsArgs()));
    expect(rs.map((r) => `${r.type}::${r.name}`).sort()).toEqual(
      [
        "discovery:index:DiscoveryService::disc",
        "aws:iam/role:Role::disc-role",
        "aws:iam/rolePolicy:RolePolicy::disc-discovery",
        "aws:iam/rolePolicy:RolePolicy::disc-join",
        "aws:iam/rolePolicy:RolePolicy::disc-secrets-read",
        "aws:iam/instanceProfile:InstanceProfile::disc-profile",
        "aws:ec2/securityGroup:SecurityGroup::disc-sg",
        "aws:ec2/eip:Eip::disc-eip",
        "pulumi-nodejs:dynamic/discovery:RuntimeKeys::disc-keys",
        "aws:ssm/parameter:Parameter::disc-secrets",
        "aws:ec2/instance:Instance::disc-instance",
        "aws:ec2/eipAssociation:EipAssociation::disc-eip-association",
        "aws:ssm/document:Document::disc-ssm-eu-west-1-DiscoveryInstaller",
        "aws:ssm/document:Document::disc-ssm-us-east-1-DiscoveryInstaller",
      ].sort(),
    );
  });

  it("gives the role exactly the policy aws.discoveryPolicy builds, and read access to its own secret only", async () => {
    const rs = await settle(new DiscoveryService("disc", awsArgs()));
    const role = one(rs, "aws:iam/role:Role", "disc-role");
    expect(JSON.parse(role.inputs.assumeRolePolicy).Statement).toEqual([
      { Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" },
    ]);
    const discovery = one(rs, "aws:iam/rolePolicy:RolePolicy", "disc-discovery");
    expect(discovery.inputs.role).toBe(role.id);
    expect(JSON.parse(discovery.inputs.policy)).toEqual(aws.discoveryPolicy({ aws: AWS_MATCHERS }));
    const param = one(rs, "aws:ssm/parameter:Parameter", "disc-secrets");
    const read = JSON.parse(one(rs, "aws:iam/rolePolicy:RolePolicy", "disc-secrets-read").inputs.policy);
    expect(read.Statement).toEqual([
      { Sid: "ReadRuntimeSecrets", Effect: "Allow", Action: ["ssm:GetParameter"], Resource: [param.state.arn] },
    ]);
    const join = JSON.parse(one(rs, "aws:iam/rolePolicy:RolePolicy", "disc-join").inputs.policy);
    expect(join.Statement.map((s: { Action: string[] }) => s.Action)).toEqual([
      ["ec2:DescribeInstances"],
      ["iam:GetInstanceProfile"],
    ]);
    const profile = one(rs, "aws:iam/instanceProfile:InstanceProfile", "disc-profile");
    expect(profile.inputs.role).toBe(role.state.name);
    expect(one(rs, "aws:ec2/instance:Instance", "disc-instance").inputs.iamInstanceProfile).toBe(profile.state.name);
  });

  it("opens only the runtime's port to ingressCidrs, and SSH only when sshCidrs are given", async () => {
    let rs = await settle(new DiscoveryService("disc", awsArgs()));
    const sg = one(rs, "aws:ec2/securityGroup:SecurityGroup", "disc-sg");
    expect(sg.inputs.vpcId).toBe("vpc-0abc");
    expect(sg.inputs.ingress).toEqual([
      expect.objectContaining({ protocol: "tcp", fromPort: 3080, toPort: 3080, cidrBlocks: ["10.0.0.0/8"] }),
    ]);
    expect(sg.inputs.egress).toEqual([expect.objectContaining({ protocol: "-1", cidrBlocks: ["0.0.0.0/0"] })]);
    expect(one(rs, "aws:ec2/instance:Instance", "disc-instance").inputs.vpcSecurityGroupIds).toEqual([sg.state.id]);

    registered = [];
    const config = { listenAddr: "0.0.0.0:8443", discoveryService: { aws: [AWS_MATCHERS[1]] } };
    rs = await settle(
      new DiscoveryService("ssh", awsArgs({ config, aws: { region: "eu-west-1", sshCidrs: ["192.0.2.0/24"] } })),
    );
    expect(one(rs, "aws:ec2/securityGroup:SecurityGroup", "ssh-sg").inputs.ingress).toEqual([
      expect.objectContaining({ fromPort: 8443, toPort: 8443, cidrBlocks: ["0.0.0.0/0"] }),
      expect.objectContaining({ fromPort: 22, toPort: 22, cidrBlocks: ["192.0.2.0/24"] }),
    ]);
    expect(rs.filter((r) => r.type === "aws:ssm/document:Document")).toEqual([]); // AWS-RunShellScript only
  });

  it("boots an instance whose user data installs the runtime and runs it as discovery.service", async () => {
    const svc = new DiscoveryService("disc", awsArgs());
    const rs = await settle(svc);
    const instance = one(rs, "aws:ec2/instance:Instance", "disc-instance").inputs;
    const userData: string = instance.userData;
    bashParses(userData);
    expect(userData.startsWith("#!/bin/bash\n")).toBe(true);
    expect(userData).toContain("PACKAGE='pulumi-discovery@0.1.0'");
    const unit = hereDoc(userData, "/etc/systemd/system/discovery.service");
    expect(unit).toBe(systemdUnit({ AWS_REGION: "us-east-1" }));
    expect(unit).toContain("Environment=AWS_REGION=us-east-1\n");
    expect(unit).toContain("User=discovery\n");
    expect(unit).toContain(
      "ExecStart=/opt/discovery/node/bin/node /opt/discovery/bin/discovery serve --config /etc/discovery/config.yaml",
    );
    expect(userData).toMatch(/systemctl enable discovery\.service\nsystemctl restart discovery\.service\n/);
    expect(instance.userDataReplaceOnChange).toBe(true);
    expect(instance.metadataOptions).toEqual(expect.objectContaining({ httpTokens: "required" }));
    expect(instance.subnetId).toBe("subnet-0abc");
    expect(instance.instanceType).toBe("t3.small");
    expect(instance.ami).toBe(AL2023_AMI);
    expect(calls).toContainEqual({
      token: "aws:ssm/getParameter:getParameter",
      inputs: { region: "us-east-1", name: "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64" },
    });

    // The config the runtime starts with: the user's, plus the deployment's address, TLS files and CA keys.
    const configText = hereDoc(userData, "/etc/discovery/config.yaml");
    const config = parse(configText);
    expect(config).toEqual(
      expect.objectContaining({
        cluster_name: "discovery.example",
        listen_addr: "0.0.0.0:3080",
        public_addr: `https://${EIP.publicIp}:3080`,
        tls: { cert_file: "/etc/discovery/tls.crt", key_file: "/etc/discovery/tls.key" },
        storage: { type: "sqlite", path: "/var/lib/discovery/discovery.db" },
        admin_token_file: "/var/lib/discovery/admin.token",
        certificate_authorities: {
          host_key_file: "/etc/discovery/host_ca.key",
          user_key_file: "/etc/discovery/user_ca.key",
        },
      }),
    );
    const runtime = parseRuntimeConfig(configText, "/etc/discovery/config.yaml");
    expect(runtime.discoveryService?.discovery_group).toBe("prod");
    expect(runtime.discoveryService?.aws.map((m) => m.regions)).toEqual([
      ["us-east-1", "eu-west-1"],
      ["us-west-2"],
      ["ap-south-1"],
    ]);

    // The certificate is for the Elastic IP; its key, the CA keys and the admin token are not in the user data.
    const keys = one(rs, "pulumi-nodejs:dynamic/discovery:RuntimeKeys", "disc-keys").state;
    const cert = hereDoc(userData, "/etc/discovery/tls.crt");
    expect(cert).toBe(keys.tlsCert);
    expect(new crypto.X509Certificate(cert).checkIP(EIP.publicIp)).toBe(EIP.publicIp);
    expect(new crypto.X509Certificate(cert).checkHost(EIP.publicDns)).toBe(EIP.publicDns);
    for (const secret of [keys.tlsKey, keys.hostCaPrivateKey, keys.userCaPrivateKey, keys.adminToken])
      expect(userData).not.toContain(secret.trim());
    const param = one(rs, "aws:ssm/parameter:Parameter", "disc-secrets");
    expect(param.inputs.type).toBe("SecureString");
    expect(param.inputs.region).toBe("us-east-1");
    expect(JSON.parse(secretValue(param.inputs.value))).toEqual({
      tls_key: keys.tlsKey,
      host_ca_key: keys.hostCaPrivateKey,
      user_ca_key: keys.userCaPrivateKey,
      admin_token: keys.adminToken,
    });
    expect(userData).toContain(`DISCOVERY_SECRETS_NAME='${param.state.name}'`);
    expect(userData).toContain("DISCOVERY_SECRETS_REGION='us-east-1'");
    expect(userData).toContain(`--pinnedpubkey '${keys.tlsPin}' https://127.0.0.1:3080/readyz`);

    const assoc = one(rs, "aws:ec2/eipAssociation:EipAssociation", "disc-eip-association").inputs;
    expect(assoc).toEqual(
      expect.objectContaining({ allocationId: "eipalloc-0123456789abcdef0", instanceId: "disc-instance-id" }),
    );
  });

  it("outputs the address, the CA keys and TLS pin known at deploy time, and the admin token as a secret", async () => {
    const svc = new DiscoveryService("disc", awsArgs());
    const rs = await settle(svc);
    const keys = one(rs, "pulumi-nodejs:dynamic/discovery:RuntimeKeys", "disc-keys").state;
    expect(await value(svc.address)).toBe(`https://${EIP.publicIp}:3080`);
    expect(await value(svc.caPins)).toEqual({ host: [keys.hostCaPublicKey], user: [keys.userCaPublicKey] });
    expect((await value(svc.caPins)).host[0]).toMatch(/^ssh-ed25519 AAAA\S+ pulumi-discovery-host-ca@/);
    expect(await value(svc.tlsPin)).toBe(describeCertificate(keys.tlsCert).publicKeyPin);
    expect(await value(svc.tlsCert)).toBe(keys.tlsCert);
    expect(await value(svc.adminToken)).toBe(keys.adminToken);
    expect(await pulumi.isSecret(svc.adminToken)).toBe(true);
    expect(await value(svc.instanceId)).toBe("disc-instance-id");
  });

  it("creates each custom SSM document in each of its matcher's regions, fixed to this runtime's address and pin", async () => {
    const rs = await settle(new DiscoveryService("disc", awsArgs()));
    const docs = rs.filter((r) => r.type === "aws:ssm/document:Document").map((r) => r.inputs);
    expect(docs.map((d) => [d.region, d.name]).sort()).toEqual([
      ["eu-west-1", "DiscoveryInstaller"],
      ["us-east-1", "DiscoveryInstaller"],
    ]);
    const { tlsPin } = one(rs, "pulumi-nodejs:dynamic/discovery:RuntimeKeys", "disc-keys").state;
    const proxyAddr = `${EIP.publicIp}:3080`;
    for (const d of docs) {
      expect(d).toEqual(expect.objectContaining({ documentType: "Command", documentFormat: "JSON" }));
      // The matcher's install mode; SendCommand accepts only this runtime's address and pin.
      expect(d.content).toBe(documentContent("agentless", { proxyAddr, caPin: tlsPin }));
      const { parameters } = JSON.parse(d.content);
      expect(new RegExp(parameters.proxyAddr.allowedPattern).test(proxyAddr)).toBe(true);
      expect(new RegExp(parameters.proxyAddr.allowedPattern).test("evil.example.com:443")).toBe(false);
      expect(new RegExp(parameters.caPin.allowedPattern).test(tlsPin)).toBe(true);
      expect(new RegExp(parameters.caPin.allowedPattern).test(`sha256//${"A".repeat(43)}=`)).toBe(false);
    }
  });

  it("refuses matchers that share a document but not an install.proxyAddr, which the document fixes", () => {
    const shared = [
      { regions: ["us-east-1"], ssm: { documentName: "SharedDoc" }, install: { proxyAddr: "a.example.com:443" } },
      { regions: ["us-east-1"], ssm: { documentName: "SharedDoc" } },
    ];
    expect(() => new DiscoveryService("shared", awsArgs({ config: { discoveryService: { aws: shared } } }))).toThrow(
      "config.discoveryService.aws[1].install.proxyAddr: (the runtime's address) differs from a.example.com:443 " +
        "of another matcher with the SSM document SharedDoc, which fixes one address; give the matchers the same " +
        "proxyAddr or their own document names",
    );
  });

  it("creates the documents of a matcher over every region in aws.regions, and says so when they are missing", async () => {
    const star = { discoveryService: { aws: [{ regions: ["*"], ssm: { documentName: "EveryRegionDoc" } }] } };
    expect(() => new DiscoveryService("star", awsArgs({ config: star }))).toThrow(
      /^aws\.regions: config\.discoveryService\.aws\[0\] uses every region \(\*\) with the custom SSM document EveryRegionDoc; list the regions/,
    );
    registered = [];
    const rs = await settle(
      new DiscoveryService(
        "star",
        awsArgs({ config: star, aws: { region: "us-east-1", regions: ["us-east-1", "sa-east-1"] } }),
      ),
    );
    const { tlsPin } = one(rs, "pulumi-nodejs:dynamic/discovery:RuntimeKeys", "star-keys").state;
    const proxyAddr = `${EIP.publicIp}:3080`;
    expect(
      rs
        .filter((r) => r.type === "aws:ssm/document:Document")
        .map((r) => [r.name, r.inputs.content === documentContent("agent", { proxyAddr, caPin: tlsPin })]),
    ).toEqual([
      ["star-ssm-sa-east-1-EveryRegionDoc", true],
      ["star-ssm-us-east-1-EveryRegionDoc", true],
    ]);
  });

  it("picks an arm64 Amazon Linux for Graviton types, and takes the AMI given", async () => {
    await settle(new DiscoveryService("arm", awsArgs({ aws: { region: "eu-west-1", instanceType: "t4g.small" } })));
    expect(calls.map((c) => c.inputs.name)).toEqual([
      "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
    ]);
    calls = [];
    registered = [];
    const rs = await settle(new DiscoveryService("own", awsArgs({ aws: { region: "eu-west-1", ami: "ami-0own" } })));
    expect(one(rs, "aws:ec2/instance:Instance", "own-instance").inputs.ami).toBe("ami-0own");
    expect(calls).toEqual([]);
  });

  it("uses public_addr as the address when the config names one, and puts its host in the certificate", async () => {
    const config = { publicAddr: "https://discovery.example.com:443", listenAddr: "0.0.0.0:443" };
    const svc = new DiscoveryService("dns", awsArgs({ config }));
    const rs = await settle(svc);
    expect(await value(svc.address)).toBe("https://discovery.example.com:443");
    const keys = one(rs, "pulumi-nodejs:dynamic/discovery:RuntimeKeys", "dns-keys").state;
    expect(keys.hosts).toEqual([EIP.publicIp, EIP.publicDns, "discovery.example.com"]);
    const userData: string = one(rs, "aws:ec2/instance:Instance", "dns-instance").inputs.userData;
    expect(parse(hereDoc(userData, "/etc/discovery/config.yaml")).public_addr).toBe(
      "https://discovery.example.com:443",
    );
    expect(
      rs
        .filter((r) => r.type === "aws:iam/rolePolicy:RolePolicy")
        .map((r) => r.name)
        .sort(),
    ).toEqual(["dns-join", "dns-secrets-read"]); // no matchers, no discovery policy
  });

  it("refuses settings the target makes itself and bad args, naming the field", () => {
    const make = (over: Partial<DiscoveryServiceArgs>) => () => new DiscoveryService("bad", awsArgs(over));
    expect(make({ config: { tls: { certFile: "a.crt", keyFile: "a.key" } } })).toThrow(
      /^config\.tls: leave it out for target "aws": the target makes the TLS certificate/,
    );
    expect(make({ config: "admin_token_file: ./t\n" })).toThrow(/^config\.admin_token_file: leave it out/);
    expect(make({ config: { join: { aws: { extraCaCerts: ["./ca.pem"] } } } })).toThrow(
      /^config\.join\.aws\.extraCaCerts: files on this machine are not on the aws VM/,
    );
    expect(make({ config: { storage: { type: "sqlite", path: "./db.sqlite" } } })).toThrow(
      /^config\.storage\.path: the runtime may write only under \/var\/lib\/discovery/,
    );
    expect(make({ config: { clusterName: "Not A Name" } })).toThrow(/config\.clusterName: must be a DNS-style name/);
    expect(make({ config: "cluster_name: [\n" })).toThrow(/^config: not valid YAML/);
    expect(make({ config: { discoveryService: { aws: [{ regions: ["mars-1"] }] } } as RuntimeConfigArgs })).toThrow(
      /config\.discoveryService\.aws\[0\]\.regions\[0\]/,
    );
    expect(make({ aws: {} })).toThrow(/^aws\.region: name the region to deploy to, or set the stack config aws:region/);
    expect(make({ gcp: { project: "p" } })).toThrow(/^gcp: settings for target "gcp" given, but target is "aws"/);
    expect(make({ target: "azure" as never })).toThrow(/^target: must be "local", "aws" or "gcp", not "azure"/);
    expect(make({ nodeVersion: "latest" })).toThrow(/^nodeVersion: must be a Node\.js major version/);
  });

  it("names the package to install when @pulumi/aws is missing", () => {
    jest.isolateModules(() => {
      jest.doMock("@pulumi/aws", () => {
        const err = new Error("Cannot find module '@pulumi/aws' from 'provider/pulumi/service-vm.ts'");
        (err as NodeJS.ErrnoException).code = "MODULE_NOT_FOUND";
        throw err;
      });
      const { DiscoveryService: Isolated } =
        require("../../sdk/discovery-service") as typeof import("../../sdk/discovery-service");
      expect(() => new Isolated("nopeer", awsArgs())).toThrow(
        'target "aws" needs the optional peer @pulumi/aws: run npm install @pulumi/aws',
      );
    });
  });
});

const GCP_CONFIG_YAML = `
cluster_name: discovery.gcp.example
listen_addr: 0.0.0.0:3443
discovery_service:
  discovery_group: gce
  gcp:
    - types: [gce]
      project_ids: [my-project, other-project]
      locations: ["*"]
      labels: {env: prod}
`;

describe("DiscoveryService target gcp", () => {
  const gcpArgs = (over: Partial<DiscoveryServiceArgs> = {}): DiscoveryServiceArgs => ({
    target: "gcp",
    config: GCP_CONFIG_YAML,
    gcp: { project: "my-project", zone: "europe-west1-b", ingressCidrs: ["10.0.0.0/8"] },
    ...over,
  });

  it("creates the service account, custom role and binding, firewall, address, secret and instance", async () => {
    const rs = await settle(new DiscoveryService("disc", gcpArgs()));
    expect(rs.map((r) => `${r.type}::${r.name}`).sort()).toEqual(
      [
        "discovery:index:DiscoveryService::disc",
        "gcp:serviceaccount/account:Account::disc-sa",
        "gcp:projects/iAMCustomRole:IAMCustomRole::disc-role",
        "gcp:projects/iAMMember:IAMMember::disc-role-binding",
        "gcp:compute/firewall:Firewall::disc-firewall",
        "gcp:compute/address:Address::disc-address",
        "pulumi-nodejs:dynamic/discovery:RuntimeKeys::disc-keys",
        "gcp:secretmanager/secret:Secret::disc-secrets",
        "gcp:secretmanager/secretVersion:SecretVersion::disc-secrets-version",
        "gcp:secretmanager/secretIamMember:SecretIamMember::disc-secrets-access",
        "gcp:compute/instance:Instance::disc-instance",
      ].sort(),
    );
  });

  it("gives the service account a custom role with exactly gcp.discoveryRole's permissions", async () => {
    const rs = await settle(new DiscoveryService("disc", gcpArgs()));
    const sa = one(rs, "gcp:serviceaccount/account:Account", "disc-sa");
    expect(sa.inputs.accountId).toMatch(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/);
    const role = one(rs, "gcp:projects/iAMCustomRole:IAMCustomRole", "disc-role").inputs;
    const expected = gcp.discoveryRole([
      { types: ["gce"], projectIds: ["my-project", "other-project"], locations: ["*"], labels: { env: "prod" } },
    ]);
    expect(role.permissions).toEqual(expected.permissions);
    // locations ["*"] is one aggregated instances.list per project: no zones.list.
    expect(role.permissions).not.toContain("compute.zones.list");
    expect(role.permissions).toContain("compute.zoneOperations.get");
    expect(role).toEqual(expect.objectContaining({ project: "my-project", title: expected.title, stage: "GA" }));
    expect(role.roleId).toMatch(/^[a-zA-Z0-9_.]{3,64}$/);
    const binding = one(rs, "gcp:projects/iAMMember:IAMMember", "disc-role-binding").inputs;
    expect(binding).toEqual({
      project: "my-project",
      role: `projects/my-project/roles/${role.roleId}`,
      member: `serviceAccount:${sa.state.email}`,
    });
    const access = one(rs, "gcp:secretmanager/secretIamMember:SecretIamMember", "disc-secrets-access").inputs;
    expect(access).toEqual(
      expect.objectContaining({
        role: "roles/secretmanager.secretAccessor",
        member: `serviceAccount:${sa.state.email}`,
      }),
    );
  });

  it("opens the runtime's port to the instance's tag only, and boots it with the startup script", async () => {
    const svc = new DiscoveryService("disc", gcpArgs());
    const rs = await settle(svc);
    const fw = one(rs, "gcp:compute/firewall:Firewall", "disc-firewall").inputs;
    const instance = one(rs, "gcp:compute/instance:Instance", "disc-instance").inputs;
    expect(fw).toEqual(
      expect.objectContaining({
        network: "default",
        direction: "INGRESS",
        allows: [{ protocol: "tcp", ports: ["3443"] }],
        sourceRanges: ["10.0.0.0/8"],
      }),
    );
    expect(instance.tags).toEqual(fw.targetTags);
    expect(instance.zone).toBe("europe-west1-b");
    expect(instance.machineType).toBe("e2-small");
    expect(instance.bootDisk.initializeParams.image).toBe("debian-cloud/debian-12");
    expect(instance.networkInterfaces[0].accessConfigs).toEqual([{ natIp: GCP_IP }]);
    expect(one(rs, "gcp:compute/address:Address", "disc-address").inputs.region).toBe("europe-west1");
    const sa = one(rs, "gcp:serviceaccount/account:Account", "disc-sa");
    expect(instance.serviceAccount).toEqual({ email: sa.state.email, scopes: ["cloud-platform"] });

    const script: string = instance.metadataStartupScript;
    bashParses(script);
    expect(hereDoc(script, "/etc/systemd/system/discovery.service")).toBe(systemdUnit());
    const config = parse(hereDoc(script, "/etc/discovery/config.yaml"));
    expect(config).toEqual(
      expect.objectContaining({ listen_addr: "0.0.0.0:3443", public_addr: `https://${GCP_IP}:3443` }),
    );
    expect(config.discovery_service.gcp[0].project_ids).toEqual(["my-project", "other-project"]);
    const secret = one(rs, "gcp:secretmanager/secret:Secret", "disc-secrets").inputs;
    expect(script).toContain(`DISCOVERY_SECRETS_SOURCE='gcp-secret-manager'`);
    expect(script).toContain(`DISCOVERY_SECRETS_NAME='projects/my-project/secrets/${secret.secretId}'`);
    const keys = one(rs, "pulumi-nodejs:dynamic/discovery:RuntimeKeys", "disc-keys").state;
    expect(
      JSON.parse(
        secretValue(one(rs, "gcp:secretmanager/secretVersion:SecretVersion", "disc-secrets-version").inputs.secretData),
      ),
    ).toEqual(expect.objectContaining({ admin_token: keys.adminToken }));
    expect(script).not.toContain(keys.adminToken);
    expect(await value(svc.address)).toBe(`https://${GCP_IP}:3443`);
    expect(await value(svc.instanceId)).toBe("4611686018427387904");
  });

  it("creates no custom role without gcp matchers, and refuses a bad zone or a missing project", async () => {
    const rs = await settle(new DiscoveryService("plain", gcpArgs({ config: undefined })));
    expect(rs.filter((r) => r.type.startsWith("gcp:projects/"))).toEqual([]);
    expect(() => new DiscoveryService("bad", gcpArgs({ gcp: { project: "p", zone: "europe-west1" } }))).toThrow(
      /^gcp\.zone: europe-west1 is not a zone/,
    );
    expect(() => new DiscoveryService("bad", gcpArgs({ gcp: { zone: "europe-west1-b" } }))).toThrow(
      /^gcp\.project: name the project/,
    );
    expect(() => new DiscoveryService("bad", gcpArgs({ config: "tls: {cert_file: a, key_file: b}\n" }))).toThrow(
      /^config\.tls: leave it out for target "gcp"/,
    );
  });
});
