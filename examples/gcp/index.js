"use strict";
// GCP: VMs labelled `fleet: web` in two projects are found through the Compute API, reached over SSH with a key
// that lives ten minutes in their `ssh-keys` metadata (host key checked against the VM's guest attributes), and
// run the installer; each VM then joins with the identity token its metadata server signs for it, which the
// runtime checks against Google's keys and, live, against Compute itself. No secret is copied anywhere.
const pulumi = require("@pulumi/pulumi");
const discovery = require("pulumi-discovery");

const config = new pulumi.Config();
const agentProject = config.get("agentProject") || "web-prod";
const agentlessProject = config.get("agentlessProject") || "bastions";
const region = config.get("region") || "us-central1";
const labels = config.getObject("labels") || { fleet: "web" };

// gcp join: one join per VM, from these projects only; locations may narrow it to regions or zones.
const token = new discovery.ProvisionToken("gcp-token", {
  name: "gcp-web-token",
  roles: ["Node"],
  joinMethod: "gcp",
  gcp: { allow: [{ projectIds: [agentProject, agentlessProject] }] },
});

const joinParams = { tokenName: "gcp-web-token", method: "gcp" };
const matchers = [
  // Agent mode in one region: its zones come from zones.list.
  { types: ["gce"], projectIds: [agentProject], locations: [region], labels, install: { joinParams } },
  // Agentless (OpenSSH) mode in every zone of the other project: one aggregated listing.
  {
    types: ["gce"],
    projectIds: [agentlessProject],
    locations: ["*"],
    labels,
    install: { joinParams, mode: "agentless" },
  },
];

const discoveryConfig = new discovery.DiscoveryConfig("gcp", {
  name: "gcp-web",
  discoveryGroup: config.get("discoveryGroup") || "gcp-web",
  gcp: matchers,
});

const enrollment = new discovery.Enrollment(
  "gcp",
  { gcp: matchers, joinTimeoutSeconds: 90 },
  { dependsOn: [token, discoveryConfig] },
);

// The custom role the runtime's service account needs for exactly these matchers (`discovery policy gcp`).
exports.discoveryRole = discovery.gcp.discoveryRole(matchers);
exports.enrolled = enrollment.enrolled;
exports.failed = enrollment.failed;
exports.instances = enrollment.instances;
