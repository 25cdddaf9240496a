"""The bridge's topics, by the name of their channel, and the names they have unless the config renames them."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

DEFAULT_TOPICS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "suggestions": "bridge.suggestions",
        "results": "bridge.results",
        "operations": "bridge.operations",
        "dead_letters": "bridge.dlq",
        "control": "bridge.control",
        "ledger": "bridge.ledger",
    }
)
"""channel -> topic: what the config's `topics:` section defaults to, and the AsyncAPI document's addresses."""
