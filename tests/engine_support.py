"""Builds operations around tests/scripts_job.py and runs them through the real scheduler and local executor."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.engine.cache import FileCache
from bridge.engine.plan import OperationPlan, plan_local
from bridge.engine.runtime import Runtime
from bridge.engine.scheduler import OperationOutcome, OperationRunner
from bridge.executors.base import Executor
from bridge.executors.local import LocalExecutor
from bridge.local.file_ledger import FileLedger
from bridge.polyaxon import V1Operation, parse_operation

JOB = Path(__file__).with_name("scripts_job.py").resolve()


def job_component() -> dict[str, Any]:
    """A component whose inputs drive tests/scripts_job.py."""
    return {
        "kind": "component",
        "name": "job",
        "inputs": [
            {"name": "name", "type": "str"},
            {"name": "record", "type": "str"},
            {"name": "sleep", "type": "float", "value": 0.0, "isOptional": True},
            {"name": "fail_before", "type": "int", "value": 0, "isOptional": True},
            {"name": "exitcode", "type": "int", "value": 0, "isOptional": True},
            {"name": "values", "type": "str", "value": "", "isOptional": True},
            {"name": "step_sleep", "type": "float", "value": 0.0, "isOptional": True},
            {"name": "wait_for", "type": "str", "value": "", "isOptional": True},
            {"name": "ignore_sigterm", "type": "bool", "value": False, "isOptional": True, "isFlag": True},
            {"name": "no_outputs", "type": "bool", "value": False, "isOptional": True, "isFlag": True},
        ],
        "outputs": [{"name": "loss", "type": "float", "isOptional": True}],
        "run": {
            "kind": "job",
            "container": {
                "image": "python:3.11",
                "command": [sys.executable, str(JOB)],
                "args": [
                    "--name={{ name }}",
                    "--record={{ record }}",
                    "--sleep={{ sleep }}",
                    "--fail-before-attempt={{ fail_before }}",
                    "--exit={{ exitcode }}",
                    "--values={{ values }}",
                    "--step-sleep={{ step_sleep }}",
                    "--wait-for={{ wait_for }}",
                    "{{ params.ignore_sigterm.as_arg }}",
                    "{{ params.no_outputs.as_arg }}",
                ],
            },
        },
    }


@dataclass
class Execution:
    """One execution of the job, as it recorded itself."""

    name: str
    attempt: int
    start: float
    end: float | None
    argv: list[str]
    env: dict[str, str]


class Engine:
    """A work dir, a record dir and the means to run operations in them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.workdir = root / "work"
        self.record = root / "record"
        self.record.mkdir(parents=True, exist_ok=True)

    def operation(self, values: list[dict[str, Any]], **fields: Any) -> V1Operation:
        """An operation over the job component, each value given `record` and a default `name`."""
        vals = [{"name": f"r{i}", "record": str(self.record), **v} for i, v in enumerate(values)]
        return self.operation_of(fields.pop("component", None) or job_component(), vals, **fields)

    def operation_of(self, component: dict[str, Any], values: list[dict[str, Any]], **fields: Any) -> V1Operation:
        """An operation over any component, its values as given."""
        matrix: dict[str, Any] = {"kind": "mapping", "values": values}
        matrix.update(fields.pop("matrix", {}))
        data = {
            "version": 1.1,
            "kind": "operation",
            "name": fields.pop("name", "test-op"),
            "matrix": matrix,
            "component": component,
            **fields,
        }
        return parse_operation(data, source="test.yaml", base_dir=self.root)

    def plan(self, op: V1Operation, concurrency: int | None = None) -> OperationPlan:
        return plan_local(op, source="test.yaml", cwd=self.root, concurrency=concurrency)

    def runtime(
        self,
        max_parallel: int = 8,
        cache: FileCache | None = None,
        grace: float = 5.0,
        env_passthrough: tuple[str, ...] = (),
        executor: Executor | None = None,
    ) -> Runtime:
        return Runtime(
            executor=executor
            or LocalExecutor(max_parallel=max_parallel, workdir=self.workdir, env_passthrough=env_passthrough),
            ledger=FileLedger(self.workdir / "ops"),
            cache=cache or FileCache(self.workdir / "cache"),
            stop_grace_s=grace,
        )

    async def run(
        self, op: V1Operation, *, runtime: Runtime | None = None, concurrency: int | None = None
    ) -> OperationOutcome:
        return await OperationRunner(self.plan(op, concurrency), runtime or self.runtime()).run()

    def executions(self, name: str | None = None) -> list[Execution]:
        out = []
        for f in sorted(self.record.glob("*.json")):
            d = json.loads(f.read_text())
            if name is None or d["name"] == name:
                out.append(Execution(d["name"], d["attempt"], d["start"], d.get("end"), d["argv"], d["env"]))
        return out


def max_overlap(executions: list[Execution]) -> int:
    """The most executions that were running at the same instant."""
    events = []
    for e in executions:
        assert e.end is not None, f"{e.name} never ended"
        events += [(e.start, 1), (e.end, -1)]
    running = best = 0
    for _, delta in sorted(events, key=lambda ev: (ev[0], ev[1])):
        running += delta
        best = max(best, running)
    return best
