"""A stand-in for a training script, for the dash's browser tests: params that read like a real study's
(learning_rate, dropout, optimizer, batch_size), a loss per epoch reported as it trains, its final loss as the
output. The loss is a made-up function of the params (`final_loss`, `losses`), so a test knows each run's result
beforehand; `--epoch_seconds` makes each epoch take that long (a run an early-stopping policy stops mid-training).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

from bridge.tracking import log_metrics, log_outputs

SCRIPT = Path(__file__).resolve()


def final_loss(learning_rate: float, dropout: float, optimizer: str, batch_size: int) -> float:
    """Best near a learning rate of 0.01 with little dropout, a little worse with plain SGD and big batches."""
    penalty = 0.05 if optimizer == "sgd" else 0.0
    return round(abs(math.log10(learning_rate) + 2) / 4 + dropout / 2 + penalty + batch_size / 1000, 4)


def losses(final: float, epochs: int) -> list[float]:
    """The loss after each epoch: falling fast, then flattening out at `final`."""
    return [round(final + 0.6 * (0.5**epoch - 0.5 ** (epochs - 1)), 4) for epoch in range(epochs)]


def component() -> dict[str, Any]:
    """The Polyaxon component that runs this script, its params as inputs."""
    return {
        "kind": "component",
        "name": "train",
        "inputs": [
            {"name": "learning_rate", "type": "float"},
            {"name": "dropout", "type": "float"},
            {"name": "optimizer", "type": "str"},
            {"name": "batch_size", "type": "int"},
            {"name": "epochs", "type": "int", "value": 5, "isOptional": True},
            {"name": "epoch_seconds", "type": "float", "value": 0.0, "isOptional": True},
        ],
        "outputs": [{"name": "loss", "type": "float", "isOptional": True}],
        "run": {
            "kind": "job",
            "container": {
                "image": "python:3.11",
                "command": [sys.executable, str(SCRIPT)],
                "args": [
                    "--learning_rate={{ learning_rate }}",
                    "--dropout={{ dropout }}",
                    "--optimizer={{ optimizer }}",
                    "--batch_size={{ batch_size }}",
                    "--epochs={{ epochs }}",
                    "--epoch_seconds={{ epoch_seconds }}",
                ],
            },
        },
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--learning_rate", type=float, required=True)
    p.add_argument("--dropout", type=float, required=True)
    p.add_argument("--optimizer", required=True)
    p.add_argument("--batch_size", type=int, required=True)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--epoch_seconds", type=float, default=0.0)
    args = p.parse_args()
    final = final_loss(args.learning_rate, args.dropout, args.optimizer, args.batch_size)
    for epoch, loss in enumerate(losses(final, args.epochs)):
        if args.epoch_seconds:
            time.sleep(args.epoch_seconds)  # training, as far as the bridge can tell
        log_metrics(step=epoch, loss=loss)
    log_outputs(loss=final)
    return 0


if __name__ == "__main__":
    sys.exit(main())
