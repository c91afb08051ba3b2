"""REINFORCE, NAS-Bench-201's policy-gradient baseline (no weight sharing).

The policy is one softmax per edge over the five ops, its logits ``(6, 5)`` drawn as
1e-3 x N(0, 1). Each step samples a cell, takes its fitness in percent as the reward
(the reference's units: the step size is 100x that of a fraction reward), updates a
bias-corrected moving average baseline with the reward *before* forming the loss (its
numerator and denominator both decay with ``momentum``, so the first baseline is the
first reward), and takes one Adam step (PyTorch's defaults but the learning rate) on
-log pi(cell) x (reward - baseline). The search's result is the best cell evaluated.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from evozero.config import Nas
from evozero.errors import EvozeroError
from evozero.nas.search.strategy import CellStrategy, check_fields
from evozero.nas.spaces.cells import NB201_OPS
from evozero.nas.table.store import cell_ops, ops_index

EDGES, OPS = 6, len(NB201_OPS)
_BETAS, _EPS = (0.9, 0.999), 1e-8


def policy(logits: np.ndarray) -> np.ndarray:
    """Per-edge op probabilities ``(6, 5)`` of ``logits``."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def log_prob_gradient(logits: np.ndarray, ops: np.ndarray) -> np.ndarray:
    """d log pi(cell) / d logits for a cell of op numbers ``ops`` (6,): per edge, the
    one-hot of its op minus the edge's probabilities."""
    grad = -policy(logits)
    grad[np.arange(EDGES), ops] += 1.0
    return grad


class Reinforce(CellStrategy):
    """REINFORCE over NAS-Bench-201 cells (see the module docstring)."""

    def __init__(self, nas: Nas, epochs: int, signal_epoch: int,
                 rng: np.random.Generator) -> None:
        super().__init__(nas, epochs, signal_epoch)
        self.logits = 1e-3 * rng.standard_normal((EDGES, OPS))
        self.first = np.zeros((EDGES, OPS))     # Adam's moment estimates
        self.second = np.zeros((EDGES, OPS))
        self.steps = 0
        self.numerator = 0.0                    # the baseline's moving averages
        self.denominator = 0.0

    def ask(self, rng: np.random.Generator) -> tuple[int, int]:
        """A cell drawn from the policy, trained to the signal epoch."""
        cumulative = np.cumsum(policy(self.logits), axis=1)
        ops = np.minimum((cumulative < rng.random((EDGES, 1))).sum(axis=1), OPS - 1)
        return int(ops_index(ops[None])[0]), self.signal_epoch

    def tell(self, index: int, epochs: int, fitness: float) -> None:
        """One policy-gradient step on the cell's reward (a failed training: reward 0)."""
        reward = 100.0 * (fitness if fitness == fitness else 0.0)
        momentum = self.nas.reinforce.momentum
        self.numerator = momentum * self.numerator + (1.0 - momentum) * reward
        self.denominator = momentum * self.denominator + (1.0 - momentum)
        baseline = self.numerator / self.denominator
        grad = -(reward - baseline) * log_prob_gradient(self.logits, cell_ops([index])[0])
        self._adam(grad)

    def _adam(self, grad: np.ndarray) -> None:
        self.steps += 1
        self.first = _BETAS[0] * self.first + (1 - _BETAS[0]) * grad
        self.second = _BETAS[1] * self.second + (1 - _BETAS[1]) * grad * grad
        corrected_first = self.first / (1 - _BETAS[0] ** self.steps)
        corrected_second = self.second / (1 - _BETAS[1] ** self.steps)
        self.logits = self.logits - self.nas.reinforce.learning_rate * corrected_first / (
            np.sqrt(corrected_second) + _EPS)

    def state(self) -> dict[str, Any]:
        """Logits, Adam's moments and step count, the baseline's averages."""
        return {"logits": self.logits.copy(), "first": self.first.copy(),
                "second": self.second.copy(), "steps": self.steps,
                "numerator": self.numerator, "denominator": self.denominator}

    def restore(self, state: Any, where: str) -> None:
        """See :meth:`CellStrategy.restore`."""
        check_fields(state, {"logits": np.ndarray, "first": np.ndarray,
                             "second": np.ndarray, "steps": int, "numerator": float,
                             "denominator": float}, where)
        for name in ("logits", "first", "second"):
            array = state[name]
            if array.shape != (EDGES, OPS) or array.dtype.kind != "f" \
                    or not np.all(np.isfinite(array)):
                raise EvozeroError(f"{where}: {name} must be {EDGES} x {OPS} finite floats")
        self.logits, self.first, self.second = (np.array(state[n], dtype=np.float64)
                                                for n in ("logits", "first", "second"))
        self.steps = state["steps"]
        self.numerator, self.denominator = state["numerator"], state["denominator"]
