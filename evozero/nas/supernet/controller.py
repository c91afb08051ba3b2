"""ENAS's controller over NAS-Bench-201 cells, as NAS-Bench-201's reference code builds it.

A two-layer LSTM (PyTorch's layout: gates i, f, g, o and two bias vectors per layer) runs
over the cell's six edges in the engine's edge order (that of
:func:`evozero.nas.table.store.cell_ops`, which is the reference's). Its input at the first
edge is a learned start vector, at each later edge the embedding of the op chosen at the
edge before; the top layer's hidden state ``h`` gives the edge's logits over the five ops,
``2.5 * tanh((W h + b) / 5)``. A cell's log-probability and entropy are the sums over its
edges; their gradients are taken by hand, backpropagating through the six steps, for many
cells at once. Everything is float64.

Initialisation is the reference's: uniform(-0.1, 0.1) on the start vector, the first
layer's LSTM weights, the embedding and the output weights. The reference leaves the second
layer's LSTM weights, every LSTM bias and the output bias at PyTorch's default,
uniform(-1/sqrt(hidden), 1/sqrt(hidden)), and so does this module.

The controller's step is the reference's: per sample the loss -log pi(cell) * (r - b), with
reward r = accuracy + 1e-4 x entropy and :class:`EnasBaseline`'s b, averaged over 20
samples (:func:`enas_gradients`); then the gradient's global norm clipped to 5 and one Adam
step, lr 1e-3, betas (0, 0.999), eps 1e-3 (:meth:`Controller.adam_update`). The reference's
autograd differentiates the entropy inside r, and inside b, so the step's gradient has a
term in d H beside the policy gradient's -(r - b) d log pi; :func:`enas_gradients` keeps it.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from evozero.errors import EvozeroError
from evozero.nas.spaces.cells import NB201_OPS
from ops.neural import adam_step

EDGES, OPS, LAYERS = 6, len(NB201_OPS), 2
TEMPERATURE, TANH_CONSTANT = 5.0, 2.5
#: The reference's controller step: Adam's learning rate, betas and eps, the clip on the
#: gradient's global norm, the entropy's weight in the reward, the baseline's decay.
LEARNING_RATE, BETAS, EPS, CLIP = 1e-3, (0.0, 0.999), 1e-3, 5.0
ENTROPY_WEIGHT, BASELINE_DECAY = 1e-4, 0.99


def _layout(hidden: int) -> list[tuple[str, tuple[int, ...], float]]:
    """Name, shape and initial uniform bound of each parameter. The names are the keys of
    the reference's state_dict, so its checkpoints map onto these arrays."""
    default = 1.0 / math.sqrt(hidden)
    layout: list[tuple[str, tuple[int, ...], float]] = [("input_vars", (1, 1, hidden), 0.1)]
    for layer in range(LAYERS):
        weights = 0.1 if layer == 0 else default
        layout += [(f"w_lstm.weight_ih_l{layer}", (4 * hidden, hidden), weights),
                   (f"w_lstm.weight_hh_l{layer}", (4 * hidden, hidden), weights),
                   (f"w_lstm.bias_ih_l{layer}", (4 * hidden,), default),
                   (f"w_lstm.bias_hh_l{layer}", (4 * hidden,), default)]
    return layout + [("w_embd.weight", (OPS, hidden), 0.1),
                     ("w_pred.weight", (OPS, hidden), 0.1), ("w_pred.bias", (OPS,), default)]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))   # no overflow for large |z|


@dataclass
class _Trace:
    """One forward pass over n cells, kept for the backward pass."""

    ops: np.ndarray         # (n, 6) the op taken at each edge
    log_prob: np.ndarray    # (n,) log pi(cell)
    entropy: np.ndarray     # (n,) summed over the edges
    probs: np.ndarray       # (6, n, 5) each edge's op probabilities
    log_probs: np.ndarray   # (6, n, 5)
    squashed: np.ndarray    # (6, n, 5) tanh((W h + b) / temperature)
    tops: np.ndarray        # (6, n, hidden) the top layer's hidden state
    # Per edge and layer: input, previous hidden and cell state, gate activations, tanh(c).
    layers: list[list[tuple[np.ndarray, ...]]]


class Controller:
    """NAS-Bench-201's ENAS controller (see the module docstring): an LSTM of ``hidden``
    units (the reference's 32), initialised from ``rng``, with its Adam state."""

    def __init__(self, hidden: int, rng: np.random.Generator) -> None:
        self.hidden = hidden
        self._params = {name: rng.uniform(-bound, bound, shape)
                        for name, shape, bound in _layout(hidden)}
        self._first = {name: np.zeros_like(p) for name, p in self._params.items()}
        self._second = {name: np.zeros_like(p) for name, p in self._params.items()}
        self.steps = 0

    def parameters(self) -> dict[str, np.ndarray]:
        """The parameter arrays themselves (writing into them changes the controller)."""
        return dict(self._params)

    # -- the policy -----------------------------------------------------------------------

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
        """A cell's op numbers ``(6,)`` drawn from the policy, its log-probability and its
        entropy."""
        ops, log_probs, entropies = self.sample_batch(rng, 1)
        return ops[0], float(log_probs[0]), float(entropies[0])

    def sample_batch(self, rng: np.random.Generator,
                     n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` independent cells ``(n, 6)`` with their log-probabilities and entropies
        ``(n,)``. The uniforms are drawn edge by edge for all cells, so the cells differ
        from ``n`` calls of :meth:`sample` on the same generator."""
        def draw(edge: int, probs: np.ndarray) -> np.ndarray:
            below = np.cumsum(probs, axis=1) < rng.random((len(probs), 1))
            return np.minimum(below.sum(axis=1), OPS - 1)   # rounding: cumsum can end < 1
        trace = self._run(n, draw)
        return trace.ops, trace.log_prob, trace.entropy

    def argmax_path(self) -> np.ndarray:
        """The greedy cell ``(6,)``: the likeliest op at each edge, given those before."""
        return self._run(1, lambda edge, probs: probs.argmax(axis=1)).ops[0]

    def edge_probabilities(self, ops: np.ndarray) -> np.ndarray:
        """Each edge's op probabilities ``(6, 5)`` with the edges before it taking ``ops``."""
        return self._forced(np.asarray(ops)[None]).probs[:, 0]

    def log_probs_and_entropies(self, ops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log pi and the entropy ``(n,)`` of cells ``ops`` ``(n, 6)``."""
        trace = self._forced(ops)
        return trace.log_prob, trace.entropy

    def log_prob_and_entropy_gradients(
            self, ops: np.ndarray) -> tuple[float, float, dict[str, np.ndarray],
                                            dict[str, np.ndarray]]:
        """log pi(cell) and the entropy H of the cell ``ops`` ``(6,)``, with their
        gradients by parameter name."""
        trace = self._forced(np.asarray(ops)[None])
        return (float(trace.log_prob[0]), float(trace.entropy[0]),
                self._backward(trace, _d_log_prob(trace)), self._backward(trace, _d_entropy(trace)))

    def gradients(self, ops: np.ndarray, log_prob_weights: np.ndarray,
                  entropy_weights: np.ndarray) -> dict[str, np.ndarray]:
        """The gradient of sum_k (log_prob_weights[k] log pi(cell k) + entropy_weights[k]
        H(cell k)) over cells ``ops`` ``(n, 6)``, in one backward pass."""
        trace = self._forced(ops)
        d_logits = (np.asarray(log_prob_weights)[None, :, None] * _d_log_prob(trace)
                    + np.asarray(entropy_weights)[None, :, None] * _d_entropy(trace))
        return self._backward(trace, d_logits)

    # -- the step -------------------------------------------------------------------------

    def adam_update(self, grads: dict[str, np.ndarray], lr: float = LEARNING_RATE,
                    betas: tuple[float, float] = BETAS, eps: float = EPS,
                    clip: float = CLIP) -> float:
        """One Adam step on ``grads`` (by parameter name) after scaling them, as
        torch.nn.utils.clip_grad_norm_, by min(1, clip / (norm + 1e-6)) with ``norm`` their
        global norm, which is returned."""
        if set(grads) != set(self._params):
            raise ValueError(f"gradients must be given for exactly {sorted(self._params)}")
        norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
        scale = min(1.0, clip / (norm + 1e-6))
        self.steps += 1
        for name, param in self._params.items():
            adam_step(param, grads[name] * scale, self._first[name], self._second[name],
                      self.steps, lr, betas, eps)
        return norm

    # -- checkpoints ----------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Parameters, Adam's moments (by parameter name) and step count, as plain data."""
        return {"parameters": {n: p.copy() for n, p in self._params.items()},
                "first": {n: m.copy() for n, m in self._first.items()},
                "second": {n: m.copy() for n, m in self._second.items()},
                "steps": self.steps}

    def restore(self, state: Any, where: str) -> None:
        """Take ``state`` (from :meth:`state` of a controller of the same size), checked in
        full before anything changes: EvozeroError naming ``where`` when it is malformed."""
        groups = ("parameters", "first", "second")
        if not isinstance(state, dict) or set(state) != {*groups, "steps"}:
            raise EvozeroError(f"{where}: controller state must have the keys "
                               f"{', '.join(groups)}, steps")
        steps = state["steps"]
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise EvozeroError(f"{where}: steps must be a whole number >= 0, got {steps!r}")
        for group in groups:
            arrays = state[group]
            if not isinstance(arrays, dict) or set(arrays) != set(self._params):
                raise EvozeroError(f"{where}: {group} must hold exactly the arrays "
                                   f"{', '.join(self._params)}")
            for name, array in arrays.items():
                shape = self._params[name].shape
                if not isinstance(array, np.ndarray) or array.dtype != np.float64 \
                        or array.shape != shape or not np.all(np.isfinite(array)):
                    raise EvozeroError(f"{where}: {group} {name} must be a float64 array of "
                                       f"shape {shape} with finite values")
                # A negative second moment would make Adam's square root NaN.
                if group == "second" and np.any(array < 0):
                    raise EvozeroError(f"{where}: second {name} must not be negative")
        # In place, so arrays from parameters() stay the controller's.
        for group, target in zip(groups, (self._params, self._first, self._second)):
            for name, array in state[group].items():
                target[name][...] = array
        self.steps = steps

    # -- forward and backward -------------------------------------------------------------

    def _forced(self, ops: np.ndarray) -> _Trace:
        ops = np.asarray(ops)
        if ops.ndim != 2 or ops.shape[1] != EDGES or ops.dtype.kind not in "iu" \
                or np.any((ops < 0) | (ops >= OPS)):
            raise ValueError(f"ops must be op numbers 0 .. {OPS - 1} of shape (n, {EDGES})")
        return self._run(len(ops), lambda edge, probs: ops[:, edge])

    def _run(self, n: int, choose: Callable[[int, np.ndarray], np.ndarray]) -> _Trace:
        """The LSTM over the six edges for ``n`` cells, ``choose(edge, probs)`` giving each
        edge's ops ``(n,)`` from its probabilities ``(n, 5)``."""
        p, hidden = self._params, self.hidden
        x = np.repeat(p["input_vars"].reshape(1, hidden), n, axis=0)
        h = [np.zeros((n, hidden)) for _ in range(LAYERS)]
        c = [np.zeros((n, hidden)) for _ in range(LAYERS)]
        ops = np.empty((n, EDGES), dtype=np.int64)
        probs, log_probs, squashed = (np.empty((EDGES, n, OPS)) for _ in range(3))
        tops = np.empty((EDGES, n, hidden))
        layers: list[list[tuple[np.ndarray, ...]]] = []
        for edge in range(EDGES):
            caches: list[tuple[np.ndarray, ...]] = []
            for layer in range(LAYERS):
                gates = (x @ p[f"w_lstm.weight_ih_l{layer}"].T + p[f"w_lstm.bias_ih_l{layer}"]
                         + h[layer] @ p[f"w_lstm.weight_hh_l{layer}"].T
                         + p[f"w_lstm.bias_hh_l{layer}"])
                act = _sigmoid(gates)
                act[:, 2 * hidden:3 * hidden] = np.tanh(gates[:, 2 * hidden:3 * hidden])
                i, f, g, o = (act[:, k * hidden:(k + 1) * hidden] for k in range(4))
                c_prev, c[layer] = c[layer], f * c[layer] + i * g
                tanh_c = np.tanh(c[layer])
                caches.append((x, h[layer], c_prev, act, tanh_c))
                h[layer] = x = o * tanh_c
            layers.append(caches)
            tops[edge] = x
            squashed[edge] = np.tanh((x @ p["w_pred.weight"].T + p["w_pred.bias"]) / TEMPERATURE)
            logits = TANH_CONSTANT * squashed[edge]
            shifted = logits - logits.max(axis=1, keepdims=True)
            log_probs[edge] = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            probs[edge] = np.exp(log_probs[edge])
            ops[:, edge] = choose(edge, probs[edge])
            x = p["w_embd.weight"][ops[:, edge]]
        taken = np.take_along_axis(log_probs, ops.T[:, :, None], axis=2)[:, :, 0]
        return _Trace(ops, taken.sum(axis=0), -(probs * log_probs).sum(axis=(0, 2)), probs,
                      log_probs, squashed, tops, layers)

    def _backward(self, trace: _Trace, d_logits: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients of a sum over the traced cells whose gradient with respect to the
        edges' logits is ``d_logits`` ``(6, n, 5)``."""
        p, hidden = self._params, self.hidden
        grads = {name: np.zeros_like(array) for name, array in p.items()}
        n = d_logits.shape[1]
        dh = [np.zeros((n, hidden)) for _ in range(LAYERS)]
        dc = [np.zeros((n, hidden)) for _ in range(LAYERS)]
        for edge in reversed(range(EDGES)):
            slope_out = (TANH_CONSTANT / TEMPERATURE) * (1.0 - trace.squashed[edge] ** 2)
            d_pre = d_logits[edge] * slope_out
            grads["w_pred.weight"] += d_pre.T @ trace.tops[edge]
            grads["w_pred.bias"] += d_pre.sum(axis=0)
            dx = d_pre @ p["w_pred.weight"]
            for layer in reversed(range(LAYERS)):
                x, h_prev, c_prev, act, tanh_c = trace.layers[edge][layer]
                i, f, g, o = (act[:, k * hidden:(k + 1) * hidden] for k in range(4))
                d_h = dh[layer] + dx
                d_c = dc[layer] + d_h * o * (1.0 - tanh_c ** 2)
                slope = act * (1.0 - act)
                slope[:, 2 * hidden:3 * hidden] = 1.0 - g * g
                d_gates = np.concatenate([d_c * g, d_c * c_prev, d_c * i, d_h * tanh_c],
                                         axis=1) * slope
                grads[f"w_lstm.weight_ih_l{layer}"] += d_gates.T @ x
                grads[f"w_lstm.weight_hh_l{layer}"] += d_gates.T @ h_prev
                grads[f"w_lstm.bias_ih_l{layer}"] += d_gates.sum(axis=0)
                dh[layer], dc[layer] = d_gates @ p[f"w_lstm.weight_hh_l{layer}"], d_c * f
                dx = d_gates @ p[f"w_lstm.weight_ih_l{layer}"]
            if edge == 0:
                grads["input_vars"] += dx.sum(axis=0).reshape(1, 1, hidden)
            else:
                np.add.at(grads["w_embd.weight"], trace.ops[:, edge - 1], dx)
        for layer in range(LAYERS):
            # The two biases enter the gates alike.
            grads[f"w_lstm.bias_hh_l{layer}"][...] = grads[f"w_lstm.bias_ih_l{layer}"]
        return grads


def _d_log_prob(trace: _Trace) -> np.ndarray:
    """d log pi(cell) / d logits ``(6, n, 5)``: the taken op's one-hot minus the probabilities."""
    d = -trace.probs
    np.put_along_axis(d, trace.ops.T[:, :, None],
                      np.take_along_axis(d, trace.ops.T[:, :, None], axis=2) + 1.0, axis=2)
    return d


def _d_entropy(trace: _Trace) -> np.ndarray:
    """d H / d logits ``(6, n, 5)``: -p (log p + H) at each edge."""
    edge_entropy = -(trace.probs * trace.log_probs).sum(axis=2, keepdims=True)
    return -trace.probs * (trace.log_probs + edge_entropy)


class EnasBaseline:
    """The reference's baseline (NAS-Bench-201's ENAS.py), not a running average: within an
    epoch the previous epoch's B is held, and a sample of reward r gets
    b = B - (1 - decay) (B - r); in the first epoch, with no B yet, b is the sample's own
    accuracy. At the end of an epoch B becomes the epoch's last b."""

    def __init__(self, decay: float = BASELINE_DECAY) -> None:
        self.decay = decay
        self.previous: float | None = None   # B, from the epoch before
        self.last: float | None = None       # this epoch's latest b

    def baselines(self, accuracies: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        """b ``(n,)`` of samples with these accuracies and rewards, in order."""
        if self.previous is None:
            b = np.array(accuracies, dtype=np.float64)
        else:
            b = self.previous - (1.0 - self.decay) * (self.previous - np.asarray(rewards))
        if len(b):
            self.last = float(b[-1])
        return b

    def end_epoch(self) -> None:
        """B for the next epoch: this epoch's last b."""
        self.previous = self.last

    def state(self) -> dict[str, Any]:
        """B and the last b (None before there is one), as plain data."""
        return {"previous": self.previous, "last": self.last}

    def restore(self, state: Any, where: str) -> None:
        """Take ``state`` (from :meth:`state`): EvozeroError naming ``where`` when it is
        malformed."""
        if not isinstance(state, dict) or set(state) != {"previous", "last"} or not all(
                value is None or (isinstance(value, float) and math.isfinite(value))
                for value in state.values()):
            raise EvozeroError(f"{where}: baseline state must have previous and last, each "
                               f"a finite float or None")
        self.previous, self.last = state["previous"], state["last"]


def enas_gradients(controller: Controller, baseline: EnasBaseline, ops: np.ndarray,
                   accuracies: np.ndarray,
                   entropy_weight: float = ENTROPY_WEIGHT) -> dict[str, np.ndarray]:
    """The gradient of the reference's controller loss, the mean over samples ``ops``
    ``(n, 6)`` with their ``accuracies`` (fractions) of -log pi * (r - b), as the
    reference's autograd takes it: r = accuracy + entropy_weight * H carries H's gradient,
    and so does b through r (a share ``decay`` of r's is left in r - b; in the first epoch,
    all of it). Advances ``baseline`` past the samples. For the textbook estimator, with H
    a constant, call :meth:`Controller.gradients` with entropy weights 0."""
    log_probs, entropies = controller.log_probs_and_entropies(ops)
    rewards = np.asarray(accuracies) + entropy_weight * entropies
    share = 1.0 if baseline.previous is None else baseline.decay
    advantages = rewards - baseline.baselines(accuracies, rewards)
    return controller.gradients(ops, -advantages / len(ops),
                                -share * entropy_weight * log_probs / len(ops))
