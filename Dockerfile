# Container image of the kafka-delta-rust command.
#
#   docker build -t kafka-delta-rust .
#   docker run --rm -v "$PWD/config.yaml:/app/config.yaml:ro" -v "$PWD/data:/data" -p 9090:9090 \
#     kafka-delta-rust --config /app/config.yaml --monitoring.host=0.0.0.0
#
# with delta.table_path in the mounted config pointing under /data (README, section Docker).
#
# Two stages:
# - builder: the Rust toolchain (rust image) plus Node 20 copied from the official node image,
#   and the -dev packages node-rdkafka compiles its bundled librdkafka against. It runs the same
#   build steps as .ci/run (npm ci, npm run build), then drops the dev dependencies.
# - runtime: node slim with only the shared libraries the two native addons load. No compiler,
#   no Rust toolchain, no -dev packages.
#
# Node major of both stages: keep them equal (node-rdkafka's addon is compiled for the builder's
# Node ABI) and within package.json's engines (>= 20.19).
ARG NODE_MAJOR=20

# Source of the Node runtime copied into the builder.
FROM node:${NODE_MAJOR}-bookworm AS nodejs

# ---------------------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder

# Node and npm from the official image: the binary, npm's package folder, the headers (node-gyp
# builds node-rdkafka against them instead of downloading them), and the npm/npx links exactly as
# the node image lays them out.
COPY --from=nodejs /usr/local/bin/node /usr/local/bin/node
COPY --from=nodejs /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
COPY --from=nodejs /usr/local/include/node /usr/local/include/node
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version

# What scripts/system-deps.sh installs (minus python3-pip: the image runs no Python tests).
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential python3 libssl-dev libsasl2-dev zlib1g-dev libzstd-dev liblz4-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Same settings as .ci/run and scripts/setup.sh: the cargo target dir under ~/.cache, and node-gyp
# pointed at the copied headers.
ENV CI=true \
    CARGO_TARGET_DIR=/root/.cache/kafka-delta-rust/target \
    npm_config_nodedir=/usr/local

# Dependencies first, so source edits do not redo `npm ci` (and librdkafka's compile).
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

# Sources: the native crate, the TypeScript, the copy step and the default config.
COPY Cargo.toml Cargo.lock build.rs tsconfig.json tsconfig.build.json config.yaml ./
COPY native ./native
COPY ts ./ts
COPY scripts/copy-native.mjs ./scripts/copy-native.mjs

# napi build (release) + tsc + copy of the loader and .node into dist/, then the production
# node_modules. napi copies the finished .node out of the target dir into ts/, so the target dir
# (several GB) is deleted in the same layer. Plain RUN, so the legacy builder works too; with
# BuildKit, `RUN --mount=type=cache,target=/root/.cache/kafka-delta-rust/target` (and one for
# /usr/local/cargo/registry) would keep the Rust build between image builds.
RUN npm run --silent build \
 && chmod 0755 dist/cli.js \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf "$CARGO_TARGET_DIR"

# node-rdkafka keeps librdkafka's sources, objects and static libraries after its build (~500 MB).
# At run time it loads only build/Release/node-librdkafka.node and, through its RUNPATH
# $ORIGIN/../deps, build/deps/librdkafka.so.1 and librdkafka++.so.1: drop the rest.
RUN rm -rf node_modules/node-rdkafka/deps/librdkafka node_modules/node-rdkafka/build/Release/obj.target \
 && rm -f node_modules/node-rdkafka/build/deps/*.a \
 && du -sh node_modules

# ---------------------------------------------------------------------------------------------
FROM node:${NODE_MAJOR}-bookworm-slim AS runtime

# Shared libraries of librdkafka as node-rdkafka builds it in the builder: OpenSSL, Cyrus SASL,
# zlib, zstd, lz4, and libcurl (the rust image ships libcurl4-openssl-dev, which librdkafka's
# configure picks up for OIDC). ca-certificates for TLS to brokers and object stores. The Rust
# addon links only glibc and libgcc_s (rustls, statically linked). The ldd check further down
# fails the build if this list ever falls short.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libssl3 libsasl2-2 zlib1g libzstd1 liblz4-1 libcurl4 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 kdr \
 && useradd --system --uid 10001 --gid kdr --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin kdr

WORKDIR /app
COPY --from=builder /app/package.json /app/config.yaml ./
COPY --from=builder /app/node_modules ./node_modules
COPY --from=builder /app/dist ./dist

# bash with pipefail for the pipeline below (the slim image has bash).
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# The command on PATH (what `npm link` would do, without npm). Then fail the build if a native
# addon misses a shared library in this stage (ldd lists their dependencies transitively). The
# default staging_dir (.kafka-delta-staging, relative to the working directory) must be writable
# by the non-root user. /data is where the README mounts the tables: owned by that user, so a
# named volume mounted there starts out writable (a bind mount keeps the host folder's owner).
RUN ln -s /app/dist/cli.js /usr/local/bin/kafka-delta-rust \
 && missing="$(find /app/dist /app/node_modules -name '*.node' -type f -exec ldd {} + 2>&1 \
      | grep 'not found' || true)" \
 && if [ -n "$missing" ]; then echo "missing shared libraries:"; echo "$missing"; exit 1; fi \
 && mkdir -p /app/.kafka-delta-staging /data \
 && chown kdr:kdr /app/.kafka-delta-staging /data

ENV NODE_ENV=production
USER 10001:10001

# Smoke test as the runtime user: --version loads the CLI, node-rdkafka and the Rust addon (it
# prints the native core, deltalake and arrow versions).
RUN kafka-delta-rust --version

# Metrics, /healthz and /readyz. The server binds monitoring.host, whose default is 127.0.0.1:
# reachable from inside the container only. To scrape from outside (docker -p, Kubernetes), set
#   monitoring:
#     host: 0.0.0.0
# in the mounted config (or pass --monitoring.host=0.0.0.0). The HEALTHCHECK below calls
# 127.0.0.1:9090, which works when host is 127.0.0.1 or 0.0.0.0 and port is 9090; for another
# port or host set HEALTHCHECK_URL (e.g. -e HEALTHCHECK_URL=http://127.0.0.1:9191/healthz). With
# monitoring.enabled: false nothing listens: run with --no-healthcheck then.
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const u = process.env.HEALTHCHECK_URL || 'http://127.0.0.1:9090/healthz'; require('node:http').get(u, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1)).setTimeout(4000, () => process.exit(1));"]

# Node runs as PID 1; the CLI handles SIGTERM/SIGINT itself (graceful stop), so `docker stop`
# works without an init. The shipped config.yaml is the quickstart's: mount your own over it.
ENTRYPOINT ["kafka-delta-rust"]
CMD ["--config", "/app/config.yaml"]
