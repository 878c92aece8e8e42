"use strict";
// bench/pulumi's program, copied by bench/pulumi.ts into a folder inside this repo with pulumi-discovery linked.
// Stack config: count (N), kind ("discovery": N resources cycling ProvisionToken, Installer, DiscoveryConfig against
// the runtime in discovery:server / discovery:adminToken; "noop": N no-op dynamic resources with the same inputs).
const pulumi = require("@pulumi/pulumi");

const config = new pulumi.Config();
const count = config.requireNumber("count");
const kind = config.require("kind");
const prefix = pulumi.getStack();

/** The inputs of the i-th resource: a token, an installer or a discovery config, in turn. */
function inputs(i) {
  const name = `${prefix}-${i}`;
  switch (i % 3) {
    case 0:
      return ["ProvisionToken", { name, roles: ["Node"], joinMethod: "ec2", allow: [{ awsAccount: "123456789012" }] }];
    case 1:
      return ["Installer", { name, script: "#!/bin/sh\ncurl -sSL https://{{ .PublicProxyAddr }}/agent | sh\n" }];
    default:
      return [
        "DiscoveryConfig",
        {
          name,
          discoveryGroup: "bench",
          aws: [{ types: ["ec2"], regions: ["us-east-1"], tags: { env: "bench" }, install: { mode: "agentless" } }],
        },
      ];
  }
}

// The baseline: a provider whose create hands its inputs back, and nothing else (no check, diff, update, delete).
const noop = {
  async create(inputs) {
    return { id: inputs.name, outs: inputs };
  },
};

const resources = [];
if (kind === "discovery") {
  const discovery = require("pulumi-discovery");
  for (let i = 0; i < count; i++) {
    const [type, args] = inputs(i);
    resources.push(new discovery[type](`r${i}`, args));
  }
} else if (kind === "noop") {
  for (let i = 0; i < count; i++) {
    const [type, args] = inputs(i);
    resources.push(new pulumi.dynamic.Resource(noop, `r${i}`, args, undefined, "bench", `Noop${type}`));
  }
} else {
  throw new Error(`kind must be "discovery" or "noop", not ${JSON.stringify(kind)}`);
}

exports.count = resources.length;
