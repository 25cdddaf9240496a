"""Ids already handed out stay what they were: suggestion ids and fingerprints live in ledgers, local operation
and run ids in `--workdir`. Every value pinned here was computed by the code before bridge/contract/identity.py existed
(messages.suggestion_id, kafka/ledger.fingerprint, plan.operation_id_for, service.py's operation id)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.contract.codec import parse_suggestion
from bridge.contract.identity import canonical_json, fingerprint, operation_id_of_runs, run_id_of
from bridge.engine.plan import plan_local
from bridge.polyaxon import parse_operation

MESSAGES: list[tuple[dict[str, Any], list[str]]] = [
    (
        {
            "study": "cnn-tpe",
            "template": "cnn",
            "iteration": 3,
            "params": {"epochs": 5},
            "suggestions": [{"id": "t-17", "params": {"lr": 0.01}}, {"params": {"lr": 0.001, "dropout": 0.25}}],
        },
        ["t-17", "s-67b368df096f558a3bf41bf6b8de9397"],
    ),
    (
        {
            "study": "s",
            "template": "t",
            "suggestions": [{"params": {"b": [1, {"d": 1, "c": 2}], "a": "é ✓ 😀"}}, {"params": {}}],
        },
        ["s-66a3bafad92747f6e266899d769e1781", "s-b1b3cb7bf80b9055b22e05b49ef2f74e"],
    ),
    (
        {
            "study": "ingest-2026-11-27",
            "template": "load-shard",
            "iteration": 0,
            "suggestions": [
                {
                    "params": {
                        "shard": "part-0001",
                        "flag": True,
                        "none": None,
                        "big": 2**63 - 1,
                        "neg": -1e-300,
                        "x": 5.0,
                    }
                },
                {"params": {"q": 'a"b\\c\n\t\x7f\u2028', "ключ": "значение"}},
            ],
        },
        ["s-96df774a29b644a106cba6c42b8e82d8", "s-119d25b7378e00f4b063ebbfc8fe6d31"],
    ),
]


def test_a_suggestion_without_an_id_keeps_the_id_it_had() -> None:
    for message, ids in MESSAGES:
        assert parse_suggestion(json.dumps(message).encode()).suggestion_ids() == ids


def test_a_served_run_keeps_its_run_id() -> None:
    assert run_id_of("s", "job", "victim") == "154428f2-0efe-5dbc-8505-321fe57efe66"


def test_a_fingerprint_in_a_ledger_still_matches_the_same_params() -> None:
    assert fingerprint({"a": 1}) == "015abd7f5cc57a2dd94b7590"
    assert fingerprint({"a": "é ✓ 😀", "b": [1.5, None, True]}) == "e93bf452eab4650b9cebc688"
    assert fingerprint({"x": "\x7f\u2028", "n": float("inf")}) == "8a023ef791d465ef51280d92"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(deadline=None)  # a shared machine: the time of one example is no part of what is checked
@given(st.dictionaries(st.text(max_size=8), _JSON, max_size=5))
def test_a_fingerprint_is_the_one_ledgers_were_written_with_for_any_params(given_: dict[str, Any]) -> None:
    # The fingerprint as service/ledger/records.py computed it before it moved: ASCII-escaped JSON, surrogates passed.
    text = json.dumps(given_, sort_keys=True, separators=(",", ":"), default=str)
    assert fingerprint(given_) == hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()[:24]


def test_a_served_operation_id_is_its_sorted_run_ids_hashed() -> None:
    runs = ["b278cfcc-de86-54ac-bd2e-92061cff715c", "154428f2-0efe-5dbc-8505-321fe57efe66"]
    assert operation_id_of_runs(runs) == "6ac0569a264125a14f660969eb2810c4"
    assert operation_id_of_runs(reversed(runs)) == "6ac0569a264125a14f660969eb2810c4"


def test_an_interrupted_local_operation_with_non_ascii_values_resumes_under_the_same_ids(tmp_path: Path) -> None:
    op = {
        "kind": "operation",
        "params": {"greeting": {"value": "grüß dich"}},
        "matrix": {"kind": "mapping", "values": [{"who": "wörld"}, {"who": "😀"}]},
        "component": {
            "kind": "component",
            "inputs": [{"name": "greeting", "type": "str"}, {"name": "who", "type": "str"}],
            "run": {
                "kind": "job",
                "container": {"image": "python:3.11", "command": ["echo", "{{ greeting }} {{ who }}"]},
            },
        },
    }
    plan = plan_local(parse_operation(op, source="pins", base_dir=tmp_path), source="pins", cwd=tmp_path)
    assert plan.operation_id == "3c671a55ab0f98db54b25e75a01364d6"
    assert [r.run_id for r in plan.runs] == [
        "b278cfcc-de86-54ac-bd2e-92061cff715c",
        "de90e427-21b2-5aff-a2f4-5e6fe4ceef3b",
    ]


def test_canonical_json_sorts_keys_drops_whitespace_and_keeps_text_as_it_is() -> None:
    assert canonical_json({"b": [1, {"d": 1, "c": 2}], "a": "é"}) == '{"a":"é","b":[1,{"c":2,"d":1}]}'
    assert canonical_json({"a": "é"}, ascii=True) == '{"a":"\\u00e9"}'


def test_canonical_json_spells_a_non_finite_float_instead_of_failing() -> None:
    assert canonical_json([float("inf"), float("-inf")]) == "[Infinity,-Infinity]"
