#!/usr/bin/env bash
# Installs the local Azure Blob emulator the object-store tests use (__test__/helpers/azure.ts):
# Azurite from npm. Does nothing when the wanted version is already installed.
#
#   KDR_EMULATORS_DIR      install root (default ~/.cache/kafka-delta-rust/emulators)
#   AZURITE_VERSION        default 3.37.0: the first that honours List Blobs' startFrom, without
#                          which object_store 0.13 lists whole logs and delta-rs fails to load any
#                          table with two or more commits ("Invalid table version"). It declares
#                          node >=22 but its blob service runs on Node 20 (npm only warns).
set -euo pipefail

root="${KDR_EMULATORS_DIR:-$HOME/.cache/kafka-delta-rust/emulators}"
azurite_version="${AZURITE_VERSION:-3.37.0}"
mkdir -p "$root"

azurite_pkg="$root/azurite/node_modules/azurite/package.json"
installed_azurite=""
if [ -f "$azurite_pkg" ]; then
  installed_azurite="$(node -p 'require(process.argv[1]).version' "$azurite_pkg")"
fi
if [ "$installed_azurite" = "$azurite_version" ]; then
  echo "azurite $azurite_version: present"
else
  command -v npm >/dev/null || { echo "emulators.sh: npm is needed for azurite" >&2; exit 1; }
  echo "azurite $azurite_version: installing into $root/azurite"
  npm install --prefix "$root/azurite" --no-audit --no-fund --engine-strict=false "azurite@$azurite_version"
fi
