"""The performance predictor of predictor-guided search: cell encodings, an ensemble of
small feed-forward nets trained on the cells evaluated so far, and the acquisition that
picks which proposals to train.

**Encodings.** A NAS-Bench-201 cell is encoded by its *paths*
(:func:`nb201_path_encoding`): one binary feature per op sequence along each of the four
input->output paths (0->3, 0->1->3, 0->2->3, 0->1->2->3). A ``none`` edge passes nothing,
so a path through it carries no signal and sets no feature: sequences containing ``none``
have no column at all, which leaves 4 + 16 + 16 + 64 = 100 features (not 180), and two
cells that differ only on edges no live path uses encode the same. A NAS-Bench-101 cell is
encoded by its pruned phenotype's adjacency and ops (:func:`nb101_encoding`).

**Ensemble.** :class:`MlpEnsemble` trains its members side by side (one array axis per
member), with Adam on the mean absolute error, and predicts the members' mean and spread.

**Resuming.** The ensemble keeps no state a run must save: :meth:`MlpEnsemble.fit` is a
pure function of ``(x, y, rng state on entry)``, so a strategy that records its
evaluations and gives each fit a generator it can rebuild (for instance
``np.random.default_rng([seed, fit_number])``) resumes exactly by refitting.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evozero.errors import EvozeroError
from evozero.nas.spaces.cells import NB201_OPS, Nb101Cell, Nb201Cell
from ops import neural

_EDGES = 6
# Op numbers 1.. of NB201_OPS; ``none`` (0) sets no feature.
_LIVE_OPS = len(NB201_OPS) - 1
# Edge numbers (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2) along each input->output path.
_PATHS = ((3,), (0, 4), (1, 5), (0, 2, 5))
#: Width of the NAS-Bench-201 path encoding.
NB201_PATH_FEATURES = sum(_LIVE_OPS ** len(p) for p in _PATHS)


def nb201_path_encoding(ops: np.ndarray) -> np.ndarray:
    """The path encoding ``(n, 100)`` of cells given by op numbers ``(n, 6)`` (numbers of
    ``NB201_OPS``, edges in string order). Columns: path by path in the order 0->3,
    0->1->3, 0->2->3, 0->1->2->3; within a path, the op sequence (op number - 1) read as a
    base-4 number, the edge leaving the input most significant. A path with a ``none``
    edge sets nothing (see the module docstring)."""
    ops = np.asarray(ops)
    if ops.ndim != 2 or ops.shape[1] != _EDGES:
        raise EvozeroError(f"op numbers must have shape (n, {_EDGES}), got {ops.shape}")
    if ops.size and (not np.issubdtype(ops.dtype, np.integer)
                     or ops.min() < 0 or ops.max() >= len(NB201_OPS)):
        raise EvozeroError(f"op numbers must be integers 0 .. {len(NB201_OPS) - 1} "
                           f"(of {', '.join(NB201_OPS)})")
    live = ops.astype(np.int64) - 1
    rows = np.arange(len(ops))
    out = np.zeros((len(ops), NB201_PATH_FEATURES))
    offset = 0
    for path in _PATHS:
        sequence = live[:, path]
        alive = (sequence >= 0).all(axis=1)
        column = sequence @ (_LIVE_OPS ** np.arange(len(path) - 1, -1, -1))
        out[rows[alive], offset + column[alive]] = 1.0
        offset += _LIVE_OPS ** len(path)
    return out


def nb101_encoding(cell: Nb101Cell) -> np.ndarray:
    """The adjacency encoding of a NAS-Bench-101 cell's pruned phenotype, padded to
    ``cell.max_vertices`` (V) vertices: the strictly upper triangle of the V x V adjacency,
    row by row, then a one-hot of ``cell.allowed_ops`` for each of the V - 2 inner
    vertices (all zero for padding). The input stays vertex 0 and the output moves to
    vertex V - 1, padding going in between. Genomes with the same phenotype encode the
    same; isomorphic phenotypes numbered differently do not. With the defaults:
    21 + 5 * 3 = 36 features."""
    matrix, ops = cell.pruned()
    size = cell.max_vertices
    place = [*range(len(ops) - 1), size - 1]
    adjacency = np.zeros((size, size))
    adjacency[np.ix_(place, place)] = matrix
    onehot = np.zeros((size - 2, len(cell.allowed_ops)))
    for vertex, op in enumerate(ops[1:-1]):
        onehot[vertex, cell.allowed_ops.index(op)] = 1.0
    return np.concatenate([adjacency[np.triu_indices(size, 1)], onehot.ravel()])


def encode(cells: Sequence[Nb101Cell | Nb201Cell]) -> np.ndarray:
    """The encodings ``(n, d)`` of a non-empty list of cells of one kind (path encoding for
    NAS-Bench-201, adjacency encoding for NAS-Bench-101)."""
    if not cells:
        raise EvozeroError("no cells to encode")
    nb201 = [c for c in cells if isinstance(c, Nb201Cell)]
    nb101 = [c for c in cells if isinstance(c, Nb101Cell)]
    if len(nb201) == len(cells):
        ops = np.array([[NB201_OPS.index(op) for op in c.edge_ops] for c in nb201])
        return nb201_path_encoding(ops)
    if len(nb101) == len(cells):
        # Columns mean the same only under one vertex limit and one op list.
        if len({(c.max_vertices, c.allowed_ops) for c in nb101}) > 1:
            raise EvozeroError("NAS-Bench-101 cells with different vertex limits or op "
                               "lists cannot be encoded together")
        return np.stack([nb101_encoding(c) for c in nb101])
    kinds = sorted({type(c).__name__ for c in cells})
    raise EvozeroError(f"cells to encode must all be Nb101Cell or all Nb201Cell, got "
                       f"{', '.join(kinds)}")


def _finite_matrix(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise EvozeroError(f"{name} must be a non-empty 2-D array (n, d), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise EvozeroError(f"{name} has NaN or infinite values")
    return x


def _layer_shapes(members: int, inputs: int, width: int, depth: int
                  ) -> list[tuple[int, int, int]]:
    """Weight shapes ``(members, fan_in, fan_out)`` of ``depth`` hidden layers and the
    output; each layer's bias is ``(members, 1, fan_out)``."""
    sizes = [inputs] + [width] * depth + [1]
    return [(members, a, b) for a, b in zip(sizes[:-1], sizes[1:])]


def _unpack(flat: np.ndarray, shapes: list[tuple[int, int, int]]
            ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Views (weight, bias) per layer into one flat parameter vector, so Adam updates all
    of them in a few whole-array operations."""
    layers, at = [], 0
    for members, fan_in, fan_out in shapes:
        weight = flat[at:at + members * fan_in * fan_out].reshape(members, fan_in, fan_out)
        at += weight.size
        bias = flat[at:at + members * fan_out].reshape(members, 1, fan_out)
        at += bias.size
        layers.append((weight, bias))
    return layers


def _size(shapes: list[tuple[int, int, int]]) -> int:
    return sum(m * (a + 1) * b for m, a, b in shapes)


def _forward(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray
             ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Outputs ``(members, batch)`` for inputs ``(members or 1, batch, d)``, and each
    layer's input (kept for the backward pass)."""
    inputs = []
    h = x
    for k, (weight, bias) in enumerate(layers):
        inputs.append(h)
        h = h @ weight + bias
        if k < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return h[:, :, 0], inputs


def _loss_and_grads(flat: np.ndarray, shapes: list[tuple[int, int, int]], x: np.ndarray,
                    y: np.ndarray) -> tuple[float, np.ndarray]:
    """The summed members' mean absolute errors on batches ``x`` ``(members, b, d)``,
    ``y`` ``(members, b)``, and its gradient in the layout of ``flat``. Members share no
    parameter, so each member's gradient is that of its own loss."""
    layers = _unpack(flat, shapes)
    out, inputs = _forward(layers, x)
    error = out - y
    grads = np.empty_like(flat)
    grad_layers = _unpack(grads, shapes)
    # d|e|/de = sign(e), 0 at e = 0 (as PyTorch's L1 loss).
    delta = (np.sign(error) / y.shape[1])[:, :, None]
    for k in range(len(layers) - 1, -1, -1):
        weight, _ = layers[k]
        grad_weight, grad_bias = grad_layers[k]
        np.matmul(inputs[k].transpose(0, 2, 1), delta, out=grad_weight)
        grad_bias[...] = delta.sum(axis=1, keepdims=True)
        if k:
            # inputs[k] is the ReLU output of layer k-1: positive exactly where it passed.
            delta = (delta @ weight.transpose(0, 2, 1)) * (inputs[k] > 0)
    return float(np.abs(error).mean(axis=1).sum()), grads


class MlpEnsemble:
    """An ensemble of feed-forward ReLU nets regressing a score (higher better) on an
    encoding; :meth:`predict` gives the members' mean and standard deviation.

    Each member: ``depth`` hidden layers of ``width`` units and a linear output, He-uniform
    weights and zero biases, trained on all the data (its own init and batch order) for
    ``epochs`` epochs of shuffled minibatches of ``batch``, with Adam (``lr``, ``betas``,
    ``eps``) on the mean absolute error of the standardised target.

    Defaults: BANANAS' settings (5 members, width 20, MAE, 200 epochs, batch 32, Adam lr
    0.01, betas (0.9, 0.99)) except ``depth`` 3 for BANANAS' 10: on NAS-Bench-201 path
    encodings of 150 cells, 10 layers ranked held-out cells no better (Kendall tau 0.01 to
    0.04 lower on each of six synthetic targets) and cost two and a half times as much.
    The members train as one stack of batched matrix products, so five cost little more
    than one. Measured fitting 150 points x 100 features (one BLAS thread, two loaded
    cores): 0.2 s CPU, 0.3 s wall at depth 3; 0.5 s CPU, 0.8 s wall at depth 10.

    ``fit`` is a pure function of ``(x, y, rng state on entry)``: it refits from scratch,
    so the same inputs and generator state give bit-identical predictions.
    """

    def __init__(self, members: int = 5, depth: int = 3, width: int = 20, epochs: int = 200,
                 batch: int = 32, lr: float = 0.01, betas: tuple[float, float] = (0.9, 0.99),
                 eps: float = 1e-8) -> None:
        for name, value in (("members", members), ("depth", depth), ("width", width),
                            ("epochs", epochs), ("batch", batch)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise EvozeroError(f"MlpEnsemble {name} must be an integer >= 1, got {value!r}")
        if not lr > 0 or not eps > 0:
            raise EvozeroError(f"MlpEnsemble lr and eps must be > 0, got {lr!r} and {eps!r}")
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise EvozeroError(f"MlpEnsemble betas must be two numbers in [0, 1), got {betas!r}")
        self.members, self.depth, self.width = members, depth, width
        self.epochs, self.batch, self.lr = epochs, batch, float(lr)
        self.betas, self.eps = (float(betas[0]), float(betas[1])), float(eps)
        self._shapes: list[tuple[int, int, int]] | None = None
        self._flat = np.empty(0)
        self._y_mean, self._y_scale = 0.0, 1.0

    def fit(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> None:
        """Train every member from scratch on inputs ``x`` ``(n, d)`` and scores ``y``
        ``(n,)``, drawing initial weights and batch orders from ``rng``."""
        x = _finite_matrix(x, "x")
        y = np.asarray(y, dtype=np.float64)
        if y.shape != (x.shape[0],):
            raise EvozeroError(f"y must have shape ({x.shape[0]},) to match x, got {y.shape}")
        if not np.isfinite(y).all():
            raise EvozeroError("y has NaN or infinite values")
        # A standardised target lets one learning rate serve accuracies and losses alike.
        self._y_mean = float(y.mean())
        self._y_scale = float(y.std()) or 1.0
        target = (y - self._y_mean) / self._y_scale

        shapes = _layer_shapes(self.members, x.shape[1], self.width, self.depth)
        flat = np.zeros(_size(shapes))
        for k, (weight, _) in enumerate(_unpack(flat, shapes)):
            fan_in = weight.shape[1]
            # He-uniform keeps the activations' scale through ReLU layers; the output
            # layer is linear, so half the variance.
            bound = np.sqrt((6.0 if k < len(shapes) - 1 else 3.0) / fan_in)
            weight[...] = rng.uniform(-bound, bound, size=weight.shape)
        first, second = np.zeros_like(flat), np.zeros_like(flat)
        order = np.tile(np.arange(x.shape[0]), (self.members, 1))
        step = 0
        for _ in range(self.epochs):
            order = rng.permuted(order, axis=1)
            for start in range(0, x.shape[0], self.batch):
                rows = order[:, start:start + self.batch]
                _, grads = _loss_and_grads(flat, shapes, x[rows], target[rows])
                step += 1
                neural.adam_step(flat, grads, first, second, step, self.lr, self.betas,
                                 self.eps)
        self._shapes, self._flat = shapes, flat

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The members' mean and standard deviation ``(n,)`` each, for inputs ``(n, d)``."""
        if self._shapes is None:
            raise EvozeroError("the ensemble predicts only after fit")
        x = _finite_matrix(x, "x")
        inputs = self._shapes[0][1]
        if x.shape[1] != inputs:
            raise EvozeroError(f"x has {x.shape[1]} features; the ensemble was fitted on "
                               f"{inputs}")
        out, _ = _forward(_unpack(self._flat, self._shapes), x[None])
        out = out * self._y_scale + self._y_mean
        return out.mean(axis=0), out.std(axis=0)


def top_k(scores: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` highest ``scores`` (all of them if fewer), best first, ties
    broken by the lower index."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or np.isnan(scores).any():
        raise EvozeroError(f"scores must be a 1-D array without NaN, got shape {scores.shape}")
    if not isinstance(count, (int, np.integer)) or count < 0:
        raise EvozeroError(f"count must be an integer >= 0, got {count!r}")
    return np.argsort(-scores, kind="stable")[:count]


def thompson_pick(mean: np.ndarray, std: np.ndarray, count: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Independent Thompson sampling: one draw per candidate from N(mean, std), and the
    indices of the ``count`` highest draws (see :func:`top_k`)."""
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    if mean.ndim != 1 or std.shape != mean.shape:
        raise EvozeroError(f"mean and std must be 1-D of one length, got {mean.shape} and "
                           f"{std.shape}")
    if not (np.isfinite(mean).all() and np.isfinite(std).all()) or (std < 0).any():
        raise EvozeroError("mean and std must be finite and std >= 0")
    return top_k(rng.normal(mean, std), count)
