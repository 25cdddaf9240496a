"""All problems of a file come back at once, each naming the file, its path in it and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bridge.errors import PolyaxonfileError
from bridge.polyaxon import expand_runs, load_operation
from tests.polyaxon.support import FIXTURES, operation, parse


def test_every_problem_of_every_run_is_reported_together(tmp_path: Path) -> None:
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "typed.yaml").write_text((FIXTURES / "components" / "typed.yaml").read_text())
    data = operation(
        [{"epochs": 1}, {"epochs": "abc"}, {"dropout": "high"}, {"epochs": 2, "foo": 1}],
        params={"learning_rate": "fast"},
        strictParams=True,
    )
    file = tmp_path / "op.yaml"
    file.write_text(yaml.safe_dump(data))

    with pytest.raises(PolyaxonfileError) as caught:
        load_operation(file)

    error = caught.value
    assert error.source == str(file)
    assert [p.path for p in error.problems] == [
        "params.learning_rate",
        "matrix.values[1].epochs",
        "matrix.values[2].dropout",
        "matrix.values[2].epochs",
        "matrix.values[3].foo",
    ]
    text = str(error)
    assert f"{file}: matrix.values[1].epochs: Could not parse value `abc` to `int`" in text
    assert text.count("\n") == 4


def test_schema_problems_are_collected_in_one_pass() -> None:
    data = operation([{"epochs": 1}], matrix={"concurrency": 0, "bogus": 1}, name="bad name", cache={"ttl": "x"})

    with pytest.raises(PolyaxonfileError) as caught:
        parse(data)

    assert sorted(p.path for p in caught.value.problems) == [
        "cache.ttl",
        "matrix.bogus",
        "matrix.concurrency",
        "name",
    ]


def test_the_kafka_service_names_its_own_paths() -> None:
    template = parse(operation(matrix={"concurrency": 2}))

    with pytest.raises(PolyaxonfileError) as caught:
        expand_runs(template, [{"epochs": 1}, {"epochs": "x"}], source="cnn-tpe/cnn", values_path="suggestions")

    assert caught.value.source == "cnn-tpe/cnn"
    assert caught.value.path == "suggestions[1].epochs"
