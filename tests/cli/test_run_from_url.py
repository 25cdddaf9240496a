"""`bridge run --url`, `bridge check --url` and `-f -` (issue 11, item 10): the polyaxonfile from a web server, with
its relative `pathRef` fetched from beside it, or from stdin."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.cli_support import bridge, write_operation


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving a folder: (its base URL, the folder)."""
    root = tmp_path / "site"
    (root / "ops").mkdir(parents=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_run_from_a_url_fetches_the_path_ref_beside_it(served: tuple[str, Path], tmp_path: Path) -> None:
    base, root = served
    write_operation(root / "ops", [{"values": "0.5"}, {"values": "0.25"}], tmp_path / "rec")
    work = tmp_path / "work"
    work.mkdir()
    out = bridge("run", "--url", f"{base}/ops/mapping.yaml", "--output", "jsonl", cwd=work)
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["outputs"]["loss"] for line in out.stdout.splitlines()] == [0.5, 0.25]


def test_check_from_a_url(served: tuple[str, Path], tmp_path: Path) -> None:
    base, root = served
    write_operation(root / "ops", [{"sleep": 1}, {"sleep": 2}, {"sleep": 3}], tmp_path / "rec")
    out = bridge("check", "--url", f"{base}/ops/mapping.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"{base}/ops/mapping.yaml: valid, 3 run(s)" in out.stderr


def test_a_url_that_cannot_be_fetched_exits_2_and_says_so(served: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = served
    out = bridge("run", "--url", f"{base}/missing.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert f"{base}/missing.yaml: cannot fetch the polyaxonfile" in out.stderr and "404" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_missing_path_ref_names_the_url_it_was_looked_for_at(served: tuple[str, Path], tmp_path: Path) -> None:
    base, root = served
    write_operation(root / "ops", [{}], tmp_path / "rec")
    (root / "ops" / "job.yaml").unlink()
    out = bridge("check", "--url", f"{base}/ops/mapping.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert f"{base}/ops/job.yaml" in out.stderr


def test_a_file_past_the_url_ref_size_limit_is_refused(served: tuple[str, Path], tmp_path: Path) -> None:
    base, root = served
    (root / "huge.yaml").write_text("# padding\n" * 600_000)  # 6 MB, past urlRef's 5 MiB
    out = bridge("check", "--url", f"{base}/huge.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert "cannot fetch the polyaxonfile" in out.stderr


def test_dash_f_dash_reads_the_polyaxonfile_from_stdin(tmp_path: Path) -> None:
    f = write_operation(tmp_path, [{"values": "0.125"}], tmp_path / "rec")
    out = bridge("run", "-f", "-", "--output", "jsonl", cwd=tmp_path, stdin=f.read_text())
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["outputs"]["loss"] == 0.125


def test_run_needs_a_file_or_a_url_not_both(tmp_path: Path) -> None:
    out = bridge("run", "-f", "x.yaml", "--url", "http://127.0.0.1:1/x.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert "not allowed with argument" in out.stderr
