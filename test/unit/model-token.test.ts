import { parseDocuments, Token } from "../../provider/model";
import { problemsOf } from "../fixtures/problems";

const token = (spec: string, meta = "name: t1") => `kind: token\nversion: v2\nmetadata: {${meta}}\nspec:\n${spec}`;
const ec2 = (rule: string, extra = "") =>
  token(`  roles: [Node]\n  join_method: ec2\n${extra}  allow:\n    - aws_account: "123456789012"\n${rule}`);
const iam = (rule: string, extra = "") =>
  token(`  roles: [Node]\n  join_method: iam\n${extra}  allow:\n    - ${rule}\n`);

describe("kind: token", () => {
  it.each([
    ["no roles", token("  roles: []\n  join_method: token\n"), ["spec.roles: must list at least one role"]],
    [
      "unknown role",
      token("  roles: [Admin]\n  join_method: token\n"),
      ["spec.roles[0]: must be one of Node, Discovery"],
    ],
    [
      "duplicate role",
      token("  roles: [Node, Node]\n  join_method: token\n"),
      ["spec.roles[1]: role Node is listed twice"],
    ],
    ["roles missing", token("  join_method: token\n"), ["spec.roles: is required"]],
    [
      "unknown join method",
      token("  roles: [Node]\n  join_method: oidc\n"),
      ["spec.join_method: must be one of token, ec2, iam, gcp, azure"],
    ],
    [
      "aws_iid_ttl on an iam token",
      iam('aws_account: "123456789012"', "  aws_iid_ttl: 5m\n"),
      ["spec.aws_iid_ttl: applies only to join_method ec2, not iam; remove it"],
    ],
    [
      "malformed aws_iid_ttl",
      ec2("", "  aws_iid_ttl: 5 minutes\n"),
      ['spec.aws_iid_ttl: "5 minutes" is not a duration; write it like 5m, 300s or 1h30m'],
    ],
    ["zero aws_iid_ttl", ec2("", "  aws_iid_ttl: 0s\n"), ["spec.aws_iid_ttl: duration must be greater than zero"]],
    [
      "ec2 token without allow rules",
      token("  roles: [Node]\n  join_method: ec2\n"),
      ["spec.allow: an ec2 token needs at least one allow rule naming an aws_account"],
    ],
    [
      "ec2 rule without account",
      token("  roles: [Node]\n  join_method: ec2\n  allow:\n    - aws_regions: [us-east-1]\n"),
      ["spec.allow[0].aws_account: is required for an ec2 allow rule"],
    ],
    [
      "account id of 11 digits",
      token('  roles: [Node]\n  join_method: ec2\n  allow:\n    - aws_account: "12345678901"\n'),
      [
        'spec.allow[0].aws_account: must be a 12-digit AWS account id such as "123456789012" (quote it in YAML so leading zeros are kept)',
      ],
    ],
    [
      "unquoted account id with a leading zero",
      token("  roles: [Node]\n  join_method: ec2\n  allow:\n    - aws_account: 012345678901\n"),
      [
        'spec.allow[0].aws_account: must be a 12-digit AWS account id such as "123456789012" (quote it in YAML so leading zeros are kept)',
      ],
    ],
    [
      "region that is not a region",
      ec2("      aws_regions: [us-east]\n"),
      ["spec.allow[0].aws_regions[0]: is not an AWS region name; use a name such as us-east-1"],
    ],
    [
      "aws_regions on an iam token",
      iam('aws_account: "123456789012"\n      aws_regions: [us-east-1]'),
      ["spec.allow[0].aws_regions: applies only to join_method ec2, not iam"],
    ],
    [
      "aws_role with a * account on an ec2 token",
      ec2("      aws_role: arn:aws:iam::*:role/discovery\n"),
      [
        "spec.allow[0].aws_role: a * account applies only to iam rules (the caller's account); name the account for ec2",
      ],
    ],
    [
      "aws_role with a * in the role name",
      iam('aws_account: "123456789012"\n      aws_role: arn:aws:iam::*:role/disc*'),
      ["spec.allow[0].aws_role: must be an IAM role ARN such as arn:aws:iam::123456789012:role/discovery"],
    ],
    [
      "aws_role on an iam token that is not a role ARN",
      iam('aws_account: "123456789012"\n      aws_role: arn:aws:iam::123456789012:user/bob'),
      ["spec.allow[0].aws_role: must be an IAM role ARN such as arn:aws:iam::123456789012:role/discovery"],
    ],
    [
      "aws_arn on an ec2 token",
      ec2('      aws_arn: "arn:aws:sts::123456789012:assumed-role/x/*"\n'),
      ["spec.allow[0].aws_arn: applies only to join_method iam, not ec2"],
    ],
    [
      "aws_organization_id on an ec2 token",
      ec2("      aws_organization_id: o-abcde12345\n"),
      ["spec.allow[0].aws_organization_id: applies only to join_method iam, not ec2"],
    ],
    [
      "aws_role that is not a role ARN",
      ec2("      aws_role: arn:aws:iam::123456789012:user/bob\n"),
      ["spec.allow[0].aws_role: must be an IAM role ARN such as arn:aws:iam::123456789012:role/discovery"],
    ],
    [
      "aws_arn that is not an ARN",
      iam("aws_arn: role/node"),
      [
        "spec.allow[0].aws_arn: must be an IAM or STS ARN, optionally with * or ? wildcards, such as arn:aws:sts::123456789012:assumed-role/node/*",
      ],
    ],
    [
      "malformed organization id",
      iam("aws_organization_id: org-1"),
      ["spec.allow[0].aws_organization_id: must be an AWS Organizations id such as o-abcde12345"],
    ],
    [
      "iam rule naming nothing",
      token("  roles: [Node]\n  join_method: iam\n  allow:\n    - {}\n"),
      ["spec.allow[0]: an iam allow rule needs aws_account, aws_arn or aws_organization_id"],
    ],
    [
      "allow rules on a token-method token",
      token('  roles: [Node]\n  join_method: token\n  allow:\n    - aws_account: "123456789012"\n'),
      ["spec.allow: allow rules apply to ec2 and iam tokens; for token remove allow"],
    ],
    [
      "gcp token without gcp.allow",
      token("  roles: [Node]\n  join_method: gcp\n"),
      ["spec: a gcp token needs gcp.allow with at least one rule"],
    ],
    [
      "gcp rule without project_ids",
      token("  roles: [Node]\n  join_method: gcp\n  gcp:\n    allow:\n      - locations: [us-central1]\n"),
      ["spec.gcp.allow[0].project_ids: is required"],
    ],
    [
      "gcp block on an ec2 token",
      ec2("", "  gcp:\n    allow: [{project_ids: [my-project]}]\n"),
      ["spec.gcp: applies only to join_method gcp, not ec2; remove it"],
    ],
    [
      "gcp location that is not one",
      token(
        "  roles: [Node]\n  join_method: gcp\n  gcp:\n    allow:\n      - {project_ids: [my-project], locations: [US_Central]}\n",
      ),
      ["spec.gcp.allow[0].locations[0]: is not a GCP region or zone such as us-central1 or us-central1-a"],
    ],
    [
      "gcp service account that is not an email",
      token(
        "  roles: [Node]\n  join_method: gcp\n  gcp:\n    allow:\n      - {project_ids: [my-project], service_accounts: [robot]}\n",
      ),
      ["spec.gcp.allow[0].service_accounts[0]: must be a service account email"],
    ],
    [
      "azure subscription that is not a UUID",
      token("  roles: [Node]\n  join_method: azure\n  azure:\n    allow:\n      - subscription: prod\n"),
      ["spec.azure.allow[0].subscription: must be an Azure subscription id (a UUID)"],
    ],
    [
      "misspelt spec field",
      token("  roles: [Node]\n  join_methd: token\n"),
      ['spec.join_methd: unknown field "join_methd"; did you mean "join_method"?'],
    ],
    [
      "misspelt rule field",
      token('  roles: [Node]\n  join_method: ec2\n  allow:\n    - aws_acount: "123456789012"\n'),
      [
        'spec.allow[0].aws_acount: unknown field "aws_acount"; did you mean "aws_account"?',
        "spec.allow[0].aws_account: is required for an ec2 allow rule",
      ],
    ],
    ["wrong version", token("  roles: [Node]\n").replace("v2", "v1"), ['version: token documents are version "v2"']],
    [
      "misspelt kind",
      token("  roles: [Node]\n").replace("kind: token", "kind: tokn"),
      ['kind: unknown kind "tokn"; did you mean "token"?'],
    ],
    [
      "no kind",
      "version: v2\nmetadata: {name: x}\nspec: {}\n",
      ["kind: is required: one of token, installer, discovery_config (or a teleport.yaml with discovery_service)"],
    ],
    ["no name", token("  roles: [Node]\n", "labels: {a: b}"), ["metadata.name: is required"]],
    [
      "name with a space",
      token("  roles: [Node]\n", "name: my token"),
      ["metadata.name: may contain only letters, digits and . _ : @ - and must start with a letter or digit"],
    ],
    [
      "expires that is not RFC 3339",
      token("  roles: [Node]\n", "name: t, expires: tomorrow"),
      ["metadata.expires: must be an RFC 3339 time such as 2026-12-31T23:59:59Z"],
    ],
    [
      "misspelt metadata field",
      token("  roles: [Node]\n", "nmae: t"),
      ['metadata.nmae: unknown field "nmae"; did you mean "name"?', "metadata.name: is required"],
    ],
    [
      "a document that is not a mapping",
      "just a string\n",
      ["(document): a document must be a mapping with kind, version, metadata and spec"],
    ],
  ])("refuses %s", (_title, yaml, expected) => {
    expect(problemsOf(yaml).sort()).toEqual([...expected].sort());
  });

  it("applies defaults: aws_iid_ttl 5m for ec2, and infers the join method Teleport-style", () => {
    const { resources, problems } = parseDocuments(
      ec2("") +
        "---\n" +
        token('  roles: [Node]\n  allow:\n    - aws_account: "123456789012"\n') +
        "---\n" +
        token("  roles: [Node]\n"),
    );
    expect(problems).toEqual([]);
    const [a, b, c] = resources as Token[];
    expect(a.spec.aws_iid_ttl).toBe("5m");
    expect(b.spec.join_method).toBe("ec2");
    expect(b.spec.aws_iid_ttl).toBe("5m");
    expect(c.spec.join_method).toBe("token");
    expect(c.spec.aws_iid_ttl).toBeUndefined();
  });

  it("accepts aws_role on an iam rule: the role the instance check assumes in that account", () => {
    const { resources, problems } = parseDocuments(
      iam('aws_account: "210987654321"\n      aws_role: arn:aws:iam::210987654321:role/discovery-join-check'),
    );
    expect(problems).toEqual([]);
    expect((resources[0] as Token).spec.allow![0].aws_role).toBe("arn:aws:iam::210987654321:role/discovery-join-check");
    const org = parseDocuments(iam("aws_organization_id: o-abcde12345\n      aws_role: arn:aws:iam::*:role/Member"));
    expect(org.problems).toEqual([]);
  });

  it("accepts an unquoted 12-digit account id and keeps it a string", () => {
    const { resources, problems } = parseDocuments(
      token("  roles: [Node]\n  join_method: ec2\n  allow:\n    - aws_account: 123456789012\n"),
    );
    expect(problems).toEqual([]);
    expect((resources[0] as Token).spec.allow?.[0].aws_account).toBe("123456789012");
  });

  it("accepts iam rules by account, ARN glob or organization", () => {
    const yaml = token(
      '  roles: [Node, Discovery]\n  join_method: iam\n  allow:\n    - aws_account: "123456789012"\n    - aws_arn: "arn:aws:sts::*:assumed-role/discovery-*/*"\n    - aws_organization_id: o-abcde12345\n',
    );
    expect(problemsOf(yaml)).toEqual([]);
  });
});
