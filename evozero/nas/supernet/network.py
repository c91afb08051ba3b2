"""The supernet of the NAS-Bench-201 cell space: every op on every edge of every cell, one
set of weights that every cell's network shares, and its mixed edges.

A *menu* gives, per edge (in string order), the op numbers (:data:`NB201_OPS`) the edge
computes. :meth:`Supernet.model` compiles the network of a menu in the NAS-Bench-201
skeleton (:func:`~evozero.nas.spaces.skeleton.compile_nb201`) and binds it to the shared
weights: the layers of op ``op`` on edge ``e`` of the cell at ``scope`` are named
``{scope}.e{e}.{op}``, whichever menu compiles them, so the weights of an op on an edge
are one array for every network that uses it. A menu of one op per edge without mixed
edges is exactly that cell's stand-alone network (a skip connection adds no layer, a
``none`` edge is left out); with mixed edges (``mixed``) each edge sums its computed ops
weighted by coefficients set per edge (:meth:`Supernet.set_mixing`), and the backward pass
gives what the architecture parameters need (:func:`edge_gradients`).

Batch norm, as NAS-Bench-201's search code builds it: the batch norms inside candidate ops
have no affine parameters (their scale and shift stay 1 and 0, never trained); the stem's,
the reduction blocks' and the head's keep theirs. A supernet's network always normalises
with the statistics of the batch it sees, in training and when it scores a cell (the
reference's ``track_running_stats=False``, NATS-Bench's setting, which its author found
much better than running statistics accumulated over changing paths).
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from evozero.nas.spaces.cells import NB201_EDGES, NB201_NODES, NB201_OPS
from evozero.nas.spaces.network import Builder, Shape
from evozero.nas.spaces.skeleton import CellBuilder, Skeleton, compile_nb201, nb201_edge
from evozero.nas.training.model import Model
from ops import neural

EDGES, OPS = len(NB201_EDGES), len(NB201_OPS)
NONE = NB201_OPS.index("none")
#: Every op on every edge: the whole supernet.
ALL_OPS: tuple[tuple[int, ...], ...] = (tuple(range(OPS)),) * EDGES
Menu = tuple[tuple[int, ...], ...]


def menu_of(ops: Iterable[int] | np.ndarray) -> Menu:
    """The menu of one cell: op ``ops[e]`` on edge ``e``."""
    return tuple((int(op),) for op in ops)


def supercell(menu: Menu, mixed: bool) -> CellBuilder:
    """A cell builder computing ``menu`` on each edge, summed by mixed edges when
    ``mixed``. Like a stand-alone cell, a node no computed edge reaches is zero, and
    edges leaving it still run."""
    def build(builder: Builder, source: int, scope: str) -> int:
        channels = builder.shape(source)[2]
        nodes: list[int | None] = [source]
        for node in range(1, NB201_NODES):
            incoming = []
            for number, (i, j) in enumerate(NB201_EDGES):
                if j != node:
                    continue
                ops = [op for op in menu[number] if op != NONE]
                if not ops and not mixed:
                    continue
                value = nodes[i]
                if value is None:
                    value = nodes[i] = builder.zero(source, channels)
                outputs = [nb201_edge(builder, value, NB201_OPS[op],
                                      f"{scope}.e{number}.{NB201_OPS[op]}") for op in ops]
                if mixed:
                    incoming.append(builder.mix(outputs, ops, value, f"{scope}.e{number}"))
                else:
                    incoming.extend(outputs)
            nodes.append(builder.add(incoming) if incoming else None)
        output = nodes[-1]
        return builder.zero(source, channels) if output is None else output
    return build


def _affine_free(name: str) -> bool:
    # A candidate op's batch norm: "{scope}.e{edge}.{op}.bn".
    parts = name.split(".")
    return len(parts) >= 4 and parts[-1] == "bn" and parts[-3].startswith("e") \
        and parts[-2] in NB201_OPS


class Supernet:
    """The shared weights of the NAS-Bench-201 supernet for one skeleton and data shape,
    and the networks of menus bound to them (see the module docstring)."""

    #: Networks kept compiled (a search revisits cells; each costs a compile to make).
    CACHED_MODELS = 512

    def __init__(self, skeleton: Skeleton, input_shape: Shape, classes: int, seed: int,
                 dtype: type = np.float32) -> None:
        self.skeleton = skeleton
        self.input_shape = input_shape
        self.classes = classes
        self.dtype = dtype
        full = Model(compile_nb201(supercell(ALL_OPS, True), skeleton, input_shape, classes),
                     seed, dtype)
        layers = full.arch.layers
        #: The shared arrays of every weighted layer, by layer name.
        self.weights = {layers[index].name: arrays for index, arrays in full.weights.items()}
        #: Names of the layers whose weights train (not candidate ops' batch norms).
        self.trained = sorted(name for name in self.weights if not _affine_free(name))
        self._decayed = {layers[index].name: [layers[index].kind != "bn" and position == 0
                                              for position in range(len(arrays))]
                         for index, arrays in full.weights.items()}
        self._models: dict[tuple[Menu, bool], Model] = {(ALL_OPS, True): full}

    def decayed(self, name: str) -> list[bool]:
        """For each array of layer ``name``: whether weight decay applies."""
        return self._decayed[name]

    def model(self, menu: Menu, mixed: bool) -> Model:
        """The network of ``menu`` (with mixed edges when ``mixed``) on the shared
        weights."""
        key = (menu, mixed)
        model = self._models.get(key)
        if model is None:
            if len(self._models) >= self.CACHED_MODELS:
                self._models.pop(next(k for k in self._models if k != (ALL_OPS, True)))
            arch = compile_nb201(supercell(menu, mixed), self.skeleton, self.input_shape,
                                 self.classes)
            model = self._models[key] = Model(arch, 0, self.dtype, shared=self.weights)
        return model

    def copy_weights(self) -> dict[str, list[np.ndarray]]:
        """A copy of the trained weights."""
        return {name: [a.copy() for a in self.weights[name]] for name in self.trained}

    def load_weights(self, weights: dict[str, list[np.ndarray]]) -> None:
        """Write ``weights`` (as :meth:`copy_weights` gives) into the shared arrays."""
        for name, arrays in weights.items():
            for target, source in zip(self.weights[name], arrays):
                target[...] = source


def set_mixing(model: Model, coefficients: np.ndarray) -> None:
    """Set every mixed edge of ``model`` to its edge's row of ``coefficients`` (EDGES x
    OPS): the cells of the network share the architecture parameters, edge by edge."""
    model.mixing = {layer.name: coefficients[edge_number(layer.name)]
                    for layer in model.arch.layers if layer.kind == "mix"}


def edge_number(name: str) -> int:
    """The edge of a mixed edge's layer, named ``{scope}.e{edge}``."""
    return int(name.rsplit(".e", 1)[1])


def edge_gradients(model: Model, selected: Menu | None = None) -> np.ndarray:
    """dL / d coefficient (EDGES x OPS) after ``model``'s backward pass, summed over the
    cells. An op an edge did not compute gets 0 (its output is zero, as ``none``'s), or,
    given the ``selected`` menu, each op outside it gets the sum of the edge's output
    gradient (GDAS' reference adds an unselected op's coefficient as a scalar)."""
    grads = np.zeros((EDGES, OPS))
    for layer in model.arch.layers:
        if layer.kind != "mix" or layer.name not in model.mix_grads:
            continue
        inner, total = model.mix_grads[layer.name]
        edge = edge_number(layer.name)
        grads[edge, list(layer.choices)] += inner
        if selected is not None:
            grads[edge, [op for op in range(OPS) if op not in selected[edge]]] += total
    return grads


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def softmax_backward(probabilities: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """dL / d logits from dL / d softmax(logits), row-wise."""
    return probabilities * (grads - (probabilities * grads).sum(axis=-1, keepdims=True))


def loss_and_gradients(model: Model, x: np.ndarray, y: np.ndarray
                       ) -> tuple[float, float, dict[str, list[np.ndarray]]]:
    """One forward and backward pass on a batch: mean cross-entropy, the share classified
    right, and the weight gradients by layer name."""
    logits = model.forward(x, training=True)
    right = float(np.mean(logits.argmax(axis=1) == y))
    loss, dlogits = neural.softmax_cross_entropy(logits, y)
    model.backward(dlogits)
    return float(loss), right, model.named_gradients()


def batch_accuracy(model: Model, x: np.ndarray, y: np.ndarray, batch: int) -> float:
    """The share of ``x`` classified as ``y``, each batch of ``batch`` normalised with its
    own statistics (see the module docstring)."""
    right = 0
    for start in range(0, len(x), batch):
        logits = model.forward(x[start:start + batch], training=True)
        right += int(np.count_nonzero(logits.argmax(axis=1) == y[start:start + batch]))
    return right / max(len(x), 1)


class WeightOptimizer:
    """SGD with momentum and weight decay over the trained shared weights, the gradient's
    global norm clipped. An op no step used keeps its momentum and decay unapplied
    (``unused="skip"``, PyTorch 2's default), or once it has been used gets both at every
    later step (``"decay_and_momentum"``, as NAS-Bench-201's code under PyTorch 1)."""

    def __init__(self, supernet: Supernet, momentum: float, weight_decay: float,
                 nesterov: bool, clip: float, unused: str) -> None:
        self.supernet = supernet
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov
        self.clip, self.unused = clip, unused
        self.velocity = {name: [np.zeros_like(a) for a in supernet.weights[name]]
                         for name in supernet.trained}
        self.used: set[str] = set()

    def step(self, grads: dict[str, list[np.ndarray]], lr: float) -> None:
        """One step on the gradients ``grads`` (by layer name; layers not in it had none)."""
        trained = [name for name in self.supernet.trained if name in grads]
        norm = math.sqrt(sum(float(np.vdot(g, g)) for name in trained for g in grads[name]))
        scale = self.clip / (norm + 1e-6) if norm > self.clip else 1.0
        self.used.update(trained)
        for name in self.supernet.trained:
            if name in grads:
                layer_grads = [g * scale if scale != 1.0 else g for g in grads[name]]
            elif self.unused == "decay_and_momentum" and name in self.used:
                layer_grads = [np.zeros_like(a) for a in self.supernet.weights[name]]
            else:
                continue
            for param, grad, velocity, decayed in zip(self.supernet.weights[name], layer_grads,
                                                      self.velocity[name],
                                                      self.supernet.decayed(name)):
                neural.sgd_step(param, grad, velocity, lr, self.momentum,
                                self.weight_decay if decayed else 0.0, self.nesterov)


def epoch_learning_rate(epoch: int, epochs: int, base: float, minimum: float) -> float:
    """NAS-Bench-201's search schedule: cosine from ``base`` to ``minimum`` over the
    epochs, constant within an epoch."""
    return minimum + (base - minimum) * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
