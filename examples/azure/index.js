"use strict";
// Azure: Linux VMs tagged `fleet: web` in two subscriptions are found through Azure Resource Manager and run the
// installer through a managed Run Command; each VM then joins with its IMDS attested document (signed by Azure,
// carrying the runtime's one-time challenge as nonce) and its managed identity's access token, which the runtime
// checks against Entra ID's keys and, live, against ARM itself. No secret is copied anywhere.
const pulumi = require("@pulumi/pulumi");
const discovery = require("pulumi-discovery");

const config = new pulumi.Config();
const webSubscription = config.get("webSubscription") || "11111111-1111-4111-8111-111111111111";
const bastionSubscription = config.get("bastionSubscription") || "22222222-2222-4222-8222-222222222222";
const tags = config.getObject("tags") || { fleet: "web" };

// azure join: one join per VM, from these subscriptions (and, for the bastions, one resource group) only.
const token = new discovery.ProvisionToken("azure-token", {
  name: "azure-web-token",
  roles: ["Node"],
  joinMethod: "azure",
  azure: {
    allow: [{ subscription: webSubscription }, { subscription: bastionSubscription, resourceGroups: ["bastions"] }],
  },
});

const joinParams = { tokenName: "azure-web-token", method: "azure" };
const matchers = [
  // Agent mode: every resource group of the web subscription, in two regions.
  {
    types: ["vm"],
    subscriptions: [webSubscription],
    resourceGroups: ["*"],
    regions: config.getObject("regions") || ["eastus", "westeurope"],
    tags,
    install: { joinParams },
  },
  // Agentless (OpenSSH) mode: the bastions resource group of the other subscription, any region.
  {
    types: ["vm"],
    subscriptions: [bastionSubscription],
    resourceGroups: ["bastions"],
    regions: ["*"],
    tags,
    install: { joinParams, mode: "agentless" },
  },
];

const discoveryConfig = new discovery.DiscoveryConfig("azure", {
  name: "azure-web",
  discoveryGroup: config.get("discoveryGroup") || "azure-web",
  azure: matchers,
});

const enrollment = new discovery.Enrollment(
  "azure",
  { azure: matchers, joinTimeoutSeconds: 90 },
  { dependsOn: [token, discoveryConfig] },
);

// The custom role the runtime's identity needs for exactly these matchers (`discovery policy azure`).
exports.discoveryRole = discovery.azure.discoveryRole(matchers);
exports.enrolled = enrollment.enrolled;
exports.failed = enrollment.failed;
exports.instances = enrollment.instances;
