import { DiscoveryConfig, discoveryServiceSection, Installer, parseDocuments } from "../../provider/model";
import { problemsOf } from "../fixtures/problems";

const dc = (aws: string) =>
  `kind: discovery_config\nversion: v1\nmetadata: {name: prod}\nspec:\n  discovery_group: prod\n  aws:\n    - ${aws}\n`;
const dcRaw = (spec: string) => `kind: discovery_config\nversion: v1\nmetadata: {name: prod}\nspec:\n${spec}`;
const gcp = (m: string) => dcRaw(`  discovery_group: prod\n  gcp:\n    - ${m}\n`);
const azure = (m: string) => dcRaw(`  discovery_group: prod\n  azure:\n    - ${m}\n`);
const installer = (script: string, name = "my-installer") =>
  `kind: installer\nversion: v1\nmetadata: {name: ${name}}\nspec:\n  script: ${JSON.stringify(script)}\n`;

describe("kind: discovery_config", () => {
  it.each([
    ["no discovery_group", dcRaw("  aws:\n    - regions: [us-east-1]\n"), ["spec.discovery_group: is required"]],
    [
      "no matchers",
      dcRaw("  discovery_group: prod\n"),
      ["spec: has no matchers; add at least one under aws, gcp or azure"],
    ],
    ["no regions", dc("types: [ec2]"), ["spec.aws[0].regions: is required"]],
    ["empty regions", dc("regions: []"), ['spec.aws[0].regions: must list at least one region, or "*"']],
    [
      '"*" beside other regions',
      dc('regions: ["*", us-east-1]'),
      ['spec.aws[0].regions: "*" must stand alone; remove the other regions or the "*"'],
    ],
    [
      "a region that is not one",
      dc("regions: [us-east-1, mars-1]"),
      ["spec.aws[0].regions[1]: is not an AWS region name; use a name such as us-east-1"],
    ],
    ["an unknown type", dc("regions: [us-east-1]\n      types: [rds]"), ['spec.aws[0].types[0]: must be "ec2"']],
    [
      'a "*" tag key with a value',
      dc('regions: [us-east-1]\n      tags: {"*": prod}'),
      ['spec.aws[0].tags.*: the "*" key matches every instance; its value must be "*"'],
    ],
    [
      "a tag value that is a mapping",
      dc("regions: [us-east-1]\n      tags: {env: {a: b}}"),
      ['spec.aws[0].tags.env: must be a value, a non-empty list of values, or "*"'],
    ],
    [
      "both role spellings",
      dc(
        "regions: [us-east-1]\n      assume_role_arn: arn:aws:iam::123456789012:role/a\n      assume_role: {role_arn: 'arn:aws:iam::123456789012:role/b'}",
      ),
      ["spec.aws[0].assume_role_arn: set either assume_role.role_arn or assume_role_arn, not both"],
    ],
    [
      "an external id without a role",
      dc("regions: [us-east-1]\n      external_id: abc123"),
      ["spec.aws[0].external_id: an external_id needs a role to assume; set assume_role.role_arn"],
    ],
    [
      "an organization without role_name",
      dc("regions: [us-east-1]\n      organization: {organization_id: o-abcde12345}"),
      ["spec.aws[0].organization: needs assume_role.role_name: the role assumed in every member account"],
    ],
    [
      "role_name without an organization",
      dc("regions: [us-east-1]\n      assume_role: {role_name: Discovery}"),
      [
        "spec.aws[0].assume_role.role_name: applies only with organization; to assume one role use assume_role.role_arn",
      ],
    ],
    [
      "an organization with a role ARN",
      dc(
        "regions: [us-east-1]\n      organization: {organization_id: o-abcde12345}\n      assume_role: {role_name: D, role_arn: 'arn:aws:iam::123456789012:role/b'}",
      ),
      [
        "spec.aws[0].assume_role.role_arn: with organization, name the member-account role with assume_role.role_name instead of an ARN",
      ],
    ],
    [
      "a role name that is an ARN",
      dc(
        "regions: [us-east-1]\n      organization: {organization_id: o-abcde12345}\n      assume_role: {role_name: 'arn:aws:iam::123456789012:role/b'}",
      ),
      ["spec.aws[0].assume_role.role_name: must be an IAM role name (not an ARN) such as DiscoveryMember"],
    ],
    [
      "an OU id that is not one",
      dc(
        "regions: [us-east-1]\n      organization: {organization_id: o-abcde12345, organizational_units: {exclude: [sandbox]}}\n      assume_role: {role_name: D}",
      ),
      [
        'spec.aws[0].organization.organizational_units.exclude[0]: must be an organizational unit id such as ou-ab12-cd34ef56, a root id such as r-ab12, or "*"',
      ],
    ],
    [
      "an SSM document name too short",
      dc("regions: [us-east-1]\n      ssm: {document_name: x}"),
      ["spec.aws[0].ssm.document_name: must be an SSM document name: 3 to 128 of a-z A-Z 0-9 _ . -"],
    ],
    [
      "a gcp join method on aws",
      dc("regions: [us-east-1]\n      install: {join_params: {method: gcp}}"),
      ["spec.aws[0].install.join_params.method: must be one of iam, ec2, token for aws matchers"],
    ],
    [
      "an unknown mode",
      dc("regions: [us-east-1]\n      install: {mode: hybrid}"),
      ["spec.aws[0].install.mode: must be agent or agentless"],
    ],
    [
      "mode agent with agentless: true",
      dc("regions: [us-east-1]\n      install: {mode: agent, agentless: true}"),
      ["spec.aws[0].install.agentless: contradicts mode: agent; use mode: agentless alone"],
    ],
    [
      "install_teleport: true with agentless: true",
      dc("regions: [us-east-1]\n      install: {install_teleport: true, agentless: true}"),
      ["spec.aws[0].install.agentless: contradicts install_teleport: true; keep one of them"],
    ],
    [
      "a relative sshd_config",
      dc("regions: [us-east-1]\n      install: {sshd_config: etc/ssh/sshd_config}"),
      ["spec.aws[0].install.sshd_config: must be an absolute path such as /etc/ssh/sshd_config"],
    ],
    [
      "a proxy_addr with a path",
      dc("regions: [us-east-1]\n      install: {proxy_addr: 'https://a.example.com/x/y'}"),
      ["spec.aws[0].install.proxy_addr: must be host:port or https://host[:port]"],
    ],
    [
      "a script_name with capitals",
      dc("regions: [us-east-1]\n      install: {script_name: My-Installer}"),
      ["spec.aws[0].install.script_name: must match [a-z0-9][a-z0-9._-]{0,62} (lower case, at most 63 characters)"],
    ],
    [
      "a misspelt matcher field",
      dc("regions: [us-east-1]\n      tag: {env: prod}"),
      ['spec.aws[0].tag: unknown field "tag"; did you mean "tags"?'],
    ],
    ["gcp without project_ids", gcp("locations: [us-central1]"), ["spec.gcp[0].project_ids: is required"]],
    [
      "gcp labels and tags",
      gcp("project_ids: [my-project]\n      labels: {a: b}\n      tags: {a: b}"),
      ["spec.gcp[0].tags: tags is another name for labels; keep one of them"],
    ],
    [
      "a gcp type that is not one",
      gcp("project_ids: [my-project]\n      types: [ec2]"),
      ['spec.gcp[0].types[0]: must be "gce" (or "vm")'],
    ],
    [
      "an azure join method on gcp",
      gcp("project_ids: [my-project]\n      install: {join_params: {method: azure}}"),
      ["spec.gcp[0].install.join_params.method: must be one of gcp, token for gcp matchers"],
    ],
    ["azure without subscriptions", azure("regions: [eastus]"), ["spec.azure[0].subscriptions: is required"]],
    [
      "an azure subscription that is not a UUID",
      azure("subscriptions: [prod]"),
      ["spec.azure[0].subscriptions[0]: must be an Azure subscription id (a UUID)"],
    ],
  ])("refuses %s", (_title, yaml, expected) => {
    expect(problemsOf(yaml).sort()).toEqual([...expected].sort());
  });

  it("applies SPEC's defaults to an AWS matcher", () => {
    const { resources, problems } = parseDocuments(dc("regions: [us-east-1]"));
    expect(problems).toEqual([]);
    expect((resources[0] as DiscoveryConfig).spec.aws[0]).toEqual({
      types: ["ec2"],
      regions: ["us-east-1"],
      tags: { "*": "*" },
      ssm: { document_name: "AWS-RunShellScript" },
      install: {
        join_params: { token_name: "aws-discovery-iam-token", method: "iam" },
        script_name: "default-installer",
        mode: "agent",
        sshd_config: "/etc/ssh/sshd_config",
      },
    });
  });

  it("reads Teleport's spellings: flat assume_role_arn, install_teleport: false, gcp vm and tags", () => {
    const yaml =
      dc(
        "regions: [us-east-1]\n      assume_role_arn: arn:aws:iam::210987654321:role/discovery\n      external_id: ext-1\n      install: {install_teleport: false}",
      ) +
      "---\n" +
      gcp("types: [vm]\n      project_ids: [my-project]\n      tags: {env: prod}");
    const { resources, problems } = parseDocuments(yaml);
    expect(problems).toEqual([]);
    const [a, g] = resources as DiscoveryConfig[];
    expect(a.spec.aws[0].assume_role).toEqual({
      role_arn: "arn:aws:iam::210987654321:role/discovery",
      external_id: "ext-1",
    });
    expect(a.spec.aws[0].install.mode).toBe("agentless");
    expect(a.spec.aws[0].install.script_name).toBe("default-agentless-installer");
    expect(g.spec.gcp[0]).toMatchObject({
      types: ["gce"],
      locations: ["*"],
      labels: { env: "prod" },
      install: { join_params: { token_name: "gcp-discovery-token", method: "gcp" } },
    });
  });

  it("keeps organization defaults: every OU included, none excluded", () => {
    const { resources } = parseDocuments(
      dc(
        'regions: ["*"]\n      organization: {organization_id: o-abcde12345}\n      assume_role: {role_name: DiscoveryMember, external_id: ext-1}',
      ),
    );
    expect((resources[0] as DiscoveryConfig).spec.aws[0]).toMatchObject({
      regions: ["*"],
      organization: { organization_id: "o-abcde12345", organizational_units: { include: ["*"], exclude: [] } },
      assume_role: { role_name: "DiscoveryMember", external_id: "ext-1" },
    });
  });
});

describe("teleport.yaml style", () => {
  it("turns discovery_service into one discovery_config named by its group", () => {
    const { resources, problems } = parseDocuments(
      'teleport: {nodename: x}\ndiscovery_service:\n  enabled: "yes"\n  discovery_group: west\n  aws:\n    - regions: [us-west-2]\n',
    );
    expect(problems).toEqual([]);
    expect(resources).toHaveLength(1);
    expect(resources[0]).toMatchObject({
      kind: "discovery_config",
      metadata: { name: "west" },
      spec: { discovery_group: "west" },
    });
  });

  it("produces nothing when the service is disabled", () => {
    expect(parseDocuments("discovery_service:\n  enabled: no\n")).toEqual({
      resources: [],
      problems: [],
      warnings: [],
    });
  });

  it.each([
    [
      "a misspelt section field",
      "discovery_service:\n  pol_interval: 1m\n  aws: [{regions: [us-east-1]}]\n",
      ['discovery_service.pol_interval: unknown field "pol_interval"; did you mean "poll_interval"?'],
    ],
    [
      "a malformed poll_interval",
      "discovery_service:\n  poll_interval: often\n  aws: [{regions: [us-east-1]}]\n",
      ['discovery_service.poll_interval: "often" is not a duration; write it like 5m, 300s or 1h30m'],
    ],
    [
      "an enabled that is not a boolean",
      "discovery_service:\n  enabled: maybe\n  aws: [{regions: [us-east-1]}]\n",
      ["discovery_service.enabled: must be true or false (yes and no are accepted)"],
    ],
  ])("refuses %s", (_title, yaml, expected) => {
    expect(problemsOf(yaml)).toEqual(expected);
  });
});

describe("kind: installer", () => {
  it("accepts both template variables", () => {
    const { resources, problems } = parseDocuments(
      installer("curl https://{{ .PublicProxyAddr }}/x | sh # {{.ClusterName}}"),
    );
    expect(problems).toEqual([]);
    expect((resources[0] as Installer).spec.script).toContain("{{ .PublicProxyAddr }}");
  });

  it.each([
    [
      "an unknown variable",
      installer("echo {{ .Token }}"),
      ["spec.script: template variable {{ .Token }} is not allowed; use {{ .PublicProxyAddr }} or {{ .ClusterName }}"],
    ],
    [
      "a misspelt variable",
      installer("echo {{ .ClustreName }}"),
      [
        "spec.script: template variable {{ .ClustreName }} is not allowed (did you mean {{ .ClusterName }}?); use {{ .PublicProxyAddr }} or {{ .ClusterName }}",
      ],
    ],
    [
      "a template action",
      installer('{{ exec "id" }}'),
      [
        'spec.script: template variable {{ exec "id" }} is not allowed; use {{ .PublicProxyAddr }} or {{ .ClusterName }}',
      ],
    ],
    ["an unclosed {{", installer("echo {{ .ClusterName"), ['spec.script: "{{" is never closed with "}}"']],
    ["an empty script", installer(""), ["spec.script: must not be empty"]],
    [
      "a name with capitals",
      installer("echo", "My-Installer"),
      ["metadata.name: must match [a-z0-9][a-z0-9._-]{0,62} (lower case, at most 63 characters)"],
    ],
  ])("refuses %s", (_title, yaml, expected) => {
    expect(problemsOf(yaml)).toEqual(expected);
  });
});

describe("status and discovery groups", () => {
  it("accepts a discovery_config carrying a status (as `discovery get -o yaml` prints it) and drops the status", () => {
    const { resources, problems } = parseDocuments(
      dc("regions: [us-east-1]") + "status: {state: error, found: 9, error_message: stale}\n",
    );
    expect(problems).toEqual([]);
    expect(resources[0]).not.toHaveProperty("status");
    expect(resources[0].kind).toBe("discovery_config");
  });

  it("lets a runtime's discovery_service name a group without matchers, but not a teleport.yaml without matchers", () => {
    const section = discoveryServiceSection.parse({ discovery_group: "sandbox", poll_interval: "15s" });
    expect(section).toMatchObject({ discovery_group: "sandbox", dynamic: true, aws: [] });
    expect(discoveryServiceSection.parse({ aws: [{ regions: ["us-east-1"] }] }).dynamic).toBe(false);
    expect(problemsOf("discovery_service: {discovery_group: sandbox}\n")).toEqual([
      "discovery_service: has no matchers; add at least one under aws, gcp or azure",
    ]);
    expect(discoveryServiceSection.safeParse({ poll_interval: "1m" }).success).toBe(false);
  });
});
