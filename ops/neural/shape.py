"""Layers that only move data: global average pooling, channel concatenation and
truncation, and elementwise sums."""
from __future__ import annotations

import numpy as np

from ops.jit import jit


@jit
def _gap(x):
    n, h, w, c = x.shape
    x3 = x.reshape(n, h * w, c)
    y = np.empty((n, c), dtype=x.dtype)
    total = np.empty(c, dtype=np.float64)
    for b in range(n):
        total[:] = 0.0
        for p in range(h * w):
            for ch in range(c):
                total[ch] += x3[b, p, ch]
        for ch in range(c):
            y[b, ch] = total[ch] / (h * w)
    return y


@jit
def _gap_backward(dy, h, w):
    n, c = dy.shape
    dx = np.empty((n, h * w, c), dtype=dy.dtype)
    share = np.empty(c, dtype=dy.dtype)
    for b in range(n):
        for ch in range(c):
            share[ch] = dy[b, ch] / (h * w)
        for p in range(h * w):
            for ch in range(c):
                dx[b, p, ch] = share[ch]
    return dx.reshape(n, h, w, c)


def gap_forward(x: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Global average pooling: mean of ``x`` (N, H, W, C) over H and W, shape (N, C).
    The cache is the input shape."""
    return _gap(np.ascontiguousarray(x)), x.shape


def gap_backward(dy: np.ndarray, cache: tuple) -> np.ndarray:
    """Gradient (N, H, W, C) of :func:`gap_forward`: ``dy`` spread evenly over each image."""
    return _gap_backward(np.ascontiguousarray(dy), cache[1], cache[2])


def concat_forward(xs: list) -> tuple[np.ndarray, list]:
    """Concatenate NHWC tensors along channels; the cache is the list of channel counts."""
    return np.concatenate(xs, axis=-1), [x.shape[-1] for x in xs]


def concat_backward(dy: np.ndarray, cache: list) -> list:
    """Gradients of :func:`concat_forward`: ``dy`` split by channels, one contiguous array
    per input."""
    bounds = np.cumsum([0] + cache)
    return [np.ascontiguousarray(dy[..., lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]


def slice_forward(x: np.ndarray, channels: int) -> tuple[np.ndarray, tuple]:
    """The first ``channels`` channels of ``x``, contiguous (NAS-Bench-101's truncation).
    The cache is the input shape."""
    return np.ascontiguousarray(x[..., :channels]), x.shape


def slice_backward(dy: np.ndarray, cache: tuple) -> np.ndarray:
    """Gradient of :func:`slice_forward`: ``dy`` in the kept channels, 0 in the dropped ones."""
    dx = np.zeros(cache, dtype=dy.dtype)
    dx[..., :dy.shape[-1]] = dy
    return dx


def add_forward(xs: list) -> np.ndarray:
    """Elementwise sum of same-shaped tensors, as a new array."""
    y = xs[0].copy() if len(xs) == 1 else xs[0] + xs[1]
    for x in xs[2:]:
        y += x
    return y


def add_backward(dy: np.ndarray, count: int) -> list:
    """Gradients of :func:`add_forward` over ``count`` inputs: ``dy`` itself for each (the
    same array, not copies; callers must not modify it in place)."""
    return [dy] * count
