#!/usr/bin/env bash
# Makes the native modules in node_modules load in the node first on PATH. `npm ci` compiles them
# for the node that ran it, which may be another major version than the one setup provides; each
# module that does not load is taken from the cache (keyed by package version, Node ABI and
# platform) or rebuilt with `npm rebuild` and cached. Usage: native-modules.sh CACHE_DIR
set -euo pipefail
CACHE=$1
ABI=$(node -p process.versions.modules)
PLATFORM=$(node -p 'process.platform + "-" + process.arch')

# package  the .node files it builds (relative to the package)
MODULES=(
  "better-sqlite3 build/Release/better_sqlite3.node"
  "ssh2 lib/protocol/crypto/build/Release/sshcrypto.node"
  "cpu-features build/Release/cpufeatures.node"
)

loads() { node -e 'process.dlopen({ exports: {} }, require("path").resolve(process.argv[1]))' "$1" 2>/dev/null; }

for entry in "${MODULES[@]}"; do
  read -r pkg file <<<"$entry"
  dir="node_modules/$pkg"
  [ -d "$dir" ] || continue
  if [ -f "$dir/$file" ] && loads "$dir/$file"; then
    echo "  $pkg: loads in node $(node --version)"
    continue
  fi
  version=$(node -p "require('./$dir/package.json').version")
  cached="$CACHE/$pkg@$version-abi$ABI-$PLATFORM/$(basename "$file")"
  if [ -f "$cached" ] && mkdir -p "$(dirname "$dir/$file")" && cp "$cached" "$dir/$file" && loads "$dir/$file"; then
    echo "  $pkg: cached build for ABI $ABI"
    continue
  fi
  echo "  $pkg: rebuilding for node $(node --version) (ABI $ABI)"
  npm rebuild --silent "$pkg" >/dev/null
  if [ -f "$dir/$file" ] && loads "$dir/$file"; then
    mkdir -p "$(dirname "$cached")"
    cp "$dir/$file" "$cached.tmp" && mv "$cached.tmp" "$cached"
  elif [ "$pkg" = better-sqlite3 ]; then
    echo "  better-sqlite3 does not load after the rebuild; the runtime's SQLite store needs it" >&2
    exit 1
  else
    echo "  $pkg: optional, not built (ssh2 falls back to its JavaScript code)"
  fi
done
