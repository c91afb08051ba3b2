"""Tasks run in blocks and evaluations stop early, yet fitness is the same bit for bit."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from evozero.evaluation.tasks import make_tasks
from evozero.evaluation.vm import (
    LOCKSTEP_BYTES,
    evaluate_group,
    group_tasks,
    reads_features,
    run_blocks,
    tape_rows,
    task_block,
)
from evozero.programs.liveness import strip_dead_code
from evozero.programs.program import Program
from evozero.programs.randomize import randomize_rows
from evozero.programs.reference import linear_program, neural_net_program
from ops.interpreter import _matrix_matrix, _matrix_vector, run_instructions
from ops.kinds import IN1_KIND, IN2_KIND, NUM_OPS, OP_ARRAYS
from ops.table import OPS_BY_NAME

MEMORY = (6, 6, 3)
ALL_OPS = np.arange(1, NUM_OPS, dtype=np.int64)


def _random_program(seed: int) -> Program:
    code = np.zeros((16, 4), dtype=np.int64)
    constants = np.zeros((16, 3))
    randomize_rows(code, constants, 0, 16, ALL_OPS, np.array([seed], dtype=np.uint64), 0,
                   MEMORY, OP_ARRAYS)
    return Program(code, constants, (4, 5, 7))


def _run(program: Program, group, block: int, max_abs_error: float, seed: int = 0):
    live = strip_dead_code(program, MEMORY)
    t, n = group.num_tasks, group.n_features
    fitness = np.full(t, -1.0)
    steps = run_blocks(
        live.code, live.constants, live.bounds, np.zeros((MEMORY[0], t)),
        np.zeros((MEMORY[1], t * n)), np.zeros((MEMORY[2], t * n * n)),
        np.zeros(t, dtype=np.uint64), np.zeros(n * n),
        np.zeros((tape_rows(len(live.code)), 5), dtype=np.int64), group.x_train, group.y_train,
        group.x_valid, group.y_valid, group.classification,
        reads_features(live.code, len(live.code), IN1_KIND, IN2_KIND), max_abs_error,
        np.uint64(seed), group.indices.astype(np.uint64), fitness, np.zeros((t, 0)), block)
    return fitness, steps


@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["linear", "nonlinear", "digits"]),
       features=st.sampled_from([1, 3, 4, 8]), max_abs_error=st.sampled_from([0.5, 100.0, math.inf]))
def test_fitness_does_not_depend_on_the_block_size(seed, kind, features, max_abs_error):
    tasks = make_tasks(kind, 7, features if kind != "digits" else 4, 12, 9, seed=seed % 97, epochs=2)
    (group,) = group_tasks(tasks)
    program = _random_program(seed)
    lockstep, lockstep_steps = _run(program, group, 7, max_abs_error, seed)
    for block in (1, 2, 3, 6):
        fitness, steps = _run(program, group, block, max_abs_error, seed)
        np.testing.assert_array_equal(fitness.view(np.int64), lockstep.view(np.int64))
        assert steps[0] == lockstep_steps[0]


@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["linear", "nonlinear"]),
       max_abs_error=st.sampled_from([0.3, 3.0, 100.0]))
def test_stopping_a_broken_validation_early_keeps_fitness(seed, kind, max_abs_error):
    # With predictions recorded nothing stops early, so the two runs must agree.
    (group,) = group_tasks(make_tasks(kind, 5, 3, 10, 12, seed=seed % 89, epochs=3))
    live = strip_dead_code(_random_program(seed), MEMORY)
    recorded = evaluate_group(live, group, MEMORY, seed, max_abs_error,
                              record=np.zeros((group.num_tasks, 1)))
    stopped = evaluate_group(live, group, MEMORY, seed, max_abs_error)
    np.testing.assert_array_equal(stopped.view(np.int64), recorded.view(np.int64))


def test_a_broken_validation_stops_at_its_first_broken_step():
    # One training example keeps training sane; Learn then sets the prediction to 1e6.
    program = Program.parse("def Setup():\n  s3 = 1000.0\ndef Predict():\n"
                            "  s1 = s2 + s0\ndef Learn():\n  s2 = s3 * s3\n")
    (group,) = group_tasks(make_tasks("linear", 4, 2, 1, 30, seed=1))
    fitness, steps = _run(program, group, 4, max_abs_error=math.inf)
    assert tuple(steps) == (1, 30) and (fitness > 0).all()
    fitness, steps = _run(program, group, 4, max_abs_error=50.0)
    assert tuple(steps) == (1, 1)
    np.testing.assert_array_equal(fitness, 0.0)


def test_the_block_follows_the_memory_the_program_touches():
    linear = strip_dead_code(linear_program(), (4, 3, 1))
    network = strip_dead_code(neural_net_program(), (5, 9, 2))
    assert task_block(linear.code, 10, 4) == 10
    assert task_block(linear.code, 10, 64) == 10
    assert task_block(network.code, 10, 4) == 10
    assert task_block(network.code, 10, 64) == 1
    per_task = 8 * (5 + 9 * 16 + 2 * 16 * 16)
    assert task_block(network.code, 10, 16) == LOCKSTEP_BYTES // per_task


def _ordered_dot(x: np.ndarray, y: np.ndarray) -> float:
    total = 0.0
    for a, b in zip(x.tolist(), y.tolist()):
        total += a * b
    return total


_values = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@given(n=st.integers(1, 9), tasks=st.integers(1, 9), data=st.data())
def test_inner_products_add_in_element_order(n, tasks, data):
    values = data.draw(st.lists(_values, min_size=2 * tasks * n, max_size=2 * tasks * n))
    vectors = np.array(values).reshape(2, tasks, n)
    scalars = np.zeros((1, tasks))
    dot = OPS_BY_NAME["VECTOR_INNER_PRODUCT"].code
    run_instructions(np.array([[dot, 0, 1, 0]]), np.zeros((1, 3)), 0, 1, scalars, vectors,
                     np.zeros((1, tasks, n, n)), np.zeros(tasks, dtype=np.uint64))
    expected = [_ordered_dot(vectors[0, t], vectors[1, t]) for t in range(tasks)]
    np.testing.assert_array_equal(scalars[0], expected)


@given(n=st.integers(1, 9), data=st.data())
def test_matrix_products_add_in_element_order(n, data):
    a = np.array(data.draw(st.lists(_values, min_size=n * n, max_size=n * n)))
    b = np.array(data.draw(st.lists(_values, min_size=n * n, max_size=n * n)))
    out = np.zeros(n * n)
    _matrix_vector(a, b[:n], out, n)
    rows = a.reshape(n, n)
    np.testing.assert_array_equal(out[:n], [_ordered_dot(rows[i], b[:n]) for i in range(n)])
    _matrix_matrix(a, b, out, n)
    columns = b.reshape(n, n).T
    expected = [[_ordered_dot(rows[i], columns[j]) for j in range(n)] for i in range(n)]
    np.testing.assert_array_equal(out.reshape(n, n), expected)
