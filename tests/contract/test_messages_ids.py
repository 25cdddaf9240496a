"""A suggestion without an id gets a deterministic one, so a resent message is recognised."""

from __future__ import annotations

import json
import re
from typing import Any

from bridge.contract.codec import parse_suggestion
from bridge.contract.identity import suggestion_id
from bridge.contract.messages import NAME_PATTERN

MESSAGE: dict[str, Any] = {
    "study": "cnn-tpe",
    "template": "cnn",
    "iteration": 3,
    "params": {"epochs": 5},
    "suggestions": [{"id": "t-17", "params": {"lr": 0.01}}, {"params": {"lr": 0.001, "dropout": 0.25}}],
}


def test_a_resent_message_gets_the_same_ids_whatever_its_key_order() -> None:
    first = parse_suggestion(json.dumps(MESSAGE).encode()).suggestion_ids()
    reordered = {
        **MESSAGE,
        "suggestions": [MESSAGE["suggestions"][0], {"params": {"dropout": 0.25, "lr": 0.001}}],
    }
    again = parse_suggestion(json.dumps(reordered, indent=4, sort_keys=True).encode()).suggestion_ids()
    assert first == again
    assert first[0] == "t-17"


def test_the_id_hashes_study_template_iteration_index_and_the_runs_params() -> None:
    base = suggestion_id("s", "t", 1, 0, {"a": 1})
    assert base == suggestion_id("s", "t", 1, 0, {"a": 1})
    others = [
        suggestion_id("s2", "t", 1, 0, {"a": 1}),
        suggestion_id("s", "t2", 1, 0, {"a": 1}),
        suggestion_id("s", "t", 2, 0, {"a": 1}),
        suggestion_id("s", "t", None, 0, {"a": 1}),
        suggestion_id("s", "t", 1, 1, {"a": 1}),
        suggestion_id("s", "t", 1, 0, {"a": 2}),
    ]
    assert base not in others
    assert len(set(others)) == len(others)


def test_op_level_params_are_part_of_a_runs_params() -> None:
    message = parse_suggestion(json.dumps(MESSAGE).encode())
    other = parse_suggestion(json.dumps({**MESSAGE, "params": {"epochs": 6}}).encode())
    assert message.suggestion_ids()[1] != other.suggestion_ids()[1]
    assert message.suggestion_ids()[1] == suggestion_id(
        "cnn-tpe", "cnn", 3, 1, {"epochs": 5, "lr": 0.001, "dropout": 0.25}
    )


def test_a_generated_id_is_itself_a_valid_id() -> None:
    assert re.fullmatch(NAME_PATTERN, suggestion_id("s", "t", None, 0, {}))
