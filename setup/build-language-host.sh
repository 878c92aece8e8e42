#!/usr/bin/env bash
# Tries to build Pulumi's Go Node.js language host at the release commit of the
# given version (the module is untagged: it is required by its pseudo-version).
# Exits non-zero when the Go module proxy cannot serve it.
set -euo pipefail
VERSION=$1
OUT=$2
# The release commit and its time, from the module's origin as the proxy reports it.
INFO=$(GOSUMDB=off GOFLAGS=-mod=mod go mod download -json "github.com/pulumi/pulumi/pkg/v3@v$VERSION" 2>/dev/null || true)
INFO_FILE=$(printf '%s' "$INFO" | sed -n 's/.*"Info": *"\([^"]*\)".*/\1/p' | head -1)
HASH=$(printf '%s' "$INFO" | sed -n 's/.*"Hash": *"\([0-9a-f]\{12\}\).*/\1/p' | head -1)
TIME=$( [ -f "$INFO_FILE" ] && sed -n 's/.*"Time": *"\([^"]*\)".*/\1/p' "$INFO_FILE" | tr -d 'TZ:-' || true)
[ -n "$HASH" ] && [ -n "$TIME" ] || exit 1
PSEUDO="v3.0.0-$TIME-$HASH"
DIR="$OUT/langhost-src"
mkdir -p "$DIR"
cat > "$DIR/go.mod" <<MOD
module pulumi-discovery/language-host

go 1.24

require github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3 $PSEUDO

replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e
MOD
printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3"\n' > "$DIR/tools.go"
cd "$DIR"
GOSUMDB=off GOFLAGS=-mod=mod timeout 600 go mod tidy >/dev/null 2>&1 || { echo "  no pulumi-language-nodejs $PSEUDO on the Go module proxy"; exit 1; }
GOSUMDB=off go build -trimpath -o "$OUT/bin/pulumi-language-nodejs" \
  -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$VERSION" \
  github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3
