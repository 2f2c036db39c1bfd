# Secured listeners of the local broker (KAFKA_SECURITY): sourced by kafka.sh, which sets
# SECURITY, the *_PORT variables, SCRAM_USER, HOST, KAFKA_HOME_DIR, SECURITY_DIR and the log/die
# helpers. Everything here is throwaway test material: a CA whose key is deleted once it signed
# the broker's and one client's certificate, and a random SCRAM password.
# shellcheck shell=bash

SECURE_NAMES=()   # listener names from KAFKA_SECURITY, in a fixed order

parse_security() {
  local spec="${SECURITY// /}" item name
  spec="${spec,,}"
  for item in ${spec//,/ }; do
    case "$item" in
      sasl_plaintext|ssl|sasl_ssl) ;;
      *) die "KAFKA_SECURITY: unknown listener '$item' (expected sasl_plaintext, ssl, sasl_ssl or all)" ;;
    esac
  done
  for name in sasl_plaintext ssl sasl_ssl; do
    [[ ",$spec," == *",$name,"* ]] && SECURE_NAMES+=("${name^^}")
  done
  if ((${#SECURE_NAMES[@]})); then
    # The values go unquoted into the --add-scram argument of the storage tool.
    [[ "$SCRAM_USER" =~ ^[A-Za-z0-9._@+-]+$ ]] || die "KAFKA_SCRAM_USER may only hold letters, digits and ._@+-"
    [[ "${KAFKA_SCRAM_PASSWORD:-x}" =~ ^[A-Za-z0-9._@+-]+$ ]] || die "KAFKA_SCRAM_PASSWORD may only hold letters, digits and ._@+-"
  fi
  return 0
}

listener_port() {
  case "$1" in
    PLAINTEXT) echo "$PORT" ;;
    CONTROLLER) echo "$CONTROLLER_PORT" ;;
    SASL_PLAINTEXT) echo "$SASL_PLAINTEXT_PORT" ;;
    SSL) echo "$SSL_PORT" ;;
    SASL_SSL) echo "$SASL_SSL_PORT" ;;
  esac
}

has_sasl() { [[ " ${SECURE_NAMES[*]} " == *" SASL_"* ]]; }
has_tls() { [[ " ${SECURE_NAMES[*]} " == *"SSL "* ]]; }   # SSL or SASL_SSL

# The `listeners=` value; also what a running broker is compared against.
listeners_value() {
  local out="PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT" name
  for name in "${SECURE_NAMES[@]}"; do out+=",$name://$HOST:$(listener_port "$name")"; done
  echo "$out"
}

# Each listener name is also its security protocol.
protocol_map() {
  local out="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT" name
  for name in "${SECURE_NAMES[@]}"; do out+=",$name:$name"; done
  echo "$out"
}

# What the storage was formatted for: the ports, plus the secured listeners (the SCRAM user
# is written into the metadata log at format time).
format_stamp() {
  local out="$PORT $CONTROLLER_PORT" name
  for name in "${SECURE_NAMES[@]}"; do out+=" $name:$(listener_port "$name")"; done
  echo "$out"
}

# One step of the TLS material; a failure names the step (set -e does not reach into a
# function whose status is tested).
gen_step() {
  local what="$1"
  shift
  "$@" >/dev/null 2>"$KAFKA_HOME_DIR/.security.err" ||
    { log "error: $what failed: $(cat "$KAFKA_HOME_DIR/.security.err")"; return 1; }
}

# A key and a certificate signed by the CA, valid for 127.0.0.1 and localhost.
gen_signed() {
  local dir="$1" name="$2" cn="$3" usage="$4"
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=%s\n' "$usage" >"$dir/$name.ext"
  gen_step "$name key" openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" \
    -keyout "$dir/$name.key" -out "$dir/$name.csr" &&
    gen_step "$name certificate" openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
      -set_serial "0x$(openssl rand -hex 8)" -days 3650 -extfile "$dir/$name.ext" -out "$dir/$name.crt" &&
    rm -f "$dir/$name.csr" "$dir/$name.ext"
}

gen_security_in() {
  local dir="$1" keytool="keytool"
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/keytool" ]]; then keytool="$JAVA_HOME/bin/keytool"; fi
  command -v openssl >/dev/null 2>&1 || { log "error: openssl not found (needed for KAFKA_SECURITY)"; return 1; }
  command -v "$keytool" >/dev/null 2>&1 || { log "error: keytool not found (it comes with the JDK)"; return 1; }
  openssl rand -hex 16 >"$dir/store-password" &&
    echo "$SCRAM_USER" >"$dir/scram-user" &&
    if [[ -n "${KAFKA_SCRAM_PASSWORD:-}" ]]; then echo "$KAFKA_SCRAM_PASSWORD" >"$dir/scram-password"
    else openssl rand -hex 16 >"$dir/scram-password"; fi &&
    gen_step "CA" openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
      -subj "/CN=kafka-delta-rust throwaway test CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" &&
    gen_signed "$dir" broker 127.0.0.1 serverAuth &&
    gen_signed "$dir" client kdr-client clientAuth &&
    gen_step "broker keystore" openssl pkcs12 -export -name broker -in "$dir/broker.crt" -inkey "$dir/broker.key" \
      -certfile "$dir/ca.crt" -passout "file:$dir/store-password" -out "$dir/broker.p12" &&
    gen_step "broker truststore" "$keytool" -importcert -noprompt -alias ca -file "$dir/ca.crt" \
      -keystore "$dir/truststore.p12" -storetype PKCS12 -storepass:file "$dir/store-password" &&
    rm -f "$dir/broker.key" "$dir/ca.key"
}

# Generates the throwaway CA, the broker's keystore/truststore, a client certificate and the
# SCRAM password once per home (kept until 'down --purge'). The CA key is deleted right away:
# nothing else can ever be signed with it.
make_security() {
  ((${#SECURE_NAMES[@]})) || return 0
  [[ -f "$SECURITY_DIR/.complete" ]] && return 0
  local tmp
  tmp="$(mktemp -d "$KAFKA_HOME_DIR/.security.tmp.XXXXXX")"
  # Private keys and passwords: readable by this user only.
  if ! (umask 077 && gen_security_in "$tmp"); then
    rm -rf "$tmp" "$KAFKA_HOME_DIR/.security.err"
    die "could not generate the TLS material and SCRAM password for KAFKA_SECURITY"
  fi
  rm -f "$KAFKA_HOME_DIR/.security.err"
  touch "$tmp/.complete"
  rm -rf "$SECURITY_DIR"
  mv "$tmp" "$SECURITY_DIR"
  log "generated a throwaway CA, broker keystore and client certificate in $SECURITY_DIR"
}

# server.properties lines of the secured listeners.
security_config() {
  ((${#SECURE_NAMES[@]})) || return 0
  local name
  echo
  echo "# secured listeners (KAFKA_SECURITY); throwaway material in $SECURITY_DIR"
  if has_sasl; then
    echo "sasl.enabled.mechanisms=SCRAM-SHA-512"
    for name in "${SECURE_NAMES[@]}"; do
      # Server side of SCRAM: the users live in the metadata log, the module needs no options.
      if [[ "$name" == SASL_* ]]; then
        echo "listener.name.${name,,}.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
      fi
    done
  fi
  if has_tls; then
    local pw
    pw="$(cat "$SECURITY_DIR/store-password")"
    echo "ssl.keystore.type=PKCS12"
    echo "ssl.keystore.location=$SECURITY_DIR/broker.p12"
    echo "ssl.keystore.password=$pw"
    echo "ssl.key.password=$pw"
    echo "ssl.truststore.type=PKCS12"
    echo "ssl.truststore.location=$SECURITY_DIR/truststore.p12"
    echo "ssl.truststore.password=$pw"
    # TLS alone authenticates clients by certificate (mTLS); SASL_SSL by SCRAM over
    # server-side TLS, the usual managed-Kafka setup.
    if [[ " ${SECURE_NAMES[*]} " == *" SSL "* ]]; then echo "listener.name.ssl.ssl.client.auth=required"; fi
  fi
  return 0
}
