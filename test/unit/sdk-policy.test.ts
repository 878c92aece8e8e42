import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { policyCommand } from "../../provider/cli/policy";
import { snakify } from "../../provider/model";
import * as aws from "../../sdk/aws";
import * as gcp from "../../sdk/gcp";
import type { DiscoveryConfigPolicyArgs } from "../../sdk/policy-config";

/** Two configs as a Pulumi program writes them (camelCase, spec fields at the top). */
const CONFIGS: Record<string, DiscoveryConfigPolicyArgs> = {
  "explicit regions, an assumed role and a custom document": {
    name: "prod",
    discoveryGroup: "prod",
    aws: [
      {
        types: ["ec2"],
        regions: ["us-east-1", "eu-west-1"],
        tags: { env: "prod", "team-name": ["a", "b"] },
        assumeRole: { roleArn: "arn:aws:iam::123456789012:role/DiscoveryMember", externalId: "ext-42" },
        ssm: { documentName: "DiscoveryInstaller" },
        install: { joinParams: { tokenName: "aws-token", method: "iam" }, mode: "agentless" },
      },
    ],
    gcp: [{ projectIds: ["my-project"], locations: ["europe-west1"], labels: { env: "prod" } }],
  },
  "every region of an organization, every project": {
    name: "org",
    discoveryGroup: "org",
    aws: [
      {
        regions: ["*"],
        organization: { organizationId: "o-abcdef1234" },
        assumeRole: { roleName: "DiscoveryMember" },
      },
      { regions: ["us-west-2"], ssm: { documentName: "AWS-RunShellScript" } },
    ],
    gcp: [{ projectIds: ["*"], serviceAccounts: ["vm@my-project.iam.gserviceaccount.com"] }],
  },
};

describe("the SDK policy builders give what `discovery policy` gives", () => {
  let dir: string;
  let out: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdk-policy-"));
    out = "";
    jest.spyOn(process.stdout, "write").mockImplementation((s) => ((out += s), true));
    process.exitCode = undefined;
  });
  afterEach(() => {
    jest.restoreAllMocks();
    process.exitCode = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Runs `discovery policy <cloud> --config FILE` on the config written as a discovery_config YAML document. */
  async function cli(cloud: "aws" | "gcp", config: DiscoveryConfigPolicyArgs): Promise<Record<string, unknown>> {
    const { name, ...spec } = config;
    const file = path.join(dir, "config.yaml");
    fs.writeFileSync(
      file,
      stringify({ kind: "discovery_config", version: "v1", metadata: { name }, spec: snakify(spec) }),
    );
    await policyCommand().exitOverride().parseAsync([cloud, "--config", file], { from: "user" });
    expect(process.exitCode).toBeUndefined();
    return JSON.parse(out);
  }

  for (const [title, config] of Object.entries(CONFIGS)) {
    it(`aws, ${title}`, async () => {
      const printed = await cli("aws", config);
      expect(aws.discoveryPolicy(config)).toEqual(printed.discovery);
      expect(aws.instancePolicy(config)).toEqual(printed.instance);
      // A matcher list gives the same policies as the config holding it.
      expect(aws.discoveryPolicy(config.aws!)).toEqual(printed.discovery);
      // Plain data, as @pulumi/aws iam.Policy takes it.
      expect(JSON.parse(JSON.stringify(aws.discoveryPolicy(config)))).toEqual(printed.discovery);
    });

    it(`gcp, ${title}`, async () => {
      const printed = await cli("gcp", config);
      expect(gcp.discoveryRole(config)).toEqual({
        title: printed.title,
        description: printed.description,
        stage: printed.stage,
        permissions: printed.includedPermissions,
      });
      expect(gcp.discoveryRole(config.gcp!)).toEqual(gcp.discoveryRole(config));
    });
  }

  it("the configs give different policies (the comparison above can fail)", () => {
    const [a, b] = Object.values(CONFIGS);
    expect(aws.discoveryPolicy(a)).not.toEqual(aws.discoveryPolicy(b));
    expect(gcp.discoveryRole(a).permissions).not.toEqual(gcp.discoveryRole(b).permissions);
  });

  it("refuses an invalid matcher, naming the camelCase property", () => {
    expect(() => aws.discoveryPolicy({ aws: [{ regions: ["us-east-1"], assumeRole: { roleArn: "nope" } }] })).toThrow(
      /aws\[0\]\.assumeRole\.roleArn: /,
    );
    expect(() => aws.discoveryPolicy([{ regions: ["mars-1"] }])).toThrow(/invalid aws matchers: \[0\]\.regions\[0\]: /);
    expect(() => gcp.discoveryRole([{ projectIds: ["UPPER"] }])).toThrow(/\[0\]\.projectIds\[0\]: /);
  });

  it("refuses a config without the cloud's matchers, as the CLI does", () => {
    expect(() => gcp.discoveryRole({ aws: [{ regions: ["us-east-1"] }] })).toThrow(/no gcp matchers/);
    expect(() => aws.discoveryPolicy([])).toThrow(/matchers/);
  });
});
