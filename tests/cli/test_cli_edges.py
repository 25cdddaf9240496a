"""The command line's small promises (issue 11, item 13): timeouts honoured, nothing left unclosed after a broker
that cannot be reached, an empty config refused, and help text for every command and option."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytest

from bridge.cli.main import build_parser
from tests.cli.cli_support import bridge

NOBODY = "127.0.0.1:1"  # nothing listens on port 1: every connection is refused at once


def test_tail_gives_up_after_its_connect_timeout(tmp_path: Path) -> None:
    started = time.monotonic()
    out = bridge("tail", "--bootstrap-servers", NOBODY, "--connect-timeout", "1", cwd=tmp_path, timeout=60)
    assert out.returncode == 1
    assert time.monotonic() - started < 15, "the 30 s default was used instead of --connect-timeout"
    assert "cannot reach Kafka at 127.0.0.1:1 to follow results after 1 s" in out.stderr
    assert "Unclosed" not in out.stderr


def test_a_failed_submit_leaves_no_unclosed_producer(tmp_path: Path) -> None:
    args = ("submit", "--study", "s", "--template", "t", "--bootstrap-servers", NOBODY, "--connect-timeout", "1")
    out = bridge(*args, cwd=tmp_path, stdin='[{"x": 1}]', timeout=60)
    assert out.returncode == 1
    assert "cannot reach Kafka" in out.stderr
    assert "Unclosed" not in out.stderr


@pytest.mark.parametrize("text", ["", "# every setting commented out\n"])
def test_an_empty_config_file_is_a_clear_error(tmp_path: Path, text: str) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text(text)
    args = ("submit", "-c", str(config), "--bootstrap-servers", NOBODY, "--connect-timeout", "1")
    out = bridge(*args, "--study", "s", "--template", "t", cwd=tmp_path, stdin='[{"x": 1}]', timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: {config}: the config file is empty; give its settings (at least `{{}}` for all defaults) "
        "or leave out -c"
    ]


def test_an_explicitly_empty_mapping_means_all_defaults(tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text("{}\n")
    args = ("submit", "-c", str(config), "--bootstrap-servers", NOBODY, "--connect-timeout", "1")
    out = bridge(*args, "--study", "s", "--template", "t", cwd=tmp_path, stdin='[{"x": 1}]', timeout=60)
    assert "cannot reach Kafka" in out.stderr  # past the config: it was read


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_command_and_option_has_help_text() -> None:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    summaries = {action.dest: action.help for action in sub._choices_actions}
    missing = [name for name in _subcommands(parser) if not summaries.get(name)]
    for name, command in [("bridge", parser), *_subcommands(parser).items()]:
        missing += [f"{name} {'/'.join(a.option_strings)}" for a in command._actions if a.option_strings and not a.help]
    assert missing == []


def test_help_lists_every_command_with_what_it_does(tmp_path: Path) -> None:
    out = bridge("--help", cwd=tmp_path)
    assert out.returncode == 0
    for line in ("run ", "check ", "serve ", "submit ", "tail ", "schema "):
        assert any(x.strip().startswith(line) and len(x.split()) > 2 for x in out.stdout.splitlines()), line
