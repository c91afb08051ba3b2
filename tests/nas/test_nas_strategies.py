"""The cell-search strategies beside evolution (REINFORCE, ASHA, BOHB, local search,
predictor-guided search) on a
synthetic table whose best cell is known: each finds it, or does better than random
search over paired seeds; REINFORCE's gradient, ASHA's rungs and promotions, Hyperband's
brackets and BOHB's kernel draws; one real training run."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import nas_config
from synthetic_table import BEST_INDEX, EPOCHS, final_accuracy, synthetic_table, table_config

from evozero.domains import domain_for
from evozero.nas.search.asha import Asha, rung_epochs
from evozero.nas.search.bohb import Bohb, bracket_sizes, tpe_draw
from evozero.nas.search.reinforce import EDGES, OPS, Reinforce, log_prob_gradient, policy
from evozero.nas.table.store import NB201_CELLS, cell_of_index, cell_ops

pytestmark = pytest.mark.nas
SEEDS = range(9)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "t.npz"
    synthetic_table(table_config()).save(path)
    return path


def search(path, strategy, seed, individuals=300, **nas):
    """The island of one finished table search of ``individuals`` networks."""
    config = table_config(path, strategy=strategy, seed=seed, nas=nas,
                          budget={"individuals": individuals, "train_steps": None})
    spec = domain_for(config).island_spec(0, 0, individuals, -1)
    island = spec.island_class(spec, None)
    while island.advance(600.0)["status"] == "running":
        pass
    return island


def paired(path, strategy, seeds=SEEDS, **changes):
    """How many of ``seeds`` found the best cell, and the median test accuracy of the
    found cell: ``strategy``'s and random search's on the same seeds and budget."""
    ours = [search(path, strategy, seed, **changes).meta["best"] for seed in seeds]
    random = [search(path, "random", seed, **changes).meta["best"]["test_accuracy"]
              for seed in seeds]
    found = sum(best["genome"] == str(cell_of_index(BEST_INDEX)) for best in ours)
    return found, float(np.median([b["test_accuracy"] for b in ours])), float(np.median(random))


@pytest.mark.parametrize("strategy, settings", [
    ("local", {}),
    # NAS-Bench-201's 0.5 collapses the policy within a few steps on this landscape.
    ("reinforce", {"reinforce": {"learning_rate": 0.05}}),
])
def test_strategy_finds_the_best_cell_and_beats_random_search(table, strategy, settings):
    found, ours, random = paired(table, strategy, **settings)
    assert found >= len(SEEDS) - 1 and ours > random


def test_asha_beats_random_search_at_equal_simulated_time(table):
    _, ours, random = paired(table, "asha", individuals=100_000, lookup={"seconds": 3000.0})
    assert ours > random


def test_asha_ends_with_the_best_of_its_bottom_rung_at_the_top(table):
    # A fidelity that keeps the ranking: what reaches the top rung is the best sampled.
    island = search(table, "asha", 0, individuals=400)
    bottom = island.strategy.cells[0]
    accuracy = final_accuracy()
    assert island.meta["best"]["genome"] == str(cell_of_index(max(bottom,
                                                                   key=accuracy.__getitem__)))
    assert island.meta["best"]["epochs"] == EPOCHS


def test_local_search_moves_to_better_neighbours_and_never_repeats(table):
    island = search(table, "local", 3, individuals=500)
    seen = island.strategy.seen
    assert len(seen) == 500 and island.counters["structure_hits"] == 0
    assert island.meta["best"]["genome"] == str(cell_of_index(BEST_INDEX))


def test_reinforce_gradient_is_the_gradient_of_the_expected_reward():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((EDGES, OPS))
    reward = rng.random(NB201_CELLS)
    ops = cell_ops(np.arange(NB201_CELLS))

    def expected(theta):
        probs = policy(theta)[np.arange(EDGES), ops].prod(axis=1)
        return float(probs @ reward)

    probs = policy(logits)[np.arange(EDGES), ops].prod(axis=1)
    # E[r grad log pi] by enumeration; log_prob_gradient checked on a few cells.
    onehots = np.zeros((NB201_CELLS, EDGES, OPS))
    onehots[np.arange(NB201_CELLS)[:, None], np.arange(EDGES), ops] = 1.0
    gradients = onehots - policy(logits)
    for index in (0, 777, NB201_CELLS - 1):
        np.testing.assert_array_equal(log_prob_gradient(logits, ops[index]), gradients[index])
    score = np.einsum("n,nij->ij", probs * reward, gradients)
    step = 1e-6
    numeric = np.zeros_like(logits)
    for edge, op in itertools.product(range(EDGES), range(OPS)):
        bump = np.zeros_like(logits)
        bump[edge, op] = step
        numeric[edge, op] = (expected(logits + bump) - expected(logits - bump)) / (2 * step)
    np.testing.assert_allclose(score, numeric, atol=1e-8)


def test_reinforce_baseline_is_the_bias_corrected_average_including_the_reward():
    nas = table_config().nas
    strategy = Reinforce(nas, EPOCHS, EPOCHS, np.random.default_rng(0))
    assert np.abs(strategy.logits).max() < 1e-2      # 1e-3 x N(0, 1)
    before = strategy.logits.copy()
    strategy.tell(0, EPOCHS, 0.5)                    # the first baseline is the reward
    np.testing.assert_array_equal(strategy.logits, before)
    strategy.tell(1, EPOCHS, 0.8)
    assert strategy.numerator / strategy.denominator == pytest.approx(
        (0.9 * 0.1 * 50 + 0.1 * 80) / (0.9 * 0.1 + 0.1))
    # The reward beat the baseline: cell 1's ops became likelier on every edge.
    ops = cell_ops([1])[0]
    assert np.all(policy(strategy.logits)[np.arange(EDGES), ops]
                  > policy(before)[np.arange(EDGES), ops])


def test_rungs_follow_the_arithmetic_of_successive_halving():
    assert rung_epochs(1, 27, 3) == [1, 3, 9, 27]
    assert rung_epochs(12, 200, 3) == [22, 67, 200]
    assert rung_epochs(1, 4, 2) == [1, 2, 4]
    assert rung_epochs(5, 4, 3) == [4]


def _reference_job(asha, eta):
    """ASHA's next promotion as the paper states it (None: start a new cell): from the
    highest rung down, the best of the top len // eta results not promoted yet."""
    for rung in range(len(asha.rungs) - 2, -1, -1):
        results = list(enumerate(zip(asha.cells[rung], asha.fitness[rung])))
        top = sorted(results, key=lambda r: (-r[1][1], r[0]))[:len(results) // eta]
        waiting = [r for r in top if r[0] not in asha.promoted[rung]]
        if waiting:
            return waiting[0][1][0], asha.rungs[rung + 1]
    return None


def test_asha_promotes_the_best_waiting_result_of_a_rungs_top_third():
    nas = table_config(nas={"asha": {"eta": 3, "min_epochs": 1}}).nas
    asha = Asha(nas, EPOCHS, EPOCHS)
    assert asha.rungs == [1, 3, 9]
    rng = np.random.default_rng(0)
    fitness = rng.random(NB201_CELLS)
    for _ in range(400):
        expected = _reference_job(asha, 3)
        cell, epochs = asha.ask(rng)
        if expected is None:
            assert epochs == 1 and cell not in asha.cells[0][:-1]
        else:
            assert (cell, epochs) == expected
        asha.tell(cell, epochs, float(fitness[cell]))
    for rung in range(len(asha.rungs) - 1):
        promoted = [asha.cells[rung][k] for k in asha.promoted[rung]]
        assert len(set(promoted)) == len(promoted)        # once each
        assert asha.cells[rung + 1] == promoted           # promotions are the next rung's jobs
    assert len(asha.cells[2]) > 0


def test_asha_trains_for_real_at_each_rung(tmp_path):
    # Tiny networks on digits, 2 epochs at most: rungs 1 and 2.
    config = nas_config(strategy="asha", nas={"training": {"epochs": 2},
                                              "asha": {"eta": 2}},
                        budget={"individuals": 5, "train_steps": None})
    spec = domain_for(config).island_spec(0, 0, 5, -1)
    island = spec.island_class(spec, None)
    records = []
    while True:
        reply = island.advance(600.0)
        records += reply["evaluations"]
        if reply["status"] != "running":
            break
    assert [r["epochs"] for r in records] == [1, 1, 2, 1, 1]
    assert records[2]["genome"] == max(records[:2], key=lambda r: r["valid_accuracy"])["genome"]
    assert all(r["train_steps"] > 0 for r in records)
    assert records[2]["train_steps"] == 2 * records[0]["train_steps"]


def test_bohb_and_the_predictor_find_the_best_cell_more_often_than_not(table):
    # Each over five paired seeds (their models cost the most test time); BOHB at equal
    # simulated time, the predictor at 100 networks (BANANAS' budget is 150).
    found, ours, random = paired(table, "bohb", range(5), individuals=100_000,
                                 lookup={"seconds": 2000.0})
    assert found >= 3 and ours > random
    found, ours, random = paired(table, "predictor", range(5), individuals=100,
                                 predictor={"epochs": 50})
    assert found >= 3 and ours > random


def test_hyperband_brackets_follow_the_arithmetic():
    assert [bracket_sizes(s, 3, 3) for s in (3, 2, 1, 0)] == [[27, 9, 3, 1], [12, 4, 1],
                                                             [6, 2], [4]]
    nas = table_config().nas
    bohb = Bohb(nas, EPOCHS, EPOCHS)
    assert bohb.rungs == [1, 3, 9]                 # min epochs 9 x 12 / 200 -> 1
    rng = np.random.default_rng(1)
    fitness = final_accuracy()
    jobs = []
    for _ in range(9 + 3 + 1 + 5 + 1 + 3):         # brackets s = 2 and s = 1, then s = 0
        cell, epochs = bohb.ask(rng)
        jobs.append((cell, epochs))
        bohb.tell(cell, epochs, float(fitness[cell]))
    assert [e for _, e in jobs] == [1] * 9 + [3] * 3 + [9] + [3] * 5 + [9] + [9] * 3
    first = jobs[:9]
    kept = sorted(first, key=lambda job: -fitness[job[0]])[:3]
    assert [c for c, _ in jobs[9:12]] == [c for c, _ in kept]


def test_tpe_draws_the_good_sets_mode():
    rng = np.random.default_rng(0)
    mode = np.array([2, 3, 0, 1, 3, 2])     # strays one op up: every edge as spread
    good = np.repeat(mode[None], 12, axis=0)
    good[np.arange(6), np.arange(6)] = (mode + 1) % 5     # one stray op on six of them
    bad = rng.integers(5, size=(40, 6))
    draws = np.array([tpe_draw(good, bad, 64, 1e-3, rng) for _ in range(50)])
    assert (draws == mode).all(axis=1).mean() > 0.5
    assert (draws == mode).mean() > 0.9
