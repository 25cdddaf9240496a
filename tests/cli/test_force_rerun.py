"""Forcing a rerun after editing a run's script (issue 11, item 11): `--fresh` ignores the resume state and the
cache, `--no-cache` the cache alone; both leave their new results in the cache for later operations."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.cli.cli_support import bridge

_SCRIPT = """\
import json, os
with open(os.environ["BRIDGE_METRICS_FILE"], "a") as f:
    f.write(json.dumps({{"outputs": {{"loss": {loss}}}}}) + "\\n")
"""


def _edit_script(root: Path, loss: float) -> None:
    (root / "train.py").write_text(_SCRIPT.format(loss=loss))


def _operation(root: Path, name: str) -> Path:
    """An operation whose runs report the loss written in train.py: editing it changes no cache key."""
    doc = {
        "version": 1.1,
        "kind": "operation",
        "name": name,
        "matrix": {"kind": "mapping", "values": [{"lr": 0.1}, {"lr": 0.2}]},
        "component": {
            "kind": "component",
            "inputs": [{"name": "lr", "type": "float"}],
            "outputs": [{"name": "loss", "type": "float"}],
            "run": {"kind": "job", "container": {"image": "python", "command": ["python3", "train.py"]}},
        },
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _run(root: Path, op: Path, *flags: str) -> list[dict[str, object]]:
    out = bridge("run", "-f", str(op), "--output", "jsonl", *flags, cwd=root)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def _losses(results: list[dict[str, object]]) -> list[object]:
    return [r["outputs"]["loss"] for r in results]  # type: ignore[index]


def test_fresh_runs_everything_again_after_the_script_changed(tmp_path: Path) -> None:
    first = _operation(tmp_path, "first")
    _edit_script(tmp_path, 1.0)
    assert _losses(_run(tmp_path, first)) == [1.0, 1.0]
    _edit_script(tmp_path, 2.0)
    assert _losses(_run(tmp_path, first)) == [1.0, 1.0]  # answered from the resume state, as documented
    assert _losses(_run(tmp_path, first, "--no-cache")) == [1.0, 1.0]  # the resume state is not the cache
    fresh = _run(tmp_path, first, "--fresh")
    assert _losses(fresh) == [2.0, 2.0] and not any(r["cached"] for r in fresh)
    # The fresh results replaced the cached ones: another operation with the same runs gets them.
    again = _run(tmp_path, _operation(tmp_path, "second"))
    assert _losses(again) == [2.0, 2.0] and all(r["cached"] for r in again)


def test_no_cache_runs_what_the_cache_would_answer_and_caches_the_new_result(tmp_path: Path) -> None:
    _edit_script(tmp_path, 1.0)
    _run(tmp_path, _operation(tmp_path, "first"))
    _edit_script(tmp_path, 3.0)
    assert _losses(_run(tmp_path, _operation(tmp_path, "second"))) == [1.0, 1.0]  # a cache hit, as documented
    rerun = _run(tmp_path, _operation(tmp_path, "third"), "--no-cache")
    assert _losses(rerun) == [3.0, 3.0] and not any(r["cached"] for r in rerun)
    later = _run(tmp_path, _operation(tmp_path, "fourth"))
    assert _losses(later) == [3.0, 3.0] and all(r["cached"] for r in later)


def test_fresh_says_it_ignored_earlier_results(tmp_path: Path) -> None:
    op = _operation(tmp_path, "first")
    _edit_script(tmp_path, 1.0)
    _run(tmp_path, op)
    out = bridge("run", "-f", str(op), "--fresh", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "--fresh: earlier results of this operation are ignored" in out.stderr
    assert "resumed" not in out.stderr
