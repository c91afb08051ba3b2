"""Differentiable search over the supernet: DARTS (first and second order), GDAS and
ProxylessNAS. Each keeps architecture parameters ``alphas`` (one logit per edge and op,
shared by every cell, drawn as 1e-3 x N(0, 1)), updated by Adam on validation batches,
and derives the argmax op of each edge.

- **DARTS** (``darts``, ``darts2``): every edge computes all ops, weighted by
  softmax(alphas). Each step trains the weights on a training batch, then the
  architecture on a validation batch (NAS-Bench-201's order). Second order: the gradient
  at the weights one virtual SGD step ahead (w' = w - xi (momentum buffer + gradient +
  decay), xi the weights' learning rate), minus xi times the Hessian-vector product
  estimated by central differences at w +- eps v, eps = 0.01 / ||v||.
- **GDAS**: each forward draws a hard Gumbel-softmax sample (temperature falling
  linearly from tau_max to tau_min, fixed within an epoch) and computes only the chosen
  op per edge; gradients reach the other ops' coefficients as the reference's do (each
  unselected op's coefficient is added as a scalar: it receives the sum of the edge's
  output gradient). Weight step and architecture step each draw their own sample.
- **ProxylessNAS**: weight steps on one path drawn from softmax(alphas); after the
  warm-up, every ``arch_every`` weight steps (not in the first epoch after warm-up) an
  architecture step on a validation batch: a path is drawn (binary gates), every op's
  output is computed with the gates as coefficients (the reference's ``full_v2``), and
  dL/d gate maps to the logits through the softmax; an edge whose drawn op is ``none``
  is not updated. The loss adds latency_weight x (E[latency] - target) / target, E[latency]
  the run's profile's estimate of the fixed layers plus, per edge, each op's layers
  weighted by its probability.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from evozero.config import Nas
from evozero.errors import EvozeroError
from evozero.nas.supernet.network import (
    ALL_OPS,
    EDGES,
    NONE,
    OPS,
    edge_gradients,
    loss_and_gradients,
    menu_of,
    set_mixing,
    softmax,
    softmax_backward,
)
from evozero.nas.supernet.search import SupernetSearch
from evozero.nas.training.data import Dataset
from ops import neural

# Adam settings of the architecture step per method (learning rate, betas, eps, weight
# decay): the DARTS family's, and ProxylessNAS'.
_ARCH_ADAM = {"darts": (3e-4, (0.5, 0.999), 1e-8, 1e-3),
              "proxyless": (1e-3, (0.0, 0.999), 1e-8, 0.0)}


class AlphaSearch(SupernetSearch):
    """A method with architecture parameters (see the module docstring)."""

    adam_kind = "darts"

    def __init__(self, nas: Nas, data: Dataset, seed: int) -> None:
        super().__init__(nas, data, seed)
        self.alphas = 1e-3 * self.sampler.standard_normal((EDGES, OPS))
        self.first = np.zeros((EDGES, OPS))
        self.second = np.zeros((EDGES, OPS))
        self.arch_steps = 0
        lr, betas, eps, decay = _ARCH_ADAM[self.adam_kind]
        s = self.settings
        self.arch_lr = lr if s.arch_learning_rate is None else s.arch_learning_rate
        self.arch_decay = decay if s.arch_weight_decay is None else s.arch_weight_decay
        self.betas, self.eps = betas, eps

    def arch_update(self, grad: np.ndarray) -> None:
        """One Adam step on the architecture parameters."""
        self.arch_steps += 1
        neural.adam_step(self.alphas, grad, self.first, self.second, self.arch_steps,
                         self.arch_lr, self.betas, self.eps, self.arch_decay)

    def epoch_record(self) -> dict[str, Any]:
        """softmax(alphas) after the epoch."""
        return {"alphas": softmax(self.alphas).round(6).tolist()}

    def epoch_cell(self) -> np.ndarray:
        """The derived cell (:meth:`derive`)."""
        return self.derive()

    def derive(self) -> np.ndarray:
        """The argmax op of each edge (``none`` left out when ``derive: without_none``)."""
        logits = self.alphas.copy()
        if self.settings.derive == "without_none":
            logits[:, NONE] = -np.inf
        return logits.argmax(axis=1)

    def method_state(self) -> dict[str, Any]:
        """The architecture parameters and their Adam moments."""
        return {"alphas": self.alphas.copy(), "first": self.first.copy(),
                "second": self.second.copy(), "arch_steps": self.arch_steps}

    def restore_method(self, state: Any, where: str) -> None:
        """See :meth:`SupernetSearch.restore_method`."""
        if not isinstance(state, dict) or set(state) != {"alphas", "first", "second",
                                                         "arch_steps"}:
            raise EvozeroError(f"{where}: must hold alphas, first, second and arch_steps")
        for name in ("alphas", "first", "second"):
            array = state[name]
            if not isinstance(array, np.ndarray) or array.shape != (EDGES, OPS) \
                    or array.dtype != np.float64 or not np.all(np.isfinite(array)):
                raise EvozeroError(f"{where}: {name} must be {EDGES} x {OPS} finite float64")
        steps = state["arch_steps"]
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise EvozeroError(f"{where}: arch_steps must be a whole number >= 0")
        self.alphas, self.first, self.second = (state[n].copy() for n in
                                                ("alphas", "first", "second"))
        self.arch_steps = steps


class Darts(AlphaSearch):
    """DARTS, first order (``second_order`` False) or second (see the module docstring)."""

    #: The Hessian-vector product's difference step is ``hvp_radius`` / ||v|| (DARTS'
    #: 0.01; exact to rounding as it goes to 0).
    hvp_radius = 0.01

    def __init__(self, nas: Nas, data: Dataset, seed: int, second_order: bool) -> None:
        super().__init__(nas, data, seed)
        self.second_order = second_order

    def step(self, x: np.ndarray, y: np.ndarray, lr: float, shot: int | None
             ) -> tuple[float, float]:
        """A weight step on the mixture, then an architecture step."""
        full = self.supernet.model(ALL_OPS, True)
        set_mixing(full, softmax(self.alphas))
        loss, right, grads = loss_and_gradients(full, x, y)
        self.optimizer.step(grads, lr)
        valid_x, valid_y = self.valid_batch()
        if self.second_order:
            grad = self.unrolled_gradient(x, y, valid_x, valid_y, lr)
        else:
            grad = self.alpha_gradient(valid_x, valid_y)
        self.arch_update(grad)
        return loss, right

    def alpha_gradient(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """dL(x, y) / d alphas at the current weights."""
        full = self.supernet.model(ALL_OPS, True)
        probabilities = softmax(self.alphas)
        set_mixing(full, probabilities)
        loss_and_gradients(full, x, y)
        return softmax_backward(probabilities, edge_gradients(full))

    def unrolled_gradient(self, train_x: np.ndarray, train_y: np.ndarray,
                          valid_x: np.ndarray, valid_y: np.ndarray, xi: float) -> np.ndarray:
        """DARTS' second-order architecture gradient (module docstring); the weights are
        left as they were."""
        supernet, optimizer = self.supernet, self.optimizer
        full = supernet.model(ALL_OPS, True)
        set_mixing(full, softmax(self.alphas))
        saved = supernet.copy_weights()
        _, _, grads = loss_and_gradients(full, train_x, train_y)
        for name in supernet.trained:           # the virtual step to w'
            for param, grad, velocity, decayed in zip(
                    supernet.weights[name], grads.get(name, []), optimizer.velocity[name],
                    supernet.decayed(name)):
                decay = optimizer.weight_decay if decayed else 0.0
                param -= xi * (optimizer.momentum * velocity + grad + decay * param)
        _, _, valid_grads = loss_and_gradients(full, valid_x, valid_y)
        first = softmax_backward(softmax(self.alphas), edge_gradients(full))
        supernet.load_weights(saved)
        vector = {name: valid_grads.get(name, [np.zeros_like(a) for a in saved[name]])
                  for name in supernet.trained}
        hessian = self.hessian_vector(vector, train_x, train_y)
        return first - xi * hessian

    def hessian_vector(self, vector: dict[str, list[np.ndarray]], x: np.ndarray,
                       y: np.ndarray) -> np.ndarray:
        """d/d alphas of <dL(x, y)/dw, vector>, by central differences along ``vector``
        at the current weights (eps = :attr:`hvp_radius` / ||vector||); the weights are
        left as they were."""
        supernet = self.supernet
        norm = np.sqrt(sum(float(np.vdot(v, v)) for arrays in vector.values() for v in arrays))
        eps = self.hvp_radius / max(norm, 1e-12)
        saved = supernet.copy_weights()
        sides = []
        for sign in (1.0, -1.0):
            for name, arrays in vector.items():
                for param, base, v in zip(supernet.weights[name], saved[name], arrays):
                    param[...] = base + sign * eps * v
            sides.append(self.alpha_gradient(x, y))
        supernet.load_weights(saved)
        return (sides[0] - sides[1]) / (2 * eps)


def gumbel_sample(alphas: np.ndarray, tau: float, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """GDAS's draw: the chosen op per edge and the soft sample y = softmax((log_softmax
    (alphas) + g) / tau), g Gumbel noise (redrawn until finite)."""
    log_p = alphas - alphas.max(axis=1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    while True:
        gumbel = -np.log(rng.exponential(size=alphas.shape))
        soft = softmax((log_p + gumbel) / tau)
        if np.all(np.isfinite(soft)):
            return soft.argmax(axis=1), soft


def gdas_alpha_gradient(alphas: np.ndarray, soft: np.ndarray, tau: float,
                        grads: np.ndarray) -> np.ndarray:
    """dL/d alphas from dL/d coefficients ``grads`` through the straight-through sample:
    the softmax of (log_softmax(alphas) + g) / tau, then the log-softmax."""
    d_log_p = softmax_backward(soft, grads) / tau
    return d_log_p - softmax(alphas) * d_log_p.sum(axis=1, keepdims=True)


class Gdas(AlphaSearch):
    """GDAS (see the module docstring)."""

    def tau(self) -> float:
        """The temperature of the current epoch."""
        s = self.settings
        epochs = max(s.epochs - 1, 1)
        return s.tau_max - (s.tau_max - s.tau_min) * min(self.epoch, s.epochs - 1) / epochs

    def sampled(self) -> tuple[Any, np.ndarray, np.ndarray]:
        """A hard sample's network with its coefficients set, its ops and soft sample."""
        ops, soft = gumbel_sample(self.alphas, self.tau(), self.sampler)
        model = self.supernet.model(menu_of(ops), True)
        hard = np.zeros((EDGES, OPS))
        hard[np.arange(EDGES), ops] = 1.0
        set_mixing(model, hard)
        return model, ops, soft

    def step(self, x: np.ndarray, y: np.ndarray, lr: float, shot: int | None
             ) -> tuple[float, float]:
        """A weight step on one sample, an architecture step on another."""
        model, _, _ = self.sampled()
        loss, right, grads = loss_and_gradients(model, x, y)
        self.optimizer.step(grads, lr)
        model, ops, soft = self.sampled()
        valid_x, valid_y = self.valid_batch()
        loss_and_gradients(model, valid_x, valid_y)
        self.arch_update(gdas_alpha_gradient(self.alphas, soft, self.tau(),
                                             edge_gradients(model, menu_of(ops))))
        return loss, right

    def epoch_record(self) -> dict[str, Any]:
        """softmax(alphas) and the epoch's temperature."""
        return {**super().epoch_record(), "tau": self.tau()}


class Proxyless(AlphaSearch):
    """ProxylessNAS on the cell space (see the module docstring). ``latency`` is
    (fixed ms, per edge and op ms) of the run's profile."""

    adam_kind = "proxyless"

    def __init__(self, nas: Nas, data: Dataset, seed: int,
                 latency: tuple[float, np.ndarray]) -> None:
        super().__init__(nas, data, seed)
        self.fixed_ms, self.op_ms = latency
        s = self.settings
        self.warmup = s.epochs // 3 if s.warmup_epochs is None else s.warmup_epochs
        assert s.latency_target_ms is not None   # the config requires it for proxyless
        self.target = s.latency_target_ms

    def expected_latency(self) -> float:
        """E[latency] in ms under softmax(alphas)."""
        return self.fixed_ms + float((softmax(self.alphas) * self.op_ms).sum())

    def latency_gradient(self) -> np.ndarray:
        """d/d alphas of latency_weight x (E[latency] - target) / target."""
        scale = self.settings.latency_weight / self.target
        return softmax_backward(softmax(self.alphas), scale * self.op_ms)

    def draw(self) -> np.ndarray:
        """A path drawn from softmax(alphas)."""
        cumulative = np.cumsum(softmax(self.alphas), axis=1)
        return np.minimum((cumulative < self.sampler.random((EDGES, 1))).sum(axis=1), OPS - 1)

    def step(self, x: np.ndarray, y: np.ndarray, lr: float, shot: int | None
             ) -> tuple[float, float]:
        """A weight step on a drawn path; every ``arch_every`` steps after the warm-up's
        next epoch, an architecture step."""
        loss, right = self.train_on(menu_of(self.draw()), x, y, lr)
        if self.epoch > self.warmup and self.steps % self.settings.arch_every == 0:
            self.arch_update(self.binary_gate_gradient(*self.valid_batch())
                             + self.latency_gradient())
        return loss, right

    def binary_gate_gradient(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """dL/d alphas through binary gates of a drawn path, every op's output computed;
        zero on an edge whose drawn op is ``none``."""
        ops = self.draw()
        gates = np.zeros((EDGES, OPS))
        gates[np.arange(EDGES), ops] = 1.0
        full = self.supernet.model(ALL_OPS, True)
        set_mixing(full, gates)
        loss_and_gradients(full, x, y)
        grad = softmax_backward(softmax(self.alphas), edge_gradients(full))
        grad[ops == NONE] = 0.0
        return grad

    def epoch_record(self) -> dict[str, Any]:
        """softmax(alphas) and the expected latency."""
        return {**super().epoch_record(), "expected_latency_ms": self.expected_latency()}
