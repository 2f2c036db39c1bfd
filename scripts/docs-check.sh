#!/usr/bin/env bash
# Fails when docs/api (committed) differs from what `npm run docs` generates from the sources now:
# regenerates into a temporary folder and compares. Fix with `npm run docs` and commit docs/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fresh="$(mktemp -d "${TMPDIR:-/tmp}/kdr-docs-XXXXXX")"
trap 'rm -rf "$fresh"' EXIT
npx typedoc --logLevel Warn --out "$fresh/api"
if ! diff -ru docs/api "$fresh/api" >"$fresh.diff" 2>&1; then
  echo "docs-check: docs/api is stale; run \`npm run docs\` and commit docs/. Differences:" >&2
  head -n 60 "$fresh.diff" >&2
  rm -f "$fresh.diff"
  exit 1
fi
rm -f "$fresh.diff"
echo "docs-check: docs/api is up to date"
