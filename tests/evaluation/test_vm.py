"""The VM end to end: known learners learn, random programs never break it, results repeat."""
from __future__ import annotations

import numpy as np
import pytest

import evozero as ez
from evozero.bench.vm import run_batch
from evozero.evaluation.vm import evaluate_group, group_tasks
from evozero.programs.randomize import randomize_rows
from evozero.programs.reference import linear_program, neural_net_program
from ops.kinds import IN1_KIND, IN2_KIND, IS_RANDOM, OP_ARRAYS, OUT_KIND, PARTIAL_WRITE
from ops.table import OPS

ALL_OPS = np.arange(len(OPS), dtype=np.int64)
DETERMINISTIC_OPS = np.flatnonzero(~IS_RANDOM).astype(np.int64)
SIZES = (4, 3, 3)           # setup / predict / learn instructions
MEMORY = (5, 4, 3)          # scalars / vectors / matrices
NUM_RANDOM = 10_000


def random_programs(count: int, seed: int, allowed: np.ndarray = ALL_OPS):
    """``count`` random programs concatenated into one array, as the search builds batches."""
    length = sum(SIZES)
    codes = np.zeros((count * length, 4), dtype=np.int64)
    constants = np.zeros((count * length, 3))
    state = np.array([seed], dtype=np.uint64)
    randomize_rows(codes, constants, 0, count * length, allowed, state, 0, tuple(MEMORY),
                   OP_ARRAYS)
    starts = np.arange(count, dtype=np.int64) * length
    bounds = starts[:, None] + np.cumsum((0,) + SIZES)[None, :]
    return codes, constants, np.ascontiguousarray(bounds, dtype=np.int64)


def batch_fitness(codes, constants, bounds, tasks, seed: int = 0) -> np.ndarray:
    """Per-task fitness of every program of a batch, shape (programs, tasks)."""
    (group,) = group_tasks(tasks)
    count = bounds.shape[0]
    fitness = np.zeros((count, group.num_tasks))
    steps = np.zeros((count, 2), dtype=np.int64)
    seeds = np.full(count, seed, dtype=np.uint64)
    run_batch(codes, constants, bounds, *MEMORY, group.x_train, group.y_train, group.x_valid,
              group.y_valid, group.classification, 100.0, seeds,
              group.indices.astype(np.uint64), fitness, steps,
              IN1_KIND, IN2_KIND, OUT_KIND, PARTIAL_WRITE)
    return fitness


def program_at(codes, constants, bounds, p: int) -> ez.Program:
    start, stop = bounds[p, 0], bounds[p, 3]
    return ez.Program(codes[start:stop], constants[start:stop], np.diff(bounds[p]))


@pytest.fixture(scope="module")
def small_tasks():
    return {
        "linear": ez.make_tasks("linear", 3, 4, train=20, valid=10, seed=1),
        "nonlinear": ez.make_tasks("nonlinear", 2, 4, train=20, valid=10, seed=2, epochs=2),
        "digits": ez.make_tasks("digits", 3, 4, train=20, valid=10, seed=3),
    }


@pytest.fixture(scope="module")
def batch():
    return random_programs(NUM_RANDOM, seed=12345)


# --- known learners ----------------------------------------------------------------------


def test_linear_regressor_solves_linear_tasks():
    tasks = ez.make_tasks("linear", 10, 4, train=1000, valid=100)
    per_task = ez.evaluate(linear_program(0.01), tasks, combine=None)
    assert per_task.shape == (10,)
    assert per_task.min() > 0.99
    assert ez.evaluate(linear_program(0.1), tasks) > 0.999


def test_neural_net_beats_linear_on_nonlinear_tasks():
    tasks = ez.make_tasks("nonlinear", 10, 4, train=1000, valid=100)
    linear = ez.evaluate(linear_program(0.03), tasks)
    neural = ez.evaluate(neural_net_program(0.03), tasks)
    assert neural > linear + 0.2, (neural, linear)
    # Its random initialisation matters: the damaged net (weights start at 0) cannot learn.
    assert neural > ez.evaluate(neural_net_program(0.03, damaged=True), tasks)


def test_linear_program_learns_digit_pairs():
    tasks = ez.make_tasks("digits", 5, 4, train=100, valid=50)
    accuracy = ez.evaluate(linear_program(0.1), tasks, combine=None)
    assert np.all(accuracy > 0.6)
    # Accuracy on 50 examples is a multiple of 1/50.
    assert np.allclose(accuracy * 50, np.round(accuracy * 50))


def test_empty_program_gets_a_valid_low_fitness():
    program = ez.Program.parse("def Setup():\ndef Predict():\ndef Learn():\n")
    linear = ez.evaluate(program, ez.make_tasks("linear", 3, 4, train=10, valid=10))
    assert 0.0 <= linear < 0.9


# --- random programs over all 65 ops -------------------------------------------------------


@pytest.mark.parametrize("kind", ["linear", "nonlinear", "digits"])
def test_random_programs_give_fitness_in_unit_interval(kind, batch, small_tasks):
    fitness = batch_fitness(*batch, small_tasks[kind])
    assert fitness.shape == (NUM_RANDOM, len(small_tasks[kind]))
    assert np.all(np.isfinite(fitness))
    assert fitness.min() >= 0.0 and fitness.max() <= 1.0
    # Random programs cover the whole range: some fail outright, some score.
    assert (fitness == 0.0).any() and (fitness > 0.0).mean() > 0.05


def test_random_batch_covers_every_op(batch):
    codes, _, _ = batch
    assert set(np.unique(codes[:, 0])) == set(range(len(OPS)))


def test_batch_agrees_with_evaluate(batch, small_tasks):
    codes, constants, bounds = batch
    sample = range(0, NUM_RANDOM, 97)
    for kind in ("linear", "digits"):
        tasks = small_tasks[kind]
        fitness = batch_fitness(codes, constants, bounds, tasks)
        for p in sample:
            program = program_at(codes, constants, bounds, p)
            assert np.array_equal(ez.evaluate(program, tasks, combine=None, memory=MEMORY),
                                  fitness[p])
            # The memory size beyond what the program uses changes nothing.
            assert np.array_equal(ez.evaluate(program, tasks, combine=None), fitness[p])


# --- determinism and dead code --------------------------------------------------------------


def test_same_arguments_same_fitness(batch, small_tasks):
    codes, constants, bounds = batch
    tasks = small_tasks["nonlinear"]
    first = batch_fitness(codes[:3000], constants[:3000], bounds[:300], tasks, seed=7)
    again = batch_fitness(codes[:3000], constants[:3000], bounds[:300], tasks, seed=7)
    assert np.array_equal(first, again)
    rebuilt = ez.make_tasks("nonlinear", 2, 4, train=20, valid=10, seed=2, epochs=2)
    assert np.array_equal(batch_fitness(codes[:3000], constants[:3000], bounds[:300], rebuilt,
                                        seed=7), first)


def test_random_ops_follow_the_seed():
    tasks = ez.make_tasks("nonlinear", 4, 4, train=100, valid=50, seed=5)
    net = neural_net_program(0.03)
    assert ez.evaluate(net, tasks, seed=11) == ez.evaluate(net, tasks, seed=11)
    assert ez.evaluate(net, tasks, seed=11) != ez.evaluate(net, tasks, seed=12)
    assert ez.evaluate(linear_program(), tasks, seed=11) == \
        ez.evaluate(linear_program(), tasks, seed=12)


def test_stripping_dead_code_never_changes_fitness(small_tasks):
    """Deterministic ops: running every row gives the fitness of running the live rows."""
    codes, constants, bounds = random_programs(2000, seed=777, allowed=DETERMINISTIC_OPS)
    for kind in ("linear", "digits"):
        tasks = small_tasks[kind]
        (group,) = group_tasks(tasks)
        stripped_count = 0
        for p in range(bounds.shape[0]):
            program = program_at(codes, constants, bounds, p)
            stripped = ez.strip_dead_code(program, MEMORY)
            stripped_count += sum(stripped.sizes) < sum(program.sizes)
            full = evaluate_group(program, group, MEMORY, 0, 100.0)
            live = evaluate_group(stripped, group, MEMORY, 0, 100.0)
            assert np.array_equal(full, live), (kind, str(program), str(stripped))
        assert stripped_count > 1000


def test_stripping_keeps_fitness_with_random_ops(batch, small_tasks):
    """With random ops the stream order is defined by the live rows: stripping is idempotent."""
    codes, constants, bounds = batch
    tasks = small_tasks["nonlinear"]
    for p in range(0, NUM_RANDOM, 50):
        program = program_at(codes, constants, bounds, p)
        stripped = ez.strip_dead_code(program)
        assert ez.strip_dead_code(stripped) == stripped
        assert np.array_equal(ez.evaluate(program, tasks, combine=None, seed=3),
                              ez.evaluate(stripped, tasks, combine=None, seed=3))


def test_strip_dead_code_on_known_programs():
    linear = linear_program(0.01)
    assert ez.strip_dead_code(linear) == linear
    padded = ez.Program.parse("def Setup():\n  s2 = 0.01\n  s4 = 3.0\n"
                              "def Predict():\n  s1 = dot(v0, v1)\n  v2 = bcast(s4)\n"
                              "def Learn():\n  s3 = s0 - s1\n  s3 = s3 * s2\n  v2 = s3 * v0\n"
                              "  v1 = v1 + v2\n  s3 = sin(s3)\n")
    assert ez.strip_dead_code(padded) == linear
    tasks = ez.make_tasks("linear", 3, 4, train=50, valid=20)
    assert ez.evaluate(padded, tasks) == ez.evaluate(linear, tasks)


# --- combining and errors ------------------------------------------------------------------


def test_combine_rules():
    tasks = ez.make_tasks("nonlinear", 5, 4, train=100, valid=50, seed=9)
    program = linear_program(0.03)
    per_task = ez.evaluate(program, tasks, combine=None)
    assert isinstance(per_task, np.ndarray) and per_task.shape == (5,)
    assert len(set(per_task.tolist())) > 1
    mean = ez.evaluate(program, tasks)
    assert isinstance(mean, float) and mean == pytest.approx(np.mean(per_task), abs=0)
    assert ez.evaluate(program, tasks, combine="mean") == mean
    assert ez.evaluate(program, tasks, combine="median") == pytest.approx(np.median(per_task), abs=0)
    # Per-task fitness does not depend on which other tasks are evaluated alongside.
    for i, task in enumerate(tasks):
        assert ez.evaluate(program, [task], combine=None)[0] == per_task[i]


def test_mixed_task_shapes_keep_task_order():
    linear = ez.make_tasks("linear", 2, 4, train=30, valid=10, seed=1)
    digits = ez.make_tasks("digits", 2, 4, train=30, valid=10, seed=1)
    mixed = [linear[0], digits[0], linear[1], digits[1]]
    program = linear_program(0.05)
    per_task = ez.evaluate(program, mixed, combine=None)
    assert np.array_equal(per_task[[0, 2]], ez.evaluate(program, linear, combine=None))
    assert np.array_equal(per_task[[1, 3]], ez.evaluate(program, digits, combine=None))


@pytest.mark.parametrize("args, kwargs, expected", [
    (("linear", 3, -4, 10, 10), {}, "features must be an integer >= 1, got -4"),
    (("linear", 3, 4, -10, 10), {}, "train must be an integer >= 1, got -10"),
    (("linear", 3, 4, 10, 0), {}, "valid must be an integer >= 1, got 0"),
    (("linear", 0, 4, 10, 10), {}, "num_tasks must be an integer >= 1, got 0"),
    (("linear", 3, 4, 10, 10), {"epochs": 0}, "epochs must be an integer >= 1, got 0"),
    (("cubic", 3, 4, 10, 10), {}, "unknown task kind 'cubic'; allowed: linear, affine, nonlinear"),
    (("linear", 3, 4, 10, 10), {"pairs": "all"}, "unknown option(s) pairs for 'linear' tasks"),
    (("digits", 1, 4, 10, 10), {"pairs": [(3, 3)]}, "pairs must be"),
    (("digits", 1, 4, 300, 100), {"pairs": [(0, 1)]}, "exceeds the"),
])
def test_bad_task_arguments(args, kwargs, expected):
    with pytest.raises(ez.EvozeroError) as info:
        ez.make_tasks(*args, **kwargs)
    assert expected in str(info.value)


def test_bad_evaluate_arguments():
    tasks = ez.make_tasks("linear", 2, 4, train=10, valid=10)
    program = linear_program()
    with pytest.raises(ez.EvozeroError, match="no tasks"):
        ez.evaluate(program, [])
    with pytest.raises(ez.EvozeroError, match=r"memory too small.*uses 4 scalars.*allows 1"):
        ez.evaluate(program, tasks, memory=(1, 1, 0))
    with pytest.raises(ez.EvozeroError, match=r"memory too small.*uses 3 vectors.*allows 2"):
        ez.evaluate(program, tasks, memory=(4, 2, 0))
    with pytest.raises(ez.EvozeroError, match="three non-negative integers"):
        ez.evaluate(program, tasks, memory=(4, -3, 0))
    with pytest.raises(ez.EvozeroError, match="combine must be one of mean, median or None"):
        ez.evaluate(program, tasks, combine="max")
    with pytest.raises(ez.EvozeroError, match="max_abs_error must be > 0"):
        ez.evaluate(program, tasks, max_abs_error=0.0)
    assert ez.evaluate(program, tasks, memory=(4, 3, 0)) == ez.evaluate(program, tasks)
