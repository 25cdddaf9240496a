"""aiokafka's own log lines never reach the user beside the bridge's (issue 19, the submitting side, item 5): they
are the bridge's debug events, seen with `--log-level debug` only, in the bridge's format."""

from __future__ import annotations

from pathlib import Path

from tests.cli.cli_support import bridge

_NOBODY = "127.0.0.1:1"  # nothing listens there: aiokafka logs each failed attempt


def test_an_unreachable_broker_is_the_bridges_lines_only(tmp_path: Path) -> None:
    out = bridge("tail", "--bootstrap-servers", _NOBODY, "--connect-timeout", "1", cwd=tmp_path, timeout=60)
    assert out.returncode == 1
    *retries, last = out.stderr.splitlines()
    assert last.startswith(f"error: cannot reach Kafka at {_NOBODY}")
    assert retries and all("[warning  ] broker_retry" in line for line in retries), out.stderr


def test_with_log_level_debug_they_are_debug_events(tmp_path: Path) -> None:
    out = bridge("--log-level", "debug", "tail", "--bootstrap-servers", _NOBODY, "--connect-timeout", "1", cwd=tmp_path)
    assert out.returncode == 1
    seen = [line for line in out.stderr.splitlines() if "Unable connect" in line and not line.startswith("error:")]
    assert seen, out.stderr
    assert all("[debug    ] aiokafka" in line and "severity=" in line for line in seen), seen
