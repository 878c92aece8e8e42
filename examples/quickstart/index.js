"use strict";
// The quickstart: a join token with no shared secret, the matchers for tagged EC2 instances, and an Enrollment
// that enrolls them on every `pulumi up` (and lists at preview what an update would enroll). The runtime comes
// from stack config discovery:server / discovery:adminToken, or DISCOVERY_SERVER / DISCOVERY_ADMIN_TOKEN
// (the sandbox's env.sh exports them).
const pulumi = require("@pulumi/pulumi");
const discovery = require("pulumi-discovery");

const config = new pulumi.Config();
const account = config.get("awsAccount") || "123456789012";
const regions = config.getObject("regions") || ["us-east-1"];

// Instances prove who they are with a signed sts:GetCallerIdentity from their instance profile.
const token = new discovery.ProvisionToken("iam-token", {
  name: "aws-discovery-iam-token",
  roles: ["Node"],
  joinMethod: "iam",
  allow: [{ awsAccount: account }],
});

// Tagged instances in these regions, enrolled in agentless (OpenSSH) mode.
const matchers = [{ types: ["ec2"], regions, tags: { "discovery-demo": "yes" }, install: { mode: "agentless" } }];
const discoveryConfig = new discovery.DiscoveryConfig("quickstart", {
  name: "quickstart",
  discoveryGroup: "quickstart",
  aws: matchers,
});

const enrollment = new discovery.Enrollment(
  "quickstart",
  { aws: matchers, joinTimeoutSeconds: 60 },
  { dependsOn: [token, discoveryConfig] },
);

exports.enrolled = enrollment.enrolled;
exports.failed = enrollment.failed;
exports.instances = enrollment.instances;
