"""The board folds the topics into what the overview shows: runs by status, the best value and when it moved,
throughput, running runs from operation events; and it stays bounded however many results come."""

from __future__ import annotations

from bridge.contract.results import RunError
from bridge.dash.board import Board
from bridge.dash.objective import Objective, objective_of_operation, parse_objective
from tests.dash.dash_support import T0, created, early_stop_rule, finished, progress, refused, result, running


def test_runs_are_counted_by_the_status_a_person_cares_about() -> None:
    board = Board()
    board.take_result(result("s", 1, loss=0.5), {})
    board.take_result(result("s", 2, loss=0.4, cached=True), {})
    board.take_result(result("s", 3, status="failed"), {})
    board.take_result(refused("s", 4), {})
    board.take_result(result("s", 5, status="stopped"), {})
    board.take_result(result("s", 1, loss=0.5, replayed=True), {})  # a copy of run 1's: not a result more
    study = board.studies["s"]
    assert dict(study.counts) == {"succeeded": 1, "cached": 1, "failed": 1, "refused": 1, "stopped": 1}
    assert study.results == 5


def test_running_runs_come_from_the_open_operations_progress() -> None:
    board = Board()
    board.take_operation(created("s", op="a"), partition=0)
    board.take_operation(created("s", op="b"), partition=1)
    board.take_operation(running("s", 3, op="a"), partition=0)
    board.take_operation(running("s", 2, op="b"), partition=1)
    assert board.studies["s"].running == 5
    board.take_operation(finished("s", op="a"), partition=0)
    assert board.studies["s"].running == 2
    assert {p.partition: p.events for p in board.partitions.values()} == {0: 3, 1: 2}


def test_the_best_value_and_when_it_last_moved_follow_the_objective() -> None:
    board = Board()
    board.take_operation(created("s", early_stop_rule("loss", "minimize")), partition=0)
    for n, loss in enumerate([0.9, 0.5, 0.7, 0.3, 0.6], start=1):
        board.take_result(result("s", n, loss=loss), {})
    study = board.studies["s"]
    objective = board.objective(study)
    assert objective == Objective("loss", maximize=False)
    value, seq, at = study.best["loss"].of(objective)
    assert (value, seq, at) == (0.3, 4, (T0.timestamp() + 4))
    assert study.best["loss"].of(Objective("loss", maximize=True))[:2] == (0.9, 1)


def test_the_objective_falls_back_to_the_templates_rule_and_can_be_asked() -> None:
    board = Board(template_objectives={"job": Objective("acc", maximize=True)})
    board.take_result(result("s", 1, loss=0.5), {})
    study = board.studies["s"]
    assert board.objective(study) == Objective("acc", maximize=True)
    assert board.objective(study, parse_objective("loss:min")) == Objective("loss", maximize=False)
    assert parse_objective("loss") is None
    assert parse_objective("loss:sideways") is None
    assert objective_of_operation({"matrix": "nonsense"}) is None
    assert objective_of_operation(early_stop_rule("acc", "maximize")) == Objective("acc", maximize=True)


def test_throughput_counts_the_last_five_minutes_by_finish_time() -> None:
    board = Board()
    for n in range(30):
        board.take_result(result("s", n, loss=1.0), {})
    study = board.studies["s"]
    assert study.throughput(T0.timestamp() + 30) == 30 * 60 / 300
    assert study.throughput(T0.timestamp() + 3600) == 0


def test_memory_is_bounded_by_the_last_runs_and_the_history() -> None:
    board = Board(keep_runs=10, history=50, max_studies=3)
    for n in range(1000):
        board.take_result(result("s", n, loss=float(n % 97)), {})
        board.take_result(progress("s", n, 0, 1.0), {})
    study = board.studies["s"]
    assert len(study.runs) == 10
    assert list(study.runs)[-1] == "s-run-999"
    assert len(study.history) == 50
    assert study.results == 1000
    assert study.best["loss"].low == 0.0
    for name in ("a", "b", "c", "d"):
        board.take_result(result(name, 1, loss=1.0), {})
    assert list(board.studies) == ["b", "c", "d"]


def test_progress_is_kept_per_run_and_early_stopped_runs_are_known() -> None:
    board = Board()
    for step, loss in enumerate([0.9, 0.8, 0.85]):
        board.take_result(progress("s", 1, step, loss), {})
    early = RunError(type="early_stopped", message="median rule")
    board.take_result(result("s", 1, status="stopped", error=early), {})
    run = board.studies["s"].runs["s-run-1"]
    assert [m["loss"] for _, m in run.progress] == [0.9, 0.8, 0.85]
    assert run.early_stopped
    assert run.status == "stopped"
    assert board.find_run("s-run-1") is run
