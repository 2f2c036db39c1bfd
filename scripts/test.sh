#!/usr/bin/env bash
# Every test: the Rust unit tests, then the ava suites (unit and integration against a real
# local Kafka broker and real Delta tables read back with Python's deltalake). Ends with one
# line `N passed, N failed` summing all suites. Extra arguments go to ava (e.g. a file).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
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

echo "== ava"
npx ava "$@" 2>&1 | tee "$logs/ava.log"
ava_status=${PIPESTATUS[0]}
ava_passed=$(sed -nE 's/^ *([0-9]+) tests? passed.*/\1/p' "$logs/ava.log" | tail -1)
ava_failed=$(sed -nE 's/^ *([0-9]+) tests? failed.*/\1/p' "$logs/ava.log" | tail -1)
ava_skipped=$(sed -nE 's/^ *([0-9]+) tests? skipped.*/\1/p' "$logs/ava.log" | tail -1)
passed=$((passed + ${ava_passed:-0}))
failed=$((failed + ${ava_failed:-0}))
if [ "$ava_status" != 0 ] && [ -z "$ava_failed" ]; then failed=$((failed + 1)); fi
if [ -n "$ava_skipped" ]; then echo "ava skipped $ava_skipped test(s): skipped tests count as failures here"; failed=$((failed + ava_skipped)); fi

echo
echo "${passed} passed, ${failed} failed"
[ "$failed" = 0 ] && [ "$cargo_status" = 0 ] && [ "$ava_status" = 0 ]
