"""Fully connected layer."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class DenseCache(NamedTuple):
    """What :func:`dense_backward` needs: the input and the weight."""
    x: np.ndarray
    w: np.ndarray


def dense_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, DenseCache]:
    """``x @ w + b`` for ``x`` (N, Cin), ``w`` (Cin, Cout) and ``b`` (Cout); returns ``y``
    and the cache."""
    y = np.dot(x, w)
    y += b
    return y, DenseCache(x, w)


def dense_backward(dy: np.ndarray, cache: DenseCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients ``(dx, dw, db)`` of :func:`dense_forward`."""
    x, w = cache
    return np.dot(dy, w.T), np.dot(x.T, dy), dy.sum(axis=0)
