#!/usr/bin/env bash
# npm run demo: the sandbox (moto, a simulated fleet behind SSM, a discovery runtime), then a real `pulumi up` of
# the quickstart (root Pulumi.yaml) that declares the token and matchers and enrolls the fleet; the inventory;
# an SSH login to one instance with a short-lived user certificate; a new instance shown at preview and
# enrolled by the next up.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$ROOT/.tools/bin:$PATH"
[ -x .tools/bin/pulumi ] || { echo "demo: run 'npm run setup' first" >&2; exit 2; }
[ -f dist/sdk/index.js ] || npm run --silent build
WORK=$(mktemp -d)
SANDBOX="$WORK/sandbox"
cleanup() {
  node "$ROOT/bin/discovery.js" sandbox stop --dir "$SANDBOX" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
discovery() { node "$ROOT/bin/discovery.js" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "the sandbox: moto, a fleet simulator behind SSM, and a discovery runtime"
discovery sandbox start --dir "$SANDBOX"
set -a
. "$SANDBOX/env.sh"
set +a
step "launch 3 agentless instances tagged discovery-demo=yes, and 1 without the tag"
discovery sandbox launch --dir "$SANDBOX" --account 123456789012 --region us-east-1 --tags discovery-demo=yes --count 3 --agentless
discovery sandbox launch --dir "$SANDBOX" --account 123456789012 --region us-east-1 --tags discovery-demo=no >/dev/null

# The quickstart imports "pulumi-discovery" by name: inside this repo Node resolves the package to itself.
export PULUMI_HOME="$WORK/pulumi-home" PULUMI_BACKEND_URL="file://$WORK" PULUMI_CONFIG_PASSPHRASE=demo \
  PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
step "pulumi $(pulumi version): up the quickstart - token, matchers, and the enrollment of the fleet"
pulumi stack init demo --non-interactive >/dev/null
pulumi up --yes --non-interactive --stack demo
echo "enrolled: $(pulumi stack output enrolled --stack demo), failed: $(pulumi stack output failed --stack demo)"

step "the inventory"
discovery get nodes

step "ssh into one enrolled instance with a 5-minute user certificate"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/id"
node -e '
  const { request } = require("./dist/provider/http/client");
  const { readSandboxState, callControl } = require("./dist/provider/sandbox/sandbox-control");
  const fs = require("fs");
  (async () => {
    const t = { server: process.env.DISCOVERY_SERVER, adminToken: process.env.DISCOVERY_ADMIN_TOKEN, caFile: process.env.NODE_EXTRA_CA_CERTS };
    const node = (await request(t, "GET", "/v1/nodes")).body.nodes[0];
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

step "a new instance appears: preview shows it pending, up enrolls it"
NEW=$(discovery sandbox launch --dir "$SANDBOX" --account 123456789012 --region us-east-1 --tags discovery-demo=yes --agentless)
pulumi preview --diff --non-interactive --stack demo | grep -E "pending|$NEW|update" || true
pulumi up --yes --non-interactive --stack demo >/dev/null
echo "enrolled: $(pulumi stack output enrolled --stack demo)"
pulumi preview --stack demo --non-interactive --expect-no-changes >/dev/null && echo "no changes"

step "clean up"
pulumi destroy --yes --non-interactive --stack demo >/dev/null && echo "stack destroyed"
discovery sandbox stop --dir "$SANDBOX"
