"""schemas/ is what the code generates, and the contract's example messages are valid messages."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.contract.codec import parse_message
from bridge.contract.jsonschema import ASYNCAPI_FILE, asyncapi_document, schema_file_name, write_schemas
from bridge.contract.messages import SuggestionMessage
from bridge.contract.results import RunResult
from bridge.contract.versions import MESSAGE_TYPES

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
CONTRACT = ROOT.parent / "shared" / "CONTRACT.md"  # beside the checkout, as on a developer's machine and CI
FIX = "schemas/ has drifted from the code: run `bridge schema --out schemas` and commit the result"

SUGGESTION_EXAMPLE = """
{"schema": "bridge.suggestion/v1", "study": "cnn-tpe", "template": "cnn", "iteration": 3,
 "params": {"epochs": 5},
 "suggestions": [{"id": "t-17", "params": {"learning_rate": 0.01, "dropout": 0.5}},
                 {"params": {"learning_rate": 0.001, "dropout": 0.25}}],
 "metadata": {"optimizer": "optuna-tpe"}}
"""
RESULT_EXAMPLE = """
{"schema": "bridge.result/v1", "study": "cnn-tpe", "template": "cnn", "operation_id": "...", "run_id": "...",
 "suggestion_id": "t-17", "index": 0, "replayed": false, "iteration": 3,
 "params": {"learning_rate": 0.01, "dropout": 0.5, "epochs": 5},
 "status": "succeeded", "outputs": {"loss": 0.21, "accuracy": 0.93}, "attempt": 1, "cached": false,
 "started_at": "...", "finished_at": "...", "duration_s": 41.2, "error": null,
 "metadata": {"optimizer": "optuna-tpe"}}
"""
# The contract shows this one inline, with "..." for more suggestions and no `schema` field.
SHARD_EXAMPLE = """
{"study": "ingest-2026-11-27", "template": "load-shard", "suggestions": [{"params": {"shard": "part-0001"}}]}
"""


def _complete_result(example: dict[str, Any]) -> dict[str, Any]:
    """The contract elides the times ("...") and leaves out `index`, which every result written has."""
    times = {k: "2026-11-27T10:00:00Z" for k in ("started_at", "finished_at") if example.get(k) == "..."}
    return {"index": 0, **example, **times}


def test_schemas_folder_matches_the_code(tmp_path: Path) -> None:
    expected = {path.name: path.read_text(encoding="utf-8") for path in write_schemas(tmp_path)}
    actual = {path.name: path.read_text(encoding="utf-8") for path in SCHEMAS.iterdir() if path.is_file()}
    assert sorted(actual) == sorted(expected), FIX
    for name, text in expected.items():
        assert actual[name] == text, f"{name}: {FIX}"


def test_every_message_has_a_schema_file_and_an_asyncapi_message() -> None:
    document = asyncapi_document()
    payloads = {m["payload"]["$ref"] for m in document["components"]["messages"].values()}
    assert payloads == {schema_file_name(name) for name in MESSAGE_TYPES}
    addresses = {c["address"] for c in document["channels"].values()}
    assert addresses == {
        "bridge.suggestions",
        "bridge.results",
        "bridge.operations",
        "bridge.dlq",
        "bridge.control",
        "bridge.ledger",
    }
    assert yaml.safe_load((SCHEMAS / ASYNCAPI_FILE).read_text(encoding="utf-8")) == document


def test_contract_suggestion_example_is_a_valid_message() -> None:
    message = parse_message(SUGGESTION_EXAMPLE.encode())
    assert isinstance(message, SuggestionMessage)
    assert message.suggestion_ids()[0] == "t-17"
    assert message.run_params(0) == {"epochs": 5, "learning_rate": 0.01, "dropout": 0.5}


def test_contract_result_example_is_a_valid_message() -> None:
    message = RunResult.model_validate(_complete_result(json.loads(RESULT_EXAMPLE)))
    assert parse_message(message.to_json().encode()) == message


def test_contract_shard_list_without_schema_is_a_suggestion() -> None:
    message = parse_message(SHARD_EXAMPLE.encode(), default_schema="bridge.suggestion/v1")
    assert isinstance(message, SuggestionMessage)
    assert message.suggestions[0].params == {"shard": "part-0001"}


def test_examples_are_the_contracts_own() -> None:
    if not CONTRACT.is_file():
        pytest.skip(f"{CONTRACT} is not beside this checkout")
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", CONTRACT.read_text(encoding="utf-8"), re.S)]
    assert json.loads(SUGGESTION_EXAMPLE) in blocks
    assert json.loads(RESULT_EXAMPLE) in blocks


def test_examples_validate_against_the_published_json_schemas() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    examples = {
        "bridge.suggestion.v1.json": [json.loads(SUGGESTION_EXAMPLE), json.loads(SHARD_EXAMPLE)],
        "bridge.result.v1.json": [_complete_result(json.loads(RESULT_EXAMPLE))],
    }
    for name, instances in examples.items():
        schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
        for instance in instances:
            jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(instance)
