"""The NAS-Bench-201 supernet: mixed edges against stand-alone cells, architecture
gradients against finite differences, DARTS' second-order gradient, GDAS' and
ProxylessNAS' estimators."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from evozero.config import Nas
from evozero.config.cell_search import NasSupernet, NasTraining
from evozero.nas.spaces.cells import NB201_OPS, Nb201Cell
from evozero.nas.spaces.skeleton import Skeleton, compile_cell
from evozero.nas.supernet.differentiable import Darts, gdas_alpha_gradient, gumbel_sample
from evozero.nas.supernet.network import (
    ALL_OPS,
    EDGES,
    OPS,
    Supernet,
    edge_gradients,
    loss_and_gradients,
    menu_of,
    set_mixing,
    softmax,
    softmax_backward,
)
from evozero.nas.training.data import Dataset
from evozero.nas.training.model import Model

pytestmark = pytest.mark.nas

SKELETON = Skeleton(2, 2, 1)
SHAPE = (1, 8, 1)


def tiny_batch(seed: int = 0, size: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((size,) + SHAPE), rng.integers(0, 3, size)


def supernet64() -> Supernet:
    return Supernet(SKELETON, SHAPE, 3, seed=3, dtype=np.float64)


def one_hot(ops) -> np.ndarray:
    coefficients = np.zeros((EDGES, OPS))
    coefficients[np.arange(EDGES), ops] = 1.0
    return coefficients


CELLS = [(3, 0, 1, 4, 2, 1), (0, 0, 0, 0, 0, 0), (1, 1, 1, 1, 1, 1), (2, 3, 4, 0, 1, 3),
         (4, 2, 0, 3, 0, 0), (0, 1, 0, 2, 3, 4)]


@pytest.mark.parametrize("ops", CELLS)
def test_one_hot_mixture_is_the_single_path_and_the_stand_alone_cell_bit_for_bit(ops):
    net = supernet64()
    x, y = tiny_batch()
    full = net.model(ALL_OPS, True)
    set_mixing(full, one_hot(ops))
    single = net.model(menu_of(ops), False)
    cell = Nb201Cell(tuple(NB201_OPS[op] for op in ops))
    alone = Model(compile_cell(cell, SKELETON, SHAPE, 3), seed=0, dtype=np.float64)
    # The stand-alone network names an edge's layers without the op: give it the shared
    # weights of the op its edge runs.
    for index, layer in enumerate(alone.arch.layers):
        if index in alone.weights:
            name = layer.name
            parts = name.split(".")
            if len(parts) >= 3 and parts[2].startswith("e"):
                edge = int(parts[2][1:])
                name = ".".join(parts[:3] + [NB201_OPS[ops[edge]]] + parts[3:])
            for target, source in zip(alone.weights[index], net.weights[name]):
                target[...] = source
    outputs = [model.forward(x, training=True) for model in (full, single, alone)]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[0], outputs[2])
    _, _, mixed_grads = loss_and_gradients(full, x, y)
    _, _, path_grads = loss_and_gradients(single, x, y)
    # The supernet joins convolutions of one node into one wider product, which sums
    # weight gradients in another order: equal to rounding.
    for name, grads in path_grads.items():
        for a, b in zip(grads, mixed_grads[name]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_mixed_edge_architecture_gradient_matches_central_differences():
    net = supernet64()
    x, y = tiny_batch(1, 5)
    full = net.model(ALL_OPS, True)
    alphas = np.random.default_rng(2).standard_normal((EDGES, OPS))

    def loss_at(logits):
        set_mixing(full, softmax(logits))
        return loss_and_gradients(full, x, y)[0]

    loss_at(alphas)
    analytic = softmax_backward(softmax(alphas), edge_gradients(full))
    numeric = np.zeros_like(alphas)
    for e, k in itertools.product(range(EDGES), range(OPS)):
        step = np.zeros_like(alphas)
        step[e, k] = 1e-6
        numeric[e, k] = (loss_at(alphas + step) - loss_at(alphas - step)) / 2e-6
    assert np.abs(numeric).max() > 1e-3
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_mixed_edge_weight_gradients_match_central_differences():
    net = supernet64()
    x, y = tiny_batch(2, 3)
    full = net.model(ALL_OPS, True)
    set_mixing(full, softmax(np.random.default_rng(5).standard_normal((EDGES, OPS))))
    _, _, grads = loss_and_gradients(full, x, y)
    name = "s1.c0.e3.nor_conv_3x3"
    weight = net.weights[name][0]
    rng = np.random.default_rng(0)
    for flat in rng.choice(weight.size, 5, replace=False):
        where = np.unravel_index(flat, weight.shape)
        saved = weight[where]
        weight[where] = saved + 1e-6
        up = loss_and_gradients(full, x, y)[0]
        weight[where] = saved - 1e-6
        down = loss_and_gradients(full, x, y)[0]
        weight[where] = saved
        assert grads[name][0][where] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-9)


def gdas_surrogate(alphas, gumbel, tau, grads):
    # The coefficients' value is one-hot, their gradient that of the soft sample:
    # d/d alphas of <grads, softmax((log_softmax(alphas) + gumbel) / tau)>.
    log_p = alphas - np.log(np.exp(alphas).sum(axis=1, keepdims=True))
    return float((grads * softmax((log_p + gumbel) / tau)).sum())


def test_gdas_straight_through_gradient_is_the_soft_sample_jacobian():
    rng = np.random.default_rng(4)
    alphas, grads = rng.standard_normal((EDGES, OPS)), rng.standard_normal((EDGES, OPS))
    gumbel = -np.log(rng.exponential(size=(EDGES, OPS)))
    tau = 0.7
    log_p = alphas - np.log(np.exp(alphas).sum(axis=1, keepdims=True))
    soft = softmax((log_p + gumbel) / tau)
    analytic = gdas_alpha_gradient(alphas, soft, tau, grads)
    numeric = np.zeros_like(alphas)
    for e, k in itertools.product(range(EDGES), range(OPS)):
        step = np.zeros_like(alphas)
        step[e, k] = 1e-6
        numeric[e, k] = (gdas_surrogate(alphas + step, gumbel, tau, grads)
                         - gdas_surrogate(alphas - step, gumbel, tau, grads)) / 2e-6
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_gumbel_max_draws_follow_the_softmax_of_the_alphas():
    alphas = np.log(np.array([[0.5, 0.2, 0.15, 0.1, 0.05]] * EDGES))
    rng = np.random.default_rng(0)
    counts = np.zeros((EDGES, OPS))
    draws = 4000
    for _ in range(draws):
        ops, _ = gumbel_sample(alphas, 3.0, rng)
        counts[np.arange(EDGES), ops] += 1
    expected = softmax(alphas)
    # Every frequency within 4 binomial standard deviations.
    sigma = np.sqrt(expected * (1 - expected) / draws)
    assert np.all(np.abs(counts / draws - expected) < 4 * sigma)


def test_gdas_edge_gradient_gives_unselected_ops_the_sum_of_the_output_gradient():
    net = supernet64()
    x, y = tiny_batch(3)
    ops = (3, 1, 0, 2, 4, 1)
    model = net.model(menu_of(ops), True)
    set_mixing(model, one_hot(ops))
    loss_and_gradients(model, x, y)
    total = edge_gradients(model, menu_of(ops))
    zero = edge_gradients(model)
    for edge, op in enumerate(ops):
        others = [k for k in range(OPS) if k != op]
        np.testing.assert_array_equal(zero[edge, others], 0.0)
        assert total[edge, op] == zero[edge, op]
        # Every unselected op of an edge gets the same sum, which is the edge's output
        # gradient summed (nonzero where the edge's node reaches the loss).
        assert np.all(total[edge, others] == total[edge, others[0]])


def tiny_search(second_order: bool = True, weight_decay: float = 0.0) -> Darts:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((8,) + SHAPE).astype(np.float32)
    y = rng.integers(0, 3, 8)
    data = Dataset("tiny", x, y, x, y, x[:0], y[:0], 3, 0.0, 1.0)
    nas = Nas(dataset="digits", stem_channels=2, stacks=2, training=NasTraining(),
              supernet=NasSupernet(weight_decay=weight_decay, momentum=0.9))
    search = Darts(nas, data, 0, second_order=second_order)
    net = search.supernet
    # float64 weights for the checks (the supernet's arrays converted in place).
    supernet = Supernet(SKELETON, SHAPE, 3, seed=3, dtype=np.float64)
    net.weights, net._models = supernet.weights, supernet._models
    search.optimizer.velocity = {n: [np.zeros_like(a) for a in supernet.weights[n]]
                                 for n in supernet.trained}
    search.alphas = np.random.default_rng(8).standard_normal((EDGES, OPS))
    return search


def test_hessian_vector_product_matches_its_finite_difference_definition():
    search = tiny_search()
    search.hvp_radius = 1e-5
    x, y = tiny_batch(4, 6)
    rng = np.random.default_rng(9)
    vector = {n: [rng.standard_normal(a.shape) for a in search.supernet.weights[n]]
              for n in search.supernet.trained}
    hvp = search.hessian_vector(vector, x, y)
    # d/dt of dL/d alphas at w + t v, by a smaller central difference.
    saved = search.supernet.copy_weights()
    sides = []
    for t in (1e-5, -1e-5):
        for name, arrays in vector.items():
            for param, base, v in zip(search.supernet.weights[name], saved[name], arrays):
                param[...] = base + t * v
        sides.append(search.alpha_gradient(x, y))
    search.supernet.load_weights(saved)
    np.testing.assert_allclose(hvp, (sides[0] - sides[1]) / 2e-5, rtol=1e-5, atol=1e-9)
    for name in search.supernet.trained:     # the weights are left as they were
        for a, b in zip(search.supernet.weights[name], saved[name]):
            np.testing.assert_array_equal(a, b)


def test_second_order_gradient_matches_the_unrolled_objective_and_is_first_order_at_xi_0():
    search = tiny_search()
    train_x, train_y = tiny_batch(5, 6)
    valid_x, valid_y = tiny_batch(6, 6)
    assert np.array_equal(search.unrolled_gradient(train_x, train_y, valid_x, valid_y, 0.0),
                          search.alpha_gradient(valid_x, valid_y))
    xi = 0.05
    # DARTS' difference step (0.01 / ||v||) is coarse on this tiny, curved problem; a
    # small one shows the estimate is the unrolled objective's gradient.
    search.hvp_radius = 1e-5
    estimate = search.unrolled_gradient(train_x, train_y, valid_x, valid_y, xi)
    full = search.supernet.model(ALL_OPS, True)
    saved = search.supernet.copy_weights()

    def unrolled_loss(alphas):
        set_mixing(full, softmax(alphas))
        _, _, grads = loss_and_gradients(full, train_x, train_y)
        for name in search.supernet.trained:
            for param, grad in zip(search.supernet.weights[name], grads[name]):
                param -= xi * grad
        loss = loss_and_gradients(full, valid_x, valid_y)[0]
        search.supernet.load_weights(saved)
        return loss

    numeric = np.zeros((EDGES, OPS))
    for e, k in itertools.product(range(EDGES), range(OPS)):
        step = np.zeros((EDGES, OPS))
        step[e, k] = 1e-5
        numeric[e, k] = (unrolled_loss(search.alphas + step)
                         - unrolled_loss(search.alphas - step)) / 2e-5
    np.testing.assert_allclose(estimate, numeric, rtol=1e-6, atol=1e-9)


# -- each strategy finds a best cell planted in its signal ------------------------------

PLANTED = np.array([3, 1, 2, 3, 4, 2])     # no edge's best is none


def planted_search(kind, monkeypatch, **supernet):
    """A search on tiny data whose architecture signal favours PLANTED: every edge's
    coefficient gradient says that more of the planted op lowers the loss."""
    from evozero.nas.supernet import differentiable, search, uniform

    rng = np.random.default_rng(7)
    x = rng.standard_normal((32,) + SHAPE).astype(np.float32)
    y = rng.integers(0, 3, 32)
    data = Dataset("tiny", x, y, x, y, x[:0], y[:0], 3, 0.0, 1.0)
    nas = Nas(dataset="digits", stem_channels=2, stacks=2,
              supernet=NasSupernet(batch_size=8, **supernet))
    planted = np.zeros((EDGES, OPS))
    planted[np.arange(EDGES), PLANTED] = -1.0
    monkeypatch.setattr(differentiable, "edge_gradients", lambda *args: planted.copy())

    def planted_score(self, ops, *args):
        return float((np.asarray(ops) == PLANTED).sum())
    monkeypatch.setattr(search.SupernetSearch, "score", planted_score)
    kinds = {"rsps": uniform.Rsps, "spos": uniform.Spos, "gdas": differentiable.Gdas}
    if kind in ("darts", "darts2"):
        return differentiable.Darts(nas, data, 0, second_order=kind == "darts2")
    if kind == "proxyless":
        return differentiable.Proxyless(nas, data, 0, (1.0, np.zeros((EDGES, OPS))))
    return kinds[kind](nas, data, 0)


@pytest.mark.parametrize("kind, supernet", [
    ("darts", {"epochs": 2}), ("darts2", {"epochs": 2}), ("gdas", {"epochs": 2}),
    ("proxyless", {"epochs": 3, "warmup_epochs": 0, "arch_every": 1,
                   "latency_target_ms": 1.0}),
    ("rsps", {"epochs": 1, "candidates": 15_625}),
    ("spos", {"epochs": 1}),
])
def test_each_strategy_finds_the_best_cell_planted_in_its_signal(kind, supernet, monkeypatch):
    search = planted_search(kind, monkeypatch, **supernet)
    for _ in range(search.settings.epochs):
        search.train_epoch()
    np.testing.assert_array_equal(search.derive(), PLANTED)


def test_proxyless_expected_latency_gradient_matches_central_differences():
    from evozero.nas.supernet.differentiable import Proxyless

    rng = np.random.default_rng(3)
    x = rng.standard_normal((8,) + SHAPE).astype(np.float32)
    data = Dataset("tiny", x, np.zeros(8, np.int64), x, np.zeros(8, np.int64), x[:0],
                   np.zeros(0, np.int64), 3, 0.0, 1.0)
    nas = Nas(dataset="digits", stem_channels=2, stacks=2,
              supernet=NasSupernet(latency_target_ms=2.0, latency_weight=0.3))
    search = Proxyless(nas, data, 0, (0.5, rng.uniform(0, 1, (EDGES, OPS))))
    search.alphas = rng.standard_normal((EDGES, OPS))

    def term(alphas):
        search.alphas = alphas
        return 0.3 * (search.expected_latency() - 2.0) / 2.0

    alphas = search.alphas.copy()
    analytic = search.latency_gradient()
    numeric = np.zeros_like(alphas)
    for e, k in itertools.product(range(EDGES), range(OPS)):
        step = np.zeros_like(alphas)
        step[e, k] = 1e-6
        numeric[e, k] = (term(alphas + step) - term(alphas - step)) / 2e-6
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("unused", ["skip", "decay_and_momentum"])
def test_ops_a_step_did_not_use_are_left_alone_or_decayed_as_asked(unused):
    from evozero.nas.supernet.network import WeightOptimizer

    net = supernet64()
    optimizer = WeightOptimizer(net, 0.9, 5e-4, True, 5.0, unused)
    x, y = tiny_batch(9, 4)
    first, second = (3, 3, 3, 3, 3, 3), (2, 2, 2, 2, 2, 2)
    optimizer.step(loss_and_gradients(net.model(menu_of(first), False), x, y)[2], 0.1)
    before = net.copy_weights()
    optimizer.step(loss_and_gradients(net.model(menu_of(second), False), x, y)[2], 0.1)
    used_before = "s0.c0.e0.nor_conv_3x3"     # trained by the first step, not the second
    changed = not np.array_equal(before[used_before][0], net.weights[used_before][0])
    assert changed == (unused == "decay_and_momentum")
    assert not np.array_equal(before["s0.c0.e0.nor_conv_1x1"][0],
                              net.weights["s0.c0.e0.nor_conv_1x1"][0])


@pytest.mark.parametrize("derive, expected", [("with_none", 0), ("without_none", 3)])
def test_derivation_keeps_or_leaves_out_none_as_asked(derive, expected):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((8,) + SHAPE).astype(np.float32)
    y = rng.integers(0, 3, 8)
    data = Dataset("tiny", x, y, x, y, x[:0], y[:0], 3, 0.0, 1.0)
    nas = Nas(dataset="digits", stem_channels=2, stacks=2,
              supernet=NasSupernet(derive=derive))
    search = Darts(nas, data, 0, second_order=False)
    search.alphas = np.tile([3.0, 1.0, 0.0, 2.0, -1.0], (EDGES, 1))
    np.testing.assert_array_equal(search.derive(), [expected] * EDGES)
