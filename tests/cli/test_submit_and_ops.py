"""`bridge submit`, `dlq`, `stop`, `logs` and `tail` against a real broker and a running bridge, as a user runs
them (issue 11, items 7 and 8): every refusal is seen on the submitting side, with its reason and field."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.config.settings import BridgeSettings
from bridge.contract.identity import run_id_of
from tests.cli.cli_support import bridge
from tests.client.client_support import fresh_topics
from tests.polling import eventually
from tests.service.service_support import count_results, read_until, record_names, running, service_settings

pytestmark = pytest.mark.kafka

_ECHO = {
    "component": {
        "kind": "component",
        "name": "echo",
        "inputs": [{"name": "word", "type": "str"}],
        "run": {
            "kind": "job",
            "container": {
                "image": "python:3.11",
                "command": [
                    sys.executable,
                    "-c",
                    "import sys; print('said', sys.argv[1]); print('quiet', file=sys.stderr)",
                ],
                "args": ["{{ word }}"],
            },
        },
    },
    "matrix": {"kind": "mapping"},
}


class Bridge:
    """A running bridge, its config (templates and all), and a client config that names only its broker."""

    def __init__(self, settings: BridgeSettings, root: Path) -> None:
        self.settings = settings
        self.root = root
        self.config = root / "bridge.yaml"
        self.client_config = root / "client.yaml"
        topics = settings.topics.model_dump()
        kafka = {"bootstrap_servers": settings.kafka.bootstrap_servers, "group_id": settings.kafka.group_id}
        self.client_config.write_text(yaml.safe_dump({"kafka": kafka, "topics": topics}))

    async def run(self, *args: str, stdin: str | None = None, timeout: float = 90) -> Any:
        """`bridge ARGS` in a subprocess, the service going on meanwhile."""
        return await asyncio.to_thread(bridge, *args, cwd=self.root, stdin=stdin, timeout=timeout)


@pytest.fixture
async def served(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Bridge]:
    settings = service_settings(kafka_bootstrap, tmp_path, templates={"echo": _ECHO})
    async with running(settings):
        yield Bridge(settings, tmp_path)


def _suggestions(*params: dict[str, Any], ids: list[str]) -> str:
    return json.dumps([{"id": i, "params": p} for i, p in zip(ids, params, strict=True)])


async def test_submit_prints_each_suggestions_state_and_exits_2_when_one_is_refused(served: Bridge) -> None:
    stdin = _suggestions({"name": "ok"}, {"name": "bad", "sleep": "abc"}, ids=["good", "bad"])
    out = await served.run("submit", "-c", str(served.client_config), "--study", "s", "--template", "job", stdin=stdin)
    assert out.returncode == 2, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    assert lines["bad"].split()[1:3] == [run_id_of("s", "job", "bad"), "refused"]
    assert "invalid_params at suggestions[1].params.sleep" in lines["bad"]
    assert lines["good"].split()[1:3] in (
        [run_id_of("s", "job", "good"), "accepted"],
        [run_id_of("s", "job", "good"), "succeeded"],
    )
    assert "1 suggestion(s) refused" in out.stderr


async def test_submit_exits_0_when_each_suggestion_is_accepted_or_answered(served: Bridge) -> None:
    stdin = _suggestions({"name": "ok"}, {"name": "fine"}, ids=["ok", "fine"])
    out = await served.run("submit", "-c", str(served.client_config), "--study", "s", "--template", "job", stdin=stdin)
    assert out.returncode == 0, out.stdout + out.stderr
    states = {line.split()[0]: line.split()[2] for line in out.stdout.splitlines()[1:]}
    assert states.keys() == {"ok", "fine"}
    assert set(states.values()) <= {"accepted", "succeeded"}, out.stdout


async def test_submit_exits_1_when_nothing_answers_within_the_wait(kafka_bootstrap: str, tmp_path: Path) -> None:
    topics = await fresh_topics(kafka_bootstrap)  # as a bridge left them; none serves them now
    config = tmp_path / "client.yaml"
    config.write_text(yaml.safe_dump({"kafka": {"bootstrap_servers": kafka_bootstrap}, "topics": topics.model_dump()}))
    stdin = _suggestions({"name": "ok"}, ids=["lonely"])
    out = await asyncio.to_thread(
        bridge,
        "submit",
        "-c",
        str(config),
        "--study",
        "s",
        "--template",
        "job",
        "--wait",
        "2",
        cwd=tmp_path,
        stdin=stdin,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    (line,) = out.stdout.splitlines()[1:]
    assert line.split()[0] == "lonely" and "no answer yet" in line and "is `bridge serve` running?" in line
    assert "1 suggestion(s) without an answer within 2 s" in out.stderr


async def test_submit_with_the_bridges_templates_refuses_locally_and_sends_nothing(served: Bridge) -> None:
    stdin = _suggestions({"name": "ok"}, {"name": "bad", "sleep": "abc"}, ids=["good", "bad"])
    # An unreachable broker: a send would fail with exit 1 after the connect timeout, not 2 at once.
    out = await served.run(
        "submit",
        "-c",
        str(served.config),
        "--bootstrap-servers",
        "127.0.0.1:1",
        "--study",
        "s",
        "--template",
        "job",
        stdin=stdin,
    )
    assert out.returncode == 2, out.stderr
    assert "suggestions[1].params.sleep" in out.stdout and "refused" in out.stdout
    assert "nothing sent" in out.stderr


async def test_a_refusal_shows_in_dlq_and_in_tail(served: Bridge) -> None:
    stdin = _suggestions({"name": "nope", "sleep": "abc"}, ids=["bad"])
    config = str(served.client_config)
    sent = await served.run("submit", "-c", config, "--study", "s", "--template", "job", "--no-wait", stdin=stdin)
    assert sent.returncode == 0 and sent.stdout.split() == ["bad"], sent.stderr
    topics = served.settings.topics
    await read_until(served.settings.kafka.bootstrap_servers, topics.dead_letters, lambda ms: len(ms) >= 1)

    dlq = await served.run("dlq", "-c", config, "--output", "jsonl")
    assert dlq.returncode == 0, dlq.stderr
    letters = [json.loads(line) for line in dlq.stdout.splitlines()]
    assert [(m["error"]["type"], m["error"]["field"], m["topic"]) for m in letters] == [
        ("invalid_params", "suggestions[0].params.sleep", topics.suggestions)
    ]
    table = await served.run("dlq", "-c", config)
    assert "invalid_params" in table.stdout and "suggestions[0].params.sleep" in table.stdout, table.stderr

    tail = await served.run("tail", "-c", config, "--from-beginning", "--limit", "1", "--output", "jsonl")
    results = [json.loads(line) for line in tail.stdout.splitlines() if '"bridge.result/v1"' in line]
    assert [(r["suggestion_id"], r["status"], r["error"]["type"], r["error"]["field"]) for r in results] == [
        ("bad", "failed", "invalid_params", "suggestions[0].params.sleep")
    ]


async def test_stop_stops_a_long_run(served: Bridge) -> None:
    gate = served.root / "never"
    stdin = _suggestions({"name": "long", "wait_for": str(gate)}, ids=["long"])
    config = str(served.client_config)
    sent = await served.run("submit", "-c", config, "--study", "s", "--template", "job", "--no-wait", stdin=stdin)
    assert sent.returncode == 0, sent.stderr
    await eventually(lambda: record_names(served.root) == ["long"], timeout=60)
    run_id = run_id_of("s", "job", "long")

    out = await served.run("stop", run_id, "--study", "s", "-c", config, "--wait", "30")
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()[1:]
    assert line.split()[:3] == ["long", run_id, "stopped"]
    assert not gate.exists()


async def test_stop_of_another_studys_run_is_refused_with_exit_2(served: Bridge) -> None:
    gate = served.root / "never"
    stdin = _suggestions({"name": "long", "wait_for": str(gate)}, ids=["long"])
    config = str(served.client_config)
    await served.run("submit", "-c", config, "--study", "s", "--template", "job", "--no-wait", stdin=stdin)
    await eventually(lambda: record_names(served.root) == ["long"], timeout=60)

    out = await served.run("stop", run_id_of("s", "job", "long"), "--study", "other", "-c", config, "--wait", "30")
    assert out.returncode == 2
    assert "control_refused" in out.stderr
    gate.touch()  # let it end: the drain waits for it


async def test_stop_of_a_run_nobody_knows_says_so_and_exits_1(served: Bridge) -> None:
    config = str(served.client_config)
    out = await served.run("stop", "--study", "s", "--suggestion", "never-sent", "-c", config, "--wait", "30")
    assert out.returncode == 1, out.stderr
    assert "nothing stopped" in out.stderr and "suggestion never-sent of study s" in out.stderr


async def test_stop_of_a_finished_run_shows_its_result_and_exits_1(served: Bridge) -> None:
    stdin = _suggestions({"word": "done"}, ids=["d"])
    config = str(served.client_config)
    sent = await served.run("submit", "-c", config, "--study", "s", "--template", "echo", "--wait", "60", stdin=stdin)
    assert sent.returncode == 0, sent.stderr

    out = await served.run("stop", "--study", "s", "--suggestion", "d", "-c", config, "--wait", "30")
    assert out.returncode == 1, out.stderr
    (line,) = out.stdout.splitlines()[1:]
    assert line.split()[:4] == ["d", run_id_of("s", "echo", "d"), "succeeded", "(already"]
    assert "finished before the stop came" in out.stderr


async def test_logs_prints_a_served_runs_stdout(served: Bridge) -> None:
    stdin = _suggestions({"word": "hello"}, ids=["w"])
    config = str(served.client_config)
    out = await served.run("submit", "-c", config, "--study", "s", "--template", "echo", "--wait", "60", stdin=stdin)
    assert out.returncode == 0, out.stderr
    await read_until(served.settings.kafka.bootstrap_servers, served.settings.topics.results, count_results(1))

    logs = await served.run("logs", run_id_of("s", "echo", "w"), "-c", str(served.config))
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == "said hello\n"
    assert "quiet" in logs.stderr

    missing = await served.run("logs", run_id_of("s", "echo", "nope"), "-c", str(served.config))
    assert missing.returncode == 2 and "on the host of the bridge that ran it" in missing.stderr
