"""The component comes inline, from a file next to the polyaxonfile (pathRef) or over http(s) (urlRef)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import yaml

from bridge.errors import ComponentFetchError, PolyaxonfileError
from bridge.polyaxon import ComponentFetchFailed, UrlPolicy, load_operation, parse_operation
from bridge.polyaxon.loader import fetch_url
from tests.polyaxon.support import FIXTURES, component, operation

TYPED = (FIXTURES / "components" / "typed.yaml").read_text()
LOCAL = UrlPolicy(allow_hosts=["127.0.0.1"])
"""The test servers listen on loopback, which a urlRef may reach only when allow-listed."""


def write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def test_path_ref_is_relative_to_the_polyaxonfile(tmp_path: Path) -> None:
    (tmp_path / "deep" / "components").mkdir(parents=True)
    (tmp_path / "deep" / "components" / "typed.yaml").write_text(TYPED)
    file = write(tmp_path / "deep" / "op.yaml", operation([{"epochs": 1}]))

    op = load_operation(file)

    assert op.component is not None
    assert op.component.name == "typed-experiment"


def test_a_missing_path_ref_names_the_file(tmp_path: Path) -> None:
    file = write(tmp_path / "op.yaml", operation([{"epochs": 1}]))

    with pytest.raises(ComponentFetchFailed) as caught:
        load_operation(file)

    assert caught.value.source == str(file)
    assert caught.value.path == "pathRef"
    assert "components/typed.yaml" in caught.value.problems[0].message
    assert isinstance(caught.value, ComponentFetchError)


def test_path_ref_without_a_base_directory_is_an_error() -> None:
    with pytest.raises(PolyaxonfileError) as caught:
        parse_operation(operation([{"epochs": 1}]), source="message", base_dir=None)

    assert caught.value.path == "pathRef"


def test_problems_in_a_referenced_component_name_that_file(tmp_path: Path) -> None:
    write(tmp_path / "c.yaml", {**component(), "inputs": [{"name": "x", "type": "integer"}]})

    with pytest.raises(PolyaxonfileError) as caught:
        parse_operation({"kind": "operation", "pathRef": "c.yaml"}, source="op.yaml", base_dir=tmp_path)

    assert caught.value.source == str(tmp_path / "c.yaml")
    assert caught.value.path == "inputs[0].type"


def test_a_referenced_file_must_be_a_component(tmp_path: Path) -> None:
    write(tmp_path / "c.yaml", operation([]))

    with pytest.raises(PolyaxonfileError, match="must be `kind: component`"):
        parse_operation({"kind": "operation", "pathRef": "c.yaml"}, source="op.yaml", base_dir=tmp_path)


def test_a_bare_component_file_runs_as_an_operation(tmp_path: Path) -> None:
    file = write(tmp_path / "c.yaml", component(args=["hi"]))

    op = load_operation(file)

    assert op.kind == "operation"
    assert op.component is not None


def test_url_ref_is_fetched_over_http(http_root: tuple[str, Path]) -> None:
    base_url, root = http_root
    (root / "typed.yaml").write_text(TYPED)
    data = operation([{"epochs": 1}], urlRef=f"{base_url}/typed.yaml")
    del data["pathRef"]

    op = parse_operation(data, source="op.yaml", base_dir=None, url_policy=LOCAL)

    assert op.component is not None
    assert op.component.name == "typed-experiment"
    assert op.url_ref == f"{base_url}/typed.yaml"


def test_url_ref_http_errors_are_clear(http_root: tuple[str, Path]) -> None:
    base_url, _ = http_root
    data = {"kind": "operation", "urlRef": f"{base_url}/missing.yaml"}

    with pytest.raises(ComponentFetchFailed, match=r"HTTP 404$"):
        parse_operation(data, source="op.yaml", base_dir=None, url_policy=LOCAL)


def test_an_unreachable_url_ref_fails_quickly_and_clearly() -> None:
    with socket.socket() as probe:  # a port nobody listens on: bind one, then free it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/typed.yaml"
    started = time.monotonic()

    with pytest.raises(ComponentFetchFailed, match="Connection refused") as caught:
        parse_operation({"kind": "operation", "urlRef": url}, source="op.yaml", base_dir=None, url_policy=LOCAL)

    assert time.monotonic() - started < 5
    assert caught.value.path == "urlRef"
    assert caught.value.problems[0].message.startswith(f"cannot fetch the component from {url}: ")


def test_url_ref_bodies_are_capped(http_root: tuple[str, Path]) -> None:
    base_url, root = http_root
    (root / "big.yaml").write_text("x" * 2048)

    with pytest.raises(ComponentFetchFailed, match="larger than 1024 bytes"):
        fetch_url(f"{base_url}/big.yaml", source="op.yaml", policy=UrlPolicy(allow_hosts=["127.0.0.1"], max_bytes=1024))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/c.yaml", "typed.yaml"])
def test_url_ref_is_http_only(url: str) -> None:
    with pytest.raises(ComponentFetchFailed, match=r"only http:// and https://"):
        parse_operation({"kind": "operation", "urlRef": url}, source="op.yaml", base_dir=None)


def test_a_file_given_to_bridge_run_may_reference_a_local_url(http_root: tuple[str, Path], tmp_path: Path) -> None:
    base_url, root = http_root
    (root / "typed.yaml").write_text(TYPED)
    data = operation([{"epochs": 1}], urlRef=f"{base_url}/typed.yaml")
    del data["pathRef"]

    op = load_operation(write(tmp_path / "op.yaml", data))

    assert op.component is not None


def test_an_operation_needs_exactly_one_component_source() -> None:
    with pytest.raises(PolyaxonfileError, match="no component"):
        parse_operation({"kind": "operation"}, source="op.yaml", base_dir=None)
    with pytest.raises(PolyaxonfileError, match="At most one reference"):
        parse_operation({"kind": "operation", "pathRef": "a", "urlRef": "http://x"}, source="op.yaml", base_dir=None)


def test_unreadable_files_and_bad_yaml_are_clear(tmp_path: Path) -> None:
    with pytest.raises(PolyaxonfileError, match="cannot read the file"):
        load_operation(tmp_path / "nope.yaml")

    (tmp_path / "bad.yaml").write_text("kind: operation\nmatrix: [unclosed\n")
    with pytest.raises(PolyaxonfileError, match=r"invalid YAML \(line \d+, column \d+\)"):
        load_operation(tmp_path / "bad.yaml")

    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(PolyaxonfileError, match="empty"):
        load_operation(tmp_path / "empty.yaml")

    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(PolyaxonfileError, match="YAML mapping"):
        load_operation(tmp_path / "list.yaml")
