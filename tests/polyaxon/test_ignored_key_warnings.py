"""Keys Polyaxon accepts that do nothing here are accepted with a warning naming them (issue 11, item 5)."""

from __future__ import annotations

from typing import Any

from tests.polyaxon.support import component, operation, parse


def warnings_of(doc: dict[str, Any]) -> dict[str, str]:
    return {w.path: w.message for w in parse(doc).warnings}


def test_kubernetes_only_keys_are_named() -> None:
    comp = component(imagePullPolicy="Always")
    comp["run"]["environment"] = {"nodeSelector": {"gpu": "yes"}}

    found = warnings_of(operation([{}], component=comp, queue="agent/gpu"))

    assert set(found) == {"queue", "component.run.environment", "component.run.container.imagePullPolicy"}
    assert "`environment` is ignored" in found["component.run.environment"]


def test_container_resources_are_for_the_ray_executor() -> None:
    found = warnings_of(operation([{}], component=component(resources={"limits": {"cpu": 2}})))

    assert "Ray executor" in found["component.run.container.resources"]


def test_a_failure_percent_over_100_is_accepted_and_warned_about() -> None:
    rule = {"kind": "failure_early_stopping", "percent": 150}

    found = warnings_of(operation([{}], component=component(), matrix={"earlyStopping": [rule]}))

    assert "never fires" in found["matrix.earlyStopping[0].percent"]


def test_a_plain_file_has_no_warning() -> None:
    assert warnings_of(operation([{}], component=component(args=["{{ globals.uuid }}"]))) == {}
