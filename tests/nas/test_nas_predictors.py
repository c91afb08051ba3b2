"""The performance predictor: path and adjacency encodings, the MLP ensemble (gradient,
Adam, ranking quality, determinism) and the acquisition."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import kendalltau

from evozero.errors import EvozeroError
from evozero.nas.search.predictors import (
    NB201_PATH_FEATURES,
    MlpEnsemble,
    _layer_shapes,
    _loss_and_grads,
    _size,
    encode,
    nb101_encoding,
    nb201_path_encoding,
    thompson_pick,
    top_k,
)
from evozero.nas.spaces.cells import Nb101Cell, Nb201Cell
from evozero.nas.table.store import NB201_CELLS, cell_of_index, cell_ops
from ops.neural import adam_step

pytestmark = pytest.mark.nas

NONE, SKIP, CONV1, CONV3, POOL = range(5)
# Edge numbers along the paths 0->3, 0->1->3, 0->2->3, 0->1->2->3.
PATH_EDGES = ((3,), (0, 4), (1, 5), (0, 2, 5))
PATH_OFFSETS = (0, 4, 20, 36)


def columns(ops: list[int]) -> list[int]:
    return np.flatnonzero(nb201_path_encoding(np.array([ops]))).tolist()


# ---- NAS-Bench-201 path encoding ----------------------------------------------------

def test_all_conv_cell_has_its_four_paths():
    # Every edge nor_conv_3x3 (live op 2): 0->3 is column 2; 0->1->3 is 4 + (2*4 + 2);
    # 0->2->3 is 20 + 10; 0->1->2->3 is 36 + (2*16 + 2*4 + 2).
    assert NB201_PATH_FEATURES == 100
    assert columns([CONV3] * 6) == [2, 14, 30, 78]


def test_mixed_cell_by_hand():
    # 1<-0 conv1x1, 2<-0 skip, 2<-1 pool, 3<-0 conv3x3, 3<-1 none, 3<-2 conv1x1.
    # 0->3: conv3x3 -> 2. 0->1->3 dead (3<-1 none). 0->2->3: (skip, conv1x1) = (0, 1) ->
    # 20 + 1. 0->1->2->3: (conv1x1, pool, conv1x1) = (1, 3, 1) -> 36 + 16 + 12 + 1.
    assert columns([CONV1, SKIP, POOL, CONV3, NONE, CONV1]) == [2, 21, 65]


def test_only_the_direct_edge_alive():
    # 1<-0 and 3<-2 none kill every path but 0->3 (avg_pool, live op 3).
    assert columns([NONE, CONV3, CONV1, POOL, SKIP, NONE]) == [3]
    assert columns([NONE] * 6) == []


def test_each_path_block_is_set_exactly_when_the_path_is_live():
    ops = cell_ops(np.arange(NB201_CELLS))
    x = nb201_path_encoding(ops)
    assert x.shape == (NB201_CELLS, 100)
    bounds = [*PATH_OFFSETS, 100]
    for k, edges in enumerate(PATH_EDGES):
        block = x[:, bounds[k]:bounds[k + 1]].sum(axis=1)
        np.testing.assert_array_equal(block, (ops[:, edges] != NONE).all(axis=1))


def test_dead_paths_do_not_change_the_encoding():
    # With 3<-2 none, node 2 feeds nothing: its incoming edges 2<-0 and 2<-1 are invisible.
    base = [CONV3, NONE, NONE, SKIP, CONV1, NONE]
    encodings = set()
    for a, b in itertools.product(range(5), repeat=2):
        ops = list(base)
        ops[1], ops[2] = a, b
        encodings.add(tuple(columns(ops)))
    assert encodings == {tuple(columns(base))}
    # But an edge on a live path does change it.
    assert columns([CONV3, NONE, NONE, SKIP, CONV3, NONE]) != columns(base)


def test_encode_agrees_with_the_op_number_path():
    indices = np.array([0, 1, 777, 9999, NB201_CELLS - 1])
    cells = [cell_of_index(int(i)) for i in indices]
    np.testing.assert_array_equal(encode(cells), nb201_path_encoding(cell_ops(indices)))


# ---- NAS-Bench-101 adjacency encoding ----------------------------------------------

def test_nb101_encoding_pads_and_ignores_dead_vertices():
    small = Nb101Cell.make([[0, 1, 1], [0, 0, 1], [0, 0, 0]],
                           ["input", "conv1x1-bn-relu", "output"])
    # Upper-triangle columns, row by row over 7 vertices: (0,1) is 0, (0,6) is 5, (1,6)
    # is 6 + 4; vertex 1's op conv1x1 (second allowed op) is column 21 + 1.
    expected = np.zeros(36)
    expected[[0, 5, 10, 22]] = 1
    np.testing.assert_array_equal(nb101_encoding(small), expected)
    # The same phenotype with a dead maxpool vertex (no way to the output).
    dead = Nb101Cell.make([[0, 1, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]],
                          ["input", "conv1x1-bn-relu", "maxpool3x3", "output"])
    np.testing.assert_array_equal(nb101_encoding(dead), expected)
    np.testing.assert_array_equal(encode([small, dead]), np.stack([expected, expected]))


# ---- the network: gradient and Adam ------------------------------------------------

def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    shapes = _layer_shapes(members=2, inputs=3, width=4, depth=2)
    flat = rng.normal(size=_size(shapes))
    x = rng.normal(size=(2, 5, 3))
    y = rng.normal(size=(2, 5))
    _, grads = _loss_and_grads(flat, shapes, x, y)
    numeric = np.empty_like(flat)
    h = 1e-6
    for i in range(len(flat)):
        up, down = flat.copy(), flat.copy()
        up[i] += h
        down[i] -= h
        numeric[i] = (_loss_and_grads(up, shapes, x, y)[0]
                      - _loss_and_grads(down, shapes, x, y)[0]) / (2 * h)
    assert np.abs(grads).max() > 0.1
    np.testing.assert_allclose(grads, numeric, rtol=1e-5, atol=1e-8)


def test_adam_first_step_moves_each_parameter_by_lr_against_its_gradient():
    # Bias-corrected moments after one step are g and g^2: the step is lr * g / (|g| + eps).
    grads = np.array([3.0, -0.002, 0.0, 50.0])
    flat = np.zeros(4)
    adam_step(flat, grads, np.zeros(4), np.zeros(4), 1, 0.01, (0.9, 0.99), 1e-8)
    np.testing.assert_allclose(flat, [-0.01, 0.01, 0.0, -0.01], rtol=1e-5)


def test_adam_weight_decay_is_added_to_the_gradient_as_pytorch_does():
    # L2 decay, not decoupled: a zero gradient with decay 0.5 at param 2 acts as gradient 1.
    flat = np.array([2.0])
    adam_step(flat, np.zeros(1), np.zeros(1), np.zeros(1), 1, 0.1, (0.5, 0.999), 1e-8, 0.5)
    np.testing.assert_allclose(flat, [1.9], rtol=1e-7)


# ---- the ensemble ------------------------------------------------------------------

def live_edge_target(ops: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Sum of per-edge op values over the edges on a live input->output path: the part of
    a cell the path encoding sees (a target depending on dead edges would cap any
    path-encoded predictor's rank correlation whatever the model)."""
    used = np.zeros(ops.shape, dtype=bool)
    for edges in PATH_EDGES:
        alive = (ops[:, edges] != NONE).all(axis=1)
        used[:, list(edges)] |= alive[:, None]
    return (values[np.arange(6), ops] * used).sum(axis=1)


def test_ensemble_ranks_held_out_cells():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(6, 5))
    indices = rng.permutation(NB201_CELLS)
    train, held_out = cell_ops(indices[:150]), cell_ops(indices[150:1150])
    y = live_edge_target(train, values) + 0.1 * rng.normal(size=150)
    model = MlpEnsemble()
    model.fit(nb201_path_encoding(train), y, rng)
    mean, std = model.predict(nb201_path_encoding(held_out))
    assert mean.shape == std.shape == (1000,)
    assert (std > 0).any() and (std >= 0).all()
    tau = kendalltau(mean, live_edge_target(held_out, values))[0]
    assert tau > 0.5, tau


def small_problem(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = nb201_path_encoding(cell_ops(rng.integers(0, NB201_CELLS, 40)))
    return x, x @ rng.normal(size=x.shape[1])


def test_fit_is_a_pure_function_of_data_and_generator_state():
    x, y = small_problem()
    first = MlpEnsemble(epochs=20)
    first.fit(x, y, np.random.default_rng(7))
    reused = MlpEnsemble(epochs=20)
    reused.fit(x[:10], y[:10], np.random.default_rng(99))     # an earlier, different fit
    reused.fit(x, y, np.random.default_rng(7))
    np.testing.assert_array_equal(first.predict(x)[0], reused.predict(x)[0])
    np.testing.assert_array_equal(first.predict(x)[1], reused.predict(x)[1])
    # Resuming: a generator rebuilt from a recorded state refits the same ensemble.
    rng = np.random.default_rng(3)
    rng.normal(size=5)
    recorded = rng.bit_generator.state
    a = MlpEnsemble(epochs=20)
    a.fit(x, y, rng)
    restored = np.random.default_rng()
    restored.bit_generator.state = recorded
    b = MlpEnsemble(epochs=20)
    b.fit(x, y, restored)
    np.testing.assert_array_equal(a.predict(x)[0], b.predict(x)[0])
    other = MlpEnsemble(epochs=20)
    other.fit(x, y, np.random.default_rng(8))
    assert not np.array_equal(first.predict(x)[0], other.predict(x)[0])


def test_predictions_are_in_the_targets_units():
    x, y = small_problem()
    base, shifted = MlpEnsemble(epochs=20), MlpEnsemble(epochs=20)
    base.fit(x, y, np.random.default_rng(5))
    shifted.fit(x, y + 100.0, np.random.default_rng(5))
    np.testing.assert_allclose(shifted.predict(x)[0], base.predict(x)[0] + 100.0, atol=1e-6)
    single = MlpEnsemble(members=1, epochs=5)
    single.fit(x, y, np.random.default_rng(5))
    assert (single.predict(x)[1] == 0).all()


# ---- acquisition --------------------------------------------------------------------

def test_top_k_breaks_ties_by_index():
    assert top_k(np.array([1.0, 3.0, 3.0, 2.0]), 3).tolist() == [1, 2, 3]
    assert top_k(np.array([0.5, 0.5]), 5).tolist() == [0, 1]
    assert top_k(np.array([0.5, 0.5]), 0).tolist() == []


def test_thompson_pick_samples_around_the_mean():
    mean = np.array([0.0, 1.0, 1.0, 2.0])
    # No spread: the draws are the means.
    assert thompson_pick(mean, np.zeros(4), 2, np.random.default_rng(0)).tolist() == [3, 1]
    # A wide candidate beats a sure 1.0 with probability P(N(0, 10) > 1), about 0.46.
    rng = np.random.default_rng(1)
    std = np.array([10.0, 0.0])
    wins = sum(thompson_pick(np.array([0.0, 1.0]), std, 1, rng)[0] == 0 for _ in range(400))
    assert 0.38 < wins / 400 < 0.54
    a = thompson_pick(mean, np.ones(4), 2, np.random.default_rng(4))
    b = thompson_pick(mean, np.ones(4), 2, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)


# ---- bad input ----------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda: nb201_path_encoding(np.zeros((3, 5), dtype=int)),
    lambda: nb201_path_encoding(np.full((1, 6), 5)),
    lambda: nb201_path_encoding(np.full((1, 6), 1.0)),
    lambda: encode([]),
    lambda: encode([Nb201Cell(("none",) * 6),
                    Nb101Cell.make([[0, 1], [0, 0]], ["input", "output"])]),
    lambda: encode([Nb101Cell.make([[0, 1], [0, 0]], ["input", "output"]),
                    Nb101Cell.make([[0, 1], [0, 0]], ["input", "output"],
                                   allowed_ops=("conv1x1-bn-relu", "conv3x3-bn-relu",
                                                "maxpool3x3"))]),
    lambda: MlpEnsemble(width=0),
    lambda: MlpEnsemble(epochs=2.5),
    lambda: MlpEnsemble(lr=0.0),
    lambda: MlpEnsemble(betas=(0.9, 1.0)),
    lambda: MlpEnsemble().fit(np.zeros(4), np.zeros(4), np.random.default_rng()),
    lambda: MlpEnsemble().fit(np.zeros((4, 2)), np.zeros(3), np.random.default_rng()),
    lambda: MlpEnsemble().fit(np.full((4, 2), np.nan), np.zeros(4), np.random.default_rng()),
    lambda: MlpEnsemble().fit(np.zeros((4, 2)), [0, 1, np.inf, 0], np.random.default_rng()),
    lambda: MlpEnsemble().predict(np.zeros((4, 2))),
    lambda: top_k(np.array([1.0, np.nan]), 1),
    lambda: top_k(np.array([1.0]), -1),
    lambda: thompson_pick(np.zeros(2), np.array([1.0, -1.0]), 1, np.random.default_rng()),
    lambda: thompson_pick(np.zeros(2), np.zeros(3), 1, np.random.default_rng()),
])
def test_bad_input_is_refused(call):
    with pytest.raises(EvozeroError):
        call()


def test_predict_refuses_another_width():
    x, y = small_problem()
    model = MlpEnsemble(epochs=1)
    model.fit(x, y, np.random.default_rng(0))
    with pytest.raises(EvozeroError, match="fitted on 100"):
        model.predict(np.zeros((2, 36)))
