"""The published description of the topics: a JSON Schema per message and an AsyncAPI document.

Generated from the models, never written by hand: `write_schemas` (behind `bridge schema --out schemas`)
writes them to `schemas/`, and a test fails when that folder drifts from the code. Schemas of what the bridge
reads describe what it accepts; schemas of what it writes mark every field required (it writes them all, but a
field it leaves out when empty) and allow fields they do not name: a reader of a v1 message ignores what it does
not know, for a newer bridge may add optional fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema

from bridge import __version__
from bridge.contract.messages import (
    CONTROL_SCHEMA,
    DEADLETTER_SCHEMA,
    LEDGER_SCHEMA,
    NAME_PATTERN,
    OPERATION_SCHEMA,
    OWNER_SCHEMA,
    SUGGESTION_SCHEMA,
)
from bridge.contract.results import PROGRESS_SCHEMA, RESULT_SCHEMA
from bridge.contract.topics import DEFAULT_TOPICS
from bridge.contract.versions import MESSAGE_TYPES

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_FILE = "asyncapi.yaml"
_READ_BY_THE_BRIDGE = frozenset({SUGGESTION_SCHEMA, CONTROL_SCHEMA})


class _WrittenFields(GenerateJsonSchema):
    """In serialization mode every field is required (the bridge writes defaults too), but one the bridge leaves
    out when empty (`RunResult.warnings`): a result without warnings is what the first v1 readers read.

    A tagged union names its tag the way AsyncAPI's schema format does, `"discriminator": "event"`, not with
    pydantic's OpenAPI object `{"propertyName": ..., "mapping": ...}`, which AsyncAPI parsers refuse (its
    `discriminator` is a string). Nothing is lost: each branch pins its tag with a `const`.
    """

    def tagged_union_schema(self, schema: core_schema.TaggedUnionSchema) -> JsonSchemaValue:
        """The union's `oneOf`, with the tag's property name as a plain-string `discriminator`."""
        generated = super().tagged_union_schema(schema)
        openapi_form = generated.get("discriminator")
        if isinstance(openapi_form, dict):
            generated["discriminator"] = openapi_form["propertyName"]
        return generated

    def field_is_required(
        self,
        field: core_schema.ModelField | core_schema.DataclassField | core_schema.TypedDictField,
        total: bool,
    ) -> bool:
        if self.mode == "serialization":
            return field.get("serialization_exclude_if") is None  # a field left out when empty (`warnings`) is not
        return super().field_is_required(field, total)


def schema_file_name(schema: str) -> str:
    """The file of a schema: `bridge.suggestion/v1` -> `bridge.suggestion.v1.json`."""
    return schema.replace("/", ".") + ".json"


def message_schemas() -> dict[str, dict[str, Any]]:
    """Every message's JSON Schema, by file name, with `$id` and the schema name as title."""
    out: dict[str, dict[str, Any]] = {}
    for name, message_type in MESSAGE_TYPES.items():
        mode: JsonSchemaMode = "validation" if name in _READ_BY_THE_BRIDGE else "serialization"
        body = TypeAdapter(message_type).json_schema(by_alias=True, mode=mode, schema_generator=_WrittenFields)
        header = {"$schema": JSON_SCHEMA_DIALECT, "$id": f"urn:suggestion-bridge:{name}", "title": name}
        out[schema_file_name(name)] = {**body, **header}
    return out


_TOPICS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    # channel (a key of DEFAULT_TOPICS), the bridge's action, what flows there, its schemas
    (
        "suggestions",
        "receive",
        "Configurations to run, from an optimizer or a data-loading job.",
        (SUGGESTION_SCHEMA,),
    ),
    (
        "results",
        "send",
        "One final result per run; intermediate metrics too.",
        (RESULT_SCHEMA, PROGRESS_SCHEMA),
    ),
    (
        "operations",
        "send",
        "Each mapping operation's life: created, progress, finished.",
        (OPERATION_SCHEMA,),
    ),
    (
        "dead_letters",
        "send",
        "Records the bridge could not take, byte for byte, with why.",
        (DEADLETTER_SCHEMA,),
    ),
    ("control", "receive", "Requests to stop a run or an operation.", (CONTROL_SCHEMA,)),
    (
        "ledger",
        "send",
        "The run ledger (compacted, keyed by run id): received, dispatched, finished; the bridge's own state. In"
        " each partition, the record keyed `~owner` says who holds it.",
        (LEDGER_SCHEMA, OWNER_SCHEMA),
    ),
)


_KEY_SCHEMA = {"type": "string", "pattern": NAME_PATTERN, "description": "The study name."}
_RUN_KEY_SCHEMA = {"type": "string", "description": "The run id (`~owner` for the partition's owner marker)."}


def _message_key(schema: str) -> str:
    return schema.split("/", maxsplit=1)[0].removeprefix("bridge.")


def asyncapi_document(topics: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An AsyncAPI 3.0 document of the topics, named as in `topics` (channel -> topic; the defaults when None)."""
    names = {**DEFAULT_TOPICS, **(topics or {})}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for channel, action, description, schemas in _TOPICS:
        keys = [_message_key(s) for s in schemas]
        channels[channel] = {
            "address": names[channel],
            "description": description,
            "messages": {k: {"$ref": f"#/components/messages/{k}"} for k in keys},
        }
        operations[f"{action}_{channel}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{k}"} for k in keys],
        }
        for key, schema in zip(keys, schemas, strict=True):
            messages[key] = {
                "name": schema,
                "title": schema,
                "contentType": "application/json",
                "payload": {"$ref": schema_file_name(schema)},
                "bindings": {
                    "kafka": {
                        "key": dict(_RUN_KEY_SCHEMA if channel == "ledger" else _KEY_SCHEMA),
                        "bindingVersion": "0.5.0",
                    }
                },
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "suggestion-bridge",
            "version": __version__,
            "description": "Runs an optimizer's suggestions as Polyaxon mapping operations and publishes "
            "the results. Every message is UTF-8 JSON with a `schema` field; every key is the study name, "
            "so one study stays in order on one partition.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def write_schemas(out_dir: Path, topics: Mapping[str, str] | None = None) -> list[Path]:
    """Write each message's JSON Schema and `asyncapi.yaml` into `out_dir`; the same code, the same bytes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = {name: _json_text(schema) for name, schema in message_schemas().items()}
    texts[ASYNCAPI_FILE] = yaml.safe_dump(asyncapi_document(topics), sort_keys=False, allow_unicode=True)
    written: list[Path] = []
    for name, text in sorted(texts.items()):
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _json_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
