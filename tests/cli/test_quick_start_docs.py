"""What a new user copies from examples/quick-start/README.md works, and `make demo`'s Maven step prints no
escape codes (issue 11, item 13)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICK_START = ROOT / "examples" / "quick-start"
README = QUICK_START / "README.md"


def _shell_lines(markdown: str) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", markdown, flags=re.DOTALL)
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_every_file_the_readme_names_is_in_the_repo() -> None:
    text = README.read_text()
    links = [t for t in re.findall(r"\]\(([^)]+)\)", text) if "://" not in t]
    named = [t for t in re.findall(r"`([^`\s]+)`", text) if re.search(r"/|\.(py|ya?ml|md)$", t)]
    missing = [t for t in links + named if not ((QUICK_START / t).exists() or (ROOT / t).exists())]
    assert missing == []


@pytest.mark.slow
def test_the_by_hand_command_works_outside_the_venv(tmp_path: Path) -> None:
    (command,) = [line for line in _shell_lines(README.read_text()) if line.startswith("cd examples/quick-start")]
    venv_bin = str(ROOT / ".venv" / "bin")
    path = ":".join(p for p in os.environ["PATH"].split(":") if p != venv_bin and "/.venv/" not in p)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    out = subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env={**env, "PATH": path},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "done in" in out.stdout and "loss=" in out.stdout


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("mvn") is None, reason="needs Maven, as `make demo` does")
def test_the_demos_maven_step_prints_no_escape_codes(tmp_path: Path) -> None:
    # kafka.sh as the demo runs it, in a scratch copy without jars, so that Maven really runs.
    home = tmp_path / "kafka"
    home.mkdir()
    for name in ("kafka.sh", "pom.xml"):
        shutil.copy(ROOT / "deploy" / "kafka" / name, home / name)
    (export,) = [line for line in (ROOT / "deploy" / "demo.sh").read_text().splitlines() if "MAVEN_OPTS=" in line]
    env = {k: v for k, v in os.environ.items() if k != "MAVEN_OPTS"}
    out = subprocess.run(
        ["bash", "-c", f'{export}\nbash "{home}/kafka.sh" jars'],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert any((home / "jars").glob("kafka_2.13-*.jar"))
    assert "\x1b" not in out.stdout + out.stderr
