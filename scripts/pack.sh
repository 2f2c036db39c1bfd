#!/usr/bin/env bash
# Packs what npm would publish, without touching the working tree: the main package and, for each
# native binary built under ts/ (normally just this machine's), its per-platform package.
#
#   bash scripts/pack.sh OUT_DIR
#
# OUT_DIR receives kafka-delta-rust-<version>.tgz, kafka-delta-rust-<platform>-<version>.tgz and,
# for each tarball, `npm pack --json` output as pack-main.json / pack-<platform>.json (files and
# sizes). The last line of stdout is one JSON object: {"main": <tgz>, "platforms": {<name>: <tgz>}}.
#
# The main package is compiled from ts/ into a staging folder rather than taken from dist/, which
# may hold outputs of deleted sources and the .node binary of a development build. The platform
# packages are laid out by `napi create-npm-dirs` (as the release workflow does) in the same
# staging folder: napi refuses npm dirs outside the project holding package.json.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# = 1 ] || { echo "usage: $0 OUT_DIR" >&2; exit 2; }
mkdir -p "$1"
out="$(cd "$1" && pwd)"
stage="$(mktemp -d "${TMPDIR:-/tmp}/kdr-pack-XXXXXX")"
trap 'rm -rf "$stage"' EXIT
log() { printf 'pack: %s\n' "$*" >&2; }
cd "$root"

binaries=(ts/kafka-delta-rust.*.node)
[ -e "${binaries[0]}" ] || { log "no native binary under ts/ (npm run build:native)"; exit 1; }
[ -f ts/native.js ] && [ -f ts/native.d.ts ] || { log "ts/native.js and ts/native.d.ts are missing (npm run build:native)"; exit 1; }

log "compiling ts/ into $stage/dist"
npx tsc -p tsconfig.build.json --outDir "$stage/dist"
# The generated loader and its types, as scripts/copy-native.mjs puts them in dist/, minus the
# binary: that ships in the platform package.
cp ts/native.js ts/native.d.ts "$stage/dist/"
cp package.json README.md LICENSE config.yaml "$stage/"

log "npm pack (main package)"
(cd "$stage" && npm pack --json --pack-destination "$out" >"$out/pack-main.json")
main="$out/$(node -p 'require(process.argv[1])[0].filename' "$out/pack-main.json")"

npx napi create-npm-dirs --cwd "$stage" >&2
platforms="{"
for binary in "${binaries[@]}"; do
  file="$(basename "$binary")"            # kafka-delta-rust.linux-x64-gnu.node
  platform="${file#kafka-delta-rust.}"
  platform="${platform%.node}"
  dir="$stage/npm/$platform"
  [ -d "$dir" ] || { log "$platform is not among package.json's napi.targets: skipped"; continue; }
  cp "$binary" "$dir/"
  log "npm pack ($platform)"
  (cd "$dir" && npm pack --json --pack-destination "$out" >"$out/pack-$platform.json")
  tgz="$out/$(node -p 'require(process.argv[1])[0].filename' "$out/pack-$platform.json")"
  [ "$platforms" = "{" ] || platforms+=","
  platforms+="\"$platform\":\"$tgz\""
done
platforms+="}"
echo "{\"main\":\"$main\",\"platforms\":$platforms}"
