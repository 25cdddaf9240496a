"""A real headless browser for the dash's tests, and `bridge dash` as a process for it to look at.

The browser is Debian's `chromium` driven through Selenium and Debian's `chromium-driver` (`.ci/run` installs
both); without them the browser tests skip, saying what is missing, except in CI (`CI` set), where they fail.
Screenshots go to `.ci/artifacts/dash/`, which CI keeps. Selenium blocks: the async tests call it through
`asyncio.to_thread`, so their event loop runs on.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.polling import wait_until

ARTIFACTS = Path(__file__).resolve().parents[2] / ".ci" / "artifacts" / "dash"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def chromium() -> Any:
    """A headless Chromium session (a selenium WebDriver); without one, a skip naming what is not installed, or in
    CI (the variable `CI` set) a failure: skipped there, the browser tests would let CI pass with the page untested."""
    give_up = pytest.fail if os.environ.get("CI") else pytest.skip
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            give_up(f"{path} is missing: apt-get install chromium chromium-driver (as .ci/run does)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        give_up("selenium is not installed (pip install -e '.[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    # No browser call may hang a test: a page that does not load, or a script that does not return, fails it.
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(10)
    return driver


def screenshot(driver: Any, name: str, *, height: int | None = None) -> Path:
    """Save what the browser shows as `.ci/artifacts/dash/<name>.png`; with `height`, through a window that tall
    for the moment (more of a long page)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    size = driver.get_window_size()
    if height is not None:
        driver.set_window_size(size["width"], height)
    try:
        driver.save_screenshot(str(path))
    finally:
        if height is not None:
            driver.set_window_size(size["width"], size["height"])
    return path


class DashProcess:
    """`bridge dash -c CONFIG --port 0` as a process; `url` once it listens."""

    def __init__(self, config: Path, *args: str, log: Path) -> None:
        self._log_path = log
        self._log = log.open("w")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", "dash", "-c", str(config), "--port", "0", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.url = ""

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")

    def wait_listening(self, timeout: float = 60) -> str:
        def listening() -> bool:
            assert self.proc.poll() is None, f"bridge dash exited early: {self.log()}"
            found = re.search(r"serving on (http://[0-9.]+:\d+/)", self.log())
            if found:
                self.url = found.group(1)
            return bool(found)

        wait_until(listening, timeout=timeout)
        return self.url

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, and its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._log.close()


@contextlib.contextmanager
def dash_process(config: Path, *args: str, log: Path) -> Iterator[DashProcess]:
    """A listening `bridge dash`; it must exit 0 on SIGTERM at the end."""
    dash = DashProcess(config, *args, log=log)
    try:
        dash.wait_listening()
        yield dash
    finally:
        code = dash.terminate()
    assert code == 0, f"bridge dash exited {code} on SIGTERM: {dash.log()}"
