"""Stochastic gradient descent, Adam, and the learning-rate schedules."""
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


def adam_step(param: np.ndarray, grad: np.ndarray, first: np.ndarray, second: np.ndarray,
              step: int, lr: float, betas: tuple[float, float], eps: float,
              weight_decay: float = 0.0) -> None:
    """One Adam update in place on ``param`` and its moments, as PyTorch's: L2
    ``weight_decay`` added to the gradient (not decoupled), bias-corrected moments,
    ``eps`` added after the square root. ``step`` counts from 1."""
    if weight_decay:
        grad = grad + weight_decay * param
    beta1, beta2 = betas
    first *= beta1
    first += (1 - beta1) * grad
    second *= beta2
    second += (1 - beta2) * grad * grad
    denominator = np.sqrt(second) / np.sqrt(1 - beta2 ** step) + eps
    param -= (lr / (1 - beta1 ** step)) * first / denominator


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
