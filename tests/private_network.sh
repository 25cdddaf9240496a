#!/usr/bin/env bash
# Runs a command (the test session) in a private network namespace that has only loopback, up: there Ray keeps
# every node on 127.0.0.1 (../shared/notes/ray-on-loopback.md), and the Kafka broker, the bridge and the Ray
# cluster the tests start all reach each other. Needs `unshare -n` (root, or user namespaces); without it the
# command runs as it is and the Ray tests skip themselves, saying why.
set -euo pipefail
if unshare -n true 2>/dev/null; then
  exec unshare -n bash -c 'ip link set lo up && exec "$@"' bash "$@"
fi
echo "private_network.sh: unshare -n is not available here; the Ray tests will be skipped" >&2
exec "$@"
