"""`values: []`, a mapping without values and `values: "{{ configs }}"`, as Polyaxon reads them (issue 11, 2 and 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.errors import PolyaxonfileError
from bridge.polyaxon import expand_runs, load_operation
from tests.cli.cli_support import bridge
from tests.polyaxon.cli_files import with_typed_component, write
from tests.polyaxon.support import operation, parse, paths, problems


def test_an_empty_mapping_still_needs_its_required_inputs() -> None:
    # Polyaxon: "Input epochs is required, no param was passed." (the quick-start's `epochs` has no default).
    (problem,) = problems(operation([]))

    assert problem.path == "matrix.values"
    assert "`epochs` is required" in problem.message


def test_a_file_whose_mapping_has_no_values_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, operation(None))
    with_typed_component(tmp_path)

    with pytest.raises(PolyaxonfileError) as caught:
        load_operation(path)

    assert [p.path for p in caught.value.problems] == ["matrix.values"]
    assert "Field required" in caught.value.problems[0].message


def test_check_and_run_agree_an_empty_mapping_is_no_run(tmp_path: Path) -> None:
    doc = operation([], params={"epochs": 1})
    with_typed_component(tmp_path)
    path = write(tmp_path, doc)

    result = bridge("check", "-f", str(path), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "valid, 0 run(s)" in result.stderr


def test_values_given_by_a_context_param_are_the_runs(tmp_path: Path) -> None:
    configs = [{"epochs": 1}, {"epochs": 2, "dropout": 0.5}]
    doc = operation(
        None, params={"configs": {"value": configs, "contextOnly": True}}, matrix={"values": "{{ configs }}"}
    )
    with_typed_component(tmp_path)
    path = write(tmp_path, doc)

    runs = expand_runs(load_operation(path))
    checked = bridge("check", "-f", str(path), cwd=tmp_path)
    overridden = bridge("check", "-f", str(path), "-P", 'configs=[{"epochs": 7}]', cwd=tmp_path)

    assert [(r["epochs"], r["dropout"]) for r in runs] == [(1, 0.2), (2, 0.5)]
    assert checked.returncode == 0, checked.stderr
    assert "valid, 2 run(s)" in checked.stderr
    assert "valid, 1 run(s)" in overridden.stderr


def test_values_given_by_a_declared_input_or_no_param_are_refused_at_matrix_values() -> None:
    declared = operation(None, params={"epochs": 3}, matrix={"values": "{{ epochs }}"})
    missing = operation(None, matrix={"values": "{{ configs }}"})
    not_runs = operation(
        None, params={"configs": {"value": [1, 2], "contextOnly": True}}, matrix={"values": "{{ configs }}"}
    )

    assert paths(declared) == ["matrix.values"]
    assert paths(missing) == ["matrix.values"]
    assert paths(not_runs) == ["params.configs"]
    assert paths(operation(None, matrix={"values": "epochs: 3"})) == ["matrix.values"]


def test_a_parsed_template_may_still_leave_its_values_to_the_optimizer() -> None:
    template = parse({"pathRef": "components/typed.yaml", "matrix": {"kind": "mapping"}})

    assert template.matrix is not None and template.matrix.values is None
