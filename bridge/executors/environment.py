"""The environment a run gets: an allow-list of the bridge's own variables, never the bridge's settings or secrets.

The bridge's environment holds its Kafka password (`BRIDGE_KAFKA__SASL_PASSWORD`, supplied by `envFrom` in
deploy/k8s), cloud credentials and whatever else its host put there. A run is code a topic writer chose, so it
starts from nothing and gets, in this order (a later layer wins):

1. `BASE_NAMES` and `BASE_PREFIXES` below, from the bridge's environment: what a process needs to find programs,
   its home, its locale, its time zone and its temp dir. `PATH` starts with the bridge's interpreter's bin dir,
   so `python3` in a command is the bridge's own Python (with `bridge.tracking`).
   `VIRTUAL_ENV` is passed because that first `PATH` entry is usually the bridge's virtualenv and tools such as
   pip read it to agree with `python3`. `PYTHONPATH` is not: it would change what a run imports, and the bridge's
   interpreter finds `bridge.tracking` in its own site-packages without it; pass it explicitly if a run needs it.
   `SSL_CERT_FILE` and `SSL_CERT_DIR` are the host's trust store (public certificates, read by OpenSSL), so a run
   fetching over HTTPS trusts what the bridge trusts; proxies (`HTTPS_PROXY`, which may hold a password) are not.
2. The config's `executor.env_passthrough`: exact names, or prefixes written `NAME*`.
3. The run's own variables: the template's `env`, then the bridge's per-run `BRIDGE_RUN_ID`, `BRIDGE_OPERATION_ID`,
   `BRIDGE_ATTEMPT`, `BRIDGE_METRICS_FILE`, `BRIDGE_OUTPUTS_DIR` (set by the scheduler) and `BRIDGE_NODE_ID`.

No other `BRIDGE_*` variable of the bridge ever reaches a run, whatever layer 2 names: `BRIDGE_*` is the bridge's
configuration, secrets included.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

BASE_NAMES = frozenset(
    {
        *("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "VIRTUAL_ENV"),
        *("SSL_CERT_FILE", "SSL_CERT_DIR"),
    }
)
BASE_PREFIXES = ("LC_",)
SETTINGS_PREFIX = "BRIDGE_"
NODE_ID = "BRIDGE_NODE_ID"


def _passes(name: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if pattern.endswith("*"):
            if name.startswith(pattern[:-1]):
                return True
        elif name == pattern:
            return True
    return False


def inherited(source: Mapping[str, str], passthrough: Iterable[str] = ()) -> dict[str, str]:
    """The variables of `source` (the bridge's environment) a run may see: the base allow-list and `passthrough`,
    never a `BRIDGE_*` one."""
    patterns = list(passthrough)
    return {
        name: value
        for name, value in source.items()
        if not name.startswith(SETTINGS_PREFIX)
        and (name in BASE_NAMES or name.startswith(BASE_PREFIXES) or _passes(name, patterns))
    }


def base_environment(passthrough: Iterable[str] = (), source: Mapping[str, str] | None = None) -> dict[str, str]:
    """What every run inherits: the allowed part of `source` (default: this process's environment), with the
    interpreter's bin dir first on `PATH`."""
    env = inherited(os.environ if source is None else source, passthrough)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", os.defpath)
    env["PYTHONUNBUFFERED"] = "1"  # metrics and logs reach their files as the run writes them
    return env


def run_environment(
    run_env: Mapping[str, str],
    *,
    passthrough: Iterable[str] = (),
    source: Mapping[str, str] | None = None,
    node_id: str | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A run's whole environment: `base` (default: `base_environment` of `source` and `passthrough`), then
    `run_env` (the template's env and the per-run variables)."""
    env = dict(base) if base is not None else base_environment(passthrough, source)
    env.update(run_env)
    env[NODE_ID] = node_id or socket.gethostname()  # after the template's env, which cannot pose as another node
    return env
