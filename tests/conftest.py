"""Shared fixtures."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from bridge.logs import LIBRARY_LOGGERS
from tests.engine_support import Engine

pytest_plugins = ["tests.kafka_broker", "tests.ray_cluster"]


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    """A fresh work dir with the means to run operations of the test job."""
    return Engine(tmp_path)


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """Each test leaves logging as it found it: code that configures the bridge's logging in the test process
    (`bridge.optuna` does, for a program that has not) would otherwise filter what later tests capture."""
    configured, config = structlog.is_configured(), structlog.get_config()
    library = [(log, log.handlers[:], log.level, log.propagate) for log in map(logging.getLogger, LIBRARY_LOGGERS)]
    yield
    structlog.reset_defaults()
    if configured:
        structlog.configure(**config)
    for log, handlers, level, propagate in library:
        log.handlers[:], log.level, log.propagate = handlers, level, propagate
