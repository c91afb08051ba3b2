"""Property tests: the numba kernel ``run_instructions`` against the plain-numpy references.

Every op of :data:`ops.table.OPS` is run as a single instruction on a random lockstep
memory of T tasks and compared, task by task, with ``op.reference`` applied to that
task's inputs. Only the output slot may change (every other slot must stay
bit-identical), and the random streams must advance exactly as the reference's
:class:`ops.rng.Stream` does.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ops import codes
from ops.interpreter import run_instructions
from ops.rng import Stream, stream_seed
from ops.table import OPS, OPS_BY_NAME


def test_named_op_codes_are_the_rows_of_the_table():
    assert all(getattr(codes, op.name) == op.code for op in OPS)
    control = (codes.HALT, codes.TRAIN_BEGIN, codes.TRAIN_PREDICTED, codes.TRAIN_END,
               codes.VALID_BEGIN, codes.VALID_END, codes.EPOCH_END)
    assert min(control) >= len(OPS) and len(set(control)) == len(control)


N_SCALARS = N_VECTORS = N_MATRICES = 4
FEATURES = (1, 3, 4, 16)

# Ops whose result is a sum over several terms: the kernel sums sequentially, numpy
# (pairwise / 8 accumulators) in another order, so the last bits may differ.
REDUCTIONS = frozenset(OPS_BY_NAME[name].code for name in (
    "VECTOR_NORM", "VECTOR_INNER_PRODUCT", "MATRIX_VECTOR_PRODUCT", "MATRIX_NORM",
    "MATRIX_COLUMN_NORM", "MATRIX_ROW_NORM", "MATRIX_MATRIX_PRODUCT", "VECTOR_MEAN",
    "MATRIX_MEAN", "MATRIX_ROW_MEAN", "MATRIX_ROW_ST_DEV", "VECTOR_ST_DEV", "MATRIX_ST_DEV"))
# Reductions with terms of both signs: cancellation makes the order-dependent error
# relative to the sum of |terms|, which the same op applied to |inputs| gives.
SIGNED_SUMS = frozenset(OPS_BY_NAME[name].code for name in (
    "VECTOR_INNER_PRODUCT", "MATRIX_VECTOR_PRODUCT", "MATRIX_MATRIX_PRODUCT", "VECTOR_MEAN",
    "MATRIX_MEAN", "MATRIX_ROW_MEAN"))
STD_OPS = frozenset(OPS_BY_NAME[name].code for name in (
    "MATRIX_ROW_ST_DEV", "VECTOR_ST_DEV", "MATRIX_ST_DEV"))

EXACT_TOL = dict(rtol=1e-12, atol=1e-12)
SUM_TOL = dict(rtol=1e-9, atol=1e-12)

# --- strategies ------------------------------------------------------------------------

NORMAL = st.floats(-2.0, 2.0, exclude_min=True, exclude_max=True)
CONST_STRATEGY = {
    "value": NORMAL,
    "fraction": st.floats(0.0, 1.0, exclude_max=True),
    "spread": st.floats(0.0, 2.0, exclude_max=True),
}
# Huge values stay <= 1e300 so that no *finite* sum of up to 256 terms (|normal| < 2)
# overflows: the overflow of a finite partial sum depends on summation order. Products
# of two huge values overflow term by term, which is order independent. The largest
# double is used for element-wise ops only.
SPECIALS = (np.nan, np.inf, -np.inf, 0.0, -0.0, 1e300, -1e300, 1e200, -1e200, 1e-300, -1e-300,
            5e-324)
FLOAT_MAX = float(np.finfo(np.float64).max)


def _fill(rng, shape, palette, p_palette):
    """Uniform(-2, 2) values, each replaced with probability ``p_palette`` by a palette value."""
    values = rng.uniform(-2.0, 2.0, size=shape)
    pick = rng.random(shape) < p_palette
    values[pick] = rng.choice(np.array(palette, dtype=np.float64), size=int(pick.sum()))
    return values


@st.composite
def memories(draw, n_features, n_tasks, values=NORMAL, p_choices=(0.0, 0.3, 0.9, 1.0)):
    """(scalars, vectors, matrices) of a lockstep memory.

    Bulk contents come from a numpy generator seeded by hypothesis; a hypothesis-drawn
    palette mixed in with probability p gives repeated values (ties, constant vectors)
    and, with ``values`` = special floats, NaN / Inf / signed zeros / huge values.
    """
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    palette = draw(st.lists(values, min_size=1, max_size=4))
    p_palette = draw(st.sampled_from(p_choices))
    scalars = _fill(rng, (N_SCALARS, n_tasks), palette, p_palette)
    vectors = _fill(rng, (N_VECTORS, n_tasks, n_features), palette, p_palette)
    matrices = _fill(rng, (N_MATRICES, n_tasks, n_features, n_features), palette, p_palette)
    return scalars, vectors, matrices


@st.composite
def instructions(draw, op, values=NORMAL, p_choices=(0.0, 0.3, 0.9, 1.0)):
    """A random single-instruction case for ``op``: dict of everything the check needs."""
    n_features = draw(st.sampled_from(FEATURES))
    n_tasks = draw(st.integers(1, 3))
    addresses = draw(st.tuples(*[st.integers(0, 3)] * 3))  # in1, in2, out
    consts = [draw(CONST_STRATEGY[c.kind]) for c in op.constants]
    consts += [draw(NORMAL) for _ in range(3 - len(consts))]  # unused slots: must be ignored
    memory = draw(memories(n_features, n_tasks, values, p_choices))
    seed = draw(st.integers(0, 2**64 - 1))
    return dict(n_features=n_features, n_tasks=n_tasks, addresses=addresses, consts=consts,
                memory=memory, seed=seed)


# --- running and checking ----------------------------------------------------------------

def initial_streams(seed, n_tasks):
    return np.array([stream_seed(np.uint64(seed), np.uint64(t)) for t in range(n_tasks)],
                    dtype=np.uint64)


def run_kernel(code_rows, consts_rows, memory, streams):
    """Run ``code_rows`` on copies of ``memory``; return (scalars, vectors, matrices, streams)."""
    scalars, vectors, matrices = (np.array(bank, dtype=np.float64, order="C") for bank in memory)
    streams = np.array(streams, dtype=np.uint64)
    code = np.array(code_rows, dtype=np.int64).reshape(-1, 4)
    constants = np.array(consts_rows, dtype=np.float64).reshape(-1, 3)
    run_instructions(code, constants, 0, code.shape[0], scalars, vectors, matrices, streams)
    return scalars, vectors, matrices, streams


def _operand(memory, kind, address, task):
    if kind is None:
        return None
    bank = memory["svm".index(kind)]
    value = bank[address, task]
    return float(value) if kind == "s" else np.array(value, dtype=np.float64)


def _bits(x):
    return np.ascontiguousarray(x, dtype=np.float64).view(np.uint64)


def _assert_bit_identical(actual, expected, what):
    if not np.array_equal(_bits(actual), _bits(expected)):
        raise AssertionError(f"{what} changed:\nbefore {expected!r}\nafter  {actual!r}")


def _assert_outputs_close(actual, expected, tol, bound=None):
    """``assert_allclose(equal_nan)``; with ``bound``, finite results may differ by
    ``rtol * bound + atol`` (bound = sum of |terms|) and non-finite ones must match."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if bound is None:
        np.testing.assert_allclose(actual, expected, equal_nan=True, **tol)
        return
    bound = np.asarray(bound, dtype=np.float64)
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(actual[~finite], expected[~finite])
    excess = np.abs(actual[finite] - expected[finite]) - (tol["rtol"] * bound[finite] + tol["atol"])
    assert not np.any(excess > 0), (actual, expected, bound)


def check_instruction(op, case, tol=None, signed_sum_bounds=False):
    """Run one instruction through the kernel; compare every task with ``op.reference``."""
    n_features, n_tasks = case["n_features"], case["n_tasks"]
    in1, in2, out = case["addresses"]
    consts = np.array(case["consts"], dtype=np.float64)
    memory = tuple(np.array(bank) for bank in case["memory"])
    seed = case["seed"]
    if tol is None:
        tol = SUM_TOL if op.code in REDUCTIONS else EXACT_TOL

    streams0 = initial_streams(seed, n_tasks)
    result = run_kernel([op.code, in1, in2, out], consts, memory, streams0)
    actual_memory, actual_streams = result[:3], result[3]

    expected_out, bounds, ref_streams = [], [], []
    for t in range(n_tasks):
        rng = Stream(seed, t)
        a = _operand(memory, op.in1, in1, t)
        b = _operand(memory, op.in2, in2, t)
        old = _operand(memory, op.out, out, t)
        expected_out.append(op.reference(a, b, old, consts, n_features, rng))
        ref_streams.append(rng.state[0])
        if signed_sum_bounds and op.code in SIGNED_SUMS:
            bounds.append(op.reference(np.abs(a), None if b is None else np.abs(b), old, consts,
                                       n_features, None))

    # The streams advance by exactly as many draws as the reference made (none for
    # deterministic ops).
    np.testing.assert_array_equal(actual_streams, np.array(ref_streams, dtype=np.uint64))

    out_bank = None if op.out is None else "svm".index(op.out)
    for k, (before, after) in enumerate(zip(memory, actual_memory)):
        if k != out_bank:
            _assert_bit_identical(after, before, f"{'svm'[k]} bank of {op.name}")
            continue
        untouched = np.ones(before.shape[0], dtype=bool)
        untouched[out] = False
        _assert_bit_identical(after[untouched], before[untouched],
                              f"non-output {'svm'[k]} slots of {op.name}")
        for t in range(n_tasks):
            expected = np.asarray(expected_out[t], dtype=np.float64)
            assert expected.shape == after[out, t].shape, (op.name, expected.shape)
            _assert_outputs_close(after[out, t], expected, tol, bounds[t] if bounds else None)


def op_id(op):
    return f"{op.code:02d}-{op.name}"


def test_table_is_complete_and_ordered():
    assert len(OPS) == 65
    assert [op.code for op in OPS] == list(range(65))


# --- every op, random memory --------------------------------------------------------------

@pytest.mark.parametrize("op", OPS, ids=op_id)
@settings(max_examples=25)
@given(data=st.data())
def test_kernel_matches_reference(op, data):
    check_instruction(op, data.draw(instructions(op)))


# --- aliasing -----------------------------------------------------------------------------

def _alias_cases():
    cases = []
    for op in OPS:
        # Same address number for all three operands: a real alias wherever kinds agree,
        # otherwise different banks that must not interfere.
        cases.append(pytest.param(op, "all", id=f"{op_id(op)}-all"))
        if op.in1 is not None and op.in1 == op.out:
            cases.append(pytest.param(op, "out=in1", id=f"{op_id(op)}-out=in1"))
        if op.in2 is not None and op.in2 == op.out:
            cases.append(pytest.param(op, "out=in2", id=f"{op_id(op)}-out=in2"))
        if op.in1 is not None and op.in1 == op.in2:
            cases.append(pytest.param(op, "in1=in2", id=f"{op_id(op)}-in1=in2"))
    return cases


@pytest.mark.parametrize("op, mode", _alias_cases())
@settings(max_examples=6)
@given(data=st.data())
def test_aliased_operands(op, mode, data):
    case = data.draw(instructions(op))
    in1, in2, out = case["addresses"]
    other = (out + 1 + data.draw(st.integers(0, 2))) % 4  # any address but ``out``
    if mode == "all":
        in1 = in2 = out
    elif mode == "out=in1":
        in1, in2 = out, other
    elif mode == "out=in2":
        in1, in2 = other, out
    else:
        in1 = in2 = other
    case["addresses"] = (in1, in2, out)
    check_instruction(op, case)


# --- special values -------------------------------------------------------------------------

def _constant_huge_group(op, case):
    """True when a std op's reduced group is one repeated finite value > 1e100.

    Known disagreement (see test_std_of_constant_input_is_exactly_zero): the mean of
    such a group is rounded differently by the kernel's sequential sum and numpy's
    pairwise one, and the 1-ulp deviation squared overflows to inf on one side only.
    """
    if op.code not in STD_OPS:
        return False
    source = case["memory"]["svm".index(op.in1)][case["addresses"][0]]  # (T, F) or (T, F, F)
    for task_value in source:
        groups = task_value if op.name == "MATRIX_ROW_ST_DEV" else [task_value.ravel()]
        for group in groups:
            if (group.size > 1 and np.all(group == group[0]) and np.isfinite(group[0])
                    and abs(group[0]) > 1e100):
                return True
    return False


@pytest.mark.parametrize("op", OPS, ids=op_id)
@settings(max_examples=20)
@given(data=st.data())
def test_kernel_matches_reference_on_special_values(op, data):
    specials = SPECIALS + (() if op.code in REDUCTIONS else (FLOAT_MAX, -FLOAT_MAX))
    values = st.one_of(NORMAL, st.sampled_from(specials))
    case = data.draw(instructions(op, values=values, p_choices=(0.2, 0.6, 1.0)))
    assume(not _constant_huge_group(op, case))
    check_instruction(op, case, signed_sum_bounds=True)


# --- documented rules, hand-written cases -----------------------------------------------------

def _single(op_name, n_features, *, scalars=None, vectors=None, matrices=None, consts=(0, 0, 0),
            addresses=(0, 1, 2), n_tasks=1, seed=0):
    """Run one instruction on a zero memory (with the given slot 0 / 1 contents)."""
    memory = [np.zeros((N_SCALARS, n_tasks)), np.zeros((N_VECTORS, n_tasks, n_features)),
              np.zeros((N_MATRICES, n_tasks, n_features, n_features))]
    for bank, contents in zip(memory, (scalars, vectors, matrices)):
        for address, value in enumerate(contents or ()):
            bank[address, :] = value
    op = OPS_BY_NAME[op_name]
    return run_kernel([op.code, *addresses], consts, memory, initial_streams(seed, n_tasks))


HEAVISIDE_IN = np.array([0.0, -0.0, 5e-324, 1e-300, 2.5, 1e300, np.inf, -3.0, -np.inf, np.nan])
HEAVISIDE_OUT = np.array([0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("x, expected", list(zip(HEAVISIDE_IN, HEAVISIDE_OUT)))
def test_scalar_heaviside_rule(x, expected):
    scalars = _single("SCALAR_HEAVYSIDE", 1, scalars=[x])[0]
    assert scalars[2, 0] == expected
    assert OPS_BY_NAME["SCALAR_HEAVYSIDE"].reference(x, None, 0.0, (), 1, None) == expected


def test_vector_and_matrix_heaviside_rule():
    n = len(HEAVISIDE_IN)
    vectors = _single("VECTOR_HEAVYSIDE", n, vectors=[HEAVISIDE_IN])[1]
    np.testing.assert_array_equal(vectors[2, 0], HEAVISIDE_OUT)
    grid = np.resize(HEAVISIDE_IN, (n, n))
    matrices = _single("MATRIX_HEAVYSIDE", n, matrices=[grid])[2]
    np.testing.assert_array_equal(matrices[2, 0], np.resize(HEAVISIDE_OUT, (n, n)))
    # heaviside(0) is 0 and heaviside(+x) is 1 for every kind.
    assert matrices[2, 0, 0, 0] == 0.0 and vectors[2, 0, 0] == 0.0
    assert matrices[2, 0, 0, 4] == 1.0 and vectors[2, 0, 4] == 1.0


# Values whose sums are exact in any order, so the two-pass mean is exact.
EXACT_CONSTANTS = (0.0, -0.0, 0.5, -3.0, 1.25, 2.0**-30, 2.0**900, -7.0)


@pytest.mark.parametrize("n_features", FEATURES)
@pytest.mark.parametrize("x", EXACT_CONSTANTS)
def test_std_of_constant_input_is_zero(x, n_features):
    scalars = _single("VECTOR_ST_DEV", n_features, vectors=[np.full(n_features, x)],
                      addresses=(0, 0, 2))[0]
    assert scalars[2, 0] == 0.0 and not np.signbit(scalars[2, 0])
    grid = np.full((n_features, n_features), x)
    scalars = _single("MATRIX_ST_DEV", n_features, matrices=[grid], addresses=(0, 0, 2))[0]
    assert scalars[2, 0] == 0.0
    vectors = _single("MATRIX_ROW_ST_DEV", n_features, matrices=[grid], addresses=(0, 0, 2))[1]
    np.testing.assert_array_equal(vectors[2, 0], np.zeros(n_features))
    assert not np.isnan(vectors[2, 0]).any()


def test_std_of_constant_input_is_exactly_zero():
    for x, n_features in ((0.1, 3), (1e300, 16)):
        scalars = _single("VECTOR_ST_DEV", n_features, vectors=[np.full(n_features, x)],
                          addresses=(0, 0, 2))[0]
        assert scalars[2, 0] == 0.0, (x, n_features, scalars[2, 0])


@pytest.mark.parametrize("kind", ["SCALAR", "VECTOR", "MATRIX"])
@pytest.mark.parametrize("func", ["MIN", "MAX"])
def test_min_max_propagate_nan(kind, func):
    n = 3
    shape = {"SCALAR": (), "VECTOR": (n,), "MATRIX": (n, n)}[kind]
    nan_first = np.full(shape, np.nan)
    one = np.full(shape, 1.0)
    for first, second in ((nan_first, one), (one, nan_first), (nan_first, nan_first)):
        contents = [first, second]
        bank = {"SCALAR": 0, "VECTOR": 1, "MATRIX": 2}[kind]
        kwargs = {["scalars", "vectors", "matrices"][bank]: contents}
        result = _single(f"{kind}_{func}", n, **kwargs)[bank][2, 0]
        assert np.all(np.isnan(result)), (first, second, result)
    # And the ordinary case picks the right operand.
    bank = {"SCALAR": 0, "VECTOR": 1, "MATRIX": 2}[kind]
    kwargs = {["scalars", "vectors", "matrices"][bank]: [np.full(shape, -1.5), one]}
    result = _single(f"{kind}_{func}", n, **kwargs)[bank][2, 0]
    np.testing.assert_array_equal(result, np.full(shape, -1.5 if func == "MIN" else 1.0))


@settings(max_examples=30)
@given(low=NORMAL, high=NORMAL, seed=st.integers(0, 2**64 - 1))
def test_uniform_with_swapped_bounds_draws_in_sorted_range(low, high, seed):
    n = 16
    swapped = _single("MATRIX_UNIFORM_SET", n, consts=(high, low, 0), seed=seed)[2][2, 0]
    ordered = _single("MATRIX_UNIFORM_SET", n, consts=(low, high, 0), seed=seed)[2][2, 0]
    lo, hi = min(low, high), max(low, high)
    # Bounds in either order give the same draws from [min, max).
    np.testing.assert_array_equal(swapped, ordered)
    if lo == hi:
        assert np.all(swapped == lo)
    else:
        assert np.all(swapped >= lo) and np.all(swapped < hi)


def test_uniform_low_greater_than_high():
    draws = _single("MATRIX_UNIFORM_SET", 16, consts=(1.5, -0.5, 0), seed=3)[2][2, 0]
    assert draws.min() >= -0.5 and draws.max() < 1.5
    assert draws.max() - draws.min() > 1.5  # spread over the range, not a constant
    scalar = _single("SCALAR_UNIFORM_SET", 1, consts=(1.5, -0.5, 0), seed=3)[0][2, 0]
    assert -0.5 <= scalar < 1.5


@pytest.mark.parametrize("op_name, bank", [("SCALAR_UNIFORM_SET", 0), ("VECTOR_UNIFORM_SET", 1),
                                           ("MATRIX_UNIFORM_SET", 2)])
@pytest.mark.parametrize("value", [0.3, -1.75, 0.0, 1e-310])
def test_uniform_with_equal_bounds_returns_the_bound(op_name, bank, value):
    result = _single(op_name, 4, consts=(value, value, 0), seed=11)[bank][2, 0]
    assert np.all(result == value)


@pytest.mark.parametrize("op_name, bank", [("SCALAR_GAUSSIAN_SET", 0), ("VECTOR_GAUSSIAN_SET", 1),
                                           ("MATRIX_GAUSSIAN_SET", 2)])
@pytest.mark.parametrize("mean", [0.3, -1.75, 0.0])
def test_gaussian_with_zero_std_returns_the_mean(op_name, bank, mean):
    for std in (0.0, -0.0):
        result = _single(op_name, 4, consts=(mean, std, 0), seed=5)[bank][2, 0]
        assert np.all(result == mean)


@settings(max_examples=20)
@given(mean=NORMAL, std=st.floats(0.0, 2.0, exclude_max=True), seed=st.integers(0, 2**64 - 1))
def test_gaussian_uses_abs_std(mean, std, seed):
    positive = _single("VECTOR_GAUSSIAN_SET", 16, consts=(mean, std, 0), seed=seed)[1][2, 0]
    negative = _single("VECTOR_GAUSSIAN_SET", 16, consts=(mean, -std, 0), seed=seed)[1][2, 0]
    np.testing.assert_array_equal(positive, negative)


@pytest.mark.parametrize("n_features, fraction, index", [
    (1, 0.0, 0), (1, 0.999, 0), (3, 0.0, 0), (3, 0.33, 0), (3, 1 / 3, 1), (3, 0.67, 2),
    (3, 0.999999, 2), (4, 0.2499, 0), (4, 0.25, 1), (4, 0.74, 2), (4, 0.75, 3), (16, 0.5, 8),
    (16, 0.0624, 0), (16, 0.0625, 1), (16, 0.99, 15),
    # clipping to 0..F-1
    (4, 1.0, 3), (4, 1.7, 3), (4, -0.1, 0), (4, -1e-300, 0), (16, 2.0, 15),
])
def test_const_set_index_is_floor_of_fraction_times_f(n_features, fraction, index):
    start = np.arange(1.0, n_features + 1.0)
    vectors = _single("VECTOR_CONST_SET", n_features, vectors=[start, start, start],
                      consts=(fraction, -9.5, 0))[1]
    expected = start.copy()
    expected[index] = -9.5
    np.testing.assert_array_equal(vectors[2, 0], expected)

    grid = np.arange(1.0, n_features * n_features + 1.0).reshape(n_features, n_features)
    other = (0.999 if fraction < 0.5 else 0.0)
    other_index = min(int(np.floor(n_features * other)), n_features - 1)
    for row_fraction, col_fraction, cell in ((fraction, other, (index, other_index)),
                                             (other, fraction, (other_index, index))):
        matrices = _single("MATRIX_CONST_SET", n_features, matrices=[grid, grid, grid],
                           consts=(row_fraction, col_fraction, 4.25))[2]
        expected = grid.copy()
        expected[cell] = 4.25
        np.testing.assert_array_equal(matrices[2, 0], expected)


def test_const_set_index_clips_huge_fraction():
    start = np.zeros(4)
    vectors = _single("VECTOR_CONST_SET", 4, vectors=[start, start, start], consts=(1e30, 1.0, 0))[1]
    np.testing.assert_array_equal(vectors[2, 0], [0.0, 0.0, 0.0, 1.0])


# --- random ops: statistics and streams ------------------------------------------------------

def _many_draws(op_name, consts, seed, n_tasks=16, n_features=16):
    """All four matrix slots filled by one call: 4 * T * F * F draws."""
    op = OPS_BY_NAME[op_name]
    code = [[op.code, 0, 0, out] for out in range(N_MATRICES)]
    memory = [np.zeros((N_SCALARS, n_tasks)), np.zeros((N_VECTORS, n_tasks, n_features)),
              np.zeros((N_MATRICES, n_tasks, n_features, n_features))]
    matrices = run_kernel(code, [consts] * N_MATRICES, memory,
                          initial_streams(seed, n_tasks))[2]
    return matrices.ravel()


@settings(max_examples=5)
@given(seed=st.integers(0, 2**64 - 1))
def test_gaussian_statistics(seed):
    draws = _many_draws("MATRIX_GAUSSIAN_SET", (0.5, 2.0, 0.0), seed)
    n = draws.size  # 16384
    assert np.all(np.isfinite(draws))
    # 6-sigma bounds: mean SE = 2/sqrt(n), std SE ~ 2/sqrt(2n).
    assert abs(draws.mean() - 0.5) < 6 * 2.0 / np.sqrt(n)
    assert abs(draws.std() - 2.0) < 6 * 2.0 / np.sqrt(2 * n)
    within_one_sigma = np.mean(np.abs(draws - 0.5) < 2.0)
    assert abs(within_one_sigma - 0.6827) < 6 * np.sqrt(0.6827 * 0.3173 / n)
    assert len(np.unique(draws)) > 0.99 * n


@settings(max_examples=5)
@given(seed=st.integers(0, 2**64 - 1), swap=st.booleans())
def test_uniform_statistics(seed, swap):
    draws = _many_draws("MATRIX_UNIFORM_SET", (3.0, -1.0, 0.0) if swap else (-1.0, 3.0, 0.0), seed)
    n = draws.size
    sigma = 4.0 / np.sqrt(12.0)
    assert draws.min() >= -1.0 and draws.max() < 3.0
    assert draws.min() < -0.99 and draws.max() > 2.99
    assert abs(draws.mean() - 1.0) < 6 * sigma / np.sqrt(n)
    assert abs(draws.std() - sigma) < 6 * sigma * np.sqrt(0.8 / (4 * n))
    counts, _ = np.histogram(draws, bins=8, range=(-1.0, 3.0))
    assert np.all(np.abs(counts - n / 8) < 6 * np.sqrt(n / 8))


RANDOM_OPS = [op for op in OPS if op.random]


@pytest.mark.parametrize("op", RANDOM_OPS, ids=op_id)
@settings(max_examples=10)
@given(seed=st.integers(0, 2**64 - 1), other_seed=st.integers(0, 2**64 - 1))
def test_streams_decide_the_draws(op, seed, other_seed):
    assume(seed != other_seed)
    n_features, bank = 4, "svm".index(op.out)
    consts = (-1.0, 2.0, 0.0) if op.sorted_bounds else (0.5, 1.5, 0.0)
    memory = [np.zeros((N_SCALARS, 4)), np.zeros((N_VECTORS, 4, n_features)),
              np.zeros((N_MATRICES, 4, n_features, n_features))]
    code = [op.code, 0, 0, 1]

    # Tasks 0..2 of one seed and task 0 of another seed: four distinct streams.
    distinct = np.array([*initial_streams(seed, 3), stream_seed(np.uint64(other_seed), np.uint64(0))],
                        dtype=np.uint64)
    values = run_kernel(code, consts, memory, distinct)[bank][1]
    flat = values.reshape(4, -1)
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.array_equal(flat[i], flat[j]), (i, j)

    # Equal states draw identical values in every task.
    same = np.full(4, stream_seed(np.uint64(seed), np.uint64(2)), dtype=np.uint64)
    values_same = run_kernel(code, consts, memory, same)[bank][1]
    for t in range(1, 4):
        np.testing.assert_array_equal(values_same[t], values_same[0])
    # ... and they are the draws task 2 of the first run made: a task's draws do not
    # depend on the other tasks.
    np.testing.assert_array_equal(values_same[0], values[2])
