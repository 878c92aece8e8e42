"use strict";
// Agentless (OpenSSH) mode: no agent is installed. The installer proves the instance's identity with its signed
// EC2 instance identity document, receives an SSH host certificate, and makes the instance's own sshd trust the
// runtime's user CA; users then log in with short-lived user certificates, and verify the host through
// `@cert-authority` instead of trust-on-first-use.
const pulumi = require("@pulumi/pulumi");
const discovery = require("pulumi-discovery");

const config = new pulumi.Config();
const account = config.get("awsAccount") || "123456789012";
const regions = config.getObject("regions") || ["us-east-1"];
const tags = config.getObject("tags") || { "ssh-access": "certificates" };

// ec2 join: the instance identity document is signed by AWS; it is accepted once per instance, within 5 minutes
// of the instance's launch (awsIidTtl), from these accounts and regions only.
const token = new discovery.ProvisionToken("ec2-token", {
  name: "openssh-ec2-token",
  roles: ["Node"],
  joinMethod: "ec2",
  awsIidTtl: config.get("awsIidTtl") || "5m",
  allow: [{ awsAccount: account, awsRegions: regions }],
});

// A custom SSM document per region (agentless mode), so the IAM policy can scope ssm:SendCommand to it
// instead of the broad AWS-RunShellScript.
const documents = regions.map(
  (region) =>
    new discovery.aws.SsmInstallerDocument(`openssh-installer-${region}`, {
      name: "DiscoveryOpenSSHInstaller",
      region,
      mode: "agentless",
      tags: { "managed-by": "pulumi-discovery" },
    }),
);

const matchers = [
  {
    types: ["ec2"],
    regions,
    tags,
    ssm: { documentName: "DiscoveryOpenSSHInstaller" },
    install: { joinParams: { tokenName: "openssh-ec2-token", method: "ec2" }, mode: "agentless" },
  },
];

const discoveryConfig = new discovery.DiscoveryConfig("openssh", {
  name: "agentless-openssh",
  discoveryGroup: "agentless-openssh",
  aws: matchers,
});

const enrollment = new discovery.Enrollment(
  "openssh",
  { aws: matchers, joinTimeoutSeconds: 90 },
  { dependsOn: [token, discoveryConfig, ...documents] },
);

// What the runtime's role needs: SendCommand only on this document and instances.
exports.discoveryPolicy = discovery.aws.discoveryPolicy(matchers);
exports.documentArns = documents.map((d) => d.arn);
exports.enrolled = enrollment.enrolled;
exports.failed = enrollment.failed;
exports.instances = enrollment.instances;
