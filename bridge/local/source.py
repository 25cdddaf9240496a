"""Where `bridge run` and `bridge check` read their polyaxonfile from: a file, stdin (`-f -`) or a URL (`--url`).

A URL is fetched like a `urlRef` (one deadline, a size cap; `UrlPolicy.trusted()`, since the person running the
command chose it), and a relative `pathRef` in the fetched file resolves against the file's URL, as a browser
resolves a relative link, so `polyaxon run --url .../mapping.yaml` with a `pathRef: job.yaml` beside it works.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urljoin

from bridge.errors import InvalidInput
from bridge.polyaxon import UrlPolicy, V1Operation, load_operation, parse_operation
from bridge.polyaxon.loader import parse_yaml
from bridge.polyaxon.urlfetch import FetchRefused, fetch

STDIN_NAME = "<stdin>"


@dataclass(frozen=True)
class LoadedOperation:
    """A validated operation, the name its messages use for it, and where its runs execute."""

    operation: V1Operation
    source: str
    cwd: Path


def load(
    *,
    file: str | None,
    url: str | None,
    params: Mapping[str, str],
    stdin: TextIO | None = None,
    policy: UrlPolicy | None = None,
) -> LoadedOperation:
    """Read, resolve and validate the operation named by `-f FILE`, `-f -` or `--url URL`."""
    if url is not None:
        return _from_url(url, params, policy or UrlPolicy.trusted())
    if file == "-":
        text = (stdin or sys.stdin).read()
        # A pathRef in a piped file can only mean a file beside the person typing the command.
        op = parse_operation(
            parse_yaml(text, STDIN_NAME),
            source=STDIN_NAME,
            base_dir=Path.cwd(),
            params=params,
            url_policy=policy or UrlPolicy.trusted(),
        )
        return LoadedOperation(op, STDIN_NAME, Path.cwd())
    if file is None:
        raise InvalidInput("give the polyaxonfile with -f FILE, -f - (stdin) or --url URL")
    path = Path(file)
    op = load_operation(path, params=params, url_policy=policy)
    return LoadedOperation(op, str(path), path.resolve().parent)


def _from_url(url: str, params: Mapping[str, str], policy: UrlPolicy) -> LoadedOperation:
    try:
        text = fetch(url, policy).decode("utf-8")
    except FetchRefused as exc:
        raise InvalidInput(f"{url}: cannot fetch the polyaxonfile: {exc}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{url}: cannot fetch the polyaxonfile: it is not UTF-8 text") from None
    data = parse_yaml(text, url)
    op = parse_operation(_relative_refs_to_urls(data, url), source=url, base_dir=None, params=params, url_policy=policy)
    # Nothing on this machine belongs to a fetched file: its runs work where the command was typed.
    return LoadedOperation(op, url, Path.cwd())


def _relative_refs_to_urls(data: Any, url: str) -> Any:
    """A fetched operation's `pathRef` is a path on its server: the `urlRef` it stands for."""
    if not isinstance(data, Mapping) or not isinstance(data.get("pathRef"), str) or "urlRef" in data:
        return data  # (both refs at once: validation names that)
    out = {k: v for k, v in data.items() if k != "pathRef"}
    out["urlRef"] = urljoin(url, data["pathRef"])
    return out
