"""Simplification: identical predictions, dead code out, exact folding, compact addresses."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import random_program as shared_random_program
from hypothesis import given, settings
from hypothesis import strategies as st

import evozero as ez
from evozero.evaluation.vm import evaluate_group, group_tasks
from evozero.programs.liveness import strip_dead_code
from evozero.programs.reference import linear_program, neural_net_program
from evozero.programs.simplify import program_changes, program_diff, simplify
from ops.kinds import IS_RANDOM
from ops.table import OPS, OPS_BY_NAME

MEMORY = (5, 4, 2)
SEED = 7
ALL_OPS = np.arange(len(OPS), dtype=np.int64)
_SCALAR_OPS = [spec.code for spec in OPS if spec.out == "s" and spec.in1 in ("s", None)
               and spec.in2 in ("s", None)]
# Mostly scalar arithmetic, constants and random scalars (lots to fold), plus a few ops
# that bring the features in, so predictions depend on the data.
SCALAR_HEAVY = np.array(sorted(set(_SCALAR_OPS) | {OPS_BY_NAME[name].code for name in (
    "VECTOR_INNER_PRODUCT", "VECTOR_MEAN", "SCALAR_VECTOR_PRODUCT", "VECTOR_SUM",
    "VECTOR_GAUSSIAN_SET", "VECTOR_CONST_SET")}), dtype=np.int64)
OP_SETS = {"all": ALL_OPS, "scalar_heavy": SCALAR_HEAVY}


def random_program(seed: int, sizes: tuple[int, int, int], allowed: np.ndarray) -> ez.Program:
    return shared_random_program(seed, sizes, allowed, MEMORY)


def predictions(program: ez.Program, memory, group) -> tuple[np.ndarray, np.ndarray]:
    """(fitness, record) of ``program`` on ``group``: every prediction read from s1."""
    live = strip_dead_code(program, memory)
    epochs, n_train = group.y_train.shape[:2]
    record = np.full((group.num_tasks, epochs * (n_train + group.y_valid.shape[0])), -123.0)
    fitness = evaluate_group(live, group, memory, SEED, 100.0, record)
    return fitness, record


def bits(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float64).view(np.int64)


@pytest.fixture(scope="module")
def groups():
    return [group_tasks(ez.make_tasks("linear", 3, 4, train=12, valid=6, seed=1))[0],
            group_tasks(ez.make_tasks("nonlinear", 2, 3, train=8, valid=4, seed=2,
                                      epochs=2))[0],
            group_tasks(ez.make_tasks("digits", 2, 4, train=12, valid=6, seed=3))[0]]


def assert_same_predictions(raw: ez.Program, simple: ez.Program, groups, memory=None) -> None:
    for group in groups:
        fit_raw, rec_raw = predictions(raw, memory or raw.memory_needs(), group)
        fit_new, rec_new = predictions(simple, simple.memory_needs(), group)
        assert np.array_equal(bits(rec_raw), bits(rec_new)), (str(raw), str(simple))
        assert np.array_equal(bits(fit_raw), bits(fit_new))


def check(raw: ez.Program, groups) -> ez.Program:
    simple = simplify(raw, MEMORY)
    assert_same_predictions(raw, simple, groups, MEMORY)
    assert all(a <= b for a, b in zip(simple.memory_needs(), MEMORY))
    assert sum(simple.sizes) <= sum(strip_dead_code(raw, MEMORY).sizes)
    assert simplify(simple) == simple                    # idempotent
    assert ez.Program.parse(str(simple)) == simple       # still a valid program
    return simple


# --- equivalence on random programs ----------------------------------------------------


@settings(max_examples=400)
@given(seed=st.integers(0, 2**63 - 1), sizes=st.tuples(*[st.integers(0, 6)] * 3),
       op_set=st.sampled_from(sorted(OP_SETS)))
def test_random_programs_keep_their_predictions(groups, seed, sizes, op_set):
    check(random_program(seed, sizes, OP_SETS[op_set]), groups)


def test_sweep_folds_and_keeps_random_draws(groups):
    """Many programs: identical predictions, and the sweep really folds rows and keeps
    live random ops (so both paths are exercised, not just trivial programs)."""
    folds = random_live = 0
    for seed in range(1500):
        allowed = SCALAR_HEAVY if seed % 2 else ALL_OPS
        raw = random_program(seed + 1, (6, 6, 6), allowed)
        simple = check(raw, groups)
        stripped = strip_dead_code(raw, MEMORY)
        const_set = OPS_BY_NAME["SCALAR_CONST_SET"].code
        folds += (np.sum(simple.code[:, 0] == const_set)
                  > np.sum(stripped.code[:, 0] == const_set))
        random_live += bool(np.any(IS_RANDOM[simple.code[:, 0]]))
    assert folds >= 50 and random_live >= 50, (folds, random_live)


def test_hand_written_learners(groups):
    assert simplify(linear_program()) == linear_program()
    net = neural_net_program()
    simple = simplify(net)
    assert simple.sizes == net.sizes                     # nothing dead, nothing to fold
    assert simple.memory_needs() == net.memory_needs()   # v5 (always 0) is renamed only
    assert_same_predictions(net, simple, groups)


# --- dead code ----------------------------------------------------------------------------


def test_padded_linear_program_simplifies_back():
    padded = ez.Program.parse("""
def Setup():
  s7 = 0.5
  s2 = 0.01
  m1 = outer(v0, v0)
  NoOp()
def Predict():
  v5 = s7 * v0
  s1 = dot(v0, v1)
  s6 = norm(v5)
def Learn():
  s3 = s0 - s1
  s4 = s3 + s7
  s3 = s3 * s2
  v2 = s3 * v0
  m0 = transpose(m1)
  v1 = v1 + v2
  s1 = 0.25
""")
    simple = simplify(padded, (8, 6, 2))
    assert simple == linear_program()
    assert simple.sizes == (1, 1, 4)                  # all six instructions of linear
    assert simple.memory_needs() == (4, 3, 0)


# --- folding --------------------------------------------------------------------------------


def test_setup_constants_fold_into_one_value():
    program = ez.Program.parse("""
def Setup():
  s4 = 0.5
  s5 = 4.0
  s6 = s4 * s5
  s6 = s6 - s4
  s7 = abs(s9)
def Predict():
  s1 = dot(v0, v1)
  s1 = s1 + s7
def Learn():
  s3 = s0 - s1
  s3 = s3 * s6
  v2 = s3 * v0
  v1 = v1 + v2
""")
    simple = simplify(program)
    assert str(simple) == """\
def Setup():
  s2 = 1.5
  s3 = 0.0
def Predict():
  s1 = dot(v0, v1)
  s1 = s1 + s3
def Learn():
  s4 = s0 - s1
  s4 = s4 * s2
  v2 = s4 * v0
  v1 = v1 + v2
"""


def test_folding_respects_writes_in_the_loop():
    """s2 is rewritten in Learn: uses in Predict stay; the Setup use (before) folds; a
    constant written earlier in the same component folds; s0/s1 never count as known."""
    program = ez.Program.parse("""
def Setup():
  s2 = 0.5
  s3 = s2 * s2
def Predict():
  s4 = s2 * s2
  s5 = 3.0
  s5 = s5 + s3
  s6 = s0 + s3
  s1 = s4 + s5
  s1 = s1 + s6
def Learn():
  s2 = s0 - s1
""")
    assert str(simplify(program)) == """\
def Setup():
  s2 = 0.5
  s3 = 0.25
def Predict():
  s4 = s2 * s2
  s5 = 3.25
  s6 = s0 + s3
  s1 = s4 + s5
  s1 = s1 + s6
def Learn():
  s2 = s0 - s1
"""


def test_no_folding_of_non_finite_or_random_values(groups):
    program = ez.Program.parse("""
def Setup():
  s3 = 1 / s2
  s4 = log(s2)
  s5 = uniform(-1.0, 1.0)
  s6 = s5 + s5
  s7 = 1.0
def Predict():
  s1 = gaussian(0.0, 1.0)
  s8 = s7 * s7
  s1 = s1 + s8
  s1 = s1 + s6
  s1 = minimum(s1, s3)
  s1 = maximum(s1, s4)
def Learn():
""")
    simple = simplify(program)
    assert str(simple).splitlines()[1:7] == [
        "  s3 = 1 / s2", "  s4 = log(s2)", "  s5 = uniform(-1.0, 1.0)", "  s6 = s5 + s5",
        "def Predict():", "  s1 = gaussian(0.0, 1.0)"]
    assert "  s7 = 1.0" in str(simple).splitlines()        # s8 = s7 * s7 folded
    assert_same_predictions(program, simple, groups)


# --- renaming ---------------------------------------------------------------------------------


def test_addresses_renamed_in_order_of_first_use():
    program = ez.Program.parse("""
def Setup():
  m3 = gaussian(0.0, 0.1, (n_features, n_features))
  s9 = 0.1
def Predict():
  v7 = dot(m3, v0)
  s1 = dot(v7, v3)
def Learn():
  s6 = s0 - s1
  s6 = s6 * s9
  v2 = s6 * v0
  v3 = v3 + v2
""")
    simple = simplify(program)
    assert str(simple) == """\
def Setup():
  m0 = gaussian(0.0, 0.1, (n_features, n_features))
  s2 = 0.1
def Predict():
  v1 = dot(m0, v0)
  s1 = dot(v1, v2)
def Learn():
  s3 = s0 - s1
  s3 = s3 * s2
  v3 = s3 * v0
  v2 = v2 + v3
"""
    assert simple.memory_needs() == (4, 4, 1)


# --- program_diff -----------------------------------------------------------------------------


def test_program_diff():
    old = linear_program(0.01)
    assert program_diff(old, linear_program(0.01)) == "no change"
    assert program_diff(old, linear_program(0.02)) == "~ s2 = 0.01 -> s2 = 0.02 (setup)"
    new = ez.Program.parse(str(old).replace("  v2 = s3 * v0\n", "")
                           .replace("  s3 = s3 * s2\n", "  s3 = s3 * s2\n  s4 = s0 - s1\n"))
    assert program_diff(old, new) == "- v2 = s3 * v0 (learn); + s4 = s0 - s1 (learn)"
    assert program_diff(new, old) == "- s4 = s0 - s1 (learn); + v2 = s3 * v0 (learn)"
    assert program_changes(old, new) == ["- v2 = s3 * v0 (learn)", "+ s4 = s0 - s1 (learn)"]
    assert program_changes(old, linear_program(0.01)) == []
    grown = ez.Program.parse(str(old).replace("def Predict():", "  v3[0.5] = 1.0\ndef Predict():"))
    assert program_diff(old, grown) == "+ v3[0.5] = 1.0 (setup)"
    moved = ez.Program.parse(str(old).replace("s1 = dot(v0, v1)", "s1 = dot(v1, v0)"))
    assert program_diff(old, moved) == "~ s1 = dot(v0, v1) -> s1 = dot(v1, v0) (predict)"
