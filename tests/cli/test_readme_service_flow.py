"""The README's Kafka service commands, run in the order it gives them, do what it says (issue 19, the submitting
side, items 1, 5 and 8): `tail` after `submit` shows the result, `bridge logs RUN_ID` without `-c` finds the run
a hand-started `serve` of the quick-start ran, and `serve` tells only the bridge's own lines at its default level,
`bridge_ready` once its partitions are assigned.

Each command is the README's line, pointed at this session's broker and fresh topics by the environment variables
the README documents, and run where the user stands (here a scratch directory, `examples/` made absolute)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.polling import eventually
from tests.service.service_support import count_results, read_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\S* \[\w+ *\] (\w+)")  # the bridge's own: time [level] event


def _readme_commands() -> dict[str, str]:
    """The `bridge` lines of the README's "The Kafka service" block, by subcommand, comments dropped."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## The Kafka service") :]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert block is not None
    lines = [line.split("  #")[0].strip() for line in block.group(1).splitlines()]
    commands = {}
    for line in lines:
        if line.startswith(".venv/bin/bridge "):
            commands[line.split()[1]] = line
    return commands


def _as_run_here(line: str) -> str:
    """The README's line as a shell command run in another directory: this interpreter's `bridge`, the repo's
    examples by their absolute path."""
    bridge = f"{shlex.quote(sys.executable)} -m bridge"
    return line.replace(".venv/bin/bridge", bridge, 1).replace(" examples/", f" {ROOT}/examples/")


class Session:
    """Where the user types the README's commands: a directory, and an environment naming the broker and topics."""

    def __init__(self, root: Path, bootstrap: str) -> None:
        prefix = f"readme-{uuid.uuid4().hex[:8]}"
        names = ("suggestions", "results", "operations", "dead_letters", "control", "ledger")
        self.root = root
        self.env = {
            "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "BRIDGE_KAFKA__GROUP_ID": f"{prefix}-group",
            "BRIDGE_HTTP__PORT": "0",
            **{f"BRIDGE_TOPICS__{n.upper()}": f"{prefix}.{n}" for n in names},
        }

    def run(self, line: str, *extra: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        """The README's `line` with `extra` arguments, as the user runs it."""
        command = " ".join([_as_run_here(line), *map(shlex.quote, extra)])
        return subprocess.run(
            ["bash", "-c", command],
            cwd=self.root,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture
async def served(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[tuple[Session, Callable[[], list[str]]]]:
    """The README's `serve` line, started by hand in a scratch directory; its stderr lines so far."""
    session = Session(tmp_path, kafka_bootstrap)
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            ["bash", "-c", f"exec {_as_run_here(_readme_commands()['serve'])}"],
            cwd=tmp_path,
            env={**os.environ, **session.env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def lines() -> list[str]:
        return log.read_text().splitlines()

    def ready() -> bool:
        assert process.poll() is None, "\n".join(lines())
        return any("bridge_ready" in line for line in lines())

    try:
        await eventually(ready, timeout=90, what=lambda: "\n".join(lines()[-20:]))
        yield session, lines
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 60)


async def test_the_readmes_commands_in_its_order_show_the_result_and_the_runs_logs(
    served: tuple[Session, Callable[[], list[str]]],
) -> None:
    session, serve_lines = served
    commands = _readme_commands()

    submitted = await asyncio.to_thread(session.run, commands["submit"], "--wait", "60")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    (row,) = submitted.stdout.splitlines()[1:]
    run_id = row.split()[1]

    # The README's `tail`, after `submit` as it says, once the result is published (a quick run's result comes
    # before its user types `tail`); `--limit 1` so that it ends once it shows the result.
    bootstrap, results_topic = session.env["BRIDGE_KAFKA__BOOTSTRAP_SERVERS"], session.env["BRIDGE_TOPICS__RESULTS"]
    await read_until(bootstrap, results_topic, count_results(1))
    tailed = await asyncio.to_thread(session.run, commands["tail"], "--limit", "1", "--output", "jsonl", timeout=30)
    assert tailed.returncode == 0, tailed.stderr
    results = [json.loads(line) for line in tailed.stdout.splitlines() if '"bridge.result/v1"' in line]
    assert [(r["run_id"], r["status"]) for r in results] == [(run_id, "succeeded")]

    logs = await asyncio.to_thread(session.run, commands["logs"].replace("RUN_ID", run_id))
    assert logs.returncode == 0, logs.stderr
    assert f"run {run_id}, attempt 1" in logs.stderr
    assert (session.root / ".bridge" / "runs" / run_id).is_dir()

    lines = serve_lines()
    foreign = [line for line in lines if not _LOG_LINE.match(line)]
    assert foreign == [], "only the bridge's own lines at the default level"
    events = [m.group(1) for m in map(_LOG_LINE.match, lines) if m is not None]
    assert events.index("partitions_assigned") < events.index("bridge_ready"), "\n".join(lines)
