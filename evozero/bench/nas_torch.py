"""The PyTorch twin of a compiled network, for the training-speed comparison only.

PyTorch is never a dependency: this module imports it when called and says how to
install it when it is missing. The twin runs the same layer list with the same weights
(copied from the numpy model), in NCHW, eager mode, default CPU backend. A supernet's
mixed edges weigh their inputs by softmax(``alphas``), a parameter of the twin (edges x
ops) trained by autograd as DARTS trains its architecture parameters.
"""
from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np

from evozero.errors import EvozeroError
from evozero.nas.supernet.network import EDGES, OPS, edge_number
from evozero.nas.training.model import Model


def import_torch() -> Any:
    """torch, or a clear error naming the install command."""
    try:
        import torch
    except ImportError:
        raise EvozeroError("the PyTorch comparison needs torch: pip install torch==2.13.0 "
                           "(CPU build; only the benchmark uses it)") from None
    return torch


def torch_twin(model: Model, alphas: np.ndarray | None = None,
               fixed: Collection[str] = ()) -> Any:
    """A torch.nn.Module computing what ``model`` computes, starting from its weights.
    A network with mixed edges gets the parameter ``alphas`` (edges x ops, from
    ``alphas``, zeros by default); the batch norms named in ``fixed`` have no scale and
    shift (a supernet's candidate ops')."""
    torch = import_torch()
    nn = torch.nn
    module_base: Any = nn.Module   # torch is optional: mypy sees it only as Any
    arch = model.arch
    mixed = any(layer.kind == "mix" for layer in arch.layers)

    class Twin(module_base):
        def __init__(self) -> None:
            super().__init__()
            self.ops = nn.ModuleDict()
            for index, layer in enumerate(arch.layers):
                module = _module(nn, layer, arch.in_channels(index) if index else 0,
                                 layer.name not in fixed)
                if module is not None:
                    self.ops[str(index)] = module
            with torch.no_grad():
                for index, weights in model.weights.items():
                    if arch.layers[index].name not in fixed:
                        _copy(torch, self.ops[str(index)], arch.layers[index].kind, weights)
            if mixed:
                start = np.zeros((EDGES, OPS)) if alphas is None else alphas
                self.alphas = nn.Parameter(torch.tensor(start, dtype=torch.float32))

        def forward(self, x: Any) -> Any:
            # One softmax per pass: every cell's mixed edge e reads row e.
            coefficients: Any = torch.softmax(self.alphas, dim=1) if mixed else None
            values = [x]
            for index, layer in enumerate(arch.layers[1:], start=1):
                inputs = [values[i] for i in layer.inputs]
                kind = layer.kind
                if kind == "add":
                    out = sum(inputs[1:], inputs[0])
                elif kind == "concat":
                    out = torch.cat(inputs, dim=1)
                elif kind == "slice":
                    out = inputs[0][:, :layer.shape[2]]
                elif kind == "zero":
                    out = torch.zeros((inputs[0].shape[0], layer.shape[2]) + layer.shape[:2])
                elif kind == "gap":
                    out = inputs[0].mean(dim=(2, 3))
                elif kind == "mix" and not layer.choices:
                    out = torch.zeros_like(inputs[0])
                elif kind == "mix":
                    row = coefficients[edge_number(layer.name)]
                    out = sum((row[op] * value for op, value in
                               zip(layer.choices[1:], inputs[1:])),
                              row[layer.choices[0]] * inputs[0])
                else:
                    out = self.ops[str(index)](inputs[0])
                values.append(out)
            return values[-1]

    return Twin()


def _module(nn: Any, layer: Any, in_channels: int, affine: bool) -> Any:
    kind, channels = layer.kind, layer.shape[2]
    if kind == "conv":
        return nn.Conv2d(in_channels, channels, layer.kernel, layer.stride, layer.pad,
                         bias=False)
    if kind == "dwconv":
        return nn.Conv2d(channels, channels, layer.kernel, layer.stride, layer.pad,
                         groups=channels, bias=False)
    if kind == "bn":
        return nn.BatchNorm2d(channels, affine=affine)
    if kind == "relu":
        return nn.ReLU()
    if kind == "maxpool":
        return nn.MaxPool2d(layer.kernel, layer.stride, layer.pad)
    if kind == "avgpool":
        return nn.AvgPool2d(layer.kernel, layer.stride, layer.pad, count_include_pad=False)
    if kind == "dense":
        return nn.Linear(in_channels, channels)
    return None


def _copy(torch: Any, module: Any, kind: str, weights: list[np.ndarray]) -> None:
    if kind == "conv":      # ours (kh, kw, in, out); torch (out, in, kh, kw)
        module.weight.copy_(torch.from_numpy(weights[0].transpose(3, 2, 0, 1).copy()))
    elif kind == "dwconv":  # ours (kh, kw, C); torch (C, 1, kh, kw)
        module.weight.copy_(torch.from_numpy(weights[0].transpose(2, 0, 1)[:, None].copy()))
    elif kind == "bn":
        module.weight.copy_(torch.from_numpy(weights[0]))
        module.bias.copy_(torch.from_numpy(weights[1]))
    else:                   # dense: ours (in, out); torch (out, in)
        module.weight.copy_(torch.from_numpy(weights[0].T.copy()))
        module.bias.copy_(torch.from_numpy(weights[1]))
