"""The history checker (tests/faults/history.py) catches each way a history can break the exactly-once contract,
on made-up histories: a clean one passes, and each fault of the bridge is named."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.faults.history import Execution, Fault, History, problems_of


@dataclass(frozen=True)
class _Record:
    value: bytes | None
    timestamp: int
    key: bytes | None = None


def _result(sid: str, attempt: int = 1, at: float = 10.0, **fields: Any) -> _Record:
    body = {"schema": "bridge.result/v1", "study": "s", "suggestion_id": sid, "run_id": f"r-{sid}"}
    return _Record(json.dumps({**body, "status": "succeeded", "attempt": attempt, **fields}).encode(), int(at * 1000))


def _ledger(sid: str, state: str, attempt: int, at: float = 0.0) -> _Record:
    body = {"schema": "bridge.ledger/v1", "run_id": f"r-{sid}", "suggestion_id": sid, "state": state}
    return _Record(json.dumps({**body, "attempt": attempt}).encode(), int(at * 1000))


def _suggested(sid: str, at: float = 1.0) -> _Record:
    body = {"schema": "bridge.suggestion/v1", "study": "s", "suggestions": [{"id": sid, "params": {}}]}
    return _Record(json.dumps(body).encode(), int(at * 1000))


def _run(sid: str, attempt: int, start: float, workdir: str = "/w/a") -> Execution:
    return Execution(sid, attempt, start, start + 1, f"{workdir}/runs/{sid}")


def _problems(
    results: list[_Record],
    ledger: list[_Record],
    executions: list[Execution],
    *,
    wanted: tuple[str, ...] = ("a", "b"),
    faults: tuple[Fault, ...] = (),
) -> list[str]:
    history = History.of(
        results=results,
        ledger=ledger,
        executions=executions,
        wanted={("s", w) for w in wanted},
        suggestions=[_suggested(w) for w in wanted],
    )
    return problems_of(history, list(faults), all_succeeded=True)[1]


CLEAN_LEDGER = [_ledger("a", "dispatched", 0), _ledger("a", "finished", 1), _ledger("b", "finished", 1)]


def test_a_clean_history_holds() -> None:
    assert _problems([_result("a"), _result("b")], CLEAN_LEDGER, [_run("a", 1, 2.0), _run("b", 1, 3.0)]) == []


def test_an_attempt_executed_twice_is_named() -> None:
    runs = [_run("a", 1, 2.0), _run("a", 1, 4.0, "/w/b"), _run("b", 1, 3.0)]
    found = _problems([_result("a"), _result("b")], CLEAN_LEDGER, runs, faults=(Fault(3.0, "pause"),))
    assert found == [
        "1 runs whose attempts do not match their executions: ('a', 'executions=[1, 1]', 'an attempt executed twice')"
    ]


def test_an_execution_the_ledger_never_recorded_is_named() -> None:
    ledger = [_ledger("a", "finished", 1), _ledger("b", "finished", 1)]
    runs = [_run("a", 1, 2.0), _run("a", 2, 4.0), _run("b", 1, 3.0)]
    found = _problems([_result("a", attempt=2), _result("b")], ledger, runs, faults=(Fault(3.0, "kill -9"),))
    assert found == [
        "1 runs executed an attempt the ledger never recorded: ('a', 'executed attempts [2], ledger recorded up to 1')"
    ]


def test_a_result_before_its_suggestion_is_named() -> None:
    found = _problems([_result("a", at=0.5), _result("b")], CLEAN_LEDGER, [_run("a", 1, 2.0), _run("b", 1, 3.0)])
    assert found == ["1 results before their suggestion (seconds early): (('s', 'a'), 0.5)"]


def test_a_duplicate_and_a_missing_answer_are_named() -> None:
    found = _problems([_result("a"), _result("a")], CLEAN_LEDGER, [_run("a", 1, 2.0)])
    assert found[:2] == [
        "duplicated final results: (('s', 'a'), 2)",
        "1 suggestions without a final result: ('s', 'b')",
    ]


def test_a_run_executed_again_needs_a_fault_on_its_replica() -> None:
    ledger = [*CLEAN_LEDGER, _ledger("a", "finished", 2)]
    runs = [_run("a", 1, 2.0, "/w/a"), _run("a", 2, 5.0, "/w/b"), _run("b", 1, 3.0)]
    results = [_result("a", attempt=2), _result("b")]
    elsewhere = _problems(results, ledger, runs, faults=(Fault(3.0, "kill -9 of b", Path("/w/b")),))
    assert len(elsewhere) == 1 and elsewhere[0].startswith("1 re-executions of runs not in flight at a fault")
    assert _problems(results, ledger, runs, faults=(Fault(3.0, "kill -9 of a", Path("/w/a")),)) == []


def test_an_attempt_recorded_before_a_fault_and_started_after_it_may_run_again() -> None:
    """A replica commits an attempt's `dispatched` record, loses the partition, then starts the process (its
    runs go on through a revoke): the next owner counts that attempt and runs the next one. Recorded only after
    the fault, the earlier execution had no reason to run again."""
    runs = [_run("a", 1, 3.1, "/w/a"), _run("a", 2, 5.0, "/w/b"), _run("b", 1, 3.0)]
    results = [_result("a", attempt=2), _result("b")]
    fault = (Fault(3.0, "the group moved partitions"),)
    before = [_ledger("a", "dispatched", 1, at=2.9), _ledger("a", "dispatched", 2, at=4.9), *CLEAN_LEDGER[1:]]
    assert _problems(results, [*before, _ledger("a", "finished", 2)], runs, faults=fault) == []
    after = [_ledger("a", "dispatched", 1, at=3.05), _ledger("a", "dispatched", 2, at=4.9), *CLEAN_LEDGER[1:]]
    found = _problems(results, [*after, _ledger("a", "finished", 2)], runs, faults=fault)
    assert len(found) == 1 and found[0].startswith("1 re-executions of runs not in flight at a fault")
