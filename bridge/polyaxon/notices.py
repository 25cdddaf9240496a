"""What the bridge accepts as Polyaxon does but tells the user about: keys that do nothing here, odd values.

Polyaxon accepts these, so refusing them would break files that work there; running them silently would hide
that part of the file has no effect. Each becomes a warning (a Problem: path and message) on the operation,
which `bridge check` and `bridge run` print.
"""

from __future__ import annotations

import re

from bridge.errors import Problem
from bridge.polyaxon.automation import V1FailureEarlyStopping
from bridge.polyaxon.base import dropped_keys
from bridge.polyaxon.schema import V1Operation

__all__ = ["operation_warnings"]

_CONTAINER = "component.run.container"
# A template block counts as one word: `{{ prog }}` has spaces but is one program.
_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)


def operation_warnings(op: V1Operation) -> list[Problem]:
    """Every warning about `op` (its component resolved), in file order."""
    found = [Problem(path, f"`{path.rsplit('.', 1)[-1]}` is ignored: {why}") for path, why in dropped_keys(op)]
    component = op.component
    if component is not None:
        container = component.run.container
        if container.resources:
            message = (
                "`resources` is read by the Ray executor only (CPUs, GPUs, memory per run); "
                "a local run (`bridge run`, the local executor) ignores it"
            )
            found.append(Problem(f"{_CONTAINER}.resources", message))
        if isinstance(container.command, str) and len(_TEMPLATE.sub("x", container.command).split()) > 1:
            message = (
                "a one-string `command` is one program name, as in Polyaxon: "
                f"`{container.command}` is not split into words; write a list, e.g. "
                '`command: ["/bin/sh", "-c"]` with the line in `args`'
            )
            found.append(Problem(f"{_CONTAINER}.command", message))
    for index, rule in enumerate((op.matrix.early_stopping if op.matrix else None) or []):
        if isinstance(rule, V1FailureEarlyStopping) and rule.percent > 100:
            message = f"{rule.percent:g}% of the runs can never fail: this failure early stopping never fires"
            found.append(Problem(f"matrix.earlyStopping[{index}].percent", message))
    return found
