"""`bridge dash` seen in a real headless browser, on the real broker, while `bridge serve` runs a study: the
overview lists the study, the history has one point per result and a best-so-far line, new results appear
without a reload, a hostile study name is text that runs nothing, and the token is enforced when set.

`bridge serve -c bridge.yaml` and `bridge dash -c bridge.yaml` run as processes of their own, as a user runs them
(`Served`); the test only writes to the suggestions topic, as an optimizer does, and looks through the browser.
The runs are tests/dash/toy_training.py, whose params read like a real study's (the README's screenshot is one of
these tests')."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.config.settings import BridgeSettings
from tests.dash.browser import DashProcess, chromium, dash_process, screenshot
from tests.dash.dash_support import HOSTILE
from tests.dash.toy_training import component, final_loss
from tests.faults.harness import Replica
from tests.polling import eventually
from tests.service.service_support import send_raw, service_settings, suggestion

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(240)]

STUDY = "mnist-tpe"


def _settings(bootstrap: str, root: Path) -> BridgeSettings:
    """The toy training as template `train`, judged by `loss` (minimised) through its metric early stopping rule
    (a value no run reaches: it names the objective and stops nothing); and as `train-median`, one run at a time,
    whose rule's median policy stops a run whose loss is worse than the median of the others' at the same epoch."""
    template = {
        "component": component(),
        "matrix": {
            "kind": "mapping",
            "concurrency": 4,
            "earlyStopping": [
                {"kind": "metric_early_stopping", "metric": "loss", "value": -1.0, "optimization": "minimize"}
            ],
        },
    }
    median = {
        "component": component(),
        "matrix": {
            "kind": "mapping",
            "concurrency": 1,
            "earlyStopping": [
                {
                    "kind": "metric_early_stopping",
                    "metric": "loss",
                    "optimization": "minimize",
                    "policy": {"kind": "median", "evaluationInterval": 1, "minSamples": 2},
                }
            ],
        },
    }
    return service_settings(bootstrap, root, templates={"train": template, "train-median": median})


def _trial(learning_rate: float, dropout: float, optimizer: str, batch_size: int) -> dict[str, Any]:
    return {"learning_rate": learning_rate, "dropout": dropout, "optimizer": optimizer, "batch_size": batch_size}


def _loss(params: dict[str, Any]) -> float:
    """The final loss toy_training reports for `params`."""
    return final_loss(**params)


@dataclass
class Served:
    """`bridge serve` running the config, and `bridge dash` looking at its topics: two processes."""

    settings: BridgeSettings
    bootstrap: str
    serve: Replica
    dash: DashProcess

    @property
    def url(self) -> str:
        return self.dash.url


@contextlib.asynccontextmanager
async def served(bootstrap: str, root: Path, *dash_args: str) -> AsyncIterator[Served]:
    """`bridge serve -c bridge.yaml` until /readyz answers, then `bridge dash -c bridge.yaml DASH_ARGS` until it
    listens; at the end each must exit 0 on SIGTERM (the dash first, then the bridge, drained)."""
    settings = _settings(bootstrap, root)
    config = root / "bridge.yaml"  # written by service_settings
    serve = Replica("serve", config, root)
    try:
        serve.start()
        await serve.wait_ready()
        with dash_process(config, *dash_args, log=root / "dash.log") as dash:
            yield Served(settings, bootstrap, serve, dash)
        code = await serve.terminate()
        assert code == 0, f"bridge serve exited {code} on SIGTERM:\n{serve.log_tail()}"
    finally:
        serve.kill_if_alive()


async def _suggest(
    served: Served, params: list[dict[str, Any]], *, study: str = STUDY, template: str = "train"
) -> None:
    """One suggestion message, as an optimizer sends it: these params to run under `template`."""
    message = suggestion(study, params, template=template)
    await send_raw(served.bootstrap, served.settings.topics.suggestions, [message], key=study.encode())


async def _in_browser(driver: Any, fn: Callable[[Any], Any]) -> Any:
    return await asyncio.to_thread(fn, driver)


def _count(css: str) -> Callable[[Any], int]:
    from selenium.webdriver.common.by import By

    return lambda d: len(d.find_elements(By.CSS_SELECTOR, css))


def _api(url: str, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(url.rstrip("/") + path, timeout=5) as response:
        data: dict[str, Any] = json.load(response)
        return data


def _status(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    driver = await asyncio.to_thread(chromium)
    try:
        yield driver
    finally:
        try:
            await asyncio.wait_for(asyncio.to_thread(driver.quit), timeout=30)
        except TimeoutError:  # a hung browser: kill its driver (the browser goes with it) so the test ends
            driver.service.process.kill()


@pytest.fixture
async def bridge(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Served]:
    async with served(kafka_bootstrap, tmp_path) as running:
        yield running


async def test_the_study_its_history_and_new_results_live(bridge: Served, browser: Any) -> None:
    url = bridge.url
    first = [_trial(0.1, 0.5, "adam", 128), _trial(0.003, 0.2, "sgd", 64), _trial(0.03, 0.4, "adam", 32)]
    later = [_trial(0.01, 0.1, "adam", 64), _trial(0.005, 0.3, "rmsprop", 32)]
    await _suggest(bridge, first)

    def results() -> int:
        studies = _api(url, "/api/studies")["studies"]
        return sum(s["results"] for s in studies if s["name"] == STUDY)

    await eventually(lambda: results() == 3, timeout=60, in_thread=True, what="3 results never on the dash")
    await _in_browser(browser, lambda d: d.get(url))
    rows = await _in_browser(browser, lambda d: d.find_element("css selector", "table.studies tbody").text)
    assert STUDY in rows
    screenshot(browser, "overview")

    study_url = f"{url}study?name={STUDY}"
    await _in_browser(browser, lambda d: d.get(study_url))
    assert await _in_browser(browser, _count("#history circle.point")) == 3
    assert await _in_browser(browser, _count("#history polyline.best")) == 1
    assert await _in_browser(browser, _count("#parallel polyline.run-line")) == 3
    assert await _in_browser(browser, _count("#progress polyline.progress-line")) == 3
    assert await _in_browser(browser, _count("table.runs tbody tr.run-row")) == 3
    # The objective comes from the template's rule, and the best so far is the lowest loss of the three.
    page = await _in_browser(browser, lambda d: d.find_element("css selector", "form.objective").text)
    assert "loss:min" in page and f"best {min(map(_loss, first)):.6g}" in page, page

    # Live: the page is not reloaded (the marker survives), and the new results' points come in.
    await _in_browser(browser, lambda d: d.execute_script("window.__notReloaded = true"))
    await eventually(lambda: browser.find_element("id", "live-state").text == "live", timeout=10, in_thread=True)
    await _suggest(bridge, later)
    await eventually(lambda: results() == 5, timeout=60, in_thread=True, what="2 more results never came")
    on_board = time.monotonic()
    await eventually(lambda: _count("#history circle.point")(browser) == 5, timeout=5, in_thread=True)
    assert time.monotonic() - on_board < 1.0, "the page took more than a second to show new results"
    assert await _in_browser(browser, lambda d: d.execute_script("return window.__notReloaded"))
    screenshot(browser, "study", height=1080)  # the history and the parallel coordinates: docs/dash.png

    # Sorting and filtering the runs table, in the page.
    await _in_browser(browser, lambda d: d.find_element("id", "run-filter").send_keys("rmsprop"))
    visible = await _in_browser(
        browser,
        lambda d: [r.text for r in d.find_elements("css selector", "table.runs tbody tr") if r.is_displayed()],
    )
    assert len(visible) == 1 and "rmsprop" in visible[0] and f"{_loss(later[1]):.6g}" in visible[0], visible

    # A click on the objective's column sorts the runs by it, a second one the other way (filter cleared).
    from selenium.webdriver.common.keys import Keys

    await _in_browser(browser, lambda d: d.find_element("id", "run-filter").send_keys(*[Keys.BACKSPACE] * 7))
    heads = await _in_browser(
        browser, lambda d: [h.text for h in d.find_elements("css selector", "table.runs thead th")]
    )
    column = heads.index("loss:min")

    def sorted_by_objective(d: Any) -> list[float]:
        d.find_elements("css selector", "table.runs thead th")[column].click()
        rows = [r for r in d.find_elements("css selector", "table.runs tbody tr.run-row") if r.is_displayed()]
        return [float(r.find_elements("css selector", "td")[column].text) for r in rows]

    ascending = await _in_browser(browser, sorted_by_objective)
    assert ascending == sorted(_loss(p) for p in first + later), ascending
    descending = await _in_browser(browser, sorted_by_objective)
    assert descending == sorted(ascending, reverse=True), descending

    # A suggestion its template refuses: its dead letter, with its reason and field, on the dead letters page.
    await _suggest(bridge, [{**later[0], "learning_rate": "not a number"}])
    await eventually(lambda: len(_api(url, "/api/dead-letters")["letters"]) == 1, timeout=60, in_thread=True)
    await _in_browser(browser, lambda d: d.get(f"{url}dead-letters"))
    row = await _in_browser(browser, lambda d: d.find_element("css selector", "tr.letter-row").text)
    assert "invalid_params" in row and "learning_rate" in row and "not a number" in row, row
    screenshot(browser, "dead-letters")

    run_id = _api(url, f"/api/study?name={STUDY}")["runs"][0]["run_id"]
    await _in_browser(browser, lambda d: d.get(f"{url}run?id={urllib.parse.quote(run_id)}"))
    command = await _in_browser(browser, lambda d: d.find_element("css selector", "code.logs-command").text)
    assert command == f"bridge logs {run_id}"
    screenshot(browser, "run")


async def test_an_early_stopped_run_is_marked_in_the_intermediate_values(bridge: Served, browser: Any) -> None:
    """Two runs train well, the second better than the first, then one trains badly: the median policy stops it
    at its first judged epoch, and the study page draws its loss curve dashed, with a cross at its last value, and
    its row says it stopped early; the two others are drawn plain."""
    study = "mnist-median"
    good = [_trial(0.003, 0.2, "sgd", 64), _trial(0.01, 0.1, "adam", 64)]
    # Ten epochs of a second each unless stopped: its loss is far above the others' from the first epoch on.
    bad = {**_trial(1.0, 0.9, "sgd", 256), "epochs": 10, "epoch_seconds": 1.0}
    await _suggest(bridge, [*good, bad], study=study, template="train-median")

    def runs() -> list[dict[str, Any]]:
        try:
            found: list[dict[str, Any]] = _api(bridge.url, f"/api/study?name={study}")["runs"]
        except urllib.error.HTTPError as exc:
            if exc.code == 404:  # until the study's first event is on the board
                return []
            raise
        return found

    await eventually(
        lambda: sum(r["status"] != "running" for r in runs()) == 3,
        timeout=60,
        in_thread=True,
        what=lambda: f"the 3 runs never all ended: {[(r['params'], r['status']) for r in runs()]}",
    )
    (stopped,) = [r["run_id"] for r in runs() if r["params"].get("learning_rate") == 1.0]

    await _in_browser(browser, lambda d: d.get(f"{bridge.url}study?name={study}"))
    assert await _in_browser(browser, _count("#progress polyline.progress-line")) == 3
    marked = await _in_browser(
        browser,
        lambda d: [e.get_attribute("data-run") for e in d.find_elements("css selector", "#progress .early-stopped")],
    )
    assert marked == [stopped]
    assert await _in_browser(browser, _count("#progress path.stop-mark")) == 1
    # It was stopped mid-training: fewer points than its ten epochs.
    points = await _in_browser(
        browser, lambda d: d.find_element("css selector", "#progress polyline.early-stopped").get_attribute("points")
    )
    assert 1 <= len(points.split()) < 10, points
    row = await _in_browser(browser, lambda d: d.find_element("css selector", "table.runs tr.early-stopped").text)
    assert "stopped (early stop)" in row and "early_stopped" in row and "median" in row, row
    await _in_browser(browser, lambda d: d.find_element("id", "progress").location_once_scrolled_into_view)
    screenshot(browser, "early-stopped")


async def test_a_hostile_study_name_is_shown_as_text_and_runs_nothing(bridge: Served, browser: Any) -> None:
    # Only the bridge should write results, but a dash trusts no topic: a forged result with markup everywhere.
    forged = {
        "schema": "bridge.result/v1",
        "study": HOSTILE,
        "template": "train",
        "operation_id": "op",
        "run_id": "forged-1",
        "suggestion_id": HOSTILE,
        "index": 0,
        "params": {"lr": HOSTILE, HOSTILE: 1},
        "status": "succeeded",
        "outputs": {"loss": 0.5},
        "finished_at": "2026-12-01T12:00:00Z",
    }
    await send_raw(bridge.bootstrap, bridge.settings.topics.results, [json.dumps(forged).encode()], key=b"x")
    await eventually(lambda: len(_api(bridge.url, "/api/studies")["studies"]) == 1, timeout=60, in_thread=True)
    await _in_browser(browser, lambda d: d.get(bridge.url))
    link = await _in_browser(browser, lambda d: d.find_element("css selector", "a.study-link"))
    assert await asyncio.to_thread(lambda: link.text) == HOSTILE
    await asyncio.to_thread(link.click)
    name = await _in_browser(browser, lambda d: d.find_element("css selector", ".study-name").text)
    assert name == HOSTILE
    assert await _in_browser(browser, _count("main img")) == 0
    assert await _in_browser(browser, _count("main script")) == 0
    assert await _in_browser(browser, lambda d: d.execute_script("return window.__pwned === undefined"))
    screenshot(browser, "hostile")


async def test_the_token_is_enforced_when_set(kafka_bootstrap: str, tmp_path: Path, browser: Any) -> None:
    async with served(kafka_bootstrap, tmp_path, "--token", "s3cret") as bridge:
        url = bridge.url
        for path in ("/", "/api/studies", "/static/dash.js", "/events", "/?token=wrong"):
            assert await asyncio.to_thread(_status, url.rstrip("/") + path) == 401, path
        assert await asyncio.to_thread(_status, url + "api/studies", {"Authorization": "Bearer s3cret"}) == 200

        await _in_browser(browser, lambda d: d.get(url))
        assert "needs its token" in await _in_browser(browser, lambda d: d.page_source)
        await _in_browser(browser, lambda d: d.get(url + "?token=s3cret"))
        assert await _in_browser(browser, lambda d: d.current_url) == url  # the token left the address bar
        assert (await _in_browser(browser, lambda d: d.find_element("css selector", "h1").text)).startswith("Studies")
        # The live stream is let through by the cookie too.
        await eventually(lambda: browser.find_element("id", "live-state").text == "live", timeout=10, in_thread=True)
        await _in_browser(browser, lambda d: d.get(url + "dead-letters"))  # the cookie carries it on
        assert (await _in_browser(browser, lambda d: d.find_element("css selector", "h1").text)).startswith("Dead")
