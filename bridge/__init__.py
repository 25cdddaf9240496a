"""suggestion-bridge: run an optimizer's suggestions as Polyaxon mapping operations."""

__version__ = "0.1.0"
