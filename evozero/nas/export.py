"""Export a trained network as a standalone numpy module (no evozero needed to run it).

``export_network`` writes ``FILE.py`` (the layers as plain numpy, readable) and
``FILE.npz`` (the trained weights, loaded from beside the module). The module's
``predict(x)`` takes raw inputs as the data set gives them (digits: 0-16 pixel values,
``(N, 8, 8)`` or ``(N, 64)``; MNIST-1D: ``(N, 40)`` sequences), normalises them as in
training, and returns the class of each; ``logits(x)`` returns the scores.
"""
from __future__ import annotations

import io
from typing import Any

import numpy as np

from evozero.nas.model import Model
from evozero.runs.files import atomic_write_bytes, atomic_write_text

# Digits pixels are scaled to [0, 1] before standardisation (see evozero.nas.data).
_SCALE = {"digits": 1.0 / 16.0, "mnist1d": 1.0}

_RUNTIME = '''
def _windows(x, kernel, stride, pad, fill):
    """Sliding windows (N, Ho, Wo, C, kh, kw) over x padded with ``fill``."""
    (kh, kw), (ph, pw) = kernel, pad
    x = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=fill)
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


def logits(x):
    """Class scores of raw inputs ``x``."""
    x = np.asarray(x, dtype=np.float64).reshape((-1,) + INPUT_SHAPE)
    values = [(x * SCALE - MEAN) / STD]
    for number, (kind, inputs, channels, kernel, stride, pad) in enumerate(LAYERS[1:], 1):
        a = values[inputs[0]]
        w = WEIGHTS.get(number, [])
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


def predict(x):
    """The class of each raw input."""
    return logits(x).argmax(axis=1)
'''


def export_network(model: Model, dataset: str, mean: float, std: float, path: str,
                   title: str) -> tuple[str, str]:
    """Write ``model`` as ``path`` (.py) and its weights beside it (.npz); returns both
    paths. ``title`` heads the module's docstring (e.g. the cell and its accuracy)."""
    arch = model.arch
    stem = path[:-3] if path.endswith(".py") else path
    weights_path = stem + ".npz"
    arrays: dict[str, np.ndarray] = {}
    for index in sorted(model.weights):
        for k, array in enumerate(model.weights[index] + model.stats.get(index, [])):
            arrays[f"{index}/{k}"] = np.asarray(array, dtype=np.float64)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(weights_path, buffer.getvalue())
    layers = ",\n    ".join(
        repr((layer.kind, layer.inputs, layer.shape[2], layer.kernel, layer.stride, layer.pad))
        for layer in arch.layers)
    module = _module_text(title, dataset, mean, std, arch.input_shape, layers,
                          weights_path.rsplit("/", 1)[-1])
    atomic_write_text(stem + ".py", module)
    return stem + ".py", weights_path


def _module_text(title: str, dataset: str, mean: float, std: float, shape: Any, layers: str,
                 weights_file: str) -> str:
    return f'''"""{title}

A standalone numpy network: ``predict(x)`` classifies raw {dataset} inputs, ``logits(x)``
gives the scores. The trained weights are read from {weights_file} beside this file.
"""
from pathlib import Path

import numpy as np

INPUT_SHAPE = {tuple(shape)!r}
SCALE = {_SCALE[dataset]!r}
MEAN = {mean!r}
STD = {std!r}
BN_EPS = 1e-5
# (kind, inputs, channels out, kernel, stride, padding) of each layer; layer 0 is the input.
LAYERS = [
    {layers},
]


def _load_weights():
    weights = {{}}
    with np.load(Path(__file__).with_name({weights_file!r})) as arrays:
        for key in arrays.files:
            layer, k = map(int, key.split("/"))
            weights.setdefault(layer, {{}})[k] = arrays[key]
    return {{layer: [parts[k] for k in sorted(parts)] for layer, parts in weights.items()}}


WEIGHTS = _load_weights()
''' + _RUNTIME
