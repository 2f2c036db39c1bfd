#!/usr/bin/env bash
# Brings a clone to a runnable state, idempotently: system packages, npm dependencies, the native
# addon and TypeScript build, and the Kafka jars. Both README commands start with it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The native build's artifacts live outside the clone, so fresh clones reuse a warm build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kafka-delta-rust/target}"
# node-gyp (node-rdkafka) must not download Node headers: use the ones installed with Node.
node_prefix="$(dirname "$(dirname "$(command -v node)")")"
if [ -z "${npm_config_nodedir:-}" ] && [ -f "$node_prefix/include/node/node.h" ]; then
  export npm_config_nodedir="$node_prefix"
fi

bash scripts/system-deps.sh "$@"

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi

echo "setup: building the native addon and the TypeScript sources"
npm run --silent build

bash scripts/kafka/kafka.sh libs

# The tests' local Azure Blob endpoint (S3 comes from Python's moto, installed with the above).
if [ "${1:-}" = "--with-python" ]; then
  bash scripts/emulators.sh
fi
