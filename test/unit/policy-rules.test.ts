import {
  checkResource,
  ec2TokenIidTtlAndRegions,
  matcherCloudJoinMethod,
  noWildcardAssumeRole,
  RESOURCE_TYPES as T,
  runtimeAddressHttps,
  ssmSendCommandDocumentScoped,
  tokenAllowRules,
} from "../../policy";
import * as aws from "../../sdk/aws";

/** A ProvisionToken's inputs as the engine hands them to a policy (connection and metadata included). */
function provisionToken(spec: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return {
    type: T.provisionToken,
    props: { name: "ec2-token", server: "https://discovery.example.com:3080", adminToken: "x", ...spec, ...extra },
  };
}

/** A `kind: token` ResourceDocument with the spec as the user wrote it. */
function tokenDocument(spec: Record<string, unknown>) {
  return { type: T.resourceDocument, props: { kind: "token", name: "doc-token", spec } };
}

/** A DiscoveryConfig's inputs. */
function discoveryConfig(matchers: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return {
    type: T.discoveryConfig,
    props: {
      name: "prod",
      discoveryGroup: "prod",
      server: "https://discovery.example.com:3080",
      ...matchers,
      ...extra,
    },
  };
}

/** An aws.iam.Policy whose `policy` is the JSON of `statements`. */
function iamPolicy(...statements: object[]) {
  return {
    type: T.awsIamPolicy,
    props: { name: "discovery", policy: JSON.stringify({ Version: "2012-10-17", Statement: statements }) },
  };
}

const EC2_RULE = { awsAccount: "123456789012", awsRegions: ["us-east-1"] };

describe("ec2-token-iid-ttl-and-regions", () => {
  const check = (r: Parameters<typeof checkResource>[1], config = {}) =>
    checkResource(ec2TokenIidTtlAndRegions, r, config);

  it("accepts an ec2 token with the default TTL or one up to 5m, and a region list in every rule", async () => {
    expect(await check(provisionToken({ roles: ["Node"], joinMethod: "ec2", allow: [EC2_RULE] }))).toEqual([]);
    expect(await check(provisionToken({ joinMethod: "ec2", awsIidTtl: "300s", allow: [EC2_RULE] }))).toEqual([]);
    expect(await check(provisionToken({ joinMethod: "ec2", awsIidTtl: "90s", allow: [EC2_RULE] }))).toEqual([]);
  });

  it("refuses a TTL over 5m, naming awsIidTtl and the limit", async () => {
    const [message, ...rest] = await check(provisionToken({ joinMethod: "ec2", awsIidTtl: "10m", allow: [EC2_RULE] }));
    expect(rest).toEqual([]);
    expect(message).toContain('awsIidTtl is "10m"');
    expect(message).toContain('Set awsIidTtl to "5m" or less');
    expect(await check(provisionToken({ joinMethod: "ec2", awsIidTtl: "301s", allow: [EC2_RULE] }))).toHaveLength(1);
  });

  it("uses the configured maximum, which the 5m default can exceed", async () => {
    const token = provisionToken({ joinMethod: "ec2", allow: [EC2_RULE] });
    const [message] = await check(token, { maxAwsIidTtl: "2m" });
    expect(message).toContain('awsIidTtl is "5m", longer than the 2m allowed');
    expect(await check(token, { maxAwsIidTtl: "1h" })).toEqual([]);
  });

  it("refuses allow rules without regions or with a wildcard region, naming each rule", async () => {
    const token = provisionToken({
      joinMethod: "ec2",
      allow: [EC2_RULE, { awsAccount: "210987654321" }, { awsAccount: "111122223333", awsRegions: ["*"] }],
    });
    const messages = await check(token);
    expect(messages).toHaveLength(2);
    expect(messages[0]).toMatch(/^allow\[1\]\.awsRegions is missing: .*awsRegions: \["us-east-1"\]/);
    expect(messages[1]).toMatch(/^allow\[2\]\.awsRegions \["\*"\] has a wildcard/);
  });

  it("infers ec2 from allow rules, and reads a ResourceDocument's snake_case spec", async () => {
    expect(await check(provisionToken({ allow: [{ awsAccount: "123456789012" }] }))).toEqual([
      expect.stringMatching(/^allow\[0\]\.awsRegions is missing/),
    ]);
    const [message] = await check(
      tokenDocument({
        roles: ["Node"],
        join_method: "ec2",
        aws_iid_ttl: "1h",
        allow: [{ aws_account: "123456789012", aws_regions: ["us-east-1"] }],
      }),
    );
    expect(message).toMatch(/^spec\.awsIidTtl is "1h"/);
  });

  it("leaves other join methods alone", async () => {
    expect(await check(provisionToken({ joinMethod: "iam", allow: [{ awsAccount: "123456789012" }] }))).toEqual([]);
    expect(await check({ type: T.installer, props: { name: "i", script: "#!/bin/sh" } })).toEqual([]);
  });
});

describe("token-allow-rules", () => {
  const check = (r: Parameters<typeof checkResource>[1], config = {}) => checkResource(tokenAllowRules, r, config);

  it("accepts tokens whose rules pin an account, an organization, projects or a subscription", async () => {
    const ok = [
      provisionToken({ joinMethod: "ec2", allow: [EC2_RULE] }),
      provisionToken({ joinMethod: "iam", allow: [{ awsAccount: "123456789012" }] }),
      provisionToken({ joinMethod: "iam", allow: [{ awsOrganizationId: "o-abcde12345" }] }),
      provisionToken({ joinMethod: "iam", allow: [{ awsArn: "arn:aws:sts::123456789012:assumed-role/node/*" }] }),
      provisionToken({ joinMethod: "gcp", gcp: { allow: [{ projectIds: ["corp-prod"] }] } }),
      provisionToken({
        joinMethod: "azure",
        azure: { allow: [{ subscription: "0b4b9f7e-1e35-4f5b-9d38-3d3c2f0e9a11" }] },
      }),
    ];
    for (const token of ok) expect(await check(token)).toEqual([]);
  });

  it("refuses a shared-secret token unless allowTokenMethod is set", async () => {
    const explicit = provisionToken({ roles: ["Node"], joinMethod: "token" }, { name: "s3cr3t" });
    const [message] = await check(explicit);
    expect(message).toMatch(/^joinMethod is token: .*Use ec2, iam, gcp or azure with allow rules/);
    expect(message).not.toContain("s3cr3t"); // the name is the secret
    expect(await check(provisionToken({ roles: ["Node"] }))).toHaveLength(1); // token is inferred
    expect(await check(explicit, { allowTokenMethod: true })).toEqual([]);
  });

  it("refuses iam rules that match callers in every account", async () => {
    const [message] = await check(
      provisionToken({ joinMethod: "iam", allow: [{ awsArn: "arn:aws:sts::*:assumed-role/node/*" }] }),
    );
    expect(message).toMatch(
      /^allow\[0\]\.awsArn "arn:aws:sts::\*:assumed-role\/node\/\*" matches callers in every AWS account: add awsAccount/,
    );
  });

  it("refuses empty or open rules of each cloud, naming the field", async () => {
    expect(await check(provisionToken({ joinMethod: "iam", allow: [] }))).toEqual([
      expect.stringMatching(/^allow is empty: an iam token needs at least one rule/),
    ]);
    expect(await check(provisionToken({ joinMethod: "ec2", allow: [{ awsRegions: ["us-east-1"] }] }))).toEqual([
      expect.stringMatching(/^allow\[0\]\.awsAccount is missing/),
    ]);
    expect(await check(provisionToken({ joinMethod: "gcp", gcp: { allow: [{ projectIds: ["*"] }] } }))).toEqual([
      expect.stringMatching(/^gcp\.allow\[0\]\.projectIds \["\*"\] has a wildcard/),
    ]);
    expect(await check(provisionToken({ joinMethod: "gcp", gcp: { allow: [] } }))).toEqual([
      expect.stringMatching(/^gcp\.allow is empty/),
    ]);
    expect(
      await check(provisionToken({ joinMethod: "azure", azure: { allow: [{ resourceGroups: ["rg"] }] } })),
    ).toEqual([expect.stringMatching(/^azure\.allow\[0\]\.subscription is missing/)]);
    expect(
      await check(
        tokenDocument({ roles: ["Node"], join_method: "iam", allow: [{ aws_arn: "arn:aws:iam::*:role/x" }] }),
      ),
    ).toEqual([expect.stringMatching(/^spec\.allow\[0\]\.awsArn/)]);
  });
});

describe("matcher-cloud-join-method", () => {
  const check = (r: Parameters<typeof checkResource>[1]) => checkResource(matcherCloudJoinMethod, r);

  it("accepts the per-cloud defaults and the cloud methods", async () => {
    expect(await check(discoveryConfig({ aws: [{ regions: ["us-east-1"] }], gcp: [{ projectIds: ["p-1"] }] }))).toEqual(
      [],
    );
    const ec2 = { regions: ["*"], install: { joinParams: { tokenName: "ec2-token", method: "ec2" } } };
    expect(
      await check(
        discoveryConfig({
          aws: [ec2],
          azure: [{ subscriptions: ["*"], install: { joinParams: { method: "azure" } } }],
        }),
      ),
    ).toEqual([]);
  });

  it("refuses a matcher that installs with joinMethod token, naming the matcher and the method to use", async () => {
    const messages = await check(
      discoveryConfig({
        aws: [{ regions: ["us-east-1"] }, { regions: ["eu-west-1"], install: { joinParams: { method: "token" } } }],
      }),
    );
    expect(messages).toEqual([
      'aws[1].install.joinParams.method is "token": discovered aws instances must join with a method the cloud attests. Set it to "iam" or "ec2" (or remove it for the default).',
    ]);
  });

  it("refuses another cloud's method, in an Enrollment and a ResourceDocument too", async () => {
    const enrollment = {
      type: T.enrollment,
      props: { gcp: [{ projectIds: ["p-1"], install: { joinParams: { method: "iam" } } }] },
    };
    expect(await check(enrollment)).toEqual([
      expect.stringMatching(/^gcp\[0\]\.install\.joinParams\.method is "iam".*Set it to "gcp"/),
    ]);
    const doc = {
      type: T.resourceDocument,
      props: {
        kind: "discovery_config",
        name: "c",
        spec: {
          discovery_group: "g",
          aws: [{ regions: ["us-east-1"], install: { join_params: { method: "token" } } }],
        },
      },
    };
    expect(await check(doc)).toEqual([
      expect.stringMatching(/^spec\.aws\[0\]\.install\.joinParams\.method is "token"/),
    ]);
  });
});

describe("ssm-send-command-document-scoped", () => {
  const check = (r: Parameters<typeof checkResource>[1]) => checkResource(ssmSendCommandDocumentScoped, r);
  const send = (Resource: unknown, extra: object = {}) => ({
    Sid: "Send",
    Effect: "Allow",
    Action: "ssm:SendCommand",
    Resource,
    ...extra,
  });

  it("accepts SendCommand on named documents and the instances it targets", async () => {
    const scoped = send([
      "arn:aws:ssm:*:*:document/DiscoveryInstaller",
      "arn:aws:ssm:us-east-1::document/AWS-RunShellScript",
      "arn:aws:ec2:*:*:instance/*",
    ]);
    expect(await check(iamPolicy(scoped, { Effect: "Allow", Action: "ec2:DescribeInstances", Resource: "*" }))).toEqual(
      [],
    );
    expect(await check(iamPolicy({ Effect: "Deny", Action: "ssm:*", Resource: "*" }))).toEqual([]);
  });

  it("refuses SendCommand on * or on a document wildcard, naming the statement and the resource", async () => {
    expect(await check(iamPolicy({ Effect: "Allow", Action: "ec2:*", Resource: "*" }, send("*")))).toEqual([
      expect.stringMatching(
        /^policy\.Statement\[1\] \(Sid "Send"\) allows ssm:SendCommand on "\*", which covers any SSM document: list the installer's document ARNs/,
      ),
    ]);
    const [wild] = await check(iamPolicy(send(["arn:aws:ssm:*:*:document/Discovery*", "arn:aws:ec2:*:*:instance/*"])));
    expect(wild).toContain('on "arn:aws:ssm:*:*:document/Discovery*"');
    expect(wild).not.toContain("instance/*");
  });

  it("sees SendCommand granted through wildcards, NotAction and NotResource", async () => {
    expect(
      await check(iamPolicy({ Effect: "Allow", Action: ["ssm:Send*"], Resource: "arn:aws:ssm:*:*:*" })),
    ).toHaveLength(1);
    expect(await check(iamPolicy({ Effect: "Allow", Action: "*", Resource: "*" }))).toHaveLength(1);
    expect(await check(iamPolicy({ Effect: "Allow", NotAction: ["iam:*"], Resource: "*" }))).toHaveLength(1);
    expect(await check(iamPolicy({ Effect: "Allow", NotAction: ["ssm:SendCommand"], Resource: "*" }))).toEqual([]);
    expect(
      await check(
        iamPolicy({ Effect: "Allow", Action: "SSM:SENDCOMMAND", NotResource: "arn:aws:ssm:*:*:document/AWS-*" }),
      ),
    ).toEqual([expect.stringMatching(/^policy\.Statement\[0\] allows ssm:SendCommand with NotResource/)]);
  });

  it("reads role policies given as objects, roles' inline policies, and says when a document is not JSON", async () => {
    const rolePolicy = {
      type: T.awsIamRolePolicy,
      props: { role: "r", policy: { Version: "2012-10-17", Statement: send("*") } },
    };
    expect(await check(rolePolicy)).toEqual([expect.stringMatching(/^policy\.Statement\[0\] \(Sid "Send"\)/)]);
    const role = {
      type: T.awsIamRole,
      props: {
        inlinePolicies: [
          { name: "ok", policy: "{}" },
          { name: "bad", policy: JSON.stringify({ Statement: [send(["*"])] }) },
        ],
      },
    };
    expect(await check(role)).toEqual([expect.stringMatching(/^inlinePolicies\[1\]\.policy\.Statement\[0\]/)]);
    expect(await check({ type: T.awsIamPolicy, props: { policy: "{not json" } })).toEqual([
      expect.stringMatching(/^policy is not valid JSON/),
    ]);
  });

  it("passes the policy aws.discoveryPolicy() builds, custom documents and organizations included", async () => {
    const policy = aws.discoveryPolicy({
      aws: [
        {
          regions: ["us-east-1", "eu-west-1"],
          ssm: { documentName: "DiscoveryInstaller" },
          assumeRole: { roleArn: "arn:aws:iam::123456789012:role/discovery" },
        },
        {
          regions: ["*"],
          organization: { organizationId: "o-abcde12345" },
          assumeRole: { roleName: "DiscoveryMember" },
        },
      ],
    });
    const asPulumiHasIt = { type: T.awsIamPolicy, props: { policy: JSON.stringify(policy) } };
    expect(await check(asPulumiHasIt)).toEqual([]);
    expect(await checkResource(noWildcardAssumeRole, asPulumiHasIt)).toEqual([]);
  });
});

describe("runtime-address-https", () => {
  const check = (r: Parameters<typeof checkResource>[1]) => checkResource(runtimeAddressHttps, r);

  it("refuses a runtime-backed resource whose server is http, and says the https URL to use", async () => {
    expect(
      await check(
        provisionToken(
          { joinMethod: "iam", allow: [{ awsAccount: "123456789012" }] },
          { server: "http://10.0.0.5:3080" },
        ),
      ),
    ).toEqual([
      expect.stringMatching(
        /^server is "http:\/\/10\.0\.0\.5:3080": the runtime must be reached over https .* Use "https:\/\/10\.0\.0\.5:3080"\.$/,
      ),
    ]);
    expect(await check(discoveryConfig({ aws: [{ regions: ["us-east-1"] }] }))).toEqual([]);
    expect(await check({ type: T.enrollment, props: { aws: [], server: "HTTPS://d.example.com" } })).toEqual([]);
  });

  it("checks the DiscoveryService component's publicAddr, in a config object or YAML text", async () => {
    const svc = (config: unknown) => ({ type: T.discoveryService, props: { target: "local", config } });
    expect(await check(svc({ clusterName: "d.local", publicAddr: "https://discovery.example.com:3080" }))).toEqual([]);
    expect(await check(svc({ publicAddr: "http://discovery.example.com:3080" }))).toEqual([
      expect.stringMatching(
        /^config\.publicAddr is "http:\/\/discovery\.example\.com:3080": .* Use "https:\/\/discovery\.example\.com:3080"\.$/,
      ),
    ]);
    expect(await check(svc({ publicAddr: "discovery.example.com:3080" }))).toEqual([
      expect.stringMatching(/^config\.publicAddr is "discovery\.example\.com:3080"/),
    ]);
    const yaml = "version: v1\ncluster_name: d.local\npublic_addr: http://10.0.0.5:3080\n";
    expect(await check(svc(yaml))).toEqual([
      expect.stringMatching(/^config\.public_addr is "http:\/\/10\.0\.0\.5:3080"/),
    ]);
    expect(await check(svc(yaml.replace("http:", "https:")))).toEqual([]);
    expect(await check({ type: T.discoveryService, props: { publicAddress: "http://d:3080" } })).toEqual([
      expect.stringMatching(/^publicAddress is "http:\/\/d:3080"/),
    ]);
  });

  it("reads the matchers of a DiscoveryService's discovery_service section", async () => {
    const yaml = [
      "version: v1",
      "public_addr: https://d.example.com:3080",
      "discovery_service:",
      "  enabled: true",
      "  aws:",
      "    - regions: [us-east-1]",
      "      install: {join_params: {method: token}, proxy_addr: http://d.example.com}",
    ].join("\n");
    const svc = { type: T.discoveryService, props: { target: "aws", config: yaml } };
    expect(await check(svc)).toEqual([
      expect.stringMatching(/^config\.discoveryService\.aws\[0\]\.install\.proxyAddr is "http:\/\/d\.example\.com"/),
    ]);
    expect(await checkResource(matcherCloudJoinMethod, svc)).toEqual([
      expect.stringMatching(/^config\.discoveryService\.aws\[0\]\.install\.joinParams\.method is "token"/),
    ]);
  });

  it("allows a matcher's proxyAddr as host:port but not with another scheme", async () => {
    const matcher = (proxyAddr: string) => ({ regions: ["us-east-1"], install: { proxyAddr } });
    expect(await check(discoveryConfig({ aws: [matcher("discovery.example.com:443")] }))).toEqual([]);
    expect(await check(discoveryConfig({ aws: [matcher("http://discovery.example.com")] }))).toEqual([
      expect.stringMatching(/^aws\[0\]\.install\.proxyAddr is "http:\/\/discovery\.example\.com"/),
    ]);
    const doc = {
      type: T.resourceDocument,
      props: {
        kind: "discovery_config",
        name: "c",
        spec: { gcp: [{ project_ids: ["p-1"], install: { proxy_addr: "ftp://x:21" } }] },
      },
    };
    expect(await check(doc)).toEqual([expect.stringMatching(/^spec\.gcp\[0\]\.install\.proxyAddr is "ftp:\/\/x:21"/)]);
  });
});

describe("no-wildcard-assume-role", () => {
  const check = (r: Parameters<typeof checkResource>[1]) => checkResource(noWildcardAssumeRole, r);

  it("accepts named roles, and a fixed role name in every organization account", async () => {
    expect(
      await check(
        discoveryConfig({
          aws: [
            {
              regions: ["us-east-1"],
              assumeRole: { roleArn: "arn:aws:iam::123456789012:role/discovery", externalId: "x1" },
            },
          ],
        }),
      ),
    ).toEqual([]);
    const assume = (Resource: unknown) => iamPolicy({ Effect: "Allow", Action: "sts:AssumeRole", Resource });
    expect(
      await check(assume(["arn:aws:iam::123456789012:role/discovery", "arn:aws:iam::*:role/DiscoveryMember"])),
    ).toEqual([]);
  });

  it("refuses wildcards in a matcher's assumeRole and a token's awsRole, naming the field", async () => {
    const messages = await check(
      discoveryConfig({
        aws: [
          { regions: ["us-east-1"], assumeRole: { roleArn: "arn:aws:iam::123456789012:role/*" } },
          {
            regions: ["us-east-1"],
            organization: { organizationId: "o-abcde12345" },
            assumeRole: { roleName: "Discovery*" },
          },
        ],
      }),
    );
    expect(messages).toEqual([
      'aws[0].assumeRole.roleArn "arn:aws:iam::123456789012:role/*" has a wildcard: name the role exactly, e.g. arn:aws:iam::123456789012:role/discovery.',
      expect.stringMatching(/^aws\[1\]\.assumeRole\.roleName "Discovery\*" has a wildcard/),
    ]);
    const doc = {
      type: T.resourceDocument,
      props: {
        kind: "discovery_config",
        name: "c",
        spec: { aws: [{ regions: ["us-east-1"], assume_role_arn: "arn:aws:iam::123456789012:role/d?" }] },
      },
    };
    expect(await check(doc)).toEqual([expect.stringMatching(/^spec\.aws\[0\]\.assumeRoleArn/)]);
    expect(
      await check(
        provisionToken({ joinMethod: "ec2", allow: [{ ...EC2_RULE, awsRole: "arn:aws:iam::123456789012:role/*" }] }),
      ),
    ).toEqual([expect.stringMatching(/^allow\[0\]\.awsRole "arn:aws:iam::123456789012:role\/\*" has a wildcard/)]);
  });

  it("lets an iam token's organization rule name its role in the caller's account (* account), and nothing wider", async () => {
    const org = (awsRole: string) =>
      provisionToken({ joinMethod: "iam", allow: [{ awsOrganizationId: "o-abcde12345", awsRole }] });
    expect(await check(org("arn:aws:iam::*:role/DiscoveryMember"))).toEqual([]);
    expect(await check(org("arn:aws:iam::*:role/*"))).toEqual([
      expect.stringMatching(/^allow\[0\]\.awsRole "arn:aws:iam::\*:role\/\*" has a wildcard/),
    ]);
    expect(await check(org("arn:aws:iam::*:role/Discovery?"))).toHaveLength(1);
  });

  it("refuses sts:AssumeRole grants on any role", async () => {
    const assume = (Resource: unknown, Action: unknown = "sts:AssumeRole") =>
      iamPolicy({ Sid: "Assume", Effect: "Allow", Action, Resource });
    expect(await check(assume("*"))).toEqual([
      expect.stringMatching(
        /^policy\.Statement\[0\] \(Sid "Assume"\) allows sts:AssumeRole on "\*", which covers any role/,
      ),
    ]);
    expect(await check(assume("arn:aws:iam::123456789012:role/discovery-*"))).toHaveLength(1);
    expect(await check(assume("arn:aws-cn:iam::*:role/*", "sts:*"))).toHaveLength(1);
    expect(await check(assume("*", "sts:GetCallerIdentity"))).toEqual([]);
  });
});
