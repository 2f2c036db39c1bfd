#!/usr/bin/env bash
# System packages the build needs: node-rdkafka compiles its bundled librdkafka against these,
# and the tests read Delta tables back with Python's deltalake (a reader that is not our writer).
# On Debian/Ubuntu as root it installs what is missing; elsewhere it says what to install.
set -euo pipefail

APT_PACKAGES=(build-essential python3 python3-pip libssl-dev libsasl2-dev zlib1g-dev libzstd-dev liblz4-dev)
# moto serves the S3 API locally, so the tests write to an s3:// table without a cloud account.
PY_PACKAGES=("deltalake==1.6.6" "pyarrow==26.0.1" "moto[server]==5.2.1")

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      echo "system-deps: installing ${missing[*]}"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
      echo "system-deps: missing packages: ${missing[*]}" >&2
      echo "  install them with: sudo apt-get install ${missing[*]}" >&2
      exit 1
    fi
  fi
else
  echo "system-deps: not a Debian system; make sure the equivalents of ${APT_PACKAGES[*]} are installed" >&2
fi

if [ "${1:-}" = "--with-python" ]; then
  if ! python3 -c 'import deltalake, pyarrow, moto.server' >/dev/null 2>&1; then
    echo "system-deps: installing ${PY_PACKAGES[*]} for the tests' independent Delta reader and S3 endpoint"
    python3 -m pip install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
  fi
fi
