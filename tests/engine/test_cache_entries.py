"""A cache entry keeps a run's outputs as the run reported them, whatever their text."""

from __future__ import annotations

from pathlib import Path

from bridge.engine.cache import FileCache


def test_outputs_with_any_text_are_kept_and_read_back(tmp_path: Path) -> None:
    cache = FileCache(tmp_path)
    # A run's JSON lines may carry "\ud800": json reads it as a lone surrogate, which UTF-8 cannot write.
    outputs = {"note": "grüß \ud800", "loss": 0.5}
    cache.put("v2-" + "ab" * 32, outputs, "run-1")
    entry = cache.get("v2-" + "ab" * 32, ttl_s=None)
    assert entry is not None
    assert entry.outputs == outputs
