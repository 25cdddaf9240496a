"""Polyaxon features the bridge does not run are refused by name; harmless scheduling hints are accepted."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.errors import NotSupported
from bridge.polyaxon import expand_runs
from tests.polyaxon.support import component, operation, parse


def refused(data: dict[str, Any]) -> NotSupported:
    with pytest.raises(NotSupported) as caught:
        parse(data)
    return caught.value


@pytest.mark.parametrize("key", ["hubRef", "dagRef"])
def test_hub_and_dag_references_are_not_supported(key: str) -> None:
    data = operation([{"epochs": 1}])
    del data["pathRef"]
    data[key] = "tensorflow:mnist"

    error = refused(data)

    assert error.path == key
    assert f"`{key}` is not supported" in error.problems[0].message


@pytest.mark.parametrize("kind", ["grid", "random", "hyperband", "bayes", "iterative"])
def test_matrix_kinds_other_than_mapping_are_not_supported(kind: str) -> None:
    error = refused({"kind": "operation", "pathRef": "components/typed.yaml", "matrix": {"kind": kind}})

    assert error.path == "matrix.kind"
    assert f"matrix kind `{kind}` is not supported" in error.problems[0].message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("hooks", [{"connection": "slack"}]),
        ("schedule", {"kind": "cron", "cron": "0 * * * *"}),
        ("joins", [{"query": "metrics.loss:<0.1"}]),
        ("dependencies", ["upstream"]),
        ("trigger", "all_succeeded"),
        ("conditions", "{{ x > 1 }}"),
        ("runPatch", {"container": {"image": "x"}}),
        ("isPreset", True),
    ],
)
def test_operation_sections_that_change_what_runs_are_not_supported(key: str, value: Any) -> None:
    error = refused(operation([{"epochs": 1}], **{key: value}))

    assert [(p.path, p.message) for p in error.problems] == [(key, f"`{key}` is not supported by the bridge")]


@pytest.mark.parametrize(
    ("where", "path"),
    [
        ({"ports": [8080]}, "component.run.container.ports"),
        ({"volumeMounts": [{"name": "data", "mountPath": "/data"}]}, "component.run.container.volumeMounts"),
        (
            {"env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s"}}}]},
            "component.run.container.env[0].valueFrom",
        ),
    ],
)
def test_kubernetes_only_container_fields_are_not_supported(where: dict[str, Any], path: str) -> None:
    assert refused(operation([{}], component=component(**where))).path == path


def test_init_steps_other_than_git_are_not_supported() -> None:
    comp = component()
    comp["run"]["init"] = [{"git": {"url": "https://x/y"}}, {"artifacts": {"files": ["a"]}}]

    assert refused(operation([{}], component=comp)).path == "component.run.init[1].artifacts"


def test_param_references_to_other_runs_are_not_supported() -> None:
    data = operation([{}], params={"epochs": {"ref": "ops.upstream", "value": "outputs.epochs"}})

    assert refused(data).path == "params.epochs.ref"


def test_harmless_scheduling_hints_are_accepted_and_dropped() -> None:
    data = operation(
        [{"epochs": 1}],
        queue="agent/gpu",
        namespace="ml",
        presets=["a100"],
        plugins={"collectLogs": False},
        patchStrategy="post_merge",
        isPreset=False,
        hooks=[],
    )
    comp = component([{"name": "epochs", "type": "int"}], imagePullPolicy="Always")
    comp["queue"] = "q"

    assert expand_runs(parse({**data, "component": comp, "pathRef": None})) == [{"epochs": 1}]
