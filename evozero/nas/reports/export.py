"""Export a trained network as a standalone numpy module (no evozero needed to run it).

``export_network`` writes ``FILE.py`` (the layers as plain numpy, readable) and
``FILE.npz`` (the trained weights, loaded from beside the module). The layers run in
:class:`evozero.nas.reports.export_runtime.Network`, whose source the module copies. The
module's ``predict(x)`` takes raw inputs as the data set gives them (digits: 0-16 pixel
values, ``(N, 8, 8)`` or ``(N, 64)``; MNIST-1D: ``(N, 40)`` sequences; a data file: as its
``x`` holds them), normalises them as in training, and returns the class of each;
``logits(x)`` returns the scores.
"""
from __future__ import annotations

import io
import os
from typing import Any

import numpy as np

from evozero.analysis.export import runtime_parts
from evozero.config.cell_search import dataset_is_file
from evozero.nas.reports import export_runtime
from evozero.nas.training.model import Model
from evozero.runs.files import atomic_write_bytes, atomic_write_text

# Digits pixels are scaled to [0, 1] before standardisation (see evozero.nas.training.data);
# MNIST-1D and a data file's inputs are standardised as they are.
_SCALE = {"digits": 1.0 / 16.0}


def export_network(model: Model, dataset: str, mean: float, std: float, path: str,
                   title: str) -> tuple[str, str]:
    """Write ``model`` as ``path`` (.py) and its weights beside it (.npz); returns both
    paths. ``dataset`` is the data set's name or its file's path, ``mean`` and ``std``
    the training split's normalisation the module applies; ``title`` heads the module's
    docstring (e.g. the cell and its accuracy)."""
    arch = model.arch
    stem = path[:-3] if path.endswith(".py") else path
    weights_path = stem + ".npz"
    arrays: dict[str, np.ndarray] = {}
    for index in sorted(model.weights):
        for k, array in enumerate(model.weights[index] + model.stats.get(index, [])):
            arrays[f"{index}/{k}"] = np.asarray(array, dtype=np.float64)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # stubs: a key could be allow_pickle
    atomic_write_bytes(weights_path, buffer.getvalue())
    layers = ",\n    ".join(
        repr((layer.kind, layer.inputs, layer.shape[2], layer.kernel, layer.stride,
              _padding(layer.pad, arch.pad_after(index))))
        for index, layer in enumerate(arch.layers))
    module = _module_text(title, dataset, mean, std, arch.input_shape, layers,
                          weights_path.rsplit("/", 1)[-1])
    atomic_write_text(stem + ".py", module)
    return stem + ".py", weights_path


def _padding(pad: tuple[int, int], after: tuple[int, int]) -> Any:
    """A layer's padding as the runtime reads it: (rows, columns) on both sides, or
    ((before, after), (before, after)) for a 'same' pool padded more after its input."""
    if after == (0, 0):
        return pad
    return tuple((p, p + extra) for p, extra in zip(pad, after))


def _inputs(dataset: str) -> str:
    """What the exported module's inputs are, for its docstring."""
    if not dataset_is_file(dataset):
        return f"{dataset} inputs"
    return f"inputs shaped as the examples of x in {os.path.basename(dataset)}"


def _module_text(title: str, dataset: str, mean: float, std: float, shape: Any, layers: str,
                 weights_file: str) -> str:
    return f'''"""{title}

A standalone numpy network: ``predict(x)`` classifies raw {_inputs(dataset)}, ``logits(x)``
gives the scores (inputs are scaled by SCALE and standardised with the training split's
MEAN and STD, as in training). The trained weights are read from {weights_file} beside this file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

INPUT_SHAPE = {tuple(shape)!r}
SCALE = {_SCALE.get(dataset, 1.0)!r}
MEAN = {mean!r}
STD = {std!r}
# (kind, inputs, channels out, kernel, stride, padding) of each layer; layer 0 is the input.
# Padding is (rows, columns) on both sides, or ((before, after), (before, after)).
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


''' + "\n\n\n".join(runtime_parts(export_runtime)[0]) + '''


NETWORK = Network(INPUT_SHAPE, SCALE, MEAN, STD, LAYERS, WEIGHTS)


def logits(x):
    """Class scores of raw inputs ``x``."""
    return NETWORK.logits(x)


def predict(x):
    """The class of each raw input."""
    return NETWORK.predict(x)
'''
