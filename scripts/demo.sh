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
NODE=$(discovery get nodes -o json | node -pe 'JSON.parse(require("fs").readFileSync(0, "utf8"))[0].name')
echo "discovery ssh --sandbox \$SANDBOX root@$NODE (host certificate checked through @cert-authority)"
discovery ssh --sandbox "$SANDBOX" "root@$NODE" \
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
