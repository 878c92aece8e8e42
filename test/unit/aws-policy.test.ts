import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  discoveryPolicy,
  eventQueuePolicy,
  instancePolicy,
  PolicyDocument,
  PolicyStatement,
} from "../../provider/clouds/aws/policy";
import { azureDiscoveryRole } from "../../provider/clouds/policies";
import { policyCommand } from "../../provider/cli/policy";
import { formatProblem, validateFiles } from "../../provider/cli/validate";
import { AwsMatcher, awsMatcher, azureMatcher, discoveryConfigDocument } from "../../provider/model";

const m = (input: unknown): AwsMatcher => awsMatcher.parse(input);
const doc = (...Statement: PolicyDocument["Statement"]): PolicyDocument => ({ Version: "2012-10-17", Statement });

const DESCRIBE: PolicyStatement = {
  Sid: "DescribeInstances",
  Effect: "Allow",
  Action: ["ec2:DescribeInstances"],
  Resource: ["*"],
};
// Matchers install with iam joins unless they say otherwise: the runtime reads instance profiles to verify them.
const VERIFY: PolicyStatement = {
  Sid: "VerifyIamJoins",
  Effect: "Allow",
  Action: ["iam:GetInstanceProfile"],
  Resource: ["arn:aws:iam::*:instance-profile/*"],
};
const REGIONS: PolicyStatement = {
  Sid: "ListRegions",
  Effect: "Allow",
  Action: ["account:ListRegions", "ec2:DescribeRegions"],
  Resource: ["*"],
};
const READ: PolicyStatement = {
  Sid: "ReadSsmInstallResults",
  Effect: "Allow",
  Action: ["ssm:DescribeInstanceInformation", "ssm:GetCommandInvocation", "ssm:ListCommandInvocations"],
  Resource: ["*"],
};
const send = (...Resource: string[]): PolicyStatement => ({
  Sid: "SendSsmInstaller",
  Effect: "Allow",
  Action: ["ssm:SendCommand"],
  Resource,
});
// Custom documents only: a pass checks they exist in each region before it sends anything.
const check = (...Resource: string[]): PolicyStatement => ({
  Sid: "CheckSsmDocuments",
  Effect: "Allow",
  Action: ["ssm:DescribeDocument"],
  Resource,
});
const assume = (...Resource: string[]): PolicyStatement => ({
  Sid: "AssumeDiscoveryRoles",
  Effect: "Allow",
  Action: ["sts:AssumeRole"],
  Resource,
});
const ORGANIZATION: PolicyStatement = {
  Sid: "ReadOrganization",
  Effect: "Allow",
  Action: [
    "organizations:DescribeOrganization",
    "organizations:ListAccountsForParent",
    "organizations:ListChildren",
    "organizations:ListOrganizationalUnitsForParent",
    "organizations:ListRoots",
  ],
  Resource: ["*"],
};
const INSTANCE = doc({
  Sid: "SsmAgentCore",
  Effect: "Allow",
  Action: [
    "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage",
    "ec2messages:FailMessage",
    "ec2messages:GetEndpoint",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
    "ssm:UpdateInstanceInformation",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
  ],
  Resource: ["*"],
});

describe("discoveryPolicy", () => {
  it("one region, stock document: describe, read results, send AWS-RunShellScript to that region's instances", () => {
    expect(discoveryPolicy([m({ regions: ["us-east-1"], tags: { env: "prod" } })])).toEqual(
      doc(
        DESCRIBE,
        VERIFY,
        READ,
        send("arn:aws:ec2:us-east-1:*:instance/*", "arn:aws:ssm:us-east-1::document/AWS-RunShellScript"),
      ),
    );
  });

  it("all regions: adds account:ListRegions and ec2:DescribeRegions and uses * as the region", () => {
    expect(discoveryPolicy([m({ regions: ["*"] })])).toEqual(
      doc(
        DESCRIBE,
        VERIFY,
        REGIONS,
        READ,
        send("arn:aws:ec2:*:*:instance/*", "arn:aws:ssm:*::document/AWS-RunShellScript"),
      ),
    );
  });

  it("custom document in two regions: the document in any account of each region, sent to and checked", () => {
    const matcher = m({ regions: ["us-east-1", "eu-west-1"], ssm: { document_name: "DiscoveryInstaller" } });
    expect(discoveryPolicy([matcher])).toEqual(
      doc(
        DESCRIBE,
        VERIFY,
        READ,
        send(
          "arn:aws:ec2:eu-west-1:*:instance/*",
          "arn:aws:ec2:us-east-1:*:instance/*",
          "arn:aws:ssm:eu-west-1:*:document/DiscoveryInstaller",
          "arn:aws:ssm:us-east-1:*:document/DiscoveryInstaller",
        ),
        check(
          "arn:aws:ssm:eu-west-1:*:document/DiscoveryInstaller",
          "arn:aws:ssm:us-east-1:*:document/DiscoveryInstaller",
        ),
      ),
    );
  });

  it("assume_role: sts:AssumeRole on that role only, and the custom document in the role's account", () => {
    const matcher = m({
      regions: ["us-west-2"],
      assume_role: { role_arn: "arn:aws:iam::222222222222:role/DiscoveryAccess", external_id: "ext-1234" },
      ssm: { document_name: "DiscoveryInstaller" },
    });
    expect(discoveryPolicy([matcher])).toEqual(
      doc(
        DESCRIBE,
        VERIFY,
        READ,
        send("arn:aws:ec2:us-west-2:*:instance/*", "arn:aws:ssm:us-west-2:222222222222:document/DiscoveryInstaller"),
        check("arn:aws:ssm:us-west-2:222222222222:document/DiscoveryInstaller"),
        assume("arn:aws:iam::222222222222:role/DiscoveryAccess"),
      ),
    );
  });

  it("teleport.yaml's flat assume_role_arn counts the same", () => {
    const matcher = m({ regions: ["us-west-2"], assume_role_arn: "arn:aws:iam::333333333333:role/Flat" });
    expect(discoveryPolicy([matcher]).Statement.at(-1)).toEqual(assume("arn:aws:iam::333333333333:role/Flat"));
  });

  it("organization: the member role in every account, and the Organizations read actions", () => {
    const matcher = m({
      regions: ["*"],
      organization: { organization_id: "o-abcde12345" },
      assume_role: { role_name: "DiscoveryMember" },
    });
    expect(discoveryPolicy([matcher])).toEqual(
      doc(
        DESCRIBE,
        VERIFY,
        REGIONS,
        READ,
        send("arn:aws:ec2:*:*:instance/*", "arn:aws:ssm:*::document/AWS-RunShellScript"),
        assume("arn:aws:iam::*:role/DiscoveryMember"),
        ORGANIZATION,
      ),
    );
  });

  it("two matchers merge in a stable order without duplicates", () => {
    const a = m({
      regions: ["us-east-1", "us-west-2"],
      assume_role: { role_arn: "arn:aws:iam::222222222222:role/B" },
    });
    const b = m({
      regions: ["us-east-1"],
      tags: { team: "x" },
      assume_role: { role_arn: "arn:aws:iam::111111111111:role/A" },
    });
    const expected = doc(
      DESCRIBE,
      VERIFY,
      READ,
      send(
        "arn:aws:ec2:us-east-1:*:instance/*",
        "arn:aws:ec2:us-west-2:*:instance/*",
        "arn:aws:ssm:us-east-1::document/AWS-RunShellScript",
        "arn:aws:ssm:us-west-2::document/AWS-RunShellScript",
      ),
      assume("arn:aws:iam::111111111111:role/A", "arn:aws:iam::222222222222:role/B"),
    );
    expect(discoveryPolicy([a, b])).toEqual(expected);
    expect(discoveryPolicy([b, a])).toEqual(expected);
    expect(discoveryPolicy([a, b, a])).toEqual(expected);
  });

  it("a * region covers the same resources of single regions", () => {
    const policy = discoveryPolicy([m({ regions: ["us-east-1"] }), m({ regions: ["*"] })]);
    expect(policy).toEqual(
      doc(
        DESCRIBE,
        VERIFY,
        REGIONS,
        READ,
        send("arn:aws:ec2:*:*:instance/*", "arn:aws:ssm:*::document/AWS-RunShellScript"),
      ),
    );
  });

  it("matchers installing with ec2 or token joins leave instance profiles alone", () => {
    const ec2 = m({ regions: ["us-east-1"], install: { join_params: { method: "ec2", token_name: "ec2-token" } } });
    expect(discoveryPolicy([ec2]).Statement.map((st) => st.Sid)).not.toContain("VerifyIamJoins");
    expect(discoveryPolicy([ec2, m({ regions: ["us-gov-west-1"] })]).Statement[1]).toEqual({
      ...VERIFY,
      Resource: ["arn:aws-us-gov:iam::*:instance-profile/*"],
    });
  });

  it("takes a discovery_config document, its spec, or its AWS matchers alike", () => {
    const config = discoveryConfigDocument.parse({
      kind: "discovery_config",
      version: "v1",
      metadata: { name: "prod" },
      spec: { discovery_group: "prod", aws: [{ regions: ["us-east-1"] }] },
    });
    const expected = discoveryPolicy(config.spec.aws);
    expect(discoveryPolicy(config)).toEqual(expected);
    expect(discoveryPolicy(config.spec)).toEqual(expected);
  });

  it("no AWS matchers: no statements", () => {
    expect(discoveryPolicy([])).toEqual(doc());
    expect(instancePolicy([])).toEqual(doc());
  });
});

describe("instancePolicy", () => {
  it("lists the SSM agent's core actions explicitly", () => {
    expect(instancePolicy([m({ regions: ["us-east-1"] })])).toEqual(INSTANCE);
  });
});

describe("discovery policy aws|gcp|azure --config FILE", () => {
  let dir: string;
  let out: string;
  let err: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "policy-cli-"));
    out = err = "";
    jest.spyOn(process.stdout, "write").mockImplementation((s) => ((out += s), true));
    jest.spyOn(process.stderr, "write").mockImplementation((s) => ((err += s), true));
    process.exitCode = undefined;
  });
  afterEach(() => {
    jest.restoreAllMocks();
    process.exitCode = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });
  async function run(...args: string[]) {
    await policyCommand().exitOverride().parseAsync(args, { from: "user" });
  }
  const file = (name: string, text: string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };

  it("aws: prints the discovery and instance policies of a teleport.yaml", async () => {
    const f = file(
      "teleport.yaml",
      "discovery_service:\n  enabled: yes\n  aws:\n    - types: [ec2]\n      regions: [us-east-1]\n" +
        "      tags: {env: prod}\n",
    );
    await run("aws", "--config", f);
    expect(err).toBe("");
    expect(process.exitCode).toBeUndefined();
    expect(JSON.parse(out)).toEqual({
      discovery: doc(
        DESCRIBE,
        VERIFY,
        READ,
        send("arn:aws:ec2:us-east-1:*:instance/*", "arn:aws:ssm:us-east-1::document/AWS-RunShellScript"),
      ),
      instance: INSTANCE,
    });
  });

  it("aws: a runtime config's matchers, and read and delete on its event queues only", async () => {
    const f = file(
      "runtime.yaml",
      "version: v1\ncluster_name: demo\npublic_addr: https://127.0.0.1:3080\ndiscovery_service:\n" +
        "  aws:\n    - types: [ec2]\n      regions: [us-east-1]\n      tags: {env: prod}\n" +
        "  events:\n    aws:\n      - sqs_queue_url: https://sqs.us-east-1.amazonaws.com/123456789012/ec2-events\n",
    );
    await run("aws", "--config", f);
    expect(err).toBe("");
    expect(process.exitCode).toBeUndefined();
    const printed = JSON.parse(out);
    expect(printed.discovery).toEqual(
      doc(
        DESCRIBE,
        VERIFY,
        READ,
        send("arn:aws:ec2:us-east-1:*:instance/*", "arn:aws:ssm:us-east-1::document/AWS-RunShellScript"),
      ),
    );
    expect(printed.events).toEqual(eventQueuePolicy(["arn:aws:sqs:us-east-1:123456789012:ec2-events"]));
    expect(printed.events.Statement[0].Action).toEqual([
      "sqs:DeleteMessage",
      "sqs:GetQueueAttributes",
      "sqs:ReceiveMessage",
    ]);
  });

  it("aws: a runtime config without aws matchers is refused, naming where they go", async () => {
    const f = file("runtime.yaml", "version: v1\ncluster_name: demo\npublic_addr: https://127.0.0.1:3080\n");
    await run("aws", "--config", f);
    expect(out).toBe("");
    expect(process.exitCode).toBe(1);
    expect(err).toContain("no aws matchers: add one under spec.aws of a discovery_config");
    expect(err).toContain("discovery_service.aws of a teleport.yaml or runtime config");
  });

  it("gcp: prints a custom role for the GCP matchers of every discovery_config", async () => {
    const f = file(
      "configs.yaml",
      [
        "kind: discovery_config\nversion: v1\nmetadata: {name: a}\nspec:\n  discovery_group: a\n" +
          "  gcp: [{project_ids: [proj-one], locations: [us-central1-a]}]\n",
        "kind: discovery_config\nversion: v1\nmetadata: {name: b}\nspec:\n  discovery_group: b\n" +
          "  gcp: [{project_ids: [proj-two], locations: [europe-west1]}]\n",
      ].join("---\n"),
    );
    await run("gcp", "--config", f);
    expect(err).toBe("");
    expect(JSON.parse(out)).toEqual({
      title: "pulumi-discovery",
      description: "Lists Compute Engine VMs and runs the discovery installer on them over SSH (metadata keys).",
      stage: "GA",
      includedPermissions: [
        "compute.instances.get",
        "compute.instances.getGuestAttributes",
        "compute.instances.list",
        "compute.instances.setMetadata",
        "compute.projects.get",
        "compute.zoneOperations.get",
        "compute.zones.list",
        "iam.serviceAccounts.actAs",
      ],
    });
  });

  it("problems in the file are printed as validate prints them, and exit 1", async () => {
    const f = file(
      "bad.yaml",
      "kind: discovery_config\nversion: v1\nmetadata: {name: a}\nspec:\n  discovery_group: a\n  aws:\n    - regions: [mars-1]\n",
    );
    await run("aws", "--config", f);
    expect(out).toBe("");
    const [problem] = validateFiles([f]).problems.map(formatProblem);
    expect(problem).toMatch(new RegExp(`^${f}:7:17: spec\\.aws\\[0\\]\\.regions\\[0\\]: .*us-east-1`));
    expect(err).toBe(`${problem}\n1 problem found\n`);
    expect(process.exitCode).toBe(1);
  });

  it("a config without matchers of that cloud is refused", async () => {
    const f = file("aws-only.yaml", "discovery_service:\n  aws: [{regions: [us-east-1]}]\n");
    await run("gcp", "--config", f);
    expect(out).toBe("");
    expect(err).toBe(
      `${f}: no gcp matchers: add one under spec.gcp of a discovery_config (or discovery_service.gcp of a teleport.yaml or runtime config)\n`,
    );
    expect(process.exitCode).toBe(1);
  });

  it("azure: prints a custom role assignable to the subscriptions of every discovery_config", async () => {
    const [s1, s2] = ["11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"];
    const f = file(
      "azure.yaml",
      [
        `kind: discovery_config\nversion: v1\nmetadata: {name: a}\nspec:\n  discovery_group: a\n  azure: [{subscriptions: [${s2}]}]\n`,
        `kind: discovery_config\nversion: v1\nmetadata: {name: b}\nspec:\n  discovery_group: b\n  azure: [{subscriptions: [${s1}], regions: [eastus]}]\n`,
      ].join("---\n"),
    );
    await run("azure", "--config", f);
    expect(err).toBe("");
    const role = JSON.parse(out);
    expect(role).toEqual(azureDiscoveryRole([s2, s1].map((s) => azureMatcher.parse({ subscriptions: [s] }))));
    expect(role.AssignableScopes).toEqual([`/subscriptions/${s1}`, `/subscriptions/${s2}`]);
    expect(role.Actions).toContain("Microsoft.Compute/virtualMachines/runCommands/write");
  });

  it("azure: a config without Azure matchers is refused", async () => {
    const f = file("gcp-only.yaml", "discovery_service:\n  gcp: [{project_ids: [p1]}]\n");
    await run("azure", "--config", f);
    expect(out).toBe("");
    expect(err).toMatch(/no azure matchers: add one under spec.azure of a discovery_config/);
    expect(process.exitCode).toBe(1);
  });
});
