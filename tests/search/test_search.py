"""The search kernel (evozero.search.evolution.evolve through SearchRunner) on small experiments.

Every experiment here is a few hundred to a few thousand individuals of a 20-30 program
population on three small linear tasks, so each test takes well under a second once
the numba kernels are in the on-disk cache.
"""
from __future__ import annotations

import numpy as np
import pytest

from evozero.config import config_from_dict
from evozero.evaluation.fec_cache import COUNT
from evozero.evaluation.vm import evaluate, group_tasks
from evozero.programs.instruction import Instruction
from evozero.programs.mutation import MUTATION_NAMES
from evozero.programs.reference import linear_program, neural_net_program
from evozero.programs.slots import slots_program
from evozero.search.evolution import (
    BATCH_DONE,
    BUDGET_SPENT,
    HURDLE,
    IMPROVED,
    SELECTION_STREAM,
    program_cost,
)
from evozero.search.runner import SearchRunner
from evozero.search.settings import build_settings
from evozero.search.state import SearchState
from ops.codes import (
    BEST_INDIVIDUAL,
    BUDGET_REJECTS,
    COST_LIMIT,
    EVICTIONS,
    FILLED,
    FINGERPRINT_HITS,
    FULL_EVALS,
    HURDLE_STOPS,
    INDIVIDUALS,
    MUTATION_COUNTS,
    OLDEST,
    SAVED_TRAIN_STEPS,
    STRUCTURE_HITS,
    TRAIN_STEPS,
)
from ops.rng import next_uniform
from ops.table import OPS_BY_NAME

EVAL_SEED = 12345
STATE_SEED = 7
NUM_TASKS, N_TRAIN, N_VALID = 3, 20, 20


class Experiment:
    """A config turned into kernel settings, a runner and a fresh state."""

    def __init__(self, seed: int = STATE_SEED, eval_seed: int = EVAL_SEED, **overrides) -> None:
        data = {"seed": 3, "population_size": 20, "tournament_size": 5,
                "search_tasks": {"num_tasks": NUM_TASKS, "train": N_TRAIN, "valid": N_VALID},
                "budget": {"individuals": 400, "train_steps": None},
                "max_experiments": 1}
        data.update(overrides)
        self.config = config = config_from_dict(data)
        self.tasks = config.search_tasks.make()
        self.memory = (config.memory.scalars, config.memory.vectors, config.memory.matrices)
        self.settings = build_settings(config, self.tasks, eval_seed)
        self.state = SearchState.fresh(self.settings, seed, config.fec.cache_size)
        self.runner = self.new_runner()
        self.population = config.population_size

    def new_runner(self) -> SearchRunner:
        return SearchRunner(self.settings, group_tasks(self.tasks)[0], self.config.fec.train,
                            self.config.fec.valid, self.memory)

    def step(self, max_children: int) -> int:
        return self.runner.step(self.state, max_children)

    def run(self, batch: int = 1000) -> list[tuple[int, float]]:
        """Run to the budget; returns (individuals, best fitness) at every IMPROVED."""
        trace = []
        while True:
            outcome = self.step(batch)
            if outcome == IMPROVED:
                trace.append((self.state.counter(INDIVIDUALS), self.state.best_fitness))
            if outcome == BUDGET_SPENT:
                return trace

    def run_to(self, individuals: int) -> None:
        """Run exactly up to ``individuals`` children (batches may end early on IMPROVED)."""
        while self.state.counter(INDIVIDUALS) < individuals:
            outcome = self.step(individuals - self.state.counter(INDIVIDUALS))
            assert outcome != BUDGET_SPENT

    def step_child(self) -> tuple[int, int, np.ndarray, float]:
        """Run one child: (its slot, the outcome, counter increments, hurdle it faced)."""
        s = self.state
        assert s.counter(INDIVIDUALS) < self.config.budget.individuals
        filling = s.counter(FILLED) < self.population
        slot = s.counter(FILLED) if filling else s.counter(OLDEST)
        counters = s.counters.copy()
        hurdle = float(s.values[HURDLE])
        outcome = self.step(1)
        assert outcome in (BATCH_DONE, IMPROVED)
        assert s.counter(INDIVIDUALS) == counters[INDIVIDUALS] + 1
        return slot, outcome, s.counters - counters, hurdle

    def program(self, k: int):
        s = self.state
        return slots_program(s.code[k], s.constants[k], self.settings.offsets, s.lengths[k])

    def evaluate(self, program, tasks=None) -> float:
        return float(evaluate(program, self.tasks if tasks is None else tasks,
                              combine=self.config.fitness_combine, seed=self.settings.eval_seed,
                              memory=self.memory, max_abs_error=self.config.max_abs_error))


def state_arrays(state: SearchState) -> dict[str, np.ndarray]:
    return {name: np.array(value) for name, value in state.to_arrays().items()}


def assert_same_state(a: SearchState, b: SearchState) -> None:
    arrays_a, arrays_b = state_arrays(a), state_arrays(b)
    assert set(arrays_a) == set(arrays_b)
    for name in arrays_a:
        assert arrays_a[name].dtype == arrays_b[name].dtype, name
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)


def slot_tuple(state: SearchState, k: int) -> tuple:
    return (state.code[k].tobytes(), state.constants[k].tobytes(), state.lengths[k].tobytes())


# --- determinism -------------------------------------------------------------------------

DETERMINISM_CONFIGS = {
    "fec": dict(population_size=30, budget={"individuals": 1500, "train_steps": None},
                fec={"cache_size": 64, "forget_every": 3}),
    "hurdles_budget": dict(population_size=30, budget={"individuals": 1500, "train_steps": None},
                           fec={"enabled": False}, hurdles={"enabled": True, "percentile": 60},
                           compute_budget={"enabled": True, "factor": 0.4625}),
}


@pytest.mark.parametrize("name", sorted(DETERMINISM_CONFIGS))
def test_results_do_not_depend_on_batch_size(name):
    runs = {}
    for batch in (1, 7, 1000):
        experiment = Experiment(**DETERMINISM_CONFIGS[name])
        trace = experiment.run(batch)
        runs[batch] = (experiment, trace)
    reference, reference_trace = runs[1000]
    assert reference.state.counter(INDIVIDUALS) == 1500
    assert len(reference_trace) > 1
    for batch in (1, 7):
        experiment, trace = runs[batch]
        assert trace == reference_trace
        assert_same_state(experiment.state, reference.state)


def test_same_seeds_give_identical_runs_and_other_seeds_do_not():
    first, second = Experiment(), Experiment()
    assert first.run() == second.run()
    assert_same_state(first.state, second.state)
    other = Experiment(seed=STATE_SEED + 1)
    other.run()
    assert not np.array_equal(other.state.code, first.state.code)


def test_state_round_trip_continues_identically(tmp_path):
    config = dict(population_size=30, budget={"individuals": 1500, "train_steps": None},
                  hurdles={"enabled": True, "window": 40}, fec={"cache_size": 100})
    original = Experiment(**config)
    original.run_to(700)
    path = tmp_path / "state.npz"
    np.savez(path, **original.state.to_arrays())
    with np.load(path) as data:
        saved = {name: data[name] for name in data.files}
    restored = Experiment(**config)
    restored.state = SearchState.from_arrays(saved)
    assert_same_state(restored.state, original.state)
    assert original.run(64) == restored.run(64)
    assert original.state.counter(INDIVIDUALS) == 1500
    assert_same_state(restored.state, original.state)


# --- budgets -----------------------------------------------------------------------------

def test_individual_budget_is_exact_and_final():
    experiment = Experiment()
    experiment.run()
    before = state_arrays(experiment.state)
    assert experiment.state.counter(INDIVIDUALS) == 400
    assert experiment.step(1000) == BUDGET_SPENT
    for name, value in state_arrays(experiment.state).items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_train_step_budget_stops_at_the_first_child_past_it():
    experiment = Experiment(budget={"individuals": None, "train_steps": 5000})
    state = experiment.state
    while True:
        steps = state.counter(TRAIN_STEPS)
        outcome = experiment.step(1)
        if outcome == BUDGET_SPENT:
            break
        # A child only ran if the budget was not reached before it.
        assert steps < 5000
    assert state.counter(TRAIN_STEPS) >= 5000
    assert experiment.step(10) == BUDGET_SPENT


# --- the functional-equivalence cache ----------------------------------------------------

def test_without_fec_every_fitness_is_a_full_evaluation():
    experiment = Experiment(population_size=30, fec={"enabled": False},
                            budget={"individuals": 600, "train_steps": None})
    state = experiment.state
    for _ in range(600):
        slot, outcome, delta, _ = experiment.step_child()
        assert delta[FULL_EVALS] == 1
        assert delta[TRAIN_STEPS] % NUM_TASKS == 0
        assert 0 < delta[TRAIN_STEPS] <= N_TRAIN * NUM_TASKS
        assert experiment.evaluate(experiment.program(slot)) == state.fitness[slot]
        if outcome == IMPROVED:
            assert experiment.evaluate(state.best_program(experiment.settings.offsets)) \
                == state.best_fitness
    assert experiment.step(1) == BUDGET_SPENT
    n = state.counter(INDIVIDUALS)
    assert state.counter(STRUCTURE_HITS) == state.counter(FINGERPRINT_HITS) == 0
    assert state.counter(SAVED_TRAIN_STEPS) == 0
    assert state.counter(FULL_EVALS) == n - state.counter(BUDGET_REJECTS) == n
    assert state.cache["meta"][COUNT] == 0
    best = state.best_program(experiment.settings.offsets)
    assert experiment.evaluate(best) == state.best_fitness
    for k in range(experiment.population):
        assert experiment.evaluate(experiment.program(k)) == state.fitness[k]


# The fingerprint covers every training and validation example (and the demo ops draw
# no random numbers), so an equal fingerprint means equal predictions up to the 1e-6
# rounding: a cached fitness must match a fresh evaluation that closely.
FULL_FINGERPRINT = {"train": N_TRAIN, "valid": N_VALID, "cache_size": 1000}


def test_fec_hits_return_what_an_evaluation_gives():
    experiment = Experiment(population_size=30, budget={"individuals": 800, "train_steps": None},
                            fec=FULL_FINGERPRINT)
    state = experiment.state
    for _ in range(800):
        slot, outcome, delta, _ = experiment.step_child()
        kinds = delta[STRUCTURE_HITS], delta[FINGERPRINT_HITS], delta[FULL_EVALS]
        assert sorted(kinds) == [0, 0, 1]
        assert delta[SAVED_TRAIN_STEPS] == (N_TRAIN * NUM_TASKS if delta[FULL_EVALS] == 0 else 0)
        if delta[STRUCTURE_HITS]:
            assert delta[TRAIN_STEPS] == 0        # not even the fingerprint run
        fitness = experiment.evaluate(experiment.program(slot))
        assert state.fitness[slot] == pytest.approx(fitness, abs=1e-6)
        if outcome == IMPROVED:
            best = state.best_program(experiment.settings.offsets)
            assert experiment.evaluate(best) == pytest.approx(state.best_fitness, abs=1e-6)
    n = state.counter(INDIVIDUALS)
    structure, fingerprint = state.counter(STRUCTURE_HITS), state.counter(FINGERPRINT_HITS)
    assert structure > 0 and fingerprint > 0
    assert state.counter(FULL_EVALS) + structure + fingerprint == n
    assert state.counter(SAVED_TRAIN_STEPS) == (structure + fingerprint) * N_TRAIN * NUM_TASKS
    assert 0 < state.cache["meta"][COUNT] <= 1000


def test_fec_with_hurdles_returns_a_partial_fitness_only_below_the_hurdle():
    # Tournaments of one and a short hurdle window make the hurdle go up and down, so
    # the cache often holds a partial fitness that is no longer below the hurdle.
    children = 1000
    experiment = Experiment(population_size=20, tournament_size=1, fec=FULL_FINGERPRINT,
                            budget={"individuals": children, "train_steps": None},
                            hurdles={"enabled": True, "percentile": 50, "window": 10})
    state = experiment.state
    partial_hits = 0
    for _ in range(children):
        slot, outcome, delta, hurdle = experiment.step_child()
        program = experiment.program(slot)
        value = state.fitness[slot]
        if value == pytest.approx(experiment.evaluate(program), abs=1e-6):
            continue
        # Otherwise it is a first-task fitness, below the hurdle this child faced.
        assert value == pytest.approx(experiment.evaluate(program, experiment.tasks[:1]),
                                      abs=1e-6)
        assert value < hurdle
        partial_hits += delta[FULL_EVALS] == 0
    assert state.counter(HURDLE_STOPS) > 0
    assert partial_hits > 0


def test_small_fec_cache_evicts_and_stays_full():
    experiment = Experiment(fec={"cache_size": 8, "forget_every": 0})
    experiment.run()
    state = experiment.state
    assert state.counter(EVICTIONS) > 0
    assert state.cache["meta"][COUNT] == 8
    assert state.counter(STRUCTURE_HITS) + state.counter(FINGERPRINT_HITS) > 0


# --- mutations ---------------------------------------------------------------------------

MUTATION_OPS = {"setup": ["SCALAR_CONST_SET", "SCALAR_SUM"],
                "predict": ["VECTOR_INNER_PRODUCT", "SCALAR_VECTOR_PRODUCT"],
                "learn": ["SCALAR_DIFF", "SCALAR_PRODUCT", "VECTOR_SUM"]}
MUTATION_SIZES = {"setup": {"init": 3, "min": 1, "max": 6},
                  "predict": {"init": 2, "min": 1, "max": 4},
                  "learn": {"init": 3, "min": 1, "max": 6}}
LENGTH_KEEPING = ("alter_param", "randomize_instruction", "randomize_component", "identity",
                  "trade_instruction", "randomize_algorithm")


def check_programs_valid(experiment: Experiment) -> None:
    """Lengths within bounds, ops from each component's list, zero rows past each length."""
    s, state = experiment.settings, experiment.state
    ends = list(s.offsets[1:]) + [s.rows]
    for k in range(experiment.population):
        for c in range(3):
            length = state.lengths[k, c]
            assert s.min_sizes[c] <= length <= s.max_sizes[c]
            start = s.offsets[c]
            ops = state.code[k, start:start + length, 0]
            assert set(ops.tolist()) <= set(s.allowed[c, :s.allowed_counts[c]].tolist())
            assert not state.code[k, start + length:ends[c]].any()
            assert not state.constants[k, start + length:ends[c]].any()
        assert np.isfinite(state.constants[k]).all()


@pytest.mark.parametrize("name", sorted(MUTATION_NAMES))
def test_single_mutation_type(name):
    population, budget = 20, 320
    experiment = Experiment(mutations={name: 1}, mutate_prob=1.0, ops=MUTATION_OPS,
                            sizes=MUTATION_SIZES, fec={"forget_every": 0},
                            budget={"individuals": budget, "train_steps": None})
    state = experiment.state
    experiment.run_to(population)
    check_programs_valid(experiment)
    assert not state.counters[MUTATION_COUNTS:].any()      # filling does not mutate
    initial = {slot_tuple(state, k) for k in range(population)}
    init_lengths = state.lengths.copy()
    assert (init_lengths == experiment.settings.init_sizes).all()
    while experiment.step(7) != BUDGET_SPENT:
        check_programs_valid(experiment)
    kind = MUTATION_NAMES[name]
    counts = state.counters[MUTATION_COUNTS:]
    assert counts[kind] == budget - population
    assert counts.sum() == counts[kind]
    check_programs_valid(experiment)
    final = {slot_tuple(state, k) for k in range(population)}
    lengths = state.lengths
    if name in LENGTH_KEEPING:
        assert (lengths == init_lengths).all()
    if name == "identity":
        # Children are copies, so every lookup after the filling hits the structure cache.
        assert final <= initial
        assert state.counter(STRUCTURE_HITS) == budget - population
    else:
        assert not final <= initial
    if name == "insert_instruction":
        assert (lengths >= init_lengths).all() and (lengths > init_lengths).any()
    if name == "remove_instruction":
        assert (lengths <= init_lengths).all() and (lengths < init_lengths).any()


def test_mutate_prob_zero_never_mutates():
    experiment = Experiment(mutate_prob=0.0)
    experiment.run_to(experiment.population)
    initial = {slot_tuple(experiment.state, k) for k in range(experiment.population)}
    experiment.run()
    assert not experiment.state.counters[MUTATION_COUNTS:].any()
    assert {slot_tuple(experiment.state, k) for k in range(experiment.population)} <= initial


def test_random_strategy_does_not_mutate():
    experiment = Experiment(strategy="random", ops=MUTATION_OPS, sizes=MUTATION_SIZES)
    experiment.run()
    state = experiment.state
    assert state.counter(INDIVIDUALS) == 400
    assert not state.counters[MUTATION_COUNTS:].any()
    assert (state.lengths == experiment.settings.init_sizes).all()
    check_programs_valid(experiment)


# --- selection and aging -----------------------------------------------------------------

def test_tournament_parent_and_aging_replacement():
    # No mutation: each child is a copy of the tournament winner, so the draws can be
    # replayed from the selection stream to predict exactly which parent is copied.
    population, tournament = 20, 5
    experiment = Experiment(population_size=population, tournament_size=tournament,
                            mutate_prob=0.0, fec={"enabled": False},
                            budget={"individuals": 4 * population, "train_steps": None})
    state = experiment.state
    for k in range(population):       # the filling writes slots in order
        assert state.counter(FILLED) == k
        experiment.step(1)
        assert state.counter(FILLED) == k + 1 and state.counter(OLDEST) == 0
    for child in range(3 * population):
        oldest = state.counter(OLDEST)
        assert oldest == child % population
        before = state_arrays(state)
        streams = state.streams.copy()
        draws = [min(int(next_uniform(streams, SELECTION_STREAM) * population), population - 1)
                 for _ in range(tournament)]
        fitness = before["fitness"]
        parent = draws[0]
        for k in draws[1:]:
            if fitness[k] > fitness[parent]:
                parent = k
        assert experiment.step(1) in (BATCH_DONE, IMPROVED)
        assert state.streams[SELECTION_STREAM] == streams[SELECTION_STREAM]
        assert state.counter(OLDEST) == (oldest + 1) % population
        others = np.arange(population) != oldest
        for name in ("code", "constants", "lengths", "fitness"):
            np.testing.assert_array_equal(getattr(state, name)[others], before[name][others])
            np.testing.assert_array_equal(getattr(state, name)[oldest], before[name][parent])
    assert state.counter(OLDEST) == 0


def test_every_slot_is_replaced_once_per_population_of_children():
    population = 20
    experiment = Experiment(population_size=population)
    state = experiment.state
    experiment.run_to(3 * population)
    assert state.counter(OLDEST) == 0
    replaced = []
    for _ in range(population):
        before = state_arrays(state)
        replaced.append(state.counter(OLDEST))
        experiment.step(1)
        changed = [k for k in range(population)
                   if slot_tuple(state, k) != (before["code"][k].tobytes(),
                                               before["constants"][k].tobytes(),
                                               before["lengths"][k].tobytes())
                   or state.fitness[k] != before["fitness"][k]]
        assert set(changed) <= {replaced[-1]}
    assert replaced == list(range(population))
    assert state.counter(OLDEST) == 0


# --- improvements ------------------------------------------------------------------------

@pytest.mark.parametrize("batch", [1, 64])
def test_improved_means_a_new_best_over_every_child(batch):
    # With a hurdle window of the whole budget (hurdles off) `recent` keeps every child.
    budget = 1500
    experiment = Experiment(population_size=30, hurdles={"enabled": False, "window": budget},
                            budget={"individuals": budget, "train_steps": None})
    state = experiment.state
    improvements = 0
    best = -1.0
    while True:
        outcome = experiment.step(batch)
        n = state.counter(INDIVIDUALS)
        seen = state.recent[:n]
        if outcome == IMPROVED:
            improvements += 1
            assert state.best_fitness > best
            assert seen[-1] == state.best_fitness              # the batch stopped at it
            assert state.counter(BEST_INDIVIDUAL) == n
            last = (n - 1) % experiment.population
            assert np.array_equal(state.best_code, state.code[last])
            assert np.array_equal(state.best_lengths, state.lengths[last])
        else:
            assert state.best_fitness == best
        best = state.best_fitness
        assert best == seen.max()
        assert state.counter(BEST_INDIVIDUAL) == int(np.argmax(seen)) + 1   # first maximum
        if outcome == BUDGET_SPENT:
            break
    assert improvements > 1


# --- hurdles -----------------------------------------------------------------------------

def test_hurdles_stop_weak_children_at_the_population_percentile():
    population, percentile = 20, 75.0
    experiment = Experiment(population_size=population, fec={"enabled": False},
                            hurdles={"enabled": True, "percentile": percentile},
                            budget={"individuals": 420, "train_steps": None})
    state = experiment.state
    experiment.run_to(population - 1)
    assert state.values[HURDLE] == -np.inf
    experiment.run_to(population)
    assert state.counter(HURDLE_STOPS) == 0
    assert state.values[HURDLE] == np.percentile(np.unique(state.fitness), percentile)
    while state.counter(INDIVIDUALS) < 407:
        slot, _, delta, hurdle = experiment.step_child()
        program = experiment.program(slot)
        first = experiment.evaluate(program, experiment.tasks[:1])
        assert delta[FULL_EVALS] == 1
        if delta[HURDLE_STOPS]:
            # A stopped child keeps its first-task fitness, below the hurdle.
            assert state.fitness[slot] == first < hurdle
            assert delta[TRAIN_STEPS] <= N_TRAIN
            assert delta[SAVED_TRAIN_STEPS] == N_TRAIN * (NUM_TASKS - 1)
        else:
            assert first >= hurdle
            assert state.fitness[slot] == experiment.evaluate(program)
            assert delta[SAVED_TRAIN_STEPS] == 0
        if state.counter(INDIVIDUALS) == 400:
            snapshot = state.fitness.copy()
    hurdle = np.percentile(np.unique(snapshot), percentile)
    # Refreshed at 400 (a multiple of the population size), then unchanged until 420.
    assert state.values[HURDLE] == pytest.approx(hurdle, rel=1e-12, abs=0)
    assert state.counter(HURDLE_STOPS) > 0
    assert state.counter(FULL_EVALS) == 407


def test_hurdle_window_uses_the_last_children():
    window, percentile = 50, 40.0
    experiment = Experiment(fec={"enabled": False},
                            hurdles={"enabled": True, "percentile": percentile, "window": window})
    experiment.run()
    state = experiment.state
    assert state.counter(INDIVIDUALS) == 400
    assert state.recent.size == window
    assert state.values[HURDLE] == pytest.approx(
        np.percentile(np.unique(state.recent), percentile), rel=1e-12, abs=0)
    assert state.counter(HURDLE_STOPS) > 0


def test_no_hurdle_stops_without_hurdles():
    experiment = Experiment(fec={"enabled": False}, hurdles={"enabled": False})
    experiment.run()
    assert experiment.state.counter(HURDLE_STOPS) == 0
    assert experiment.state.values[HURDLE] == -np.inf


# --- compute budget ----------------------------------------------------------------------

def test_tiny_compute_budget_rejects_every_child():
    experiment = Experiment(compute_budget={"enabled": True, "factor": 0.01})
    experiment.run()
    state = experiment.state
    n = state.counter(INDIVIDUALS)
    assert n == 400
    assert state.counter(BUDGET_REJECTS) == n
    assert state.counter(FULL_EVALS) == state.counter(TRAIN_STEPS) == 0
    assert state.counter(STRUCTURE_HITS) == state.counter(FINGERPRINT_HITS) == 0
    assert not state.fitness.any()
    assert state.best_fitness == 0.0


def test_compute_budget_rejects_exactly_the_costly_programs():
    factor = 0.4625      # the limit falls among the costs of random demo-space programs
    experiment = Experiment(fec={"enabled": False}, compute_budget={"enabled": True,
                                                                    "factor": factor})
    limit = experiment.settings.floats[COST_LIMIT]
    assert limit == pytest.approx(factor * program_cost(neural_net_program(), N_TRAIN))
    state = experiment.state
    for _ in range(400):
        slot, _, delta, _ = experiment.step_child()
        program = experiment.program(slot)
        if program_cost(program, N_TRAIN) > limit:
            assert delta[BUDGET_REJECTS] == 1 and delta[FULL_EVALS] == 0
            assert delta[TRAIN_STEPS] == 0
            assert state.fitness[slot] == 0.0
        else:
            assert delta[BUDGET_REJECTS] == 0 and delta[FULL_EVALS] == 1
            assert state.fitness[slot] == experiment.evaluate(program)
    n = state.counter(INDIVIDUALS)
    rejects = state.counter(BUDGET_REJECTS)
    assert 0 < rejects < n
    assert state.counter(FULL_EVALS) + rejects == n


def test_no_budget_rejects_without_compute_budget():
    experiment = Experiment(compute_budget={"enabled": False, "factor": 0.01})
    experiment.run()
    assert experiment.state.counter(BUDGET_REJECTS) == 0
    assert experiment.state.best_fitness > 0


# --- frozen program (learning-only search) -------------------------------------------------

LEARNING_ONLY = dict(memory={"scalars": 4, "vectors": 3, "matrices": 1},
                     ops={"setup": [], "predict": [],
                          "learn": ["SCALAR_DIFF", "SCALAR_PRODUCT", "SCALAR_VECTOR_PRODUCT",
                                    "VECTOR_SUM"]},
                     sizes={"setup": 5, "predict": 1, "learn": 4}, frozen_program="linear")


def frozen_parts(experiment: Experiment, k: int | None = None) -> list[list]:
    """Setup and Predict of population member ``k`` (None: the best program)."""
    program = experiment.program(k) if k is not None else experiment.state.best_program(
        experiment.settings.offsets)
    return [program.instructions(c) for c in ("setup", "predict")]


def expected_frozen(sizes: tuple[int, int]) -> list[list]:
    """linear's Setup and Predict padded with no-ops to ``sizes`` instructions."""
    linear = linear_program()
    parts = [linear.instructions(c) for c in ("setup", "predict")]
    return [part + [Instruction(0, 0, 0, 0, (0.0, 0.0, 0.0))] * (n - len(part))
            for part, n in zip(parts, sizes)]


@pytest.mark.parametrize("strategy, mutations", [
    ("evolution", {"alter_param": 1, "randomize_instruction": 1, "randomize_component": 1,
                   "randomize_algorithm": 1, "insert_instruction": 1, "remove_instruction": 1,
                   "trade_instruction": 1}),
    ("random", {"alter_param": 1}),
])
def test_frozen_components_come_from_the_frozen_program_and_stay(strategy, mutations):
    experiment = Experiment(strategy=strategy, mutations=mutations, mutate_prob=1.0,
                            sizes={"setup": 5, "predict": 1, "learn": {"init": 4, "min": 1,
                                                                      "max": 6}},
                            **{k: v for k, v in LEARNING_ONLY.items() if k != "sizes"})
    want = expected_frozen((5, 1))
    experiment.run_to(experiment.population)
    learns = set()
    for k in range(experiment.population):
        assert frozen_parts(experiment, k) == want
        learns.add(str(experiment.program(k)))
    assert len(learns) > experiment.population // 2     # Learn itself is random
    while experiment.step(37) != BUDGET_SPENT:
        for k in range(experiment.population):
            assert frozen_parts(experiment, k) == want
    assert frozen_parts(experiment) == want
    learn_ops = {OPS_BY_NAME[name].code for name in LEARNING_ONLY["ops"]["learn"]}
    for k in range(experiment.population):
        assert {inst.op for inst in experiment.program(k).instructions("learn")} <= learn_ops
    if strategy == "evolution":
        counts = experiment.state.counters[MUTATION_COUNTS:]
        assert (counts[[MUTATION_NAMES[name] for name in mutations]] > 0).all()


def test_given_initial_programs_take_the_frozen_components():
    experiment = Experiment(initial_population="noop", **LEARNING_ONLY)
    experiment.run()
    want = expected_frozen((5, 1))
    for k in range(experiment.population):
        assert frozen_parts(experiment, k) == want


def test_learning_only_search_reaches_gradient_descent():
    # With Setup and Predict given, Learn is 4 instructions over 4 ops: a small space.
    experiment = Experiment(population_size=100, tournament_size=10,
                            budget={"individuals": 20_000, "train_steps": None},
                            **LEARNING_ONLY)
    experiment.run()
    assert experiment.state.best_fitness >= experiment.evaluate(linear_program())


def test_without_frozen_program_random_frozen_components_are_no_ops():
    experiment = Experiment(ops={**LEARNING_ONLY["ops"], "setup": ["SCALAR_CONST_SET"]},
                            memory=LEARNING_ONLY["memory"], sizes={"setup": 2, "predict": 3,
                                                                   "learn": 4})
    experiment.run_to(experiment.population)
    for k in range(experiment.population):
        predict = experiment.program(k).instructions("predict")
        assert [inst.op for inst in predict] == [0, 0, 0]
