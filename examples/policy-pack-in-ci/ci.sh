#!/usr/bin/env bash
# The CI job: preview this program under the pulumi-discovery policy pack. A mandatory violation fails the
# preview (and this script, non-zero); advisory ones are printed as warnings. Needs DISCOVERY_SERVER (or stack
# config discovery:server) set to the runtime's https address; the runtime itself is not contacted.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
STACK=${STACK:-ci}
# The pack ships in the package: node_modules/pulumi-discovery/dist/policy/pack.
PACK=$(node -p 'require("path").join(require("path").dirname(require.resolve("pulumi-discovery/package.json")), "dist", "policy", "pack")')
pulumi stack select --create "$STACK" --non-interactive >/dev/null
pulumi preview --stack "$STACK" --non-interactive --policy-pack "$PACK" --policy-pack-config policy-config.json
