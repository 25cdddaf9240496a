#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft) broker run from Maven Central's jars: no Docker, no download site.
#
#   kafka.sh jars     fetch the broker's jars into deploy/kafka/jars (once; fast when present)
#   kafka.sh up       format a FRESH log dir (random cluster id), start the broker, wait until ready
#   kafka.sh start    start again on the existing log dir and ports, keeping all data; wait until ready
#   kafka.sh down     stop it: SIGTERM, wait, then SIGKILL (data is kept for `start`)
#   kafka.sh kill     SIGKILL at once, a crash (data is kept; `start` then recovers the log)
#   kafka.sh status   exit 0 and print pid/bootstrap when running, exit 3 when not
#   kafka.sh tool NAME [ARGS...]   run an admin tool against it, NAME one of topics | consumer-groups |
#                     transactions | acls | configs (e.g. `kafka.sh tool topics --list`); on a secure broker
#                     the tool acts as its admin user
#   kafka.sh certs DIR  make a test CA and a broker certificate for 127.0.0.1/localhost in DIR with openssl
#                     (ca.pem, ca.key, broker.pem: what KAFKA_SECURE_DIR needs beside `users`)
#
# A secure broker (SASL_SSL with SCRAM-SHA-512, TLS, the StandardAuthorizer, deny by default; ACLS.md) is made
# by `up` when KAFKA_SECURE_DIR names a directory holding broker.pem (its PKCS#8 key, certificate and CA
# chain), ca.pem and `users`: one `name password` per line, the first being the super user that the broker
# and kafka.sh's tools act as. `start`, `down`, `status` and `tool` then need nothing more.
#
# Environment:
#   KAFKA_RUN_DIR          where data, logs, pid and server.properties live (default deploy/kafka/run)
#   KAFKA_PORT             client listener port on 127.0.0.1 (default 9092); read by `up` only
#   KAFKA_CONTROLLER_PORT  KRaft controller port (default 9093); read by `up` only
#   KAFKA_HEAP_OPTS        JVM heap (default -Xms256m -Xmx1g)
#   KAFKA_START_TIMEOUT    seconds to wait for readiness (default 90)
#   KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL (default 30)
#   KAFKA_SECURE_DIR       certificates and SCRAM users of a secure broker (see above); read by `up` only
#   KAFKA_PROXIED_PORT     a second plaintext listener on 127.0.0.1 (the network fault tests' proxy forwards to
#                          it), advertised at KAFKA_PROXIED_ADVERTISED_PORT (the proxy's port), so that a client
#                          bootstrapped at the proxy keeps every connection going through it; read by `up` only
set -euo pipefail

KAFKA_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JARS_DIR="${KAFKA_HOME}/jars"
RUN_DIR="${KAFKA_RUN_DIR:-${KAFKA_HOME}/run}"
DATA_DIR="${RUN_DIR}/data"
LOGS_DIR="${RUN_DIR}/logs"
PROPS="${RUN_DIR}/server.properties"
PID_FILE="${RUN_DIR}/kafka.pid"
# A secure broker's client settings (TLS trust, the admin's SCRAM login), written by `up`: its presence is
# what makes readiness checks and tools connect securely.
CLIENT_SECURITY="${RUN_DIR}/client-security.properties"
OUT_FILE="${RUN_DIR}/kafka.out"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
# server.log outlives restarts; each launch appends this mark so readiness only looks at its own lines.
LAUNCH_MARK="===== kafka.sh launch"
# The G1 settings of Kafka's own kafka-run-class.sh.
JVM_OPTS="-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true"

die() {
    echo "kafka.sh: $*" >&2
    exit 1
}

need_java() {
    command -v java >/dev/null || die "java not found on PATH (Kafka 4 needs Java 17 or newer)"
}

# Runs a tool's main class from the jars with a small heap; it logs warnings to stderr only, never
# into the broker's server.log.
run_tool() {
    local heap="$1"
    shift
    java "${heap}" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Dlog4j2.configurationFile="${KAFKA_HOME}/log4j2-tools.properties" \
        -cp "${JARS_DIR}/*" "$@"
}

cmd_jars() {
    local stamp="${JARS_DIR}/.pom.sha256" want
    want="$(sha256sum "${KAFKA_HOME}/pom.xml" | cut -d' ' -f1)"
    if [[ -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found on PATH (needed once to fetch the Kafka jars)"
    echo "kafka.sh: fetching Kafka jars from Maven Central into ${JARS_DIR}" >&2
    # Copy into a scratch dir and swap it in whole, so an interrupted fetch never looks complete.
    local tmp="${JARS_DIR}.tmp.$$"
    rm -rf "${tmp}"
    # -Dstyle.color=never turns colours off, but Maven's jansi still writes reset codes unless told through
    # MAVEN_OPTS (a -D on the command line is read too late).
    MAVEN_OPTS="${MAVEN_OPTS:+$MAVEN_OPTS }-Djansi.noreset=true" mvn -B -q -Dstyle.color=never -f "${KAFKA_HOME}/pom.xml" \
        org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="${tmp}" >&2 ||
        { rm -rf "${tmp}"; die "mvn could not fetch the Kafka jars (see its output above)"; }
    echo "${want}" >"${tmp}/.pom.sha256"
    rm -rf "${JARS_DIR}"
    mv "${tmp}" "${JARS_DIR}"
}

# Whether a process is alive. A zombie whose threads have all exited is not (its adoptive parent may be slow
# to reap it); one whose main thread is a zombie while other threads are still exiting still is, since
# those may still hold its sockets and files.
alive() {
    local status state threads
    status="$(cat "/proc/$1/status" 2>/dev/null)" || return 1
    state="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' <<<"${status}")"
    threads="$(sed -n 's/^Threads:[[:space:]]*\([0-9]*\).*/\1/p' <<<"${status}")"
    [[ -n "${state}" ]] || return 1
    [[ "${state}" != Z || "${threads:-1}" -gt 1 ]]
}

# The pid from the pid file, if that process is still our broker (guards against pid reuse).
running_pid() {
    [[ -f "${PID_FILE}" ]] || return 1
    local pid
    pid="$(cat "${PID_FILE}")"
    [[ "${pid}" =~ ^[0-9]+$ ]] || return 1
    alive "${pid}" || return 1
    tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -qF -- "kafka.Kafka ${PROPS}" || return 1
    echo "${pid}"
}

# host:port of the client listener (the first one, PLAINTEXT or SASL_SSL), read back from server.properties.
bootstrap() {
    sed -n 's#^listeners=[A-Z_]*://\([^,]*\),.*#\1#p' "${PROPS}"
}

port_in_use() {
    # bash's /dev/tcp: the connect succeeds only if something already listens there.
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Fails unless each port is free, allowing a few seconds for a broker that was just stopped to let go.
require_free_ports() {
    local p deadline=$((SECONDS + 10))
    for p in "$@"; do
        while port_in_use "${p}"; do
            ((SECONDS < deadline)) ||
                die "port ${p} on 127.0.0.1 is already in use (another broker? set KAFKA_PORT / KAFKA_CONTROLLER_PORT)"
            sleep 0.2
        done
    done
}

# 16 random bytes, base64url without padding: a KRaft cluster id, which must not start with '-'.
new_cluster_id() {
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [[ "${id}" != -* ]] && { echo "${id}"; return; }
    done
}

tail_logs() {
    local f
    for f in "${LOGS_DIR}/server.log" "${OUT_FILE}"; do
        [[ -s "${f}" ]] || continue
        echo "----- last lines of ${f} -----" >&2
        tail -n 40 "${f}" >&2
    done
}

fail_start() {
    echo "kafka.sh: $*" >&2
    tail_logs
    exit 1
}

launch() {
    local pid
    mkdir -p "${LOGS_DIR}"
    rm -f "${PID_FILE}"
    : >"${OUT_FILE}"
    echo "${LAUNCH_MARK} $(date '+%F %T') =====" >>"${LOGS_DIR}/server.log"  # nothing else writes it yet
    # setsid: the broker outlives the shell (and its Ctrl-C) that started it, like a daemon.
    # The inner bash writes its own pid and then execs java, so the pid file names the JVM.
    # SC2016: $$ is meant for the inner shell. SC2086: HEAP_OPTS/JVM_OPTS are split into JVM flags on purpose.
    # shellcheck disable=SC2016,SC2086
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "${PID_FILE}" \
        java ${HEAP_OPTS} ${JVM_OPTS} \
        -Dlog4j2.configurationFile="${KAFKA_HOME}/log4j2.properties" -Dkafka.logs.dir="${LOGS_DIR}" \
        -cp "${JARS_DIR}/*" kafka.Kafka "${PROPS}" \
        </dev/null >>"${OUT_FILE}" 2>&1 &
    wait_ready
    pid="$(running_pid)"
    echo "kafka.sh: Kafka ready on $(bootstrap) (pid ${pid}, run dir ${RUN_DIR})" >&2
}

# Whether the broker logged "Kafka Server started" after the latest launch mark.
started_since_launch() {
    awk -v mark="${LAUNCH_MARK}" 'index($0, mark) == 1 { up = 0 } /Kafka Server started/ { up = 1 } END { exit !up }' \
        "${LOGS_DIR}/server.log" 2>/dev/null
}

# Ready = the broker logged its start AND a real client can list topics through the listener.
wait_ready() {
    local deadline=$((SECONDS + START_TIMEOUT)) started=""
    while ((SECONDS < deadline)); do
        if ! running_pid >/dev/null; then
            [[ -s "${PID_FILE}" ]] || { sleep 0.1; continue; }  # the launcher has not written it yet
            fail_start "the broker exited during start-up"
        fi
        if [[ -z "${started}" ]] && started_since_launch; then
            started=1
        fi
        if [[ -n "${started}" ]] && client_check; then
            return 0
        fi
        sleep 0.2
    done
    fail_start "the broker was not ready within ${START_TIMEOUT}s (KAFKA_START_TIMEOUT)"
}

client_check() {
    local cfg="${RUN_DIR}/admin-client.properties"
    (
        umask 077  # it holds the admin's password on a secure broker
        {
            [[ ! -f "${CLIENT_SECURITY}" ]] || cat "${CLIENT_SECURITY}"
            printf 'request.timeout.ms=5000\ndefault.api.timeout.ms=10000\n'
        } >"${cfg}"
    )
    run_tool -Xmx128m org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "$(bootstrap)" --command-config "${cfg}" --list >/dev/null 2>&1
}

cmd_up() {
    local port="${KAFKA_PORT:-9092}" cport="${KAFKA_CONTROLLER_PORT:-9093}" pid
    if pid="$(running_pid)"; then
        echo "kafka.sh: already running on $(bootstrap) (pid ${pid}); not re-formatted. 'down' first for a fresh one." >&2
        return 0
    fi
    need_java
    cmd_jars
    require_free_ports "${port}" "${cport}"
    rm -rf "${DATA_DIR}" "${LOGS_DIR}" "${PID_FILE}" "${CLIENT_SECURITY}"
    mkdir -p "${DATA_DIR}" "${LOGS_DIR}"
    local format_args=()
    if [[ -n "${KAFKA_SECURE_DIR:-}" ]]; then
        configure_secure "${port}" "${cport}"  # fills format_args with the SCRAM users
    else
        sed -e "s#@KAFKA_PORT@#${port}#g" -e "s#@KAFKA_CONTROLLER_PORT@#${cport}#g" \
            -e "s#@KAFKA_DATA_DIR@#${DATA_DIR}#g" "${KAFKA_HOME}/server.properties.in" >"${PROPS}"
        [[ -z "${KAFKA_PROXIED_PORT:-}" ]] || add_proxied_listener "${KAFKA_PROXIED_PORT}" \
            "${KAFKA_PROXIED_ADVERTISED_PORT:?KAFKA_PROXIED_ADVERTISED_PORT: the port of the proxy in front of it}"
    fi
    local cluster_id
    cluster_id="$(new_cluster_id)"
    run_tool -Xmx256m kafka.tools.StorageTool format --standalone -t "${cluster_id}" -c "${PROPS}" \
        "${format_args[@]}" >"${LOGS_DIR}/format.log" 2>&1 ||
        { cat "${LOGS_DIR}/format.log" >&2; die "formatting the KRaft log dir failed"; }
    launch
}

# The PROXIED listener: bound at $1, advertised at $2 (see KAFKA_PROXIED_PORT above).
add_proxied_listener() {
    require_free_ports "$1"
    sed -i -e "s#^\(listeners=.*\)#\1,PROXIED://127.0.0.1:$1#" \
        -e "s#^\(advertised.listeners=.*\)#\1,PROXIED://127.0.0.1:$2#" \
        -e "s#^\(listener.security.protocol.map=.*\)#\1,PROXIED:PLAINTEXT#" "${PROPS}"
}

# A name or password that can go, unquoted and unescaped, into sed, a JAAS line and --add-scram's
# `[name=...,password=...]`.
SAFE_CREDENTIAL='^[A-Za-z0-9._~+=-]+$'

# Writes the secure server.properties and the tools' client settings from KAFKA_SECURE_DIR, and sets
# format_args (of the caller) to one --add-scram per user.
configure_secure() {
    local port="$1" cport="$2" dir user password admin="" admin_password="" f
    dir="$(cd "${KAFKA_SECURE_DIR}" && pwd)" || die "KAFKA_SECURE_DIR ${KAFKA_SECURE_DIR} is not a directory"
    for f in broker.pem ca.pem users; do
        [[ -s "${dir}/${f}" ]] || die "KAFKA_SECURE_DIR ${dir} has no ${f} (see 'kafka.sh certs')"
    done
    while read -r user password _ || [[ -n "${user}" ]]; do
        [[ -n "${user}" && "${user}" != \#* ]] || continue
        [[ "${user}" =~ ${SAFE_CREDENTIAL} && "${password}" =~ ${SAFE_CREDENTIAL} ]] ||
            die "${dir}/users: user names and passwords may hold only letters, digits and ._~+=-"
        format_args+=(--add-scram "SCRAM-SHA-512=[name=${user},password=${password}]")
        if [[ -z "${admin}" ]]; then
            admin="${user}" admin_password="${password}"
        fi
    done <"${dir}/users"
    [[ -n "${admin}" ]] || die "${dir}/users names no user"
    (
        umask 077  # both files hold the admin's password
        sed -e "s#@KAFKA_PORT@#${port}#g" -e "s#@KAFKA_CONTROLLER_PORT@#${cport}#g" \
            -e "s#@KAFKA_DATA_DIR@#${DATA_DIR}#g" -e "s#@KAFKA_SECURE_DIR@#${dir}#g" \
            -e "s#@KAFKA_ADMIN_USER@#${admin}#g" -e "s#@KAFKA_ADMIN_PASSWORD@#${admin_password}#g" \
            "${KAFKA_HOME}/server-secure.properties.in" >"${PROPS}"
        printf '%s\n' \
            "security.protocol=SASL_SSL" \
            "sasl.mechanism=SCRAM-SHA-512" \
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"${admin}\" password=\"${admin_password}\";" \
            "ssl.truststore.type=PEM" \
            "ssl.truststore.location=${dir}/ca.pem" >"${CLIENT_SECURITY}"
    )
}

# A throw-away CA and a broker certificate (subject CN=kafka-broker, the super user the controller listener
# sees; names 127.0.0.1 and localhost) for a secure test broker. EC P-256 keys: quick to make and to use.
cmd_certs() {
    local dir="${1:-}"
    [[ -n "${dir}" ]] || die "usage: kafka.sh certs DIR"
    command -v openssl >/dev/null || die "openssl not found on PATH"
    mkdir -p "${dir}"
    (
        umask 077
        cd "${dir}"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
            -subj "/CN=suggestion-bridge test CA" -keyout ca.key -out ca.pem 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -subj "/CN=kafka-broker" -keyout broker.key -out broker.csr 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >broker.ext
        openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
            -extfile broker.ext -out broker.crt 2>/dev/null
        # Kafka's PEM key store wants the key as PKCS#8, followed by the certificate chain.
        openssl pkcs8 -topk8 -nocrypt -in broker.key -out broker.p8
        cat broker.p8 broker.crt ca.pem >broker.pem
        rm -f broker.key broker.p8 broker.csr broker.ext broker.crt ca.srl
    ) || die "openssl could not make the certificates in ${dir}"
    echo "kafka.sh: CA (ca.pem, ca.key) and broker certificate (broker.pem) in ${dir}" >&2
}

cmd_start() {
    local pid
    if pid="$(running_pid)"; then
        echo "kafka.sh: already running on $(bootstrap) (pid ${pid})" >&2
        return 0
    fi
    [[ -f "${PROPS}" && -f "${DATA_DIR}/meta.properties" ]] ||
        die "no formatted broker in ${RUN_DIR}; use 'up' to make a fresh one"
    need_java
    cmd_jars
    require_free_ports "$(bootstrap | cut -d: -f2)" "$(sed -n 's#^controller.quorum.bootstrap.servers=.*:##p' "${PROPS}")"
    launch
}

cmd_down() {
    local signal="${1:-TERM}" pid
    if ! pid="$(running_pid)"; then
        rm -f "${PID_FILE}"
        echo "kafka.sh: not running" >&2
        return 0
    fi
    kill "-${signal}" "${pid}"
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while alive "${pid}" && ((SECONDS < deadline)); do
        sleep 0.1
    done
    if alive "${pid}"; then
        echo "kafka.sh: still running ${STOP_TIMEOUT}s after SIGTERM; sending SIGKILL" >&2
        kill -KILL "${pid}" 2>/dev/null || true
        while alive "${pid}"; do sleep 0.1; done
    fi
    rm -f "${PID_FILE}"
    echo "kafka.sh: stopped (pid ${pid})" >&2
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then
        echo "running pid=${pid} bootstrap=$(bootstrap) run_dir=${RUN_DIR}"
        return 0
    fi
    echo "not running (run dir ${RUN_DIR})"
    return 3
}

cmd_tool() {
    local name="${1:-}" class
    shift || true
    case "${name}" in
        topics) class=org.apache.kafka.tools.TopicCommand ;;
        consumer-groups) class=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
        transactions) class=org.apache.kafka.tools.TransactionsCommand ;;
        acls) class=org.apache.kafka.tools.AclCommand ;;
        configs) class=kafka.admin.ConfigCommand ;;
        *) die "usage: kafka.sh tool topics|consumer-groups|transactions|acls|configs [ARGS...]" ;;
    esac
    running_pid >/dev/null || die "not running (run dir ${RUN_DIR})"
    need_java
    local security=()
    if [[ -f "${CLIENT_SECURITY}" ]]; then
        security=(--command-config "${CLIENT_SECURITY}")
    fi
    run_tool -Xmx256m "${class}" --bootstrap-server "$(bootstrap)" "${security[@]}" "$@"
}

case "${1:-}" in
    jars) cmd_jars ;;
    up) cmd_up ;;
    start) cmd_start ;;
    down | stop) cmd_down TERM ;;
    kill) cmd_down KILL ;;
    status) cmd_status ;;
    tool) shift; cmd_tool "$@" ;;
    certs) shift; cmd_certs "$@" ;;
    *)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
        exit 2
        ;;
esac
