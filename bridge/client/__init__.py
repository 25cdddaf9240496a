"""The optimizer's side of the bridge: `BridgeClient` publishes suggestions and awaits their results."""

from bridge.client.client import BridgeClient, ResultsTimeout

__all__ = ["BridgeClient", "ResultsTimeout"]
