"""Optuna's `study.optimize` through the bridge: `from bridge.optuna import BridgeObjective` (extra `optuna`).

    BridgeObjective     the objective: one trial, one suggestion; the study's pruner stops remote runs
                        (objective.py)
    SuggestionRefused   a trial's params the template refuses, before anything is sent (template_check.py)
    BridgeUnreachable   no broker, or no `bridge serve` topics, within the connect timeout (connection.py)
verdict.py says what a run's final result tells Optuna. `import bridge` never imports this package (nor Optuna).
"""

from bridge.optuna.connection import BridgeUnreachable
from bridge.optuna.objective import BridgeObjective
from bridge.optuna.template_check import SuggestionRefused

__all__ = ["BridgeObjective", "BridgeUnreachable", "SuggestionRefused"]
