#!/usr/bin/env bash
# npm run demo: a real `pulumi up` of the quickstart (root Pulumi.yaml), then the documents it rendered drive a
# sandbox: a simulated EC2 fleet is discovered and enrolled, the inventory printed, and one agentless instance
# reached over SSH with a short-lived user certificate.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$ROOT/.tools/bin:$PATH"
[ -x .tools/bin/pulumi ] || { echo "demo: run 'npm run setup' first" >&2; exit 2; }
[ -f dist/sdk/index.js ] || npm run --silent build
WORK=$(mktemp -d)
SANDBOX="$WORK/sandbox"
cleanup() {
  node bin/discovery.js sandbox stop --dir "$SANDBOX" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
discovery() { node "$ROOT/bin/discovery.js" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# The quickstart imports "pulumi-discovery" by name: inside this repo Node resolves the package to itself.
export PULUMI_HOME="$WORK/pulumi-home" PULUMI_BACKEND_URL="file://$WORK" PULUMI_CONFIG_PASSPHRASE=demo \
  PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
step "pulumi $(pulumi version): up the quickstart (stack demo on $PULUMI_BACKEND_URL)"
pulumi stack init demo --non-interactive >/dev/null
pulumi config set regions '["us-east-1"]' --stack demo
pulumi up --yes --non-interactive --stack demo
pulumi stack output token --stack demo >"$WORK/token.yaml"
pulumi stack output discoveryConfig --stack demo >"$WORK/discovery-config.yaml"
step "a second preview changes nothing"
pulumi preview --stack demo --non-interactive --expect-no-changes >/dev/null && echo "no changes"

step "the sandbox: moto, a fleet simulator behind SSM, and a discovery runtime"
discovery sandbox start --dir "$SANDBOX"
set -a
. "$SANDBOX/env.sh"
set +a
echo "runtime $DISCOVERY_SERVER"
step "launch 3 agentless instances tagged discovery-demo=yes, and 1 without the tag"
discovery sandbox launch --dir "$SANDBOX" --account 123456789012 --region us-east-1 --tags discovery-demo=yes --count 3 --agentless
discovery sandbox launch --dir "$SANDBOX" --account 123456789012 --region us-east-1 --tags discovery-demo=no >/dev/null

step "apply the token pulumi rendered, and enroll with the matchers it rendered"
discovery apply -f "$WORK/token.yaml"
node -e '
  const yaml = require("yaml"), fs = require("fs");
  const dc = yaml.parse(fs.readFileSync(process.argv[1], "utf8"));
  const runtime = yaml.parse(fs.readFileSync(process.argv[2], "utf8"));
  runtime.discovery_service = { enabled: true, discovery_group: dc.spec.discovery_group, aws: dc.spec.aws };
  fs.writeFileSync(process.argv[3], yaml.stringify(runtime));
' "$WORK/discovery-config.yaml" "$SANDBOX/runtime.yaml" "$SANDBOX/enroll.yaml"
discovery enroll --config "$SANDBOX/enroll.yaml" --once

step "the inventory"
discovery get nodes

step "ssh into one enrolled instance with a 5-minute user certificate"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/id"
node -e '
  const { request } = require("./dist/provider/cli/http");
  const { readSandboxState, callControl } = require("./dist/provider/sandbox/sandbox-control");
  const fs = require("fs");
  (async () => {
    const t = { server: process.env.DISCOVERY_SERVER, adminToken: process.env.DISCOVERY_ADMIN_TOKEN, caFile: process.env.NODE_EXTRA_CA_CERTS };
    const nodes = (await request(t, "GET", "/v1/nodes")).body.nodes;
    const node = nodes[0];
    const id = node.labels["discovery/instance-id"];
    const inst = (await callControl(readSandboxState(process.argv[1]), "GET", "/v1/instances")).body.instances.find((i) => (i.instanceId ?? i.id) === id);
    const cert = await request(t, "POST", "/v1/certs/user", { public_key: fs.readFileSync(process.argv[2] + ".pub", "utf8"), principals: ["root"], ttl: "5m" });
    fs.writeFileSync(process.argv[2] + "-cert.pub", cert.body.certificate + "\n");
    const cas = (await request(t, "GET", "/v1/cas")).body.host.public_keys;
    fs.writeFileSync(process.argv[3], cas.map((k) => `@cert-authority ${node.name} ${k}`).join("\n") + "\n");
    console.log(`${node.name} ${inst.sshPort}`);
  })().catch((e) => { console.error(e); process.exit(1); });
' "$SANDBOX" "$WORK/id" "$WORK/known_hosts" >"$WORK/target"
read -r NODE PORT <"$WORK/target"
echo "ssh -o HostKeyAlias=$NODE -p $PORT root@127.0.0.1 (host certificate checked through @cert-authority)"
ssh -F /dev/null -p "$PORT" -i "$WORK/id" -o CertificateFile="$WORK/id-cert.pub" -o UserKnownHostsFile="$WORK/known_hosts" \
  -o StrictHostKeyChecking=yes -o BatchMode=yes -o IdentitiesOnly=yes -o HostKeyAlias="$NODE" root@127.0.0.1 \
  'echo "logged in to $(hostname) as $(whoami) with a certificate from the discovery runtime"'

step "clean up"
discovery sandbox stop --dir "$SANDBOX"
pulumi destroy --yes --non-interactive --stack demo >/dev/null && echo "stack destroyed"
cat <<'NOTE'

Enrolling from `pulumi up` itself (the Enrollment resource) and the DiscoveryService component come with
issue 5; today the enrollment above runs `discovery enroll` with the documents pulumi rendered.
NOTE
