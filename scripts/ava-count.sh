#!/usr/bin/env bash
# Sourced by scripts/test.sh and scripts/test-node-versions.sh. `count_ava LOG STATUS LABEL` adds
# an ava run's counts (its log, its exit status) to $passed and $failed, and appends its failed
# tests with the first lines of ava's report on them to the file $AVA_FAILURES (when set), so the
# closing summary names them: CI keeps only the tail of a run's output. ava prints `N tests
# passed` only when nothing failed; otherwise the passed tests are its ✔ lines. An ava run that
# exits non-zero without a failure count, and every skipped test, count as a failure.

count_ava() {
  local log="$1" status="$2" label="$3" p f s
  p=$(sed -nE 's/^ *([0-9]+) tests? passed.*/\1/p' "$log" | tail -1)
  [ -n "$p" ] || p=$(grep -E '^ *✔ ' "$log" | grep -cv '✔ \[expected fail\]')
  f=$(sed -nE 's/^ *([0-9]+) tests? failed.*/\1/p' "$log" | tail -1)
  s=$(sed -nE 's/^ *([0-9]+) tests? skipped.*/\1/p' "$log" | tail -1)
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
  if [ "$status" != 0 ] && [ -z "$f" ]; then
    echo "ava exited $status without a failure count: counted as a failure"
    failed=$((failed + 1))
    note_failure "$label" "ava exited $status without a failure count (see its output above)"
  fi
  if [ -n "$s" ]; then
    echo "ava skipped $s test(s): skipped tests count as failures here"
    failed=$((failed + s))
    note_failure "$label" "$(grep -E '^ *- \[skip\]' "$log")"
  fi
  if [ -n "$f" ] && [ "$f" != 0 ]; then
    note_failure "$label" "$(grep -E '^ *✘ ' "$log")"
    # ava's report on each failure follows the test list, after its first `─` rule.
    note_failure "$label" "$(awk '/^  ─$/ { n++ } n >= 1' "$log" | head -n 60)"
  fi
}

# Appends TEXT under LABEL to $AVA_FAILURES.
note_failure() {
  [ -n "${AVA_FAILURES:-}" ] && [ -n "$2" ] || return 0
  { echo "-- $1"; echo "$2"; } >>"$AVA_FAILURES"
}
