"""Without a browser, the browser tests skip on a developer's machine and fail in CI: skipped there, CI would pass
with the dash's pages never looked at."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dash import browser


def test_in_ci_a_missing_browser_fails_naming_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(browser, "CHROMIUM", str(tmp_path / "no-chromium"))
    with pytest.raises(pytest.fail.Exception, match="no-chromium is missing: apt-get install chromium"):
        browser.chromium()


def test_elsewhere_a_missing_driver_skips_naming_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(browser, "CHROMEDRIVER", str(tmp_path / "no-chromedriver"))
    with pytest.raises(pytest.skip.Exception, match="no-chromedriver is missing: apt-get install"):
        browser.chromium()
