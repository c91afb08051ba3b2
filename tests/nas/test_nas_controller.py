"""ENAS's controller (evozero.nas.supernet.controller): the hand-written backward pass against
central differences, sampling against teacher forcing, the REINFORCE estimate's mean against
the exact gradient of a bandit's expected reward (all 15,625 cells enumerated), the
reference's step on a bandit, its baseline, the clipped Adam step and checkpoints."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from evozero.errors import EvozeroError
from evozero.nas.supernet.controller import (
    EDGES,
    OPS,
    Controller,
    EnasBaseline,
    enas_gradients,
)
from evozero.nas.table.store import NB201_CELLS, cell_ops
from ops.neural import adam_step

pytestmark = pytest.mark.nas
STEP = 1e-6   # central differences


@pytest.fixture(autouse=True)
def one_blas_thread():
    """One BLAS thread, as the islands run: on a busy machine a second one makes the
    batched passes ten times slower."""
    with threadpool_limits(1, user_api="blas"):
        yield


def spread(controller: Controller, rng: np.random.Generator, bound: float = 0.5) -> Controller:
    """``controller`` with its parameters redrawn from uniform(-bound, bound): wider than
    the initialisation, so every gate and the output's tanh are off their linear part."""
    for array in controller.parameters().values():
        array[...] = rng.uniform(-bound, bound, array.shape)
    return controller


def flat(arrays: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([arrays[name].ravel() for name in sorted(arrays)])


def rewards(values: np.ndarray, ops: np.ndarray) -> np.ndarray:
    """The bandit's reward of cells ``ops`` (n, 6): the sum of their edges' values."""
    return values[np.arange(EDGES), ops].sum(axis=1)


def test_gradients_match_central_differences():
    rng = np.random.default_rng(0)
    controller = spread(Controller(5, rng), rng)
    ops = rng.integers(0, OPS, EDGES)
    _, _, d_log_prob, d_entropy = controller.log_prob_and_entropy_gradients(ops)
    for name, array in controller.parameters().items():
        numeric = np.empty((2, *array.shape))
        for index in np.ndindex(array.shape):
            kept = array[index]
            array[index] = kept + STEP
            up = controller.log_probs_and_entropies(ops[None])
            array[index] = kept - STEP
            down = controller.log_probs_and_entropies(ops[None])
            array[index] = kept
            numeric[(slice(None), *index)] = [(u[0] - d[0]) / (2 * STEP) for u, d in zip(up, down)]
        np.testing.assert_allclose(d_log_prob[name], numeric[0], rtol=1e-6, atol=1e-8,
                                   err_msg=f"d log pi / d {name}")
        np.testing.assert_allclose(d_entropy[name], numeric[1], rtol=1e-6, atol=1e-8,
                                   err_msg=f"d H / d {name}")


def test_gradients_match_a_directional_difference_at_the_reference_size():
    rng = np.random.default_rng(1)
    controller = spread(Controller(32, rng), rng)
    ops = rng.integers(0, OPS, EDGES)
    _, _, d_log_prob, d_entropy = controller.log_prob_and_entropy_gradients(ops)
    params = controller.parameters()
    direction = {name: rng.standard_normal(a.shape) for name, a in params.items()}
    kept = {name: a.copy() for name, a in params.items()}
    values = []
    for sign in (1.0, -1.0):
        for name, array in params.items():
            array[...] = kept[name] + sign * STEP * direction[name]
        values.append(controller.log_probs_and_entropies(ops[None]))
    for (name, gradient), index in ((("log pi", d_log_prob), 0), (("H", d_entropy), 1)):
        numeric = (values[0][index][0] - values[1][index][0]) / (2 * STEP)
        assert flat(gradient) @ flat(direction) == pytest.approx(numeric, rel=1e-6), name


def test_sampling_agrees_with_teacher_forcing():
    rng = np.random.default_rng(2)
    controller = spread(Controller(32, rng), rng)
    for _ in range(30):
        ops, log_prob, entropy = controller.sample(rng)
        assert ops.shape == (EDGES,) and ops.dtype == np.int64
        forced_log_prob, forced_entropy, _, _ = controller.log_prob_and_entropy_gradients(ops)
        assert (log_prob, entropy) == (forced_log_prob, forced_entropy)
        probs = controller.edge_probabilities(ops)
        assert np.log(probs[np.arange(EDGES), ops]).sum() == pytest.approx(log_prob, abs=1e-12)
        assert -(probs * np.log(probs)).sum() == pytest.approx(entropy, abs=1e-12)
    ops, log_probs, entropies = controller.sample_batch(rng, 50)
    forced = controller.log_probs_and_entropies(ops)
    np.testing.assert_allclose(forced[0], log_probs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(forced[1], entropies, rtol=0, atol=1e-12)
    greedy = controller.argmax_path()
    assert np.array_equal(controller.edge_probabilities(greedy).argmax(axis=1), greedy)


def test_batched_gradients_are_weighted_sums_of_single_ones():
    rng = np.random.default_rng(3)
    controller = spread(Controller(8, rng), rng)
    ops = rng.integers(0, OPS, (3, EDGES))
    log_prob_weights, entropy_weights = rng.standard_normal(3), rng.standard_normal(3)
    expected = {name: 0.0 for name in controller.parameters()}
    for cell, a, b in zip(ops, log_prob_weights, entropy_weights):
        _, _, d_log_prob, d_entropy = controller.log_prob_and_entropy_gradients(cell)
        expected = {n: expected[n] + a * d_log_prob[n] + b * d_entropy[n] for n in expected}
    batched = controller.gradients(ops, log_prob_weights, entropy_weights)
    np.testing.assert_allclose(flat(batched), flat(expected), rtol=1e-12, atol=1e-14)


def test_reinforce_estimate_is_unbiased_on_a_bandit():
    """The mean of r(cell) d log pi(cell) over 20,000 sampled cells against the exact
    gradient of E[r] = sum over all cells of pi(cell) r(cell), compared along the exact
    gradient and five random directions: a t statistic over 40 batches each."""
    rng = np.random.default_rng(4)
    values = rng.uniform(0.0, 1.0, (EDGES, OPS)) / EDGES
    controller = spread(Controller(32, rng), rng)
    exact = {name: 0.0 for name in controller.parameters()}
    total = 0.0
    for cells in np.array_split(cell_ops(np.arange(NB201_CELLS)), 5):
        probability = np.exp(controller.log_probs_and_entropies(cells)[0])
        total += probability.sum()
        part = controller.gradients(cells, probability * rewards(values, cells),
                                    np.zeros(len(cells)))
        exact = {name: exact[name] + part[name] for name in exact}
    assert total == pytest.approx(1.0, abs=1e-12)
    exact_flat = flat(exact)
    directions = np.vstack([exact_flat / np.linalg.norm(exact_flat),
                            rng.standard_normal((5, exact_flat.size))])
    batches, size = 40, 500
    estimates = np.empty((batches, len(directions)))
    for batch in range(batches):
        ops, _, _ = controller.sample_batch(rng, size)
        estimate = controller.gradients(ops, rewards(values, ops) / size, np.zeros(size))
        estimates[batch] = directions @ flat(estimate)
    t = (estimates.mean(axis=0) - directions @ exact_flat) / (
        estimates.std(axis=0, ddof=1) / np.sqrt(batches))
    assert np.all(np.abs(t) < 4.0), t


def test_reference_step_finds_the_best_cell_of_a_bandit():
    """300 of the reference's steps (epochs of 50 steps x 20 samples, its baseline, reward
    and Adam settings). The bandit's best cell takes one op on every edge: where the best op
    differs between edges, the controller settles on the op best on average, even on the
    exact gradient, since the edges share its output layer and its logits saturate at
    +-2.5."""
    rng = np.random.default_rng(5)
    values = rng.uniform(0.0, 0.5, (EDGES, OPS)) / EDGES
    values[:, 3] = 1.0 / EDGES
    controller, baseline = Controller(32, rng), EnasBaseline()
    assert not np.all(controller.argmax_path() == 3)
    for _ in range(6):
        for _ in range(50):
            ops, _, _ = controller.sample_batch(rng, 20)
            controller.adam_update(enas_gradients(controller, baseline, ops, rewards(values, ops)))
        baseline.end_epoch()
    assert np.all(controller.argmax_path() == 3)


@pytest.mark.parametrize("first_epoch", [True, False])
def test_enas_gradients_differentiate_the_reference_loss(first_epoch):
    """The mean over samples of -log pi (r - b), r = accuracy + w H and b the baseline's,
    each a function of the parameters, by central differences along a random direction."""
    rng = np.random.default_rng(6)
    controller = spread(Controller(8, rng), rng)
    ops, accuracies, weight = rng.integers(0, OPS, (4, EDGES)), rng.uniform(size=4), 0.3
    previous = None if first_epoch else 0.4

    def loss() -> float:
        log_probs, entropies = controller.log_probs_and_entropies(ops)
        reward = accuracies + weight * entropies
        b = accuracies if previous is None else previous - 0.01 * (previous - reward)
        return float(np.mean(-log_probs * (reward - b)))

    baseline = EnasBaseline()
    baseline.previous = previous
    gradient = enas_gradients(controller, baseline, ops, accuracies, entropy_weight=weight)
    params = controller.parameters()
    direction = {name: rng.standard_normal(a.shape) for name, a in params.items()}
    kept = {name: a.copy() for name, a in params.items()}
    losses = []
    for sign in (1.0, -1.0):
        for name, array in params.items():
            array[...] = kept[name] + sign * STEP * direction[name]
        losses.append(loss())
    numeric = (losses[0] - losses[1]) / (2 * STEP)
    assert flat(gradient) @ flat(direction) == pytest.approx(numeric, rel=1e-6)


def test_baseline_is_the_references():
    baseline = EnasBaseline()
    accuracies, rewards_ = np.array([0.5, 0.7]), np.array([0.6, 0.8])
    assert np.array_equal(baseline.baselines(accuracies, rewards_), accuracies)
    baseline.end_epoch()
    assert baseline.previous == 0.7
    # The previous epoch's B is held for every sample of the epoch.
    assert np.allclose(baseline.baselines(np.zeros(2), rewards_), 0.99 * 0.7 + 0.01 * rewards_)
    assert baseline.previous == 0.7 and baseline.last == pytest.approx(0.99 * 0.7 + 0.01 * 0.8)
    baseline.end_epoch()
    restored = EnasBaseline()
    restored.restore(pickle.loads(pickle.dumps(baseline.state())), "baseline")
    assert restored.state() == baseline.state()
    for state in ({"previous": 0.5}, {"previous": float("nan"), "last": None},
                  {"previous": 1, "last": None}, [0.5, 0.5]):
        with pytest.raises(EvozeroError, match="^run/baseline: "):
            restored.restore(state, "run/baseline")


def test_adam_update_clips_the_global_norm_as_torch():
    rng = np.random.default_rng(7)
    for norm, scale in ((10.0, 5.0 / (10.0 + 1e-6)), (2.0, 1.0)):
        controller = Controller(8, rng)
        grads = {name: rng.standard_normal(a.shape) for name, a in controller.parameters().items()}
        grads = {name: g * norm / np.linalg.norm(flat(grads)) for name, g in grads.items()}
        expected = {name: a.copy() for name, a in controller.parameters().items()}
        for name, param in expected.items():
            adam_step(param, grads[name] * scale, np.zeros_like(param), np.zeros_like(param), 1,
                      1e-3, (0.0, 0.999), 1e-3)
        assert controller.adam_update(grads, 1e-3, (0.0, 0.999), 1e-3, 5.0) == pytest.approx(norm)
        assert controller.steps == 1
        for name, param in controller.parameters().items():
            assert np.array_equal(param, expected[name]), name


def trained(seed: int) -> Controller:
    """A controller of 8 units after three Adam steps."""
    rng = np.random.default_rng(seed)
    controller = Controller(8, rng)
    for _ in range(3):
        ops, _, _ = controller.sample_batch(rng, 4)
        controller.adam_update(controller.gradients(ops, rng.standard_normal(4), np.ones(4)))
    return controller


def same_state(a: dict, b: dict) -> bool:
    return a["steps"] == b["steps"] and all(
        a[group].keys() == b[group].keys()
        and all(np.array_equal(a[group][name], b[group][name]) for name in a[group])
        for group in ("parameters", "first", "second"))


def test_state_round_trip_gives_the_same_controller():
    original, copy = trained(8), trained(9)
    view = copy.parameters()["w_pred.bias"]
    state = pickle.loads(pickle.dumps(original.state()))
    copy.restore(state, "run/controller")
    state["parameters"]["w_pred.bias"][...] = 0.0   # the controller holds its own arrays
    assert np.array_equal(view, original.parameters()["w_pred.bias"])
    assert same_state(original.state(), copy.state())
    draws = []
    for controller in (original, copy):
        rng = np.random.default_rng(10)
        ops, _, _ = controller.sample_batch(rng, 4)
        controller.adam_update(controller.gradients(ops, np.ones(4), np.zeros(4)))
        draws.append(controller.sample(rng))
    assert np.array_equal(draws[0][0], draws[1][0]) and draws[0][1:] == draws[1][1:]
    assert same_state(original.state(), copy.state())


def _drop_key(state):
    del state["steps"]


def _extra_array(state):
    state["first"]["extra"] = np.zeros(3)


def _set(group, name, value):
    def change(state):
        state[group][name] = value
    return change


def _set_entry(group, name, value):
    def change(state):
        state[group][name].flat[0] = value
    return change


@pytest.mark.parametrize("change", [
    _drop_key, _extra_array,
    _set("parameters", "w_pred.bias", np.zeros(4)),
    _set("parameters", "w_pred.bias", np.zeros(OPS, dtype=np.float32)),
    _set("parameters", "w_pred.bias", [0.0] * OPS),
    _set_entry("parameters", "w_lstm.weight_hh_l1", np.nan),
    _set_entry("first", "w_embd.weight", np.inf),
    _set_entry("second", "input_vars", -1.0),
    lambda state: state.update(steps=-1),
    lambda state: state.update(steps=2.0),
    lambda state: state.update(steps=True),
    lambda state: state.update(second=[]),
], ids=["no-steps", "extra-array", "shape", "dtype", "list", "nan", "inf", "negative-second",
        "negative-steps", "float-steps", "bool-steps", "group-not-dict"])
def test_malformed_states_are_refused(change):
    controller = trained(11)
    before = controller.state()
    state = controller.state()
    change(state)
    with pytest.raises(EvozeroError, match="^run/controller: "):
        controller.restore(state, "run/controller")
    assert same_state(controller.state(), before)   # checked before anything changed
    with pytest.raises(EvozeroError, match="^run/controller: "):
        controller.restore(None, "run/controller")
