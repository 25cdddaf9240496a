"""schemas/asyncapi.yaml passes the official AsyncAPI parser (@asyncapi/parser, npm) with no error or warning.

Code generators and catalogues read the document with that parser, payload schemas included, so it is the judge.
The parser is installed once with `npm ci` from tests/asyncapi/package-lock.json into .venv/ (outside the tracked
tree); the test skips only on a machine without Node.js, and .ci/run makes sure CI's machine has it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
CHECKER = ROOT / "tests" / "asyncapi"
INSTALL = ROOT / ".venv" / "asyncapi-parser"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js is not installed (.ci/run installs it)")


def _lock_digest() -> str:
    return hashlib.sha256((CHECKER / "package-lock.json").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def node_path() -> Path:
    """The node_modules folder holding the pinned parser, installed by `npm ci` when missing or outdated."""
    marker = INSTALL / ".lock-sha256"
    if marker.is_file() and marker.read_text(encoding="utf-8") == _lock_digest():
        return INSTALL / "node_modules"
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("node is installed but npm is not: install npm to fetch @asyncapi/parser")
    shutil.rmtree(INSTALL, ignore_errors=True)
    INSTALL.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(CHECKER / name, INSTALL / name)
    # --ignore-scripts: nothing in the parser's tree needs an install script, and one of them only phones home.
    done = subprocess.run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=INSTALL,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"npm ci of @asyncapi/parser failed:\n{done.stdout}\n{done.stderr}"
    marker.write_text(_lock_digest(), encoding="utf-8")  # last: an interrupted install is redone next time
    return INSTALL / "node_modules"


def _diagnostics(document: Path, node_path: Path) -> list[dict[str, Any]]:
    """What the official parser reports on `document`, one dict per diagnostic."""
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(CHECKER / "validate.cjs"), str(document)],
        env={**os.environ, "NODE_PATH": str(node_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"the AsyncAPI parser did not run:\n{done.stderr}"
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _problems(diagnostics: list[dict[str, Any]]) -> list[str]:
    return [
        f"{d['severity']} {d['code']} at {'.'.join(map(str, d['path'])) or '(root)'}: {d['message']}"
        for d in diagnostics
        if d["severity"] in {"error", "warning"}
    ]


def test_the_published_asyncapi_document_has_no_error_or_warning(node_path: Path) -> None:
    assert _problems(_diagnostics(SCHEMAS / "asyncapi.yaml", node_path)) == []


def test_the_parser_reads_the_payload_schemas_beside_the_document(node_path: Path, tmp_path: Path) -> None:
    # The check is only worth something if the parser follows the payload `$ref`s into the JSON files: give it
    # the operation event schema as pydantic writes it by default (an OpenAPI discriminator object).
    shutil.copytree(SCHEMAS, tmp_path, dirs_exist_ok=True)
    operation = tmp_path / "bridge.operation.v1.json"
    schema = json.loads(operation.read_text(encoding="utf-8"))
    tag = schema["discriminator"]
    schema["discriminator"] = {"propertyName": tag, "mapping": {"created": "#/$defs/OperationCreated"}}
    operation.write_text(json.dumps(schema), encoding="utf-8")

    problems = _problems(_diagnostics(tmp_path / "asyncapi.yaml", node_path))
    assert any("discriminator" in p and p.startswith("error") for p in problems), problems
