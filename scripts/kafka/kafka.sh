#!/usr/bin/env bash
# Local single-node Apache Kafka broker (KRaft: broker + controller in one JVM)
# for development and tests. The jars come from Maven Central through
# scripts/kafka/pom.xml; no Kafka download or Docker is needed, only java >= 17
# and mvn.
#
# Usage: scripts/kafka/kafka.sh <command> [args]
#   up                         fetch jars if missing, format storage once, start the
#                              broker in the background and wait until it answers;
#                              reuses a broker that is already running (exit 0)
#   down [--purge]             stop the broker from the pid file (TERM, then KILL);
#                              --purge (or KAFKA_PURGE=1) also deletes the data dir
#   status                     exit 0 and say where the broker is if it runs, else exit 3
#   topic-create NAME PARTS    create topic NAME with PARTS partitions (RF 1), if absent
#   libs                       only fetch the jars into the libs dir
#   run-class CLASS [ARGS...]  run a Java class from the Kafka jars (tools), e.g.
#                              run-class org.apache.kafka.tools.ConsoleProducer ...
#   bootstrap                  print host:port of the broker (for scripts)
#   listeners                  print one line per client listener: NAME host:port
#
# Secured listeners (KAFKA_SECURITY): beside the PLAINTEXT listener (which stays, for
# health checks, producing test data and the tools), the broker also listens with
#   sasl_plaintext  SASL/SCRAM-SHA-512, no TLS                 on KAFKA_PORT+2
#   ssl             TLS with client certificates (mTLS)        on KAFKA_PORT+3
#   sasl_ssl        TLS (server certificate only) + SCRAM      on KAFKA_PORT+4
# On the first 'up' a throwaway CA, the broker's keystore/truststore and a client certificate
# are generated with openssl/keytool into $KAFKA_HOME_DIR/security (ca.crt, client.crt,
# client.key: PEM, for clients), and the SCRAM-SHA-512 user is created when the storage is
# formatted (KRaft keeps SCRAM credentials in the metadata log). Never use this material
# for anything but local tests. Changing KAFKA_SECURITY needs 'down --purge'.
#
#
# Environment (all optional):
#   KAFKA_HOME_DIR         working folder (default <repo>/.kafka): config, data, logs, pid
#   KAFKA_LIBS_DIR         jar folder (default $KAFKA_HOME_DIR/libs); point several
#                          homes at one libs dir to share the jars
#   KAFKA_PORT             PLAINTEXT port (default 9092)
#   KAFKA_CONTROLLER_PORT  CONTROLLER port (default KAFKA_PORT+1)
#   KAFKA_HEAP_OPTS        broker heap (default "-Xms256m -Xmx1g")
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to answer (default 90)
#   KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL (default 30)
#   KAFKA_PURGE=1          same as `down --purge`
#   KAFKA_SECURITY         comma-separated secured listeners to add: sasl_plaintext, ssl,
#                          sasl_ssl, or "all" (default: none, PLAINTEXT only)
#   KAFKA_SASL_PLAINTEXT_PORT / KAFKA_SSL_PORT / KAFKA_SASL_SSL_PORT
#                          their ports (default KAFKA_PORT+2, +3, +4)
#   KAFKA_SCRAM_USER       the SCRAM-SHA-512 user created at format (default kdr)
#   KAFKA_SCRAM_PASSWORD   its password (default: random, kept in security/scram-password)
#   JAVA_HOME / MVN        which java / mvn to use
set -euo pipefail

KAFKA_VERSION="4.3.1"   # keep in step with <kafka.version> in pom.xml

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
POM="$SCRIPT_DIR/pom.xml"

KAFKA_HOME_DIR="${KAFKA_HOME_DIR:-$REPO_ROOT/.kafka}"
LIBS_DIR="${KAFKA_LIBS_DIR:-$KAFKA_HOME_DIR/libs}"
HOST="127.0.0.1"
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
BOOTSTRAP="$HOST:$PORT"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
SECURITY="${KAFKA_SECURITY:-}"
[[ "$SECURITY" == all ]] && SECURITY="sasl_plaintext,ssl,sasl_ssl"
SASL_PLAINTEXT_PORT="${KAFKA_SASL_PLAINTEXT_PORT:-$((PORT + 2))}"
SSL_PORT="${KAFKA_SSL_PORT:-$((PORT + 3))}"
SASL_SSL_PORT="${KAFKA_SASL_SSL_PORT:-$((PORT + 4))}"
SCRAM_USER="${KAFKA_SCRAM_USER:-kdr}"

DATA_DIR="$KAFKA_HOME_DIR/data"
CONF="$KAFKA_HOME_DIR/server.properties"
LOG4J_BROKER="$KAFKA_HOME_DIR/log4j2-broker.properties"
LOG4J_TOOLS="$KAFKA_HOME_DIR/log4j2-tools.properties"
PID_FILE="$KAFKA_HOME_DIR/broker.pid"
BROKER_LOG="$KAFKA_HOME_DIR/broker.log"     # log4j, WARN and up
BROKER_OUT="$KAFKA_HOME_DIR/broker.out"     # the JVM's own stdout/stderr
LIBS_STAMP="$LIBS_DIR/.complete"            # version + pom hash once a fetch finished
PORTS_STAMP="$DATA_DIR/.harness-ports"      # ports the storage was formatted for
LOCK_FILE="$KAFKA_HOME_DIR/.lock"
SECURITY_DIR="$KAFKA_HOME_DIR/security"     # throwaway CA, keystores, SCRAM password

JAVA="java"
if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then JAVA="$JAVA_HOME/bin/java"; fi
MVN="${MVN:-mvn}"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
}

# Serialise up/down/libs between concurrent callers (tests started in parallel).
# fd 9 must not leak into the broker, or the broker would hold the lock forever.
take_lock() {
  mkdir -p "$KAFKA_HOME_DIR"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$LOCK_FILE"
    flock -w 300 9 || die "could not lock $LOCK_FILE within 300 s"
  fi
}

require_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "java not found (Kafka $KAFKA_VERSION needs Java 17+)"
  local v
  v="$("$JAVA" -XshowSettings:properties -version 2>&1 | awk -F' = ' '/java.specification.version/{print $2; exit}')"
  [[ "${v%%.*}" =~ ^[0-9]+$ ]] || die "cannot tell the java version"
  (( ${v%%.*} >= 17 )) || die "java $v found; Kafka $KAFKA_VERSION needs Java 17+"
}

# ---------------------------------------------------------------- secured listeners
# shellcheck source=scripts/kafka/security.sh
source "$SCRIPT_DIR/security.sh"

# ---------------------------------------------------------------- jars
# Refetch when the Kafka version or pom.xml changes.
libs_stamp() { echo "$KAFKA_VERSION $(cksum <"$POM" | tr -d ' ')"; }

libs_ready() {
  [[ -f "$LIBS_STAMP" && "$(cat "$LIBS_STAMP")" == "$(libs_stamp)" ]] &&
    compgen -G "$LIBS_DIR/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null
}

fetch_libs() {
  if libs_ready; then return 0; fi
  command -v "$MVN" >/dev/null 2>&1 || die "mvn not found (needed once to fetch the Kafka jars)"
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS_DIR ..."
  local parent tmp start
  parent="$(dirname "$LIBS_DIR")"
  mkdir -p "$parent"
  tmp="$(mktemp -d "$parent/.libs.tmp.XXXXXX")"
  start=$SECONDS
  # Copy into a scratch dir, then swap it in, so an interrupted fetch never
  # leaves a half-filled libs dir that looks complete.
  if ! "$MVN" -B -q -f "$POM" \
      -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies \
      -DincludeScope=runtime \
      -DoutputDirectory="$tmp" >"$tmp/.mvn.log" 2>&1; then
    cat "$tmp/.mvn.log" >&2
    rm -rf "$tmp"
    die "mvn could not fetch the jars"
  fi
  rm -f "$tmp/.mvn.log"
  rm -rf "$SCRIPT_DIR/target"   # mvn may leave an empty target/ beside the pom
  [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || { rm -rf "$tmp"; die "kafka_2.13-$KAFKA_VERSION.jar missing after fetch"; }
  libs_stamp >"$tmp/.complete"
  rm -rf "$LIBS_DIR"
  mv "$tmp" "$LIBS_DIR"
  log "fetched $(find "$LIBS_DIR" -name '*.jar' | wc -l) jars in $((SECONDS - start)) s"
}

# JVM options for the short-lived command-line tools: small heap, C1 only
# (starts faster), logging WARN+ to stderr.
TOOL_JVM_OPTS=(-Xms64m -Xmx512m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC
  -Dlog4j2.configurationFile="$LOG4J_TOOLS")

# Run a class from the Kafka jars.
run_class() {
  write_tools_log4j
  "$JAVA" "${TOOL_JVM_OPTS[@]}" -cp "$LIBS_DIR/*" "$@"
}

# ---------------------------------------------------------------- config
write_tools_log4j() {
  [[ -f "$LOG4J_TOOLS" ]] && return 0
  mkdir -p "$KAFKA_HOME_DIR"
  cat >"$LOG4J_TOOLS" <<'EOF'
# written by scripts/kafka/kafka.sh: command-line tools log WARN+ to stderr
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
}

write_config() {
  mkdir -p "$KAFKA_HOME_DIR" "$DATA_DIR"
  cat >"$CONF" <<EOF
# written by scripts/kafka/kafka.sh on each 'up'; edits here are overwritten
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$CONTROLLER_PORT
listeners=$(listeners_value)
advertised.listeners=$(listeners_value)
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=$(protocol_map)
log.dirs=$DATA_DIR

# one node: every replication factor and ISR minimum is 1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# tests create their topics explicitly
auto.create.topics.enable=false
num.partitions=3
# fewer internal partitions than the default 50: faster first consumer group on 2 cores
offsets.topic.num.partitions=5
transaction.state.log.num.partitions=5
group.initial.rebalance.delay.ms=0
# no time-based retention: tests produce events with fixed timestamps (e.g. 2026-11-23) that
# the default 7 days would expire in the background, emptying a topic between produce and read
log.retention.ms=-1

# small machine
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
$(security_config)
EOF
  # The secured listeners' store password is in there.
  chmod 600 "$CONF"

  cat >"$LOG4J_BROKER" <<EOF
# written by scripts/kafka/kafka.sh: broker logs WARN+ to $BROKER_LOG
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $BROKER_LOG
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = FILE
# one INFO line per start/stop, handy when reading the log
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
EOF
}

format_storage() {
  local ports
  ports="$(format_stamp)"
  if [[ -f "$DATA_DIR/meta.properties" ]]; then
    if [[ -f "$PORTS_STAMP" && "$(cat "$PORTS_STAMP")" != "$ports" ]]; then
      die "$DATA_DIR was formatted for ports (and secured listeners) $(cat "$PORTS_STAMP"), not $ports; run 'kafka.sh down --purge' first"
    fi
    return 0
  fi
  local cluster_id
  cluster_id="$(run_class kafka.tools.StorageTool random-uuid | tail -n 1)"
  [[ -n "$cluster_id" ]] || die "StorageTool random-uuid printed nothing"
  log "formatting $DATA_DIR (cluster id $cluster_id)"
  local scram=()
  if has_sasl; then
    scram=(--add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$(cat "$SECURITY_DIR/scram-password")]")
    log "creating SCRAM-SHA-512 user $SCRAM_USER (password in $SECURITY_DIR/scram-password)"
  fi
  run_class kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$CONF" "${scram[@]}" >/dev/null ||
    die "StorageTool format failed"
  echo "$ports" >"$PORTS_STAMP"
}

# ---------------------------------------------------------------- process
read_pid() { [[ -f "$PID_FILE" ]] && tr -dc '0-9' <"$PID_FILE" || true; }

# True if PID is alive (not a zombie) and is a kafka.Kafka run on our config,
# so a stale pid file whose number was reused by another process is ignored.
is_our_broker() {
  local pid="$1" state
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
  [[ "$state" != "Z" && -n "$state" ]] || return 1
  local cmd
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
  [[ "$cmd" == *" kafka.Kafka $CONF"* ]]
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

secure_ports_open() {
  local name
  for name in "${SECURE_NAMES[@]}"; do port_open "$(listener_port "$name")" || return 1; done
}

# The broker answers a metadata request (port open is not enough).
broker_answers() {
  write_tools_log4j
  timeout 60 "$JAVA" "${TOOL_JVM_OPTS[@]}" -cp "$LIBS_DIR/*" \
    org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --list >/dev/null 2>&1
}

stop_pid() {
  local pid="$1" waited=0
  kill -TERM "$pid" 2>/dev/null || true
  while is_our_broker "$pid" && (( waited < STOP_TIMEOUT * 5 )); do
    sleep 0.2; waited=$((waited + 1))
  done
  if is_our_broker "$pid"; then
    log "broker $pid still up after ${STOP_TIMEOUT}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 50); do is_our_broker "$pid" || break; sleep 0.2; done
  fi
}

cmd_up() {
  take_lock
  require_java
  local pid
  pid="$(read_pid)"
  if is_our_broker "$pid"; then
    local want have
    want="listeners=$(listeners_value)"
    have="$(grep -m1 '^listeners=' "$CONF" 2>/dev/null || true)"
    if [[ "$have" != "$want" ]]; then
      die "broker pid $pid runs with '$have', not '$want'; run 'kafka.sh down' first"
    fi
    if port_open "$PORT" && broker_answers; then
      echo "Kafka $KAFKA_VERSION broker already running at $BOOTSTRAP (pid $pid, home $KAFKA_HOME_DIR)"
      return 0
    fi
    die "broker pid $pid is alive but does not answer on $BOOTSTRAP; see $BROKER_LOG / $BROKER_OUT, or run 'kafka.sh down'"
  fi
  rm -f "$PID_FILE"
  local p name
  for name in PLAINTEXT CONTROLLER "${SECURE_NAMES[@]}"; do
    p="$(listener_port "$name")"
    port_open "$p" && die "port $HOST:$p ($name) is already in use by another process (set KAFKA_PORT / KAFKA_CONTROLLER_PORT / KAFKA_<listener>_PORT)"
  done

  fetch_libs
  make_security
  write_config
  format_storage

  local start=$SECONDS
  : >"$BROKER_OUT"
  # setsid: own session, so a Ctrl-C or the end of the caller's process group
  # does not take the broker down; bash writes its own pid, then execs java
  # (same pid). fd 9 (the lock) is closed for the broker.
  # shellcheck disable=SC2086
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PID_FILE" \
    "$JAVA" $HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J_BROKER" \
    -cp "$LIBS_DIR/*" kafka.Kafka "$CONF" \
    </dev/null >>"$BROKER_OUT" 2>&1 9>&- &
  local launcher=$!
  for _ in $(seq 50); do [[ -s "$PID_FILE" ]] && break; sleep 0.1; done
  pid="$(read_pid)"
  [[ -n "$pid" ]] || pid=$launcher

  local deadline=$((SECONDS + START_TIMEOUT))
  while :; do
    if ! is_our_broker "$pid"; then
      log "broker exited during start-up; last lines of its output:"
      tail -n 20 "$BROKER_OUT" "$BROKER_LOG" >&2 2>/dev/null || true
      rm -f "$PID_FILE"
      exit 1
    fi
    if port_open "$PORT" && broker_answers && secure_ports_open; then break; fi
    if (( SECONDS >= deadline )); then
      log "broker did not answer on $BOOTSTRAP within ${START_TIMEOUT}s; stopping it"
      tail -n 20 "$BROKER_OUT" "$BROKER_LOG" >&2 2>/dev/null || true
      stop_pid "$pid"
      rm -f "$PID_FILE"
      exit 1
    fi
    sleep 0.5
  done
  echo "Kafka $KAFKA_VERSION broker up at $BOOTSTRAP (pid $pid, started in $((SECONDS - start)) s, home $KAFKA_HOME_DIR)"
}

cmd_down() {
  local purge="${KAFKA_PURGE:-0}"
  case "${1:-}" in
    --purge) purge=1 ;;
    "") ;;
    *) die "down: unknown option $1" ;;
  esac
  take_lock
  local pid
  pid="$(read_pid)"
  if is_our_broker "$pid"; then
    stop_pid "$pid"
    is_our_broker "$pid" && die "could not stop broker pid $pid"
    echo "Kafka broker stopped (pid $pid)"
  elif [[ -n "$pid" ]]; then
    echo "Kafka broker not running (removed stale pid file for $pid)"
  else
    echo "Kafka broker not running"
  fi
  rm -f "$PID_FILE"
  if [[ "$purge" == 1 ]]; then
    [[ -d "$SECURITY_DIR" ]] && echo "removed $SECURITY_DIR"
    rm -rf "$DATA_DIR" "$SECURITY_DIR"
    echo "removed $DATA_DIR"
  fi
}

cmd_status() {
  local pid
  pid="$(read_pid)"
  if is_our_broker "$pid"; then
    if port_open "$PORT"; then
      echo "running: Kafka $KAFKA_VERSION broker at $BOOTSTRAP (pid $pid, home $KAFKA_HOME_DIR)"
      return 0
    fi
    echo "starting or unhealthy: pid $pid is alive but $BOOTSTRAP is closed"
    return 1
  fi
  echo "not running${pid:+ (stale pid file for $pid)}"
  return 3
}

cmd_topic_create() {
  [[ $# -eq 2 && "$2" =~ ^[1-9][0-9]*$ ]] || die "usage: kafka.sh topic-create NAME PARTITIONS"
  libs_ready || die "no jars in $LIBS_DIR; run 'kafka.sh up' first"
  run_class org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
    --create --if-not-exists --topic "$1" --partitions "$2" --replication-factor 1
}

main() {
  local cmd="${1:-}"
  shift || true
  parse_security
  case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    topic-create) cmd_topic_create "$@" ;;
    libs) take_lock; fetch_libs; echo "Kafka $KAFKA_VERSION jars in $LIBS_DIR" ;;
    run-class)
      [[ $# -ge 1 ]] || die "usage: kafka.sh run-class CLASS [ARGS...]"
      libs_ready || die "no jars in $LIBS_DIR; run 'kafka.sh libs' first"
      run_class "$@" ;;
    bootstrap) echo "$BOOTSTRAP" ;;
    listeners)
      local name
      for name in PLAINTEXT "${SECURE_NAMES[@]}"; do echo "$name $HOST:$(listener_port "$name")"; done ;;
    -h|--help|help) usage ;;
    *) usage; exit 2 ;;
  esac
}

main "$@"
