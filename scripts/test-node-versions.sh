#!/usr/bin/env bash
# The ava suites on the other Node majors, in this clone: scripts/test.sh runs it after the run on
# the current Node (in CI outside GitHub Actions, whose workflow has a Node matrix instead), and it
# runs on its own too. Needs the local broker up (scripts/test.sh starts it) and the build done.
#
#   bash scripts/test-node-versions.sh            # the reduced form on every pinned major but this one
#   KDR_ALL_NODES_FULL=1 bash scripts/test-node-versions.sh   # every suite, as `npm test` runs them
#   bash scripts/test-node-versions.sh __test__/cli.test.ts   # these ava arguments on each
#
# KDR_NODE_VERSIONS="22 24" picks the majors (default: those scripts/node-versions.sh pins). Each
# comes from scripts/node-versions.sh (Node from the npm registry, node-rdkafka built for it),
# and runs with its node first on PATH (ava's workers, the CLI children and npm run on it) and
# node-rdkafka swapped for that build by scripts/node-rdkafka-hook.mjs; our addon is N-API, the
# same ts/*.node for all. The reduced form: the unit tests (`npm run test:unit`) and the
# integration tests of REDUCED_INTEGRATION (about 1.5 minutes per major here, against ~14 for
# everything). A major that cannot be set up, an ava run that fails without a count and a skipped
# test each count as a failure. Ends with one line per major and `N passed, N failed`.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

# Ingestion end to end (kill -9 and restarts, dead letters, metadata, two topics), the Pipeline
# API, hostile payloads, and start positions (node-rdkafka's watermark and offset queries).
REDUCED_INTEGRATION=(
  __test__/ingest.integration.test.ts
  __test__/pipeline.integration.test.ts
  __test__/hostile-input.integration.test.ts
  __test__/positions.integration.test.ts
)

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
passed=0
failed=0
summary=()

# count_ava LOG STATUS LABEL; failures also go to $AVA_FAILURES (scripts/test.sh passes its own).
# shellcheck source=scripts/ava-count.sh
source scripts/ava-count.sh
own_failures=0
if [ -z "${AVA_FAILURES:-}" ]; then AVA_FAILURES="$logs/failures.txt"; own_failures=1; fi

majors="${KDR_NODE_VERSIONS-$(bash scripts/node-versions.sh list | awk '{print $1}')}"
this_major="$(node -p 'process.versions.node.split(".")[0]')"
ran=0
for major in $majors; do
  if [ "$major" = "$this_major" ]; then echo "== Node $major is the current Node: scripts/test.sh ran it"; continue; fi
  ran=$((ran + 1))
  started=$SECONDS
  p0=$passed
  f0=$failed
  echo "== ava on Node $major"
  if ! prefix="$(bash scripts/node-versions.sh ensure "$major")"; then
    echo "Node $major could not be set up (above): counted as a failure"
    failed=$((failed + 1))
    note_failure "Node $major" "Node $major could not be set up"
    summary+=("Node $major: not set up, counted as 1 failure")
    continue
  fi
  on_node=(env PATH="$prefix/bin:$PATH"
    KDR_RDKAFKA_DIR="$(bash scripts/node-versions.sh rdkafka-dir "$prefix")"
    KDR_RDKAFKA_REPLACE="$PWD/node_modules/node-rdkafka"
    NODE_OPTIONS="${NODE_OPTIONS:+$NODE_OPTIONS }--import=$PWD/scripts/node-rdkafka-hook.mjs"
    "$prefix/bin/node" node_modules/ava/entrypoints/cli.mjs)
  if [ "$#" -gt 0 ] || [ "${KDR_ALL_NODES_FULL:-}" = 1 ]; then
    "${on_node[@]}" "$@" 2>&1 | tee "$logs/all.log"
    count_ava "$logs/all.log" "${PIPESTATUS[0]}" "Node $major"
  else
    echo "-- Node $major: unit tests (npm run test:unit)"
    "${on_node[@]}" --match='!*[integration]*' 2>&1 | tee "$logs/unit.log"
    count_ava "$logs/unit.log" "${PIPESTATUS[0]}" "Node $major, unit"
    echo "-- Node $major: the integration tests of ${REDUCED_INTEGRATION[*]}"
    "${on_node[@]}" --match='*[integration]*' "${REDUCED_INTEGRATION[@]}" 2>&1 | tee "$logs/integration.log"
    count_ava "$logs/integration.log" "${PIPESTATUS[0]}" "Node $major, integration"
  fi
  summary+=("Node $("$prefix/bin/node" --version): $((passed - p0)) passed, $((failed - f0)) failed, $((SECONDS - started)) s")
done
if [ "$ran" = 0 ]; then
  echo "no other Node major to run (KDR_NODE_VERSIONS='$majors', this is Node $this_major): counted as a failure"
  failed=$((failed + 1))
fi

echo
if [ "$own_failures" = 1 ] && [ -s "$AVA_FAILURES" ]; then echo "== failed"; cat "$AVA_FAILURES"; echo; fi
printf '%s\n' "${summary[@]}"
echo "${passed} passed, ${failed} failed"
[ "$failed" = 0 ]
