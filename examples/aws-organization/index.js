"use strict";
// Every account of an AWS Organization, or of some of its organizational units: the runtime walks the
// organization's tree with the management account's credentials, assumes `roleName` in each member account,
// scans the regions for tagged instances and installs over SSM. One iam token admits any instance whose
// account belongs to the organization: no per-account token, no shared secret.
const pulumi = require("@pulumi/pulumi");
const discovery = require("pulumi-discovery");

const config = new pulumi.Config();
const organizationId = config.require("organizationId");
// Organizational units to scan (ou-..., r-... or "*"), and units to leave out.
const include = config.getObject("include") || ["*"];
const exclude = config.getObject("exclude") || [];
const regions = config.getObject("regions") || ["us-east-1"];
const tags = config.getObject("tags") || { team: "*" };
// The role the runtime assumes in every member account. OrganizationAccountAccessRole is the one AWS
// creates in accounts made through Organizations; a narrower role with discovery.aws.discoveryPolicy() is better.
const roleName = config.get("roleName") || "OrganizationAccountAccessRole";
const mode = config.get("mode") || "agentless";

const token = new discovery.ProvisionToken("org-token", {
  name: "aws-org-iam-token",
  roles: ["Node"],
  joinMethod: "iam",
  // Before a node is named after its instance, the runtime checks the instance and its instance profile in the
  // caller's account, through the same member role (`*`: whichever member account the caller is in).
  allow: [{ awsOrganizationId: organizationId, awsRole: `arn:aws:iam::*:role/${roleName}` }],
});

const matchers = [
  {
    types: ["ec2"],
    regions,
    tags,
    organization: { organizationId, organizationalUnits: { include, exclude } },
    assumeRole: { roleName },
    install: { joinParams: { tokenName: "aws-org-iam-token", method: "iam" }, mode },
  },
];

const discoveryConfig = new discovery.DiscoveryConfig("organization", {
  name: "aws-organization",
  discoveryGroup: "aws-organization",
  aws: matchers,
});

const enrollment = new discovery.Enrollment(
  "organization",
  { aws: matchers, joinTimeoutSeconds: 90 },
  { dependsOn: [token, discoveryConfig] },
);

// The policy the runtime needs in the management account (walk the organization, assume the member role), and
// the same read/SSM actions the member role must allow: one source with `discovery policy aws`.
exports.discoveryPolicy = discovery.aws.discoveryPolicy(matchers);
exports.enrolled = enrollment.enrolled;
exports.failed = enrollment.failed;
exports.instances = enrollment.instances;
