#!/usr/bin/env bash
# Quick start, command 2: set up what is missing, then typecheck, lint, build and run every test.
# Tests that need serf (or root) skip with a message saying why when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
npx tsc --noEmit
npx eslint .
npx prettier --check --log-level warn "**/*.{ts,js,mjs}"
report=$(mktemp)
trap 'rm -f "$report"' EXIT
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" || status=$?
# One plain summary line that any CI can read.
node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests+r.numTodoTests} skipped`)' "$report" || true
exit $status
