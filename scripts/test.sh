#!/usr/bin/env bash
# npm test: build, lint and format check, unit tests, then integration tests against the real
# Pulumi engine, moto and OpenSSH from `npm run setup`. Ends with one "N passed, N failed" line.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$ROOT/.tools/bin:$PATH"
if [ ! -x .tools/bin/pulumi ] || [ ! -x .tools/bin/moto_server ]; then
  echo "test: .tools/bin is incomplete; run 'npm run setup' first" >&2
  exit 2
fi
REPORTS=$(mktemp -d)
trap 'rm -rf "$REPORTS"' EXIT
status=0
npm run --silent build || exit 1
echo "== lint: tsc --noEmit and prettier --check"
npm run --silent lint || status=1
echo "== unit tests"
npx jest --selectProjects unit --json --outputFile="$REPORTS/unit.json" "$@" || status=1
echo "== integration tests"
# Two suites at a time: most of an integration suite's time is spent waiting on the processes it drives (the
# Pulumi engine, moto, sshd), so two overlap well on two cores. DISCOVERY_TEST_WORKERS=1 runs them one by one.
npx jest --selectProjects integration --maxWorkers="${DISCOVERY_TEST_WORKERS:-2}" --json \
  --outputFile="$REPORTS/integration.json" "$@" || status=1
node -e '
  const fs = require("fs");
  let passed = 0, failed = 0;
  for (const f of process.argv.slice(1)) {
    if (!fs.existsSync(f)) { failed += 1; continue; }
    const r = JSON.parse(fs.readFileSync(f, "utf8"));
    passed += r.numPassedTests; failed += r.numFailedTests + (r.numRuntimeErrorTestSuites || 0);
  }
  console.log(`tests: ${passed} passed, ${failed} failed`);
' "$REPORTS/unit.json" "$REPORTS/integration.json"
exit $status
