"""What `bridge submit` says reads as the command line's, not its models' (issue 19, the submitting side, items 2-4):
an error names the flag, a refusal names its field once, and a param the template does not declare is a warning
with the closest declared name, where the user submitted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from tests.cli.cli_support import bridge
from tests.client.client_support import fresh_topics
from tests.engine_support import job_component


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
