"use strict";
// The resources a pull request changes: join tokens and the matchers that install with them. CI previews them
// under the pulumi-discovery policy pack (ci.sh); a preview needs no runtime, only its https address in
// stack config discovery:server or DISCOVERY_SERVER.
const pulumi = require("@pulumi/pulumi");
const discovery = require("pulumi-discovery");

const config = new pulumi.Config();
const account = config.get("awsAccount") || "123456789012";

// EC2 instances prove who they are with their signed identity document: at most 5 minutes old, from these
// regions of this account.
new discovery.ProvisionToken("ec2-token", {
  name: "aws-discovery-ec2-token",
  roles: ["Node"],
  joinMethod: "ec2",
  awsIidTtl: "5m",
  allow: [{ awsAccount: account, awsRegions: ["us-east-1", "eu-west-1"] }],
});

// GCE VMs prove who they are with a Google-signed identity token.
new discovery.ProvisionToken("gcp-token", {
  name: "gcp-discovery-token",
  roles: ["Node"],
  joinMethod: "gcp",
  gcp: { allow: [{ projectIds: ["corp-prod", "corp-dev"] }] },
});

new discovery.DiscoveryConfig("prod", {
  name: "prod",
  discoveryGroup: "prod",
  aws: [
    {
      regions: ["us-east-1", "eu-west-1"],
      tags: { env: "prod" },
      assumeRole: { roleArn: `arn:aws:iam::${account}:role/discovery` },
      install: { joinParams: { tokenName: "aws-discovery-ec2-token", method: "ec2" } },
    },
  ],
  // corp-prod has OS Login (policy-config.json says so): the pack warns, and the preview still passes.
  gcp: [{ projectIds: ["corp-prod", "corp-dev"], labels: { env: "prod" } }],
});
