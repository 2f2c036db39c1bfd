#!/usr/bin/env bash
# Every test: the Rust unit tests, then the ava suites (unit and integration against a real
# local Kafka broker and real Delta tables read back with Python's deltalake). Ends with one
# line `N passed, N failed` summing all suites. Extra arguments go to ava (e.g. a file).
# Then, in CI outside GitHub Actions (whose workflow has a Node matrix instead) or when
# KDR_NODE_VERSIONS is set, the ava suites on the other Node majors (scripts/test-node-versions.sh:
# Node 22 and 24 from the npm registry; a reduced form, every suite with KDR_ALL_NODES_FULL=1, the
# same ava arguments when given), counted in the same line. KDR_NODE_VERSIONS= (empty) turns it off.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kafka-delta-rust/target}"

bash scripts/setup.sh --with-python || exit 1

started_broker=0
if ! bash scripts/kafka/kafka.sh status >/dev/null 2>&1; then
  bash scripts/kafka/kafka.sh up || exit 1
  started_broker=1
fi
stop_broker() { [ "$started_broker" = 1 ] && bash scripts/kafka/kafka.sh down >/dev/null 2>&1; }
trap stop_broker EXIT

logs="$(mktemp -d)"
passed=0
failed=0
# shellcheck source=scripts/ava-count.sh
source scripts/ava-count.sh
export AVA_FAILURES="$logs/failures.txt"
: >"$AVA_FAILURES"

echo "== cargo test (release profile, sharing the addon's build)"
# `napi build` always passes --target; the same profile and target share its dependency build
# (deltalake + DataFusion): one heavy compile, not two.
host="$(rustc -vV | sed -n 's/^host: //p')"
cargo test --release --lib --target "$host" 2>&1 | tee "$logs/cargo.log"
cargo_status=${PIPESTATUS[0]}
while read -r p f; do
  passed=$((passed + p)); failed=$((failed + f))
done < <(sed -nE 's/^test result: [a-zA-Z]+\. ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/p' "$logs/cargo.log")
if [ "$cargo_status" != 0 ] && ! grep -q '^test result:' "$logs/cargo.log"; then failed=$((failed + 1)); fi
note_failure "cargo test" "$(grep -E '^test .* FAILED$|^---- .* stdout ----$' "$logs/cargo.log")"

cargo_passed=$passed
cargo_failed=$failed

echo "== ava"
ava_started=$SECONDS
npx ava "$@" 2>&1 | tee "$logs/ava.log"
ava_status=${PIPESTATUS[0]}
count_ava "$logs/ava.log" "$ava_status" "Node $(node --version)"

this_node="Node $(node --version) (this Node): $((passed - cargo_passed)) passed, $((failed - cargo_failed)) failed, $((SECONDS - ava_started)) s"
other_status=0
if [ -n "${KDR_NODE_VERSIONS+set}" ]; then
  other_nodes="$KDR_NODE_VERSIONS"
elif [ -n "${CI:-}" ] && [ "$CI" != false ] && [ -z "${GITHUB_ACTIONS:-}" ]; then
  other_nodes=pinned
else
  other_nodes=""
fi
if [ -n "$other_nodes" ]; then
  echo "== ava on the other Node majors (scripts/test-node-versions.sh)"
  bash scripts/test-node-versions.sh "$@" 2>&1 | tee "$logs/other-nodes.log"
  other_status=${PIPESTATUS[0]}
  other=$(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$logs/other-nodes.log" | tail -1)
  if [ -n "$other" ]; then
    passed=$((passed + ${other% *})); failed=$((failed + ${other#* }))
  fi
  if [ "$other_status" != 0 ] && { [ -z "$other" ] || [ "${other#* }" = 0 ]; }; then failed=$((failed + 1)); fi
fi

echo
# The failures again, last, where CI's tail of the output shows them.
if [ -s "$AVA_FAILURES" ]; then echo "== failed"; cat "$AVA_FAILURES"; echo; fi
if [ -n "$other_nodes" ]; then
  echo "cargo test: $cargo_passed passed, $cargo_failed failed"
  echo "$this_node"
  grep -E '^Node (v[0-9.]+|[0-9]+): ' "$logs/other-nodes.log"
fi
echo "${passed} passed, ${failed} failed"
[ "$failed" = 0 ] && [ "$cargo_status" = 0 ] && [ "$ava_status" = 0 ] && [ "$other_status" = 0 ]
