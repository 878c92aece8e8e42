"use strict";
// The quickstart: the documents a platform team declares to enroll its EC2 fleet without shared
// secrets. Each is validated by the model at preview time and rendered with its defaults.
const pulumi = require("@pulumi/pulumi");
const discovery = require("pulumi-discovery");

const config = new pulumi.Config();
const account = config.get("awsAccount") || "123456789012";
const regions = config.getObject("regions") || ["us-east-1", "eu-west-1"];

// Instances prove who they are with a signed sts:GetCallerIdentity: nothing secret is shipped.
const token = new discovery.ResourceDocument("iam-token", {
  kind: "token",
  name: "aws-discovery-iam-token",
  spec: { roles: ["Node"], joinMethod: "iam", allow: [{ awsAccount: account }] },
});

// Match tagged instances in every listed region and enroll them in agentless (OpenSSH) mode.
const matchers = new discovery.ResourceDocument("matchers", {
  kind: "discovery_config",
  name: "quickstart",
  spec: {
    discoveryGroup: "quickstart",
    aws: [{ types: ["ec2"], regions, tags: { "discovery-demo": "yes" }, install: { mode: "agentless" } }],
  },
});

exports.token = token.yaml;
exports.discoveryConfig = matchers.yaml;
