#!/usr/bin/env bash
# `make demo`: Optuna's TPE tunes the quick-start model through the Kafka bridge, end to end, on this machine.
#
#   1. a fresh single-node Kafka broker in .bridge/demo-kafka on free ports (deploy/kafka/kafka.sh),
#      unless BRIDGE_KAFKA_BOOTSTRAP=host:port names a running broker to use instead (left running);
#   2. `bridge serve -c examples/quick-start/bridge.yaml` in the background, logging to .bridge/demo/bridge.log,
#      waited for until its /readyz answers 200;
#   3. examples/optuna/optimize.py against it: `study.optimize(BridgeObjective(...), n_jobs=4)`, the study's
#      MedianPruner stopping runs through the bridge (arguments to this script are passed on to it);
#   4. on exit, however it happens: SIGTERM to the bridge (it drains: running runs finish, results are
#      published, offsets committed), then the broker is stopped.
#
# The Makefile's `install` target has set up .venv; this script installs nothing. Environment:
#   BRIDGE_KAFKA_BOOTSTRAP   an existing broker (host:port) to use instead of starting one
#   BRIDGE_DEMO_HTTP_PORT    the bridge's HTTP port (default 8080 when free, else any free port)
#   BRIDGE_DEMO_CONFIG       the bridge config (default examples/quick-start/bridge.yaml)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# Maven 3.8 (jansi) writes ANSI reset codes (ESC[0m) when it starts and ends, even with -B -q -Dstyle.color=never,
# which only turn colours off: they leaked into the demo's output. Only this property, set before Maven starts
# (MAVEN_OPTS, not a -D on its command line), stops them.
export MAVEN_OPTS="${MAVEN_OPTS:+${MAVEN_OPTS} }-Djansi.noreset=true"
BIN="${ROOT}/.venv/bin"
PY="${BIN}/python"
CONFIG="${BRIDGE_DEMO_CONFIG:-examples/quick-start/bridge.yaml}"
WORKDIR=".bridge/demo"
BRIDGE_LOG="${WORKDIR}/bridge.log"
export KAFKA_RUN_DIR="${ROOT}/.bridge/demo-kafka"
READY_TIMEOUT=60 # seconds for the bridge to connect and get its partitions
DRAIN_TIMEOUT=60 # seconds for the bridge to drain after SIGTERM (its shutdown_grace_s is 30)

BRIDGE_PID=""
OPTIMIZER_PID=""
OWN_BROKER=""

say() { echo "demo: $*" >&2; }
die() {
    say "error: $*"
    exit 1
}

((BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] >= 501)) || die "needs bash 5.1 or newer (wait -n -p)"
[[ -x "${BIN}/bridge" ]] || die "${BIN}/bridge not found: run 'make demo' (its install step sets up .venv)"
[[ -f "${CONFIG}" ]] || die "no bridge config at ${CONFIG}"

# Free TCP ports on 127.0.0.1, all held open at once so they differ. Arguments: ports to prefer when free.
free_ports() {
    "${PY}" - "$@" <<'EOF'
import socket, sys
held = []
def grab(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the bridge's server does: TIME_WAIT is free
    s.bind(("0.0.0.0" if port else "127.0.0.1", port))  # the bridge's HTTP server binds 0.0.0.0
    held.append(s)
    return s.getsockname()[1]
for want in sys.argv[1:]:
    want = int(want)
    try:
        print(grab(want))
    except OSError:
        print(grab(0))
EOF
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "${OPTIMIZER_PID}" ]] && kill -0 "${OPTIMIZER_PID}" 2>/dev/null; then
        kill -TERM "${OPTIMIZER_PID}" 2>/dev/null || true  # interrupted: it ignores SIGINT in the background
        wait "${OPTIMIZER_PID}" 2>/dev/null || true
    fi
    if [[ -n "${BRIDGE_PID}" ]] && kill -0 "${BRIDGE_PID}" 2>/dev/null; then
        say "stopping the bridge (SIGTERM; it drains running runs, publishes and commits)"
        kill -TERM "${BRIDGE_PID}" 2>/dev/null || true
        local deadline=$((SECONDS + DRAIN_TIMEOUT))
        while kill -0 "${BRIDGE_PID}" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.2
        done
        if kill -0 "${BRIDGE_PID}" 2>/dev/null; then
            say "the bridge did not exit ${DRAIN_TIMEOUT}s after SIGTERM; sending SIGKILL"
            kill -KILL "${BRIDGE_PID}" 2>/dev/null || true
        fi
        local brc=0
        wait "${BRIDGE_PID}" 2>/dev/null || brc=$?
        say "bridge exited with status ${brc}"
    fi
    if [[ -n "${OWN_BROKER}" ]]; then
        bash deploy/kafka/kafka.sh down || true
    fi
    say "logs: bridge ${BRIDGE_LOG}; runs and cache ${WORKDIR}/"
    [[ -z "${OWN_BROKER}" ]] || say "      broker ${KAFKA_RUN_DIR}/logs/server.log"
    say "done in ${SECONDS}s (exit status ${rc})"
    exit "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "${WORKDIR}"

# ---- 1. the broker ---------------------------------------------------------------------------------------
if [[ -n "${BRIDGE_KAFKA_BOOTSTRAP:-}" ]]; then
    BOOTSTRAP="${BRIDGE_KAFKA_BOOTSTRAP}"
    HTTP_PORT="$(free_ports "${BRIDGE_DEMO_HTTP_PORT:-8080}")"
    say "using the broker at ${BOOTSTRAP} (BRIDGE_KAFKA_BOOTSTRAP)"
else
    bash deploy/kafka/kafka.sh jars
    # A broker left behind by an interrupted demo (this run dir only): stop it, then start a fresh one.
    bash deploy/kafka/kafka.sh down 2>/dev/null || true
    { read -r HTTP_PORT && read -r KAFKA_PORT && read -r KAFKA_CONTROLLER_PORT; } \
        < <(free_ports "${BRIDGE_DEMO_HTTP_PORT:-8080}" 0 0)
    export KAFKA_PORT KAFKA_CONTROLLER_PORT
    BOOTSTRAP="127.0.0.1:${KAFKA_PORT}"
    say "starting a Kafka broker on ${BOOTSTRAP} (run dir ${KAFKA_RUN_DIR})"
    OWN_BROKER=1
    bash deploy/kafka/kafka.sh up
fi

# ---- 2. the bridge ---------------------------------------------------------------------------------------
say "starting 'bridge serve -c ${CONFIG}' (HTTP on :${HTTP_PORT}, log ${BRIDGE_LOG})"
"${BIN}/bridge" --log-level info serve -c "${CONFIG}" --bootstrap-servers "${BOOTSTRAP}" \
    --group-id suggestion-bridge-demo --http-port "${HTTP_PORT}" --workdir "${WORKDIR}" \
    >"${BRIDGE_LOG}" 2>&1 &
BRIDGE_PID=$!

ready() {
    "${PY}" -c 'import sys, urllib.request
try:
    sys.exit(urllib.request.urlopen(sys.argv[1], timeout=2).status != 200)
except OSError:
    sys.exit(1)' "http://127.0.0.1:${HTTP_PORT}/readyz"
}
deadline=$((SECONDS + READY_TIMEOUT))
until ready; do
    if ! kill -0 "${BRIDGE_PID}" 2>/dev/null; then
        tail -n 30 "${BRIDGE_LOG}" >&2 || true
        BRIDGE_PID=""
        die "the bridge exited during start-up (log above, in full in ${BRIDGE_LOG})"
    fi
    ((SECONDS < deadline)) || { tail -n 30 "${BRIDGE_LOG}" >&2; die "the bridge was not ready within ${READY_TIMEOUT}s"; }
    sleep 0.3
done
say "bridge ready (pid ${BRIDGE_PID}); metrics at http://127.0.0.1:${HTTP_PORT}/metrics"
say "watch results and operations in a second terminal:"
say "    ${BIN}/bridge tail --bootstrap-servers ${BOOTSTRAP}"
echo >&2

# ---- 3. the optimizer ------------------------------------------------------------------------------------
# In the background, so that a bridge dying under it ends the demo at once rather than at its --timeout.
"${PY}" -u examples/optuna/optimize.py --bootstrap-servers "${BOOTSTRAP}" --config "${CONFIG}" "$@" &
OPTIMIZER_PID=$!
rc=0
finished=""
wait -n -p finished "${OPTIMIZER_PID}" "${BRIDGE_PID}" || rc=$?
echo >&2
if [[ "${finished}" == "${BRIDGE_PID}" ]]; then
    BRIDGE_PID=""  # reaped
    tail -n 30 "${BRIDGE_LOG}" >&2 || true
    die "the bridge exited (status ${rc}) while the optimizer was waiting for it; see ${BRIDGE_LOG}"
fi
OPTIMIZER_PID=""  # reaped
exit "${rc}"
