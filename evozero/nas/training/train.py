"""Brief training of a network: SGD with momentum, weight decay and a learning-rate
schedule, validation accuracy for the search and test accuracy reported beside it.

A run is a pure function of the architecture, the data, the settings and the seed (one
thread, fixed shuffles), so the evaluation cache can stand for a second training.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from evozero.nas.training.data import Dataset
from evozero.nas.training.model import Model
from evozero.runs import stopflag
from ops import neural


@dataclass(frozen=True)
class TrainSettings:
    """How a candidate is trained."""

    epochs: int = 4
    batch_size: int = 64
    learning_rate: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    nesterov: bool = False


@dataclass
class TrainResult:
    """What a training run measured."""

    valid_accuracy: float
    test_accuracy: float
    epochs: int                      # epochs actually run (fewer when a hurdle stopped it)
    steps: int
    losses: list = field(default_factory=list)          # mean training loss per epoch
    first_epoch_accuracy: float = float("nan")          # validation accuracy after epoch 1
    stopped: bool = False            # stopped by the hurdle
    seconds: float = 0.0
    # With ``record_epochs``: after each epoch, the share of its training batches' examples
    # classified right as they trained, and the validation accuracy.
    train_accuracies: list = field(default_factory=list)
    valid_accuracies: list = field(default_factory=list)


def accuracy(model: Model, x: np.ndarray, y: np.ndarray) -> float:
    """Share of ``x`` classified as ``y`` (inference mode)."""
    if not len(x):
        return float("nan")
    return float(np.mean(model.predict(x).argmax(axis=1) == y))


def train(model: Model, data: Dataset, settings: TrainSettings, seed: int,
          hurdle: Callable[[float], bool] | None = None,
          record_epochs: bool = False) -> TrainResult:
    """Train ``model`` on ``data.train_*`` for ``settings.epochs`` epochs.

    ``hurdle``, if given, sees the validation accuracy after the first epoch and returns
    True to stop a weak candidate there (its accuracy so far is then its result). Raises
    :class:`evozero.runs.stopflag.Stopped` between steps once the process is asked to stop.
    """
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    params = model.parameters()
    velocities = [np.zeros_like(p) for p in params]
    decays = [settings.weight_decay if flag else 0.0 for flag in model.decayed()]
    count = len(data.train_y)
    per_epoch = -(-count // settings.batch_size)
    total = per_epoch * settings.epochs
    result = TrainResult(float("nan"), float("nan"), 0, 0)
    for epoch in range(settings.epochs):
        order = rng.permutation(count)
        losses = []
        right = 0
        for start in range(0, count, settings.batch_size):
            stopflag.check()   # one network can train for minutes; a stop must not wait
            chosen = order[start:start + settings.batch_size]
            logits = model.forward(data.train_x[chosen], training=True)
            if record_epochs:   # before the loss, which may reuse the logits' memory
                right += int(np.count_nonzero(logits.argmax(axis=1) == data.train_y[chosen]))
            loss, dlogits = neural.softmax_cross_entropy(logits, data.train_y[chosen])
            model.backward(dlogits)
            rate = neural.learning_rate(result.steps, total, settings.learning_rate,
                                        settings.schedule)
            for param, grad, velocity, decay in zip(params, model.gradients(), velocities,
                                                    decays):
                neural.sgd_step(param, grad, velocity, rate, settings.momentum, decay,
                                settings.nesterov)
            result.steps += 1
            losses.append(loss)
        result.losses.append(float(np.mean(losses)))
        result.epochs = epoch + 1
        if record_epochs:
            result.train_accuracies.append(right / count)
            result.valid_accuracies.append(accuracy(model, data.valid_x, data.valid_y))
        if epoch == 0 and hurdle is not None:
            result.first_epoch_accuracy = accuracy(model, data.valid_x, data.valid_y)
            if epoch + 1 < settings.epochs and hurdle(result.first_epoch_accuracy):
                result.stopped = True
                break
    result.valid_accuracy = accuracy(model, data.valid_x, data.valid_y)
    result.test_accuracy = accuracy(model, data.test_x, data.test_y)
    result.seconds = time.perf_counter() - started
    return result
