"""Each JSON Schema in schemas/ is a valid schema of the draft it declares, and all its `$ref`s resolve.

A consumer validates messages with these files in whatever language it is written in; a schema its validator
refuses, or a `$ref` into nothing, would stop it before the first message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing  # jsonschema's own $ref resolution

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILES = sorted((ROOT / "schemas").glob("*.json"))


def _refs(node: Any) -> Iterator[str]:
    """Every `$ref` value in a schema, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_there_is_a_schema_per_message() -> None:
    assert len(SCHEMA_FILES) >= 7, [p.name for p in SCHEMA_FILES]


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=[p.name for p in SCHEMA_FILES])
def test_schema_is_valid_for_its_declared_draft(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    declared = schema.get("$schema")
    validator = jsonschema.validators.validator_for(schema, default=None)
    assert validator is not None, f"{path.name} declares no draft jsonschema knows: {declared!r}"
    assert validator.META_SCHEMA["$id"].rstrip("#") == declared.rstrip("#")
    validator.check_schema(schema)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=[p.name for p in SCHEMA_FILES])
def test_every_ref_resolves_inside_its_file(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    resource = referencing.Resource.from_contents(schema)
    resolver = referencing.Registry().with_resource(schema["$id"], resource).resolver(base_uri=schema["$id"])
    refs = set(_refs(schema))
    assert refs or "$defs" not in schema, f"{path.name} defines $defs it never uses"
    for ref in sorted(refs):
        assert ref.startswith("#"), f"{path.name}: {ref} leaves the file, which is published alone"
        resolver.lookup(ref)  # raises on a pointer into nothing
