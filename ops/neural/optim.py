"""Stochastic gradient descent and its learning-rate schedules."""
from __future__ import annotations

import math

import numpy as np

from ops.jit import jit


@jit
def _sgd(param, grad, velocity, lr, momentum, weight_decay, nesterov):
    for i in range(param.size):
        g = grad[i] + weight_decay * param[i]
        v = momentum * velocity[i] + g
        velocity[i] = v
        param[i] -= lr * (g + momentum * v if nesterov else v)


def sgd_step(param: np.ndarray, grad: np.ndarray, velocity: np.ndarray, lr: float,
             momentum: float, weight_decay: float, nesterov: bool = False) -> None:
    """One SGD step in place on ``param`` and ``velocity`` (contiguous), PyTorch's rule:
    g = grad + weight_decay * param; velocity = momentum * velocity + g;
    param -= lr * velocity, or lr * (g + momentum * velocity) with Nesterov momentum."""
    if not (param.flags.c_contiguous and velocity.flags.c_contiguous):
        raise ValueError("sgd_step updates param and velocity in place: both must be contiguous")
    if not param.size == grad.size == velocity.size:
        raise ValueError(f"sgd_step sizes differ: param {param.shape}, grad {grad.shape}, "
                         f"velocity {velocity.shape}")
    _sgd(param.reshape(-1), np.ascontiguousarray(grad).reshape(-1), velocity.reshape(-1),
         float(lr), float(momentum), float(weight_decay), bool(nesterov))


# The schedules learning_rate knows.
SCHEDULES = ("cosine", "constant")


def learning_rate(step: int, total_steps: int, base: float, schedule: str) -> float:
    """Learning rate at ``step`` of ``total_steps``: ``base`` for "constant", or
    ``base * (1 + cos(pi * step / total_steps)) / 2`` for "cosine"."""
    if schedule == "constant":
        return base
    if schedule == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    raise ValueError(f"unknown learning-rate schedule {schedule!r} (expected one of {SCHEDULES})")
