"""`bridge --version` and `bridge --help` answer from the parser alone: none of the heavy libraries the commands
need is imported, so the command line starts at once (issue 9, P3)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("pydantic", "jinja2", "structlog", "aiokafka")

PROBE = """
import json, sys
from bridge.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


@pytest.mark.parametrize("flag", ["--version", "--help", "run --help"])
def test_the_parser_alone_imports_no_heavy_library(flag: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *flag.split()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    imported = json.loads(out.stdout.strip().splitlines()[-1])
    assert imported == [], f"`bridge {flag}` imported {imported}"


def test_a_command_still_finds_its_handler() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bridge", "check", "-f", "/nonexistent/mapping.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert "/nonexistent/mapping.yaml" in out.stderr
