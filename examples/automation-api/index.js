"use strict";
// The Automation API face of pulumi-discovery from a program: no Pulumi.yaml, no program folder, no `pulumi`
// command. It declares a join token (built here, in code) and fleet.yaml's discovery_config in the runtime, and an
// Enrollment that enrolls what the matchers select. Usage: node index.js [preview|up|destroy] (default up).
// The runtime comes from DISCOVERY_SERVER / DISCOVERY_ADMIN_TOKEN (the sandbox's env.sh exports them); the state
// is kept in $DISCOVERY_STATE_DIR (default ~/.pulumi-discovery).
const path = require("path");
const { automation } = require("pulumi-discovery");

const account = process.env.AWS_ACCOUNT || "123456789012";

// Instances prove who they are with a signed sts:GetCallerIdentity: no shared secret to hand out.
const token = {
  kind: "token",
  version: "v2",
  metadata: { name: "aws-discovery-iam-token" },
  spec: { roles: ["Node"], join_method: "iam", allow: [{ aws_account: account }] },
};

const options = {
  config: path.join(__dirname, "fleet.yaml"),
  documents: [token],
  stack: process.env.STACK || "automation-api",
  enroll: true,
  joinTimeoutSeconds: 60,
  // A line per resource step, then a summary, as `discovery up` prints them.
  onProgress: (line) => console.error(line),
};

async function main(operation) {
  if (operation === "destroy") {
    const destroyed = await automation.deployDocuments({ ...options, operation: "destroy" });
    console.log(
      `stack destroyed: ${destroyed.changes.delete || 0} resource(s) removed; enrolled machines stay enrolled`,
    );
    return;
  }
  // First what would change, and which instances an update would enroll.
  const preview = await automation.deployDocuments({ ...options, operation: "preview" });
  for (const e of preview.enrollments)
    console.log(
      `would enroll ${e.pending.length} instance(s) for ${e.name}${e.pending.length ? `: ${e.pending.join(", ")}` : ""}`,
    );
  if (operation === "preview") return;

  const up = await automation.deployDocuments({ ...options, operation: "up" });
  for (const e of up.enrollments) {
    console.log(`${e.name}: enrolled: ${e.enrolled}, failed: ${e.failed}`);
    // The Enrollment runs a pass when its matchers changed or an instance was pending; else nothing is sent.
    const ran = up.steps.some((s) => s.type === "Enrollment" && s.name === `enrollment/${e.name}` && s.op !== "same");
    if (!ran) console.log("  no pass: nothing was pending");
    else for (const i of e.instances) console.log(`  ${i.nodeName}  ${i.status}${i.reason ? `  ${i.reason}` : ""}`);
    if (e.failed > 0) process.exitCode = 1;
  }
}

main(process.argv[2] || "up").catch((err) => {
  // Invalid documents: one FILE:LINE:COL line per problem; otherwise what failed and why.
  console.error(err.message);
  process.exitCode = 1;
});
