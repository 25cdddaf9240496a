"""What `bridge submit` says reads as the command line's, not its models' (issue 19, the submitting side, items 2-4):
an error names the flag, a refusal names its field once, and a param the template does not declare is a warning
with the closest declared name, where the user submitted: from the config's templates with `-c`, else from what
the bridge built or answered."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from bridge.config.settings import load_settings
from bridge.contract.identity import run_id_of
from tests.cli.cli_support import bridge
from tests.client.client_support import fresh_topics, serve_process
from tests.engine_support import job_component
from tests.optuna.optuna_support import final_results, served_config


def _config(root: Path, bootstrap: str = "127.0.0.1:1", topics: dict[str, str] | None = None) -> Path:
    """The bridge's config with its template `job`; by default a broker nobody serves (nothing must be sent)."""
    template = {"component": job_component(), "matrix": {"kind": "mapping"}, "params": {"record": {"value": "r"}}}
    data = {"kafka": {"bootstrap_servers": bootstrap}, "templates": {"job": template}, "topics": topics or {}}
    path = root / "bridge.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_submit_without_template_names_the_flag(tmp_path: Path) -> None:
    out = bridge("submit", "--study", "s", "--connect-timeout", "1", cwd=tmp_path, stdin='[{"name": "a"}]')
    assert out.returncode == 2
    assert out.stderr.startswith("error: --template is required"), out.stderr
    assert "Input should be" not in out.stderr


def test_submit_without_study_names_the_flag(tmp_path: Path) -> None:
    out = bridge("submit", "--template", "job", "--connect-timeout", "1", cwd=tmp_path, stdin='[{"name": "a"}]')
    assert out.returncode == 2
    assert out.stderr.startswith("error: --study is required"), out.stderr


def test_a_bad_study_names_the_flag_and_the_value(tmp_path: Path) -> None:
    out = bridge("submit", "--study", "a b", "--template", "job", cwd=tmp_path, stdin='[{"name": "a"}]')
    assert out.returncode == 2
    assert out.stderr.startswith("error: --study 'a b': "), out.stderr


def test_a_refusal_names_its_field_once(tmp_path: Path) -> None:
    config = _config(tmp_path)
    stdin = json.dumps([{"id": "bad", "params": {"name": "n", "sleep": "abc"}}])
    out = bridge("submit", "-c", str(config), "--study", "s", "--template", "job", cwd=tmp_path, stdin=stdin)
    assert out.returncode == 2, out.stderr
    (row,) = out.stdout.splitlines()[1:]
    assert "invalid_params at suggestions[0].params.sleep: " in row
    assert row.count("suggestions[0].params.sleep") == 1, row


@pytest.mark.kafka
async def test_a_misspelt_param_is_a_warning_with_what_was_meant(kafka_bootstrap: str, tmp_path: Path) -> None:
    topics = await fresh_topics(kafka_bootstrap)
    config = _config(tmp_path, kafka_bootstrap, topics.model_dump())
    stdin = json.dumps([{"id": "t-1", "params": {"name": "n", "slep": 2}}])
    out = await asyncio.to_thread(
        bridge,
        "submit",
        *("-c", str(config), "--study", "s", "--template", "job", "--no-wait"),
        cwd=tmp_path,
        stdin=stdin,
    )
    assert out.returncode == 0, out.stderr  # accepted, as the bridge accepts it: a context param
    assert out.stdout.split() == ["t-1"]
    (warning,) = [line for line in out.stderr.splitlines() if line.startswith("warning:")]
    assert warning.startswith("warning: suggestions[0].params.slep: the template `job` declares no `slep`")
    assert warning.endswith("did you mean `sleep`?")


@pytest.mark.kafka
async def test_without_the_config_the_bridges_answer_carries_the_warning(kafka_bootstrap: str, tmp_path: Path) -> None:
    """`bridge submit` without `-c` does not know the template: the bridge tells of the misspelt param, in its
    result on the topic and in what `bridge submit` prints: on the first submission, whose answer is `accepted`
    (no result yet), from the operation the bridge built for it (its `created` event); once the run ended, from
    the answer's result. Each time once."""
    served = tmp_path / "served"
    served.mkdir()
    config = served_config(served, kafka_bootstrap)
    settings = load_settings(config)
    env = {  # the broker, group and topics only, from the environment: no config file, no template
        "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "BRIDGE_KAFKA__GROUP_ID": settings.kafka.group_id,
        **{f"BRIDGE_TOPICS__{name.upper()}": topic for name, topic in settings.topics.model_dump().items()},
    }
    gate = tmp_path / "gate"  # t-1's run ends once it exists: its first answer cannot be a result
    stdin = json.dumps([{"id": "t-1", "params": {"name": "n", "slep": 2, "wait_for": str(gate)}}])
    said = (
        "params.slep: the template `job` declares no `slep`; the run gets it as a context param only;"
        " did you mean `sleep`?"
    )

    def submit(stdin: str, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess[str]:
        return bridge("submit", *flags, "--study", "s", "--template", "job", cwd=tmp_path, stdin=stdin, env=env)

    async with serve_process(config, served):
        first = await asyncio.to_thread(submit, stdin, env)
        gate.touch()
        (result,) = await final_results(kafka_bootstrap, settings.topics.results, "s", lambda rs: len(rs) >= 1)
        # Sent again once its run finished: the answer is a copy of that result, with its warning.
        again = await asyncio.to_thread(submit, stdin, env)
        # With the bridge's config the warning is printed before sending, and not again from the answer.
        checked = await asyncio.to_thread(submit, stdin, {}, "-c", str(config))
        # Who cannot read the operations topic (here: it names one the bridge does not write) learns nothing from
        # it: an accepted answer's warning comes with its result only, and the exit code is the same.
        unread = {**env, "BRIDGE_TOPICS__OPERATIONS": f"{settings.topics.operations}-unread"}
        blind_gate = tmp_path / "blind-gate"
        params = {"name": "n2", "slep": 2, "wait_for": str(blind_gate)}
        blind = await asyncio.to_thread(submit, json.dumps([{"id": "t-2", "params": params}]), unread)
        blind_gate.touch()
    # The first submission's answer: accepted, with no result yet; the warning from the operation the bridge built.
    assert first.returncode == 0, first.stdout + first.stderr
    (row,) = first.stdout.splitlines()[1:]
    assert row.split()[:3] == ["t-1", run_id_of("s", "job", "t-1"), "accepted"], row
    warnings = [line for line in first.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: suggestion t-1: {said}"], first.stderr
    assert result["warnings"] == [said]
    assert again.returncode == 0, again.stdout + again.stderr
    (row,) = again.stdout.splitlines()[1:]
    assert row.split()[:4] == ["t-1", run_id_of("s", "job", "t-1"), "replayed", "(succeeded)"], row
    warnings = [line for line in again.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: suggestion t-1: {said}"], again.stderr
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "replayed" in checked.stdout
    warnings = [line for line in checked.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: suggestions[0].{said}"], checked.stderr
    assert blind.returncode == 0, blind.stdout + blind.stderr
    (row,) = blind.stdout.splitlines()[1:]
    assert row.split()[:3] == ["t-2", run_id_of("s", "job", "t-2"), "accepted"], row
    assert "warning:" not in blind.stderr, blind.stderr
