"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine_support import Engine

pytest_plugins = ["tests.kafka_broker", "tests.ray_cluster"]


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    """A fresh work dir with the means to run operations of the test job."""
    return Engine(tmp_path)
