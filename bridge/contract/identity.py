"""Run identity: every id and hash the bridge derives, and the one canonical JSON they are taken over.

Ids outlive the process that made them: suggestion ids and run ids are in the optimizer's hands and in the
ledger topic, fingerprints in ledger records and the on-disk ledger index, local operation ids in `--workdir`.
So each function here is pinned by tests/contract/test_identity_stable.py: changing what one returns for the same input
is a migration, and the README says so.

| id | of | used for |
|---|---|---|
| `suggestion_id` | study, template, iteration, index, params | a suggestion sent without an id |
| `run_id_of` | study, template, suggestion id | a served run, whichever replica or message copy |
| `run_id_for` | operation id, key | a run of a local operation (`bridge run -f`) |
| `operation_id_for` | operation, mapping values | a local operation: the same file resumes |
| `operation_id_of_runs` | run ids | a served operation (one batch of runs) |
| `fingerprint` | the params a suggestion gave | the same suggestion id with other params is a conflict |
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bridge.polyaxon import V1Operation

_RUN_NAMESPACE = uuid.UUID("6f1b2c1e-5b0e-4a43-9a39-3c0c1f6f2b11")


def canonical_json(value: Any, *, ascii: bool = False) -> str:
    """One spelling per value, which every hash in the bridge is taken over.

    - keys sorted, no whitespace (`,` and `:`): equal values give equal text whatever their key order;
    - text as UTF-8 characters, not `\\uXXXX` escapes (`ascii=True` escapes every non-ASCII character the way
      `json` does; only the digests first written that way use it, so the ones already stored still match);
    - `NaN` and `±Infinity` spelled `NaN`/`Infinity`/`-Infinity` rather than refused: a polyaxonfile may type
      "1e999" as a float, and hashing its run must not crash (messages never get here with one: intake
      refuses non-finite numbers first);
    - anything JSON has no type for (a date, a path) as its `str()`;
    - numbers as Python writes them: `5` and `5.0` differ.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii, allow_nan=True, default=str)


def digest(value: Any, *, ascii: bool = False) -> str:
    """The SHA-256 (hex) of `canonical_json(value, ascii=ascii)`: every id below, and the cache's keys."""
    return _sha256(canonical_json(value, ascii=ascii))


def _sha256(text: str) -> str:
    # surrogatepass: a lone surrogate (a run file may hold "\ud800") is hashed, not a crash.
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def suggestion_id(study: str, template: str, iteration: int | None, index: int, params: Mapping[str, Any]) -> str:
    """The id of a suggestion that came without one: `s-` and 32 hex digits of a SHA-256.

    The hash covers the canonical JSON of all five inputs, so a message sent again gets the same ids and is
    recognised, while the same params at another index or iteration are another suggestion. `params` are
    the params the run gets (the message's op-level params under the suggestion's own).
    """
    key = {"study": study, "template": template, "iteration": iteration, "index": index, "params": dict(params)}
    return "s-" + digest(key)[:32]


def run_id_for(operation_id: str, key: str) -> str:
    """A run id (a UUID5) that is the same every time the same run of the same operation is planned."""
    return str(uuid.uuid5(_RUN_NAMESPACE, f"{operation_id}/{key}"))


def run_id_of(study: str, template: str, suggestion_id: str) -> str:
    """The run id of a suggestion: the same whichever replica, message copy or retry handles it."""
    return run_id_for(f"study:{study}/template:{template}", suggestion_id)


def operation_id_for(operation: V1Operation, values: Sequence[Mapping[str, Any]]) -> str:
    """The id of a local operation: the same file with the same values resumes the same operation."""
    body = operation.model_dump(mode="json", by_alias=True, exclude_none=True)
    body.pop("matrix", None)
    # ascii: the spelling local operation ids were first taken over (an interrupted `bridge run` resumes by it).
    return digest({"operation": body, "values": list(values)}, ascii=True)[:32]


def operation_id_of_runs(run_ids: Iterable[str]) -> str:
    """The id of a served operation: its runs' ids, whatever order they were batched in."""
    return _sha256("\n".join(sorted(run_ids)))[:32]


def fingerprint(given: Mapping[str, Any]) -> str:
    """A short hash of the params a suggestion gave: the same suggestion id with another one is a conflict."""
    # ascii: the spelling of the fingerprints already in ledger records and indexes.
    return digest(given, ascii=True)[:24]


def conflict_run_id(run_id: str, given_fingerprint: str) -> str:
    """The run id of the answer to a suggestion id sent again with other params: not `run_id` (whose one final
    result is its first params'), but the same for every copy of that conflicting suggestion."""
    return run_id_for(f"conflict:{run_id}", given_fingerprint)
