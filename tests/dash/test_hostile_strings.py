"""Topic data is hostile: a study, param, output, error or dead letter holding markup is shown as text on every
page and in every plot, never as markup."""

from __future__ import annotations

import html

from bridge.contract.dead_letters import excerpt_around
from bridge.contract.results import RunResult
from bridge.dash import pages
from bridge.dash.board import Board
from bridge.dash.objective import Objective
from tests.dash.dash_support import HOSTILE, dead_letter, progress, result

STATUS = {"caught_up": True, "read": 1, "total": 1, "behind": 0, "group_lag": {HOSTILE: 1}, "missing": []}


def _hostile_board() -> Board:
    # An operation event's study is a checked name; a result's is any string: the hostile study comes by results.
    board = Board(template_objectives={"job": Objective("loss", maximize=False)})
    for n in range(3):
        r = result(HOSTILE, n, loss=0.5 - n / 10)
        hostile = RunResult(
            **{
                **r.model_dump(by_alias=True),
                "params": {HOSTILE: HOSTILE, "lr": n},
                "outputs": {"loss": 0.5 - n / 10, HOSTILE: HOSTILE},
                "run_id": f"{HOSTILE}-{n}",
                "suggestion_id": HOSTILE,
            }
        )
        board.take_result(hostile, hostile.model_dump(mode="json", by_alias=True))
        board.take_result(progress(HOSTILE, n, 0, 1.0), {})
    board.take_dead_letter(dead_letter(f'{{"study": "{HOSTILE}", "epochs": "{HOSTILE}"}}'.encode(), field="epochs"))
    return board


def _assert_inert(page: str) -> None:
    assert "<script>window" not in page
    assert "<img" not in page
    assert 'onerror="' not in page
    assert html.escape(HOSTILE, quote=True)[:40] in page or "&lt;script&gt;" in page


def test_every_page_shows_hostile_strings_as_text() -> None:
    board = _hostile_board()
    study = board.studies[HOSTILE]
    run = next(iter(study.runs.values()))
    rendered = [
        pages.render("overview.html", version=1, **pages.overview(board, STATUS)),
        pages.render("study.html", version=1, **pages.study_page(board, study, None)),
        pages.render("study.html", version=1, **pages.study_page(board, study, f"{HOSTILE}:min")),
        pages.render("run.html", version=1, **pages.run_page(board, run)),
        pages.render("dead_letters.html", version=1, **pages.letters_page(board)),
        pages.render("study.html", fragment=True, version=1, **pages.study_page(board, study, HOSTILE)),
    ]
    for page in rendered:
        _assert_inert(page)


def test_links_carry_topic_strings_only_url_encoded() -> None:
    board = _hostile_board()
    page = pages.render("overview.html", version=1, **pages.overview(board, STATUS))
    assert 'href="/study?name=%3Cscript%3E' in page


def test_a_dead_letter_excerpt_shows_the_bytes_around_the_field_at_fault() -> None:
    raw = b'{"study": "s", "suggestions": [{"params": {"lr": 0.1, "epochs": "five"}}], "pad": "' + b"x" * 300 + b'"}'
    text = excerpt_around(raw, "suggestions[0].params.epochs", width=60)
    assert '"epochs": "five"' in text
    assert text.startswith("...") and text.endswith("...")
    assert excerpt_around(b"\xff\x00not json", None).startswith("\ufffd\\x00not")
