"""`bridge dash` as a command: a bad config or a broker that cannot be reached is one clear line and a non-zero
exit, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _dash(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", "dash", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def test_a_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text("kafka: {bootstrap_servers: 127.0.0.1:1, no_such_key: 1}\n")
    done = _dash("-c", str(config), cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "no_such_key" in lines[0], done.stderr


def test_an_unreachable_broker_is_one_line_and_exit_1(tmp_path: Path) -> None:
    done = _dash("--bootstrap-servers", "127.0.0.1:1", "--connect-timeout", "2", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error:") and "127.0.0.1:1" in lines[0], done.stderr
