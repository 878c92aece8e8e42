"use strict";
// A DiscoveryConfig alone, no Enrollment: the runtime whose discovery_service names the same discovery_group
// (the sandbox's is `sandbox`) scans it on its own, within seconds of `pulumi up` and again every poll_interval,
// so instances launched later are enrolled too. `pulumi refresh` brings back the status that runtime keeps:
// state, error message, last sync time, and the found / enrolled / failed counts.
const pulumi = require("@pulumi/pulumi");
const discovery = require("pulumi-discovery");

const config = new pulumi.Config();
const account = config.get("awsAccount") || "123456789012";
const group = config.get("discoveryGroup") || "sandbox";

// The token the default installer joins with: a signed sts:GetCallerIdentity from the instance profile.
const token = new discovery.ProvisionToken("iam-token", {
  name: "aws-discovery-iam-token",
  roles: ["Node"],
  joinMethod: "iam",
  allow: [{ awsAccount: account }],
});

const fleet = new discovery.DiscoveryConfig(
  "fleet",
  {
    name: "fleet",
    discoveryGroup: group,
    aws: [{ types: ["ec2"], regions: config.getObject("regions") || ["us-east-1"], tags: { fleet: "web" } }],
  },
  { dependsOn: [token] },
);

exports.discoveryGroup = fleet.discoveryGroup;
exports.status = fleet.status;
