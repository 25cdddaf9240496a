"""The Polyaxon quick-start model, made small enough to train offline in about a second.

Polyaxon's quick-start trains a Keras CNN on Fashion-MNIST (a download, a GPU-friendly minute per epoch).
This script takes the very same arguments but trains on scikit-learn's bundled 8x8 `load_digits` images
(1,797 samples, read from sklearn's own package data: no network) so a mapping of several runs finishes in
seconds on one core. The Keras hyperparameters map onto the smaller model like this:

    conv1_size        number of 3x3 filters of the first convolution (Keras: 5x5 on 28x28 images);
                      followed by 2x2 max pooling, as in Keras.
    conv2_size        number of 2x2 filters of the second convolution, over the pooled 3x3 maps.
    conv_activation   the activation after each convolution: relu, sigmoid, tanh or linear.
                      The two convolutions are a fixed random feature extractor (seeded, not trained), so
                      these three shape the features the trainable layers see without slowing training.
    hidden1_size      the dense hidden layer, scaled down 10x for 64-pixel images: MLPClassifier
                      hidden_layer_sizes=(round(hidden1_size / 10),), at least 1 unit (500 -> 50).
    dense_activation  MLPClassifier activation: relu -> relu, sigmoid -> logistic, tanh -> tanh,
                      linear -> identity.
    optimizer         MLPClassifier solver: adam -> adam; sgd -> sgd with Nesterov momentum 0.9 (the Keras
                      SGD default has no momentum, but plain SGD barely moves in 5 epochs); rmsprop -> adam
                      with beta_1=0 (Adam without momentum is RMSprop with bias correction).
    learning_rate     MLPClassifier learning_rate_init, held constant.
    dropout           MLPClassifier has no dropout; it becomes the L2 penalty alpha = dropout, the
                      regulariser that plays the same part (0 = none).
    epochs            passes over the training set, one `partial_fit` each (minibatches of 64, shuffled).

After every epoch it reports the validation log loss and accuracy (a stratified 25% hold-out) with
`log_metrics(step=epoch, loss=..., accuracy=...)`, and at the end `log_outputs(loss=..., accuracy=...)`,
the component's outputs. Everything is seeded (`--seed`, default 0): the same arguments give the same numbers.

    python3 -u model.py --learning_rate=0.01 --epochs=5

Exit status: 0 trained; 2 a bad argument; 1 training diverged (a non-finite loss, e.g. too high a
learning rate), so an optimizer sees a failed trial rather than a bogus number.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any

try:
    from bridge.tracking import log_metrics, log_outputs
except ImportError:  # the run's environment may not have the bridge installed: speak its file protocol
    # Same behaviour as bridge.tracking: one JSON line per call appended to $BRIDGE_METRICS_FILE,
    # nothing at all when the variable is unset (a run by hand).
    def _append(record: dict[str, Any]) -> None:
        path = os.environ.get("BRIDGE_METRICS_FILE")
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")

    def log_metrics(step: int | None = None, **metrics: float) -> None:
        record: dict[str, Any] = {"metrics": {k: float(v) for k, v in metrics.items()}, "time": time.time()}
        if step is not None:
            record["step"] = int(step)
        _append(record)

    def log_outputs(**outputs: Any) -> None:
        _append({"outputs": outputs, "time": time.time()})


ACTIVATIONS = {"relu": "relu", "sigmoid": "logistic", "tanh": "tanh", "linear": "identity"}
OPTIMIZERS = ("adam", "rmsprop", "sgd")
BATCH_SIZE = 64
VALIDATION_FRACTION = 0.25


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="model.py", description="Polyaxon quick-start model on sklearn's digits, offline and fast."
    )
    parser.add_argument("--conv1_size", type=int, default=32, help="filters of the 1st convolution")
    parser.add_argument("--conv2_size", type=int, default=64, help="filters of the 2nd convolution")
    parser.add_argument("--dropout", type=float, default=0.2, help="in [0, 1); used as the L2 penalty")
    parser.add_argument("--hidden1_size", type=int, default=500, help="dense units before the 10x scaling")
    parser.add_argument("--conv_activation", default="relu", help=", ".join(ACTIVATIONS))
    parser.add_argument("--dense_activation", default="relu", help=", ".join(ACTIVATIONS))
    parser.add_argument("--optimizer", default="adam", help=", ".join(OPTIMIZERS))
    parser.add_argument("--learning_rate", type=float, default=0.001, help="in (0, 10]")
    parser.add_argument("--epochs", type=int, required=True, help="1 to 1000")
    parser.add_argument("--seed", type=int, default=0, help="random seed (split, filters, weights)")
    args = parser.parse_args(argv)

    def bad(name: str, expected: str) -> None:
        parser.error(f"--{name}={getattr(args, name)!s} is invalid: expected {expected}")

    for name, high in (("conv1_size", 512), ("conv2_size", 1024), ("hidden1_size", 10_000)):
        if not 1 <= getattr(args, name) <= high:
            bad(name, f"an integer from 1 to {high}")
    if not 1 <= args.epochs <= 1000:
        bad("epochs", "an integer from 1 to 1000")
    if not (math.isfinite(args.dropout) and 0.0 <= args.dropout < 1.0):
        bad("dropout", "a number in [0, 1)")
    if not (math.isfinite(args.learning_rate) and 0.0 < args.learning_rate <= 10.0):
        bad("learning_rate", "a number in (0, 10]")
    for name in ("conv_activation", "dense_activation"):
        setattr(args, name, getattr(args, name).strip().lower())
        if getattr(args, name) not in ACTIVATIONS:
            bad(name, "one of " + ", ".join(ACTIVATIONS))
    args.optimizer = args.optimizer.strip().lower()
    if args.optimizer not in OPTIMIZERS:
        bad("optimizer", "one of " + ", ".join(OPTIMIZERS))
    return args


def _activate(x: Any, name: str) -> Any:
    import numpy as np

    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if name == "tanh":
        return np.tanh(x)
    return x


def _patches(images: Any, size: int) -> Any:
    """(n, h, w, c) -> (n, h-size+1, w-size+1, size*size*c): every valid `size`x`size` window, flattened."""
    from numpy.lib.stride_tricks import sliding_window_view

    windows = sliding_window_view(images, (size, size), axis=(1, 2))  # (n, oh, ow, c, size, size)
    n, oh, ow = windows.shape[:3]
    return windows.reshape(n, oh, ow, -1)


def conv_features(images: Any, conv1_size: int, conv2_size: int, activation: str, seed: int) -> Any:
    """The fixed random convolutional front end: (n, 8, 8) images -> (n, 4 * conv2_size) features."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = images[..., None]  # (n, 8, 8, 1)
    w1 = rng.standard_normal((9, conv1_size)) / 3.0  # 3x3x1 filters, unit-variance outputs
    w1 -= w1.mean(axis=0)  # zero-mean filters respond to edges and strokes, not brightness
    x = _activate(_patches(x, 3) @ w1, activation)  # (n, 6, 6, conv1_size)
    n = x.shape[0]
    x = x.reshape(n, 3, 2, 3, 2, conv1_size).max(axis=(2, 4))  # 2x2 max pooling -> (n, 3, 3, conv1_size)
    w2 = rng.standard_normal((4 * conv1_size, conv2_size)) / math.sqrt(4 * conv1_size)
    x = _activate(_patches(x, 2) @ w2, activation)  # (n, 2, 2, conv2_size)
    return x.reshape(n, -1)


def train(args: argparse.Namespace) -> tuple[float, float]:
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    digits = load_digits()
    images = digits.images / 16.0  # pixel values 0..16 -> 0..1
    features = conv_features(images, args.conv1_size, args.conv2_size, args.conv_activation, args.seed)
    x_train, x_val, y_train, y_val = train_test_split(
        features, digits.target, test_size=VALIDATION_FRACTION, stratify=digits.target, random_state=args.seed
    )
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    classes = np.unique(digits.target)

    hidden = max(1, round(args.hidden1_size / 10))
    model = MLPClassifier(
        hidden_layer_sizes=(hidden,),
        activation=ACTIVATIONS[args.dense_activation],
        solver="sgd" if args.optimizer == "sgd" else "adam",
        beta_1=0.0 if args.optimizer == "rmsprop" else 0.9,
        momentum=0.9,
        nesterovs_momentum=True,
        learning_rate="constant",
        learning_rate_init=args.learning_rate,
        alpha=args.dropout,
        batch_size=BATCH_SIZE,
        shuffle=True,
        random_state=args.seed,
    )
    print(
        f"digits: {len(y_train)} train / {len(y_val)} validation, {features.shape[1]} conv features; "
        f"MLP hidden={hidden} activation={model.activation} solver={args.optimizer} "
        f"lr={args.learning_rate:g} alpha={args.dropout:g}",
        flush=True,
    )

    loss = accuracy = math.nan
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        model.partial_fit(x_train, y_train, classes=classes)
        proba = model.predict_proba(x_val)
        if not np.all(np.isfinite(proba)):
            raise FloatingPointError(f"non-finite predictions after epoch {epoch}")
        loss = float(log_loss(y_val, proba, labels=classes))
        accuracy = float(accuracy_score(y_val, classes[proba.argmax(axis=1)]))
        if not math.isfinite(loss):
            raise FloatingPointError(f"validation loss is {loss} after epoch {epoch}")
        log_metrics(step=epoch, loss=loss, accuracy=accuracy)
        print(
            f"epoch {epoch}/{args.epochs}: loss={loss:.4f} accuracy={accuracy:.4f} "
            f"train_loss={model.loss_:.4f} ({time.perf_counter() - started:.2f}s)",
            flush=True,
        )
    return loss, accuracy


def np_errstate() -> Any:
    """Overflow in exp() of a diverging sigmoid is expected and handled; keep stderr readable."""
    import numpy as np

    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    with threadpool_limits(limits=1):  # tiny matrices: threads only add overhead and contention
        try:
            with np_errstate():
                loss, accuracy = train(args)
        except (FloatingPointError, ValueError) as e:
            print(
                f"model.py: error: training diverged with learning_rate={args.learning_rate:g} "
                f"optimizer={args.optimizer}: {e}; try a smaller learning rate",
                file=sys.stderr,
            )
            return 1
    log_outputs(loss=loss, accuracy=accuracy)
    print(f"done in {time.perf_counter() - started:.2f}s: loss={loss:.4f} accuracy={accuracy:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
