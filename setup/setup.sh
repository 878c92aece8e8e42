#!/usr/bin/env bash
# npm run setup: builds or installs everything the project runs against, caches the
# expensive parts outside the repo, and links them into .tools/bin. Idempotent.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${PULUMI_DISCOVERY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-discovery}
BIN="$ROOT/.tools/bin"
NODE_MAJOR=22
NODE_VERSION=22.23.5
NODE_ARCH=$(uname -m | sed 's/x86_64/x64/;s/aarch64/arm64/')
STEP=""
FIX=""
START=$(date +%s)

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
step() { STEP=$1; FIX=$2; say "$STEP"; }
fail() { printf 'setup: FAILED at "%s"\n  fix: %s\n' "$STEP" "$FIX" >&2; }
trap 'fail' ERR
need() { command -v "$1" >/dev/null 2>&1 || { FIX="install $1 ($2)"; false; }; }

mkdir -p "$CACHE" "$BIN"
cd "$ROOT"

step "checking toolchains" "install Go >= 1.24, Node.js >= 18 with npm, and Python >= 3.9"
need go "https://go.dev/doc/install or the golang Debian package"
need node "Node.js with npm; setup brings Node.js $NODE_MAJOR itself when the machine's is older"
need npm "comes with Node.js"
need python3 "Debian package python3 with python3-venv"

# @pulumi/pulumi (>= 3.250) requires Node.js 22, and the AWS SDK warns on older ones. When the
# machine's node is older, setup takes the official build from the npm registry (the package
# node-linux-<arch>, which ships bin/node and the headers native modules compile against), caches
# it, and links it first in .tools/bin, which every script of the project puts first on PATH.
step "Node.js $NODE_MAJOR" "check that the npm registry serves node-linux-$(uname -m | sed 's/x86_64/x64/;s/aarch64/arm64/')@$NODE_VERSION, or install Node.js $NODE_MAJOR"
export PATH="$BIN:$PATH"
rm -f "$BIN/node"
SYSTEM_NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]')
if [ "$SYSTEM_NODE_MAJOR" -ge "$NODE_MAJOR" ]; then
  say "  the machine's node $(node --version) is new enough"
else
  NODE_DIR="$CACHE/node-v$NODE_VERSION"
  if [ -x "$NODE_DIR/bin/node" ] && [ -f "$NODE_DIR/include/node/node_version.h" ]; then
    say "  cached: $NODE_DIR/bin/node (the machine has $(node --version))"
  else
    say "  the machine has node $(node --version); fetching node-linux-$NODE_ARCH@$NODE_VERSION from the npm registry"
    rm -rf "$NODE_DIR.tmp" && mkdir -p "$NODE_DIR.tmp"
    (cd "$NODE_DIR.tmp" && npm pack --silent "node-linux-$NODE_ARCH@$NODE_VERSION" >/dev/null && tar xzf node-linux-*.tgz && rm node-linux-*.tgz)
    rm -rf "$NODE_DIR" && mv "$NODE_DIR.tmp/package" "$NODE_DIR" && rm -rf "$NODE_DIR.tmp"
  fi
  ln -sf "$NODE_DIR/bin/node" "$BIN/node"
  # node-gyp compiles native modules against the headers of the node that runs them.
  export npm_config_nodedir="$NODE_DIR"
fi
say "  node $(node --version) (ABI $(node -p process.versions.modules))"

step "node modules" "run 'npm ci' and read its error"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  say "  node_modules up to date"
fi
# 'npm ci' before setup compiled the native modules for the machine's node; the tests and the
# runtime run on the node above, so they are rebuilt for it (and cached per ABI, since a fresh clone
# compiles them again).
step "native modules for node $(node --version)" "run 'npm rebuild better-sqlite3' with .tools/bin first on PATH and read its error"
bash setup/native-modules.sh "$CACHE/native"
PULUMI_VERSION=$(node -p 'require("@pulumi/pulumi/package.json").version')
WANT=$(node -p 'require("./package.json").dependencies["@pulumi/pulumi"]')
if [ "$PULUMI_VERSION" != "$WANT" ]; then
  FIX="package.json pins @pulumi/pulumi $WANT but $PULUMI_VERSION is installed; run npm ci"
  false
fi

step "Debian packages (OpenSSH server and client, PostgreSQL, Chromium)" "as root: apt-get update && apt-get install -y openssh-server openssh-client postgresql chromium"
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
# The status page's browser test (test/e2e/status-page.test.ts) drives it through playwright-core.
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  say "  installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "  already installed"
fi

step "Pulumi CLI v$PULUMI_VERSION (Go build, cached in $CACHE)" "check that the Go module proxy serves github.com/pulumi/pulumi/pkg/v3@v$PULUMI_VERSION; see docs/SETUP.md"
CLI_DIR="$CACHE/pulumi-v$PULUMI_VERSION"
if [ -x "$CLI_DIR/bin/pulumi" ] && [ "$("$CLI_DIR/bin/pulumi" version 2>/dev/null)" = "v$PULUMI_VERSION" ]; then
  say "  cached: $CLI_DIR/bin/pulumi"
else
  mkdir -p "$CLI_DIR/src"
  cp setup/pulumi-cli/tools.go "$CLI_DIR/src/"
  if grep -q "github.com/pulumi/pulumi/pkg/v3 v$PULUMI_VERSION\$" setup/pulumi-cli/go.mod; then
    cp setup/pulumi-cli/go.mod setup/pulumi-cli/go.sum "$CLI_DIR/src/"
  else
    say "  setup/pulumi-cli/go.mod is for another version; resolving v$PULUMI_VERSION (commit the new go.mod and go.sum)"
    printf 'module pulumi-discovery/pulumi-cli\n\ngo 1.24\n\nrequire (\n\tgithub.com/pulumi/pulumi/pkg/v3 v%s\n\tgithub.com/pulumi/pulumi/sdk/v3 v%s\n)\n\nreplace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e\n' \
      "$PULUMI_VERSION" "$PULUMI_VERSION" > "$CLI_DIR/src/go.mod"
    (cd "$CLI_DIR/src" && GOSUMDB=off GOFLAGS=-mod=mod go mod tidy)
  fi
  say "  building (a few minutes on a cold machine)"
  (cd "$CLI_DIR/src" && GOSUMDB=off go build -trimpath -o "$CLI_DIR/bin/pulumi" \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
fi
# A hard link (or copy), not a symlink: the CLI looks for its plugins next to its own resolved path.
rm -f "$BIN/pulumi"; ln -f "$CLI_DIR/bin/pulumi" "$BIN/pulumi" 2>/dev/null || cp "$CLI_DIR/bin/pulumi" "$BIN/pulumi"

step "Node.js language host" "see docs/SETUP.md, 'language host'"
LH_KIND_FILE="$CLI_DIR/language-host"
if [ ! -f "$LH_KIND_FILE" ]; then
  bash setup/build-language-host.sh "$PULUMI_VERSION" "$CLI_DIR" && echo go > "$LH_KIND_FILE" || echo node > "$LH_KIND_FILE"
fi
if [ "$(cat "$LH_KIND_FILE")" = go ]; then
  say "  Go build: $CLI_DIR/bin/pulumi-language-nodejs"
  ln -sf "$CLI_DIR/bin/pulumi-language-nodejs" "$BIN/pulumi-language-nodejs"
else
  say "  the Go module proxy has no build of it; using setup/pulumi-language-nodejs.js (same gRPC protocol)"
  rm -f "$BIN/pulumi-language-nodejs"
  printf '#!/bin/sh\nexec node "%s/setup/pulumi-language-nodejs.js" "$@"\n' "$ROOT" > "$BIN/pulumi-language-nodejs"
  chmod +x "$BIN/pulumi-language-nodejs"
fi

step "dynamic provider plugin" "reinstall node_modules (npm ci)"
rm -f "$BIN/pulumi-resource-pulumi-nodejs"
cat > "$BIN/pulumi-resource-pulumi-nodejs" <<SH
#!/bin/sh
exec node "\$(node -e 'const p=[process.cwd(),process.argv[1]];console.log(require.resolve("@pulumi/pulumi/cmd/dynamic-provider",{paths:p}))' "$ROOT")" "\$@"
SH
chmod +x "$BIN/pulumi-resource-pulumi-nodejs"

step "Python virtualenv with moto" "install python3-venv (Debian) and check that PyPI is reachable"
REQ_HASH=$(sha256sum setup/requirements.txt | cut -c1-12)
VENV="$CACHE/venv-$REQ_HASH"
if [ -x "$VENV/bin/moto_server" ] && [ -f "$VENV/.complete" ]; then
  say "  cached: $VENV"
else
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r setup/requirements.txt
  touch "$VENV/.complete"
fi
# Wrappers, not links: Python finds its virtualenv from the path it was started by.
for tool in moto_server python; do
  rm -f "$BIN/$tool"
  printf '#!/bin/sh\nexec "%s/bin/%s" "$@"\n' "$VENV" "$tool" > "$BIN/$tool"
  chmod +x "$BIN/$tool"
done

step "compiling TypeScript" "run 'npm run build' and fix the errors it prints"
npm run --silent build

trap - ERR
say "done in $(( $(date +%s) - START ))s: $("$BIN/pulumi" version), $("$BIN/python" -c 'import moto; print("moto", moto.__version__)'), tools in .tools/bin"
