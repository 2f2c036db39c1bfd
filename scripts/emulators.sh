#!/usr/bin/env bash
# Installs the local object-store emulators the Azure and GCS tests use (__test__/helpers/azure.ts
# and gcs.ts): Azurite from npm and fake-gcs-server built with Go from the module proxy. Does
# nothing for an emulator already installed at the wanted version.
#
#   KDR_EMULATORS_DIR      install root (default ~/.cache/kafka-delta-rust/emulators)
#   AZURITE_VERSION        default 3.37.0: the first that honours List Blobs' startFrom, without
#                          which object_store 0.13 lists whole logs and delta-rs fails to load any
#                          table with two or more commits ("Invalid table version"). It declares
#                          node >=22 but its blob service runs on Node 20 (npm only warns).
#   FAKE_GCS_VERSION       default v1.56.1
set -euo pipefail

root="${KDR_EMULATORS_DIR:-$HOME/.cache/kafka-delta-rust/emulators}"
azurite_version="${AZURITE_VERSION:-3.37.0}"
fake_gcs_version="${FAKE_GCS_VERSION:-v1.56.1}"
mkdir -p "$root/bin"

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

fake_gcs="$root/bin/fake-gcs-server"
installed_fake_gcs=""
if [ -x "$fake_gcs" ] && command -v go >/dev/null; then
  installed_fake_gcs="$(go version -m "$fake_gcs" | awk '$1 == "mod" { print $3 }')"
fi
if [ -x "$fake_gcs" ] && { [ "$installed_fake_gcs" = "$fake_gcs_version" ] || ! command -v go >/dev/null; }; then
  echo "fake-gcs-server ${installed_fake_gcs:-(version unknown)}: present"
else
  command -v go >/dev/null || { echo "emulators.sh: go is needed to build fake-gcs-server" >&2; exit 1; }
  echo "fake-gcs-server $fake_gcs_version: building into $root/bin (a few minutes)"
  GOBIN="$root/bin" go install "github.com/fsouza/fake-gcs-server@$fake_gcs_version"
fi
