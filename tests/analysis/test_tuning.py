"""Tuning constants: deterministic, trial 0 is the program, never worse, only tunable
constants move, and a badly set learning rate gets fixed."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import random_program
from hypothesis import given, settings
from hypothesis import strategies as st

from evozero.analysis.tuning import Tuned, tunable_constants, tune
from evozero.errors import EvozeroError
from evozero.evaluation.tasks import make_tasks
from evozero.evaluation.vm import evaluate
from evozero.programs.program import Program
from evozero.programs.reference import linear_program, neural_net_program
from ops.kinds import SORTED_BOUNDS

LINEAR_TASKS = make_tasks("linear", 3, 4, 1000, 100, seed=1)
SMALL_TASKS = make_tasks("nonlinear", 2, 3, 12, 6, seed=2)
MEMORY = (5, 4, 2)


def test_a_bad_learning_rate_gets_fixed():
    tuned = tune(linear_program(1e-5), LINEAR_TASKS, trials=100, seed=0)
    assert tuned.untuned_fitness < 0.5
    assert tuned.fitness > 0.99
    assert tuned.fitness == evaluate(tuned.program, LINEAR_TASKS)
    rate = tuned.program.constants[0, 0]
    assert rate == pytest.approx(1e-5 * tuned.factors[0], rel=1e-15)


def test_deterministic_from_the_seed():
    program = neural_net_program(0.05)
    first, again = (tune(program, SMALL_TASKS, trials=12, seed=4) for _ in range(2))
    assert first == again
    other = tune(program, SMALL_TASKS, trials=12, seed=5)
    assert len(first.factors) == 3   # both spreads and the rate; the zero means stay 0
    assert other.factors != first.factors or first.factors == (1.0,) * 3


def test_trial_zero_is_the_program_as_given():
    program = neural_net_program(0.05)
    tuned = tune(program, SMALL_TASKS, trials=1, seed=9)
    assert tuned == Tuned(program, evaluate(program, SMALL_TASKS),
                          evaluate(program, SMALL_TASKS), (1.0, 1.0, 1.0), 1)


def test_a_program_without_tunable_constants_returns_itself():
    program = Program.parse("def Setup():\n  s7 = 3.0\n  v2[0.25] = 2.0\n"
                            "  v1[0.5] = 0.0\ndef Predict():\n  s1 = dot(v0, v1)\ndef Learn():\n")
    assert tunable_constants(program) == []   # s7 and v2 are dead, v1[0.5] is set to 0
    tuned = tune(program, LINEAR_TASKS, trials=20, seed=0)
    assert tuned.program is program and tuned.factors == () and tuned.trials == 20
    assert tuned.fitness == tuned.untuned_fitness == evaluate(program, LINEAR_TASKS)


def test_index_fractions_are_not_tunable_but_set_values_are():
    program = Program.parse("def Setup():\n  v1[0.25] = 2.0\ndef Predict():\n"
                            "  s1 = dot(v0, v1)\ndef Learn():\n")
    assert tunable_constants(program) == [(0, 1)]


@pytest.mark.parametrize("trials, seed", [(0, 0), (2.5, 0), (True, 0), (5, -1), (5, "1")])
def test_bad_arguments_are_clear_errors(trials, seed):
    with pytest.raises(EvozeroError, match="trials|seed"):
        tune(linear_program(), LINEAR_TASKS, trials=trials, seed=seed)


@settings(max_examples=25, deadline=None)
@given(program_seed=st.integers(0, 2**32), sizes=st.tuples(st.integers(0, 6), st.integers(1, 4),
                                                           st.integers(0, 6)),
       seed=st.integers(0, 1000))
def test_random_programs_only_tunable_constants_change(program_seed, sizes, seed):
    program = random_program(program_seed, sizes, memory=MEMORY)
    tuned = tune(program, SMALL_TASKS, trials=6, seed=seed, memory=MEMORY)
    assert Program.parse(str(tuned.program)) == tuned.program
    assert np.array_equal(tuned.program.code, program.code)
    assert tuned.fitness >= tuned.untuned_fitness == evaluate(program, SMALL_TASKS,
                                                              memory=MEMORY)
    assert tuned.fitness == evaluate(tuned.program, SMALL_TASKS, memory=MEMORY)
    positions = tunable_constants(program, MEMORY)
    assert len(tuned.factors) == len(positions)
    changed = set(zip(*np.nonzero(tuned.program.constants != program.constants)))
    # A uniform draw's bounds may trade places to stay sorted; anything else must be tunable.
    sorted_rows = {row for row, op in enumerate(program.code[:, 0]) if SORTED_BOUNDS[op]}
    assert {(int(r), int(s)) for r, s in changed if r not in sorted_rows} <= set(positions)
    for row in sorted_rows:
        low, high = tuned.program.constants[row, :2]
        assert low <= high or program.constants[row, 0] > program.constants[row, 1]
        if not any(r == row for r, _ in positions):
            assert np.array_equal(tuned.program.constants[row], program.constants[row])
