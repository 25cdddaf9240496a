"""Polyaxonfiles written to disk for the `bridge` command tests of this package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def write(root: Path, doc: dict[str, Any], name: str = "polyaxonfile.yaml") -> Path:
    """`doc` as YAML in `root`; its path."""
    path = root / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def recording_component(inputs: list[dict[str, Any]], *args: str, **component: Any) -> dict[str, Any]:
    """A component whose run writes its argv (after the program) to `argv.txt`, one item per line."""
    script = "import sys; open('argv.txt', 'w').write(chr(10).join(sys.argv[1:]))"
    return {
        "kind": "component",
        "inputs": inputs,
        "run": {"kind": "job", "container": {"command": ["python3", "-c", script, *args]}},
        **component,
    }


def with_typed_component(root: Path) -> None:
    """The quick-start component at `components/typed.yaml` under `root`, where `support.operation` points."""
    (root / "components").mkdir(exist_ok=True)
    source = Path(__file__).parent / "fixtures" / "components" / "typed.yaml"
    (root / "components" / "typed.yaml").write_text(source.read_text())
