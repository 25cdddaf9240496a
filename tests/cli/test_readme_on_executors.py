"""The README says of `executor.kind: ray` what the code does (issue 19, the submitting side, item 7): a config
with it loads, and no sentence of the README says it is refused."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bridge.config.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_a_ray_executor_config_loads(tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text(yaml.safe_dump({"executor": {"kind": "ray", "address": "ray-head:6379"}}))
    assert load_settings(config).executor.kind == "ray"


def test_the_readme_never_says_ray_is_refused() -> None:
    text = " ".join((ROOT / "README.md").read_text().split())
    sentences = re.split(r"(?<=[.!?])\s+", text)
    about_ray = [s for s in sentences if "kind: ray" in s]
    assert about_ray, "the README documents `executor.kind: ray`"
    assert [s for s in about_ray if re.search(r"\brefused\b|\bnot supported\b", s)] == []
