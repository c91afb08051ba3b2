"""Rectified linear unit."""
from __future__ import annotations

import numpy as np

from ops.jit import jit


@jit
def _relu(x):
    flat = x.reshape(-1)
    zero = np.zeros(1, dtype=x.dtype)[0]
    y = np.empty_like(flat)
    for i in range(flat.size):
        y[i] = np.maximum(flat[i], zero)
    return y.reshape(x.shape)


@jit
def _relu_backward(dy, y):
    flat_dy, flat_y = dy.reshape(-1), y.reshape(-1)
    dx = np.empty_like(flat_dy)
    for i in range(flat_dy.size):
        # A product with the mask, not a branch, keeps the loop vectorisable.
        dx[i] = flat_dy[i] * (flat_y[i] > 0)
    return dx.reshape(dy.shape)


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``max(x, 0)``; the cache is the output, whose positive entries pass the gradient."""
    y = _relu(np.ascontiguousarray(x))
    return y, y


def relu_backward(dy: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """Gradient of :func:`relu_forward`: ``dy`` where the output is positive, else 0."""
    return _relu_backward(np.ascontiguousarray(dy, dtype=cache.dtype), cache)
