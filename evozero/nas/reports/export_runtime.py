"""The runtime of exported networks: the code :mod:`evozero.nas.reports.export` copies into every
generated module, kept here as a real module so it is imported, linted and tested.

:class:`Network` runs a trained network's forward pass with numpy alone (sliding-window
einsums, no evozero kernels), from the layer list and weights the exporter writes. The
module docstring and imports are not copied (a generated module has its own); everything
else is.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

BN_EPS = 1e-5


def _windows(x, kernel, stride, pad, fill):
    """Sliding windows (N, Ho, Wo, C, kh, kw) over x padded with ``fill``; ``pad`` gives
    rows and columns on both sides, or (before, after) pairs for each."""
    kh, kw = kernel
    rows, columns = (p if isinstance(p, tuple) else (p, p) for p in pad)
    x = np.pad(x, ((0, 0), rows, columns, (0, 0)), constant_values=fill)
    view = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    return view[:, ::stride, ::stride]


def _conv(x, w, kernel, stride, pad):
    return np.einsum("nhwcij,ijco->nhwo", _windows(x, kernel, stride, pad, 0.0), w,
                     optimize=True)


def _dwconv(x, w, kernel, stride, pad):
    return np.einsum("nhwcij,ijc->nhwc", _windows(x, kernel, stride, pad, 0.0), w)


def _maxpool(x, kernel, stride, pad):
    return _windows(x, kernel, stride, pad, -np.inf).max(axis=(4, 5))


def _avgpool(x, kernel, stride, pad):
    # Padding is not counted in the average.
    total = _windows(x, kernel, stride, pad, 0.0).sum(axis=(4, 5))
    ones = np.ones((1,) + x.shape[1:3] + (1,), x.dtype)
    count = _windows(ones, kernel, stride, pad, 0.0).sum(axis=(4, 5))
    return total / count


def _bn(x, gamma, beta, mean, var):
    return (x - mean) / np.sqrt(var + BN_EPS) * gamma + beta


class Network:
    """A trained network: raw inputs are scaled by ``scale``, standardised with ``mean`` and
    ``std``, reshaped to ``input_shape`` and run through ``layers`` (``(kind, inputs,
    channels out, kernel, stride, padding)`` each; layer 0 is the input) with ``weights``
    (layer number -> its arrays, batch-norm statistics after the parameters)."""

    def __init__(self, input_shape: Sequence[int], scale: float, mean: float, std: float,
                 layers: Sequence[tuple[Any, ...]], weights: dict[int, list[np.ndarray]]):
        self.input_shape = tuple(input_shape)
        self.scale, self.mean, self.std = scale, mean, std
        self.layers = list(layers)
        self.weights = weights

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Class scores of raw inputs ``x``."""
        x = np.asarray(x, dtype=np.float64).reshape((-1,) + self.input_shape)
        values = [(x * self.scale - self.mean) / self.std]
        for number, (kind, inputs, channels, kernel, stride, pad) in enumerate(self.layers[1:], 1):
            a = values[inputs[0]]
            w = self.weights.get(number, [])
            if kind == "conv":
                y = _conv(a, w[0], kernel, stride, pad)
            elif kind == "dwconv":
                y = _dwconv(a, w[0], kernel, stride, pad)
            elif kind == "bn":
                y = _bn(a, *w)
            elif kind == "relu":
                y = np.maximum(a, 0.0)
            elif kind == "maxpool":
                y = _maxpool(a, kernel, stride, pad)
            elif kind == "avgpool":
                y = _avgpool(a, kernel, stride, pad)
            elif kind == "add":
                y = sum(values[i] for i in inputs)
            elif kind == "concat":
                y = np.concatenate([values[i] for i in inputs], axis=-1)
            elif kind == "slice":
                y = a[..., :channels]
            elif kind == "zero":
                y = np.zeros(a.shape[:3] + (channels,))
            elif kind == "gap":
                y = a.mean(axis=(1, 2))
            else:  # dense
                y = a @ w[0] + w[1]
            values.append(y)
        return values[-1]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The class of each raw input."""
        return self.logits(x).argmax(axis=1)
