#!/usr/bin/env bash
# The main job on the embedded default: a local Kafka broker, a local day-partitioned Delta
# table with sample data (including duplicates and a few malformed events), ingested until
# caught up with config.yaml, then a summary of what landed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
bash scripts/kafka/kafka.sh up
node dist/tools/sample.js prepare --config config.yaml
node dist/cli.js --config config.yaml --until-caught-up
node dist/tools/sample.js summary --config config.yaml
