"""Mutation operators on programs in slots (evozero.programs.mutation)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evozero.errors import EvozeroError
from evozero.programs.instruction import Instruction, check_instruction
from evozero.programs.mutation import (
    CONSTANT_RULES,
    LOGNORMAL,
    MUTATION_NAMES,
    UNIFORM_SCALE,
    alter_value,
    mutate,
    mutation_arrays,
    random_program_slots,
)
from evozero.programs.program import Program
from evozero.programs.slots import program_slots, slot_offsets, slots_program
from ops.codes import (
    ALTER_PARAM,
    IDENTITY,
    INSERT_INSTRUCTION,
    RANDOMIZE_ALGORITHM,
    RANDOMIZE_COMPONENT,
    RANDOMIZE_INSTRUCTION,
    REMOVE_INSTRUCTION,
    TRADE_INSTRUCTION,
)
from ops.kinds import (
    CONST_KIND,
    IN1_KIND,
    IN2_KIND,
    NUM_CONSTANTS,
    NUM_OPS,
    OP_ARRAYS,
    OUT_KIND,
    SORTED_BOUNDS,
)
from ops.rng import stream_seed

ALL_OPS = list(range(NUM_OPS))
# numba does not check indices: a write past the last block lands in these guard rows
# (the arrays mutate sees are views of longer buffers) instead of silently in the heap.
GUARD_ROWS = 2
GUARD_CODE = -7
GUARD_CONSTANT = 7.25
SPREAD = 3
FRACTION = 2


def _state(seed):
    return np.array([stream_seed(np.uint64(seed), np.uint64(0))], dtype=np.uint64)


class Slots:
    """One program in slots plus everything mutate needs."""

    def __init__(self, max_sizes, min_sizes, init_sizes, allowed_lists, frozen, memory, seed):
        self.description = (f"Slots(max_sizes={list(max_sizes)}, min_sizes={list(min_sizes)}, "
                            f"init_sizes={list(init_sizes)}, allowed={allowed_lists}, "
                            f"frozen={list(frozen)}, memory={memory}, seed={seed})")
        self.max_sizes = np.array(max_sizes, dtype=np.int64)
        self.min_sizes = np.array(min_sizes, dtype=np.int64)
        self.offsets = slot_offsets(max_sizes)
        total = int(sum(max_sizes))
        self.code_buffer = np.full((total + GUARD_ROWS, 4), GUARD_CODE, dtype=np.int64)
        self.constants_buffer = np.full((total + GUARD_ROWS, 3), GUARD_CONSTANT)
        self.code_buffer[:total] = 0
        self.constants_buffer[:total] = 0.0
        self._view_buffers()
        self.lengths = np.zeros(3, dtype=np.int64)
        self.allowed = np.zeros((3, NUM_OPS), dtype=np.int64)
        counts = []
        for c, ops in enumerate(allowed_lists):
            self.allowed[c, :len(ops)] = ops
            counts.append(len(ops))
        self.counts = np.array(counts, dtype=np.int64)
        self.num_s, self.num_v, self.num_m = memory
        self.state = _state(seed)
        # Frozen components get random content too (from their list) to check it is kept.
        random_program_slots(self.code, self.constants, self.offsets, self.lengths,
                             np.array(init_sizes, dtype=np.int64), self.allowed, self.counts,
                             (self.num_s, self.num_v, self.num_m), self.state, 0, OP_ARRAYS)
        self.counts[np.array(frozen, dtype=bool)] = 0

    def _view_buffers(self):
        total = len(self.code_buffer) - GUARD_ROWS
        self.code = self.code_buffer[:total]
        self.constants = self.constants_buffer[:total]

    def __repr__(self):
        return f"{self.description} with lengths {self.lengths.tolist()}"

    def copy(self):
        other = object.__new__(Slots)
        for name, value in vars(self).items():
            setattr(other, name, value.copy() if isinstance(value, np.ndarray) else value)
        other._view_buffers()
        return other

    def mutate(self, kinds, weights=None, rule=LOGNORMAL):
        kinds = np.array(kinds, dtype=np.int64)
        weights = np.ones(len(kinds)) if weights is None else np.array(weights, dtype=np.float64)
        return mutate(self.code, self.constants, self.offsets, self.lengths, self.min_sizes,
                      self.max_sizes, self.allowed, self.counts, kinds, weights, rule,
                      (self.num_s, self.num_v, self.num_m), self.state, 0, OP_ARRAYS)

    def end(self, c):
        return int(self.offsets[c + 1]) if c < 2 else len(self.code)

    def mutable(self):
        return [c for c in range(3) if self.counts[c] > 0]

    def rows(self, c):
        start = int(self.offsets[c])
        return [tuple(int(x) for x in self.code[r]) + tuple(float(x) for x in self.constants[r])
                for r in range(start, start + int(self.lengths[c]))]

    def program(self):
        return slots_program(self.code, self.constants, self.offsets, self.lengths)


def simple_slots(allowed_setup, length=1, memory=(50, 50, 50), seed=0, max_size=4, min_size=0):
    """Only setup is mutable; predict and learn are empty and frozen."""
    return Slots([max_size, 0, 0], [min_size, 0, 0], [length, 0, 0], [allowed_setup, [], []],
                 [False, True, True], memory, seed)


def _length(draw, low, high):
    # The edges (empty, at the minimum, full) are where insert and remove go wrong.
    return draw(st.one_of(st.sampled_from([low, high]), st.integers(low, high)))


@st.composite
def slot_programs(draw):
    """Random slots: any sizes, lengths anywhere in 0..max (below the minimum is legal)."""
    memory = (draw(st.integers(2, 6)), draw(st.integers(2, 5)), draw(st.integers(1, 4)))
    max_sizes = [draw(st.integers(0, 6)) for _ in range(3)]
    min_sizes = [draw(st.integers(0, m)) for m in max_sizes]
    init_sizes = [_length(draw, lo, hi) if draw(st.integers(0, 4)) else _length(draw, 0, hi)
                  for lo, hi in zip(min_sizes, max_sizes)]
    allowed = [draw(st.one_of(st.just(ALL_OPS),
                              st.lists(st.integers(0, NUM_OPS - 1), min_size=1, max_size=6,
                                       unique=True)))
               for _ in range(3)]
    frozen = [draw(st.integers(0, 4)) == 0 for _ in range(3)]
    seed = draw(st.integers(0, 2**32))
    return Slots(max_sizes, min_sizes, init_sizes, allowed, frozen, memory, seed)


@pytest.fixture(scope="module", autouse=True)
def warm_kernels():
    """Compile (or load) every kernel with the argument types the tests use."""
    slots = Slots([3, 3, 3], [0, 0, 0], [2, 2, 2], [ALL_OPS] * 3, [False] * 3, (4, 4, 2), 0)
    for kind in MUTATION_NAMES.values():
        slots.mutate([kind])
    alter_value(1.0, 1, LOGNORMAL, slots.state, 0)
    slots.program()
    yield


# --- validity ------------------------------------------------------------------------

def check_valid(after: Slots, before: Slots):
    """Every component of ``after`` is a valid program, inside its block and its bounds."""
    assert (after.code_buffer[-GUARD_ROWS:] == GUARD_CODE).all(), "wrote past the last block"
    assert (after.constants_buffer[-GUARD_ROWS:] == GUARD_CONSTANT).all(), \
        "wrote past the last block"
    sizes = {1: after.num_s, 2: after.num_v, 3: after.num_m}
    low_out = {1: 1, 2: 1, 3: 0}
    for c in range(3):
        length = int(after.lengths[c])
        # a component that started below its minimum may stay there, but never shrinks
        assert min(int(after.min_sizes[c]), int(before.lengths[c])) <= length <= after.max_sizes[c]
        if after.counts[c] == 0:
            assert after.rows(c) == before.rows(c), "a frozen component changed"
            continue
        allowed = set(after.allowed[c, :after.counts[c]].tolist())
        start = int(after.offsets[c])
        for r in range(start, start + length):
            op, in1, in2, out = (int(x) for x in after.code[r])
            constants = tuple(float(x) for x in after.constants[r])
            # op known, unused fields 0, outputs past s0/v0, constants finite, fractions in [0, 1)
            check_instruction(Instruction(op, in1, in2, out, constants))
            assert op in allowed
            for kind, address in ((IN1_KIND[op], in1), (IN2_KIND[op], in2)):
                if kind:
                    assert 0 <= address < sizes[kind]
            if OUT_KIND[op]:
                assert low_out[OUT_KIND[op]] <= out < sizes[OUT_KIND[op]]
            for k in range(3):
                if CONST_KIND[op, k] == SPREAD:
                    assert constants[k] >= 0.0, "a std became negative"
        assert not after.code[start + length:after.end(c)].any(), "a row past the length is set"
        assert not after.constants[start + length:after.end(c)].any(), \
            "a row past the length is set"


def changed_components(before: Slots, after: Slots):
    return {c for c in range(3)
            if before.lengths[c] != after.lengths[c] or before.rows(c) != after.rows(c)}


def changed_fields(old_row, new_row):
    """Indices of the fields (op, in1, in2, out, c0, c1, c2) that differ; the bounds of a
    sorted-bounds op count as one field (index 4) if one of the old bounds survives."""
    fields = {i for i in range(7) if old_row[i] != new_row[i]}
    op = old_row[0]
    if SORTED_BOUNDS[op] and fields & {4, 5}:
        assert set(old_row[4:6]) & set(new_row[4:6]), "both bounds changed"
        assert new_row[4] <= new_row[5], "bounds not sorted after altering"
        fields = (fields - {4, 5}) | {4}
    return fields


def _without(rows, i):
    return rows[:i] + rows[i + 1:]


def check_kind(kind, before: Slots, after: Slots):
    """``after`` differs from ``before`` exactly as one mutation of ``kind`` may make it."""
    changed = changed_components(before, after)
    assert len(changed) <= 1 or kind == RANDOMIZE_ALGORITHM
    assert changed <= set(before.mutable())
    same_lengths = np.array_equal(before.lengths, after.lengths)
    if kind == IDENTITY:
        assert not changed
        assert np.array_equal(before.code_buffer, after.code_buffer)
        assert np.array_equal(before.constants_buffer, after.constants_buffer)
    elif kind in (ALTER_PARAM, RANDOMIZE_INSTRUCTION):
        assert same_lengths
        for c in changed:
            diffs = [(o, n) for o, n in zip(before.rows(c), after.rows(c)) if o != n]
            assert len(diffs) == 1
            if kind == ALTER_PARAM:
                old, new = diffs[0]
                assert OUT_KIND[old[0]] != 0, "a NO_OP was altered"
                assert len(changed_fields(old, new)) == 1
                assert old[0] == new[0]
    elif kind in (RANDOMIZE_COMPONENT, RANDOMIZE_ALGORITHM):
        assert same_lengths
    elif kind == TRADE_INSTRUCTION:
        assert same_lengths
        for c in changed:
            old, new = before.rows(c), after.rows(c)
            assert any(_without(new, i) == _without(old, j)
                       for i in range(len(new)) for j in range(len(old)))
    elif kind == INSERT_INSTRUCTION:
        for c in changed:
            old, new = before.rows(c), after.rows(c)
            assert len(new) == len(old) + 1
            assert any(_without(new, i) == old for i in range(len(new)))
        mutable = before.mutable()
        if mutable and all(before.lengths[c] < before.max_sizes[c] for c in mutable):
            assert len(changed) == 1, "an insert with room everywhere did nothing"
        if not changed:
            assert same_lengths
    elif kind == REMOVE_INSTRUCTION:
        for c in changed:
            old, new = before.rows(c), after.rows(c)
            assert len(new) == len(old) - 1
            assert any(_without(old, i) == new for i in range(len(old)))
        mutable = before.mutable()
        if mutable and all(before.lengths[c] > before.min_sizes[c] for c in mutable):
            assert len(changed) == 1, "a remove above the minimum everywhere did nothing"
        if not changed:
            assert same_lengths


def check_slots_round_trip(slots: Slots):
    """The slots hold a Program, and program_slots gives the same arrays back."""
    program = slots.program()
    assert program.sizes == tuple(int(x) for x in slots.lengths)
    assert np.array_equal(slot_offsets(slots.max_sizes.tolist()), slots.offsets)
    code, constants, lengths = program_slots(program, slots.offsets, len(slots.code))
    assert np.array_equal(code, slots.code) and np.array_equal(constants, slots.constants)
    assert np.array_equal(lengths, slots.lengths)


@pytest.mark.parametrize("kind", sorted(MUTATION_NAMES.values()))
@settings(max_examples=40)
@given(slots=slot_programs(), steps=st.integers(1, 6), rule=st.sampled_from([0, 1]))
def test_each_mutation_keeps_programs_valid(kind, slots, steps, rule):
    for _ in range(steps):
        before = slots.copy()
        assert slots.mutate([kind], rule=rule) == kind
        check_valid(slots, before)
        check_kind(kind, before, slots)
        check_slots_round_trip(slots)


@settings(max_examples=30)
@given(slots=slot_programs(), rule=st.sampled_from([0, 1]))
def test_mixed_mutations_keep_programs_valid(slots, rule):
    kinds, weights = mutation_arrays({name: 1 + (i % 3) for i, name in enumerate(MUTATION_NAMES)})
    for _ in range(20):
        before = slots.copy()
        kind = slots.mutate(kinds, weights, rule=rule)
        assert kind in MUTATION_NAMES.values()
        check_valid(slots, before)
        check_kind(kind, before, slots)
    check_slots_round_trip(slots)


@settings(max_examples=30)
@given(slots=slot_programs(),
       weights=st.lists(st.integers(0, 3), min_size=8, max_size=8).filter(any),
       rule=st.sampled_from([0, 1]))
def test_same_state_gives_same_mutations(slots, weights, rule):
    twin = slots.copy()
    kinds = sorted(MUTATION_NAMES.values())
    drawn = [slots.mutate(kinds, weights, rule) for _ in range(15)]
    assert drawn == [twin.mutate(kinds, weights, rule) for _ in range(15)]
    for name in ("code_buffer", "constants_buffer", "lengths", "state"):
        assert np.array_equal(getattr(slots, name), getattr(twin, name))


def test_different_seeds_give_different_programs():
    def build(seed):
        return Slots([6, 6, 6], [0, 1, 0], [3, 3, 3], [ALL_OPS, [1, 2, 27], [5, 56, 60]],
                     [False, False, False], (5, 4, 3), seed)
    first, second = build(99), build(100)
    assert first.program() != second.program()
    kinds, weights = mutation_arrays({"alter_param": 1})
    second.code[:] = first.code
    second.constants[:] = first.constants
    for _ in range(5):
        first.mutate(kinds, weights)
        second.mutate(kinds, weights)
    assert first.program() != second.program()


def test_insert_at_max_writes_nothing():
    # Regression: an insert into a full block used to write into the next block (or past
    # the arrays, for learn) and grow the length past the maximum.
    for max_sizes in ([2, 2, 2], [0, 0, 3], [3, 0, 0], [1, 4, 1]):
        slots = Slots(max_sizes, [0, 0, 0], max_sizes, [ALL_OPS] * 3, [False] * 3, (4, 4, 2), 5)
        before = slots.copy()
        for _ in range(30):
            slots.mutate([INSERT_INSTRUCTION])
        check_valid(slots, before)
        assert np.array_equal(slots.code_buffer, before.code_buffer)
        assert np.array_equal(slots.constants_buffer, before.constants_buffer)
        assert np.array_equal(slots.lengths, before.lengths)


def test_below_minimum_is_legal_and_never_shrinks():
    slots = simple_slots([56], length=1, min_size=3, max_size=5)
    before = slots.copy()
    for _ in range(10):
        slots.mutate([REMOVE_INSTRUCTION])
    assert slots.rows(0) == before.rows(0)
    slots.mutate([INSERT_INSTRUCTION])
    slots.mutate([TRADE_INSTRUCTION])
    assert slots.lengths[0] == 2
    check_valid(slots, before)


def _layout_error(slots: Slots, code=None, constants=None, offsets=None, lengths=None,
                  max_sizes=None, allowed=None, counts=None, slot=0):
    """mutate() with some of ``slots``' arrays replaced must raise and draw nothing."""
    state_before = slots.state.copy()
    with pytest.raises(ValueError, match="mutate"):
        mutate(slots.code if code is None else code,
               slots.constants if constants is None else constants,
               slots.offsets if offsets is None else offsets,
               slots.lengths if lengths is None else lengths, slots.min_sizes,
               slots.max_sizes if max_sizes is None else max_sizes,
               slots.allowed if allowed is None else allowed,
               slots.counts if counts is None else counts, np.array([INSERT_INSTRUCTION]),
               np.ones(1), LOGNORMAL, (slots.num_s, slots.num_v, slots.num_m), slots.state, slot,
               OP_ARRAYS)
    assert np.array_equal(slots.state, state_before), "drew before checking"


def test_broken_layouts_are_refused_before_any_write():
    slots = Slots([2, 2, 2], [0, 0, 0], [1, 1, 1], [ALL_OPS] * 3, [False] * 3, (4, 4, 2), 8)
    before = slots.copy()
    _layout_error(slots, lengths=np.array([1, 3, 1]))                 # past its max
    _layout_error(slots, lengths=np.array([1, 1, -1]))
    _layout_error(slots, max_sizes=np.array([2, 3, 2]))               # overruns learn's block
    _layout_error(slots, max_sizes=np.array([2, 2, 3]))               # overruns the arrays
    _layout_error(slots, offsets=np.array([0, 1, 4]))                 # setup overruns predict
    _layout_error(slots, offsets=np.array([-1, 2, 4]))
    _layout_error(slots, slot=1)
    _layout_error(slots, constants=slots.constants[:5])
    _layout_error(slots, code=np.zeros((6, 3), dtype=np.int64))
    _layout_error(slots, counts=np.array([1, 1, NUM_OPS + 1]))
    bad_allowed = slots.allowed.copy()
    bad_allowed[0, 0] = NUM_OPS
    _layout_error(slots, allowed=bad_allowed)
    assert np.array_equal(slots.code_buffer, before.code_buffer)
    assert np.array_equal(slots.constants_buffer, before.constants_buffer)


def test_randomize_component_touches_one_component_and_keeps_lengths():
    slots = Slots([5, 5, 5], [0, 0, 0], [5, 5, 5], [ALL_OPS] * 3, [False] * 3, (5, 5, 3), 3)
    seen = set()
    for _ in range(60):
        before = slots.copy()
        slots.mutate([RANDOMIZE_COMPONENT])
        changed = changed_components(before, slots)
        assert len(changed) == 1
        assert np.array_equal(before.lengths, slots.lengths)
        seen |= changed
    assert seen == {0, 1, 2}


def test_all_frozen_does_nothing():
    slots = Slots([3, 3, 3], [0, 0, 0], [2, 2, 2], [ALL_OPS] * 3, [True] * 3, (4, 4, 2), 1)
    for kind in MUTATION_NAMES.values():
        before = slots.copy()
        assert slots.mutate([kind]) == kind
        assert np.array_equal(before.code, slots.code)
        assert np.array_equal(before.constants, slots.constants)
        assert np.array_equal(before.lengths, slots.lengths)


def test_empty_component_and_bounds():
    slots = simple_slots(ALL_OPS, length=0, max_size=2)
    for kind in (ALTER_PARAM, RANDOMIZE_INSTRUCTION, REMOVE_INSTRUCTION, TRADE_INSTRUCTION,
                 RANDOMIZE_COMPONENT):
        slots.mutate([kind])
        assert slots.lengths[0] == 0
    slots.mutate([INSERT_INSTRUCTION])
    slots.mutate([INSERT_INSTRUCTION])
    assert slots.lengths[0] == 2  # reaches max (no off-by-one)
    slots.mutate([INSERT_INSTRUCTION])
    assert slots.lengths[0] == 2
    slots.min_sizes[0] = 1
    slots.mutate([REMOVE_INSTRUCTION])
    slots.mutate([REMOVE_INSTRUCTION])
    assert slots.lengths[0] == 1
    before = slots.copy()
    slots.mutate([TRADE_INSTRUCTION])  # at min with one instruction: replaced, length kept
    assert slots.lengths[0] == 1 and slots.rows(0) != before.rows(0)


def test_trade_never_removes_its_insertion():
    # With one instruction, trading must replace it: the old row is removed, the new kept.
    slots = simple_slots([56], length=1, max_size=1)
    for _ in range(50):
        before = slots.rows(0)
        slots.mutate([TRADE_INSTRUCTION])
        assert slots.lengths[0] == 1
        assert slots.rows(0) != before


def test_insert_positions_are_uniform():
    counts = np.zeros(4)
    for seed in range(1200):
        slots = simple_slots([56], length=3, seed=seed, max_size=4)
        before = slots.rows(0)
        slots.mutate([INSERT_INSTRUCTION])
        new = slots.rows(0)
        positions = [i for i in range(4) if new[:i] + new[i + 1:] == before]
        counts[positions[0]] += 1
    assert np.all(np.abs(counts / counts.sum() - 0.25) < 0.05)


# --- weights -------------------------------------------------------------------------

def test_weights_are_respected():
    slots = Slots([20, 20, 20], [0, 0, 0], [10, 10, 10], [ALL_OPS] * 3, [False] * 3, (4, 4, 2), 7)
    kinds, weights = mutation_arrays({"remove_instruction": 2, "insert_instruction": 1})
    drawn = np.array([slots.mutate(kinds, weights) for _ in range(3000)])
    removes = np.sum(drawn == REMOVE_INSTRUCTION)
    inserts = np.sum(drawn == INSERT_INSTRUCTION)
    assert removes + inserts == 3000
    assert 1.8 < removes / inserts < 2.2


def test_zero_weights_never_drawn_and_no_weight_is_minus_one():
    slots = simple_slots(ALL_OPS, length=2)
    drawn = {slots.mutate([IDENTITY, REMOVE_INSTRUCTION, INSERT_INSTRUCTION], [0.0, 0.0, 1.0])
             for _ in range(200)}
    assert drawn == {INSERT_INSTRUCTION}
    before = slots.copy()
    assert slots.mutate([IDENTITY], [0.0]) == -1
    assert slots.mutate([]) == -1
    assert np.array_equal(before.state, slots.state)


def test_mutation_arrays_validates():
    kinds, weights = mutation_arrays({"alter_param": 1, "identity": 0.5})
    assert kinds.tolist() == [ALTER_PARAM, IDENTITY] and weights.tolist() == [1.0, 0.5]
    for bad in ({"nope": 1}, {"identity": -1}, {"identity": 0}, {"identity": float("nan")},
                {"identity": "x"}):
        with pytest.raises(EvozeroError):
            mutation_arrays(bad)
    assert sorted(MUTATION_NAMES.values()) == list(range(8))
    assert CONSTANT_RULES == {"lognormal": 0, "uniform_scale": 1}


# --- alter param proportions (spec 2.6 and the 2.5 table) ----------------------------

def _field_shares(op, draws=2000):
    base = simple_slots([op], length=1, memory=(1000, 1000, 1000), seed=op)
    counts = np.zeros(7)
    slots = base.copy()
    for _ in range(draws):
        slots.code[:] = base.code
        slots.constants[:] = base.constants
        slots.mutate([ALTER_PARAM])
        old, new = base.rows(0)[0], slots.rows(0)[0]
        for f in changed_fields(old, new):
            counts[f] += 1
    return counts / draws


@pytest.mark.parametrize("op, expected", [
    (56, {3: 1 / 2, 4: 1 / 2}),
    (57, {3: 1 / 2, 4: 1 / 4, 5: 1 / 4}),
    (58, {3: 1 / 2, 4: 1 / 6, 5: 1 / 6, 6: 1 / 6}),
    (62, {3: 1 / 2, 4: 1 / 4, 5: 1 / 4}),
    (64, {3: 1 / 2, 4: 1 / 4, 5: 1 / 4}),
    (60, {3: 1 / 2, 4: 1 / 2}),          # uniform: low/high counted together
    (5, {1: 1 / 2, 3: 1 / 2}),           # 1-input op
    (27, {1: 1 / 3, 2: 1 / 3, 3: 1 / 3}),  # 2-input op
])
def test_alter_param_shares(op, expected):
    shares = _field_shares(op)
    for field in range(7):
        assert abs(shares[field] - expected.get(field, 0.0)) < 0.04, (field, shares)


def test_alter_param_on_no_op_does_nothing():
    slots = simple_slots([0], length=3)
    before = slots.copy()
    for _ in range(20):
        slots.mutate([ALTER_PARAM])
    assert np.array_equal(before.code, slots.code)
    assert np.array_equal(before.constants, slots.constants)


# --- constant rules ------------------------------------------------------------------

def _value_ratios(rule, n=4000):
    """Ratios new / old of a SCALAR_CONST_SET value over many ALTER_PARAMs."""
    slots = simple_slots([56], length=1, memory=(1000, 2, 1), seed=11)
    ratios = []
    for _ in range(n):
        slots.constants[0, 0] = 0.5
        slots.mutate([ALTER_PARAM], rule=rule)
        if slots.constants[0, 0] != 0.5:
            ratios.append(slots.constants[0, 0] / 0.5)
    return np.array(ratios)


def test_lognormal_rule():
    ratios = _value_ratios(LOGNORMAL)
    flips = ratios == -1.0
    assert abs(flips.mean() - 0.1) < 0.02
    logs = np.log(ratios[~flips])
    assert abs(logs.mean()) < 0.06
    assert abs(logs.std() - 1.0) < 0.06


def test_uniform_scale_rule():
    ratios = _value_ratios(UNIFORM_SCALE)
    assert np.all((np.abs(ratios) >= 0.5) & (np.abs(ratios) <= 2.0))
    assert abs((ratios < 0).mean() - 0.1) < 0.02
    assert abs(np.abs(ratios).mean() - 1.25) < 0.03


@pytest.mark.parametrize("rule", [LOGNORMAL, UNIFORM_SCALE])
def test_alter_value_kinds(rule):
    state = _state(5)
    fractions = [alter_value(0.3, 2, rule, state, 0) for _ in range(3000)]
    assert all(0.0 <= f < 1.0 for f in fractions)
    assert abs(np.mean(fractions) - 0.5) < 0.03
    spread = 0.4
    for _ in range(3000):
        spread = alter_value(spread, 3, rule, state, 0)
        assert spread >= 0.0 and math.isfinite(spread)
    assert alter_value(0.0, 3, rule, state, 0) == 0.0
    for _ in range(200):
        zero = alter_value(0.0, 1, rule, state, 0)
        assert zero == 0.0 and not math.copysign(1.0, zero) < 0
    big = 1e29
    for _ in range(500):
        big = alter_value(big, 1, rule, state, 0)
        assert math.isfinite(big) and abs(big) <= 1e30


@pytest.mark.parametrize("rule", [LOGNORMAL, UNIFORM_SCALE])
def test_spreads_and_bounds_after_many_alters(rule):
    slots = Slots([8, 0, 0], [0, 0, 0], [8, 0, 0], [[59, 60, 61, 62, 63, 64, 57, 58], [], []],
                  [False, True, True], (3, 3, 2), 21)
    for _ in range(3000):
        before = slots.constants.copy()
        slots.mutate([ALTER_PARAM], rule=rule)
        for r in range(8):
            op = slots.code[r, 0]
            if CONST_KIND[op, 1] == SPREAD:
                assert slots.constants[r, 1] >= 0.0
            if SORTED_BOUNDS[op] and not np.array_equal(before[r], slots.constants[r]):
                assert slots.constants[r, 0] <= slots.constants[r, 1]
            for k in range(NUM_CONSTANTS[op]):
                if CONST_KIND[op, k] == FRACTION:
                    assert 0.0 <= slots.constants[r, k] < 1.0
            assert np.all(np.isfinite(slots.constants[r]))


# --- random programs and slot conversion ---------------------------------------------

def test_random_program_slots():
    slots = Slots([4, 4, 4], [0, 0, 0], [2, 3, 4], [[1, 2], [56], [27]], [False] * 3, (4, 4, 2), 3)
    assert slots.lengths.tolist() == [2, 3, 4]
    assert set(slots.code[0:2, 0]) <= {1, 2}
    assert set(slots.code[4:7, 0]) == {56}
    assert set(slots.code[8:12, 0]) == {27}
    assert not slots.code[2:4].any() and not slots.code[7].any()
    # frozen components (no allowed ops) get no-ops
    empty = Slots([3, 3, 3], [0, 0, 0], [2, 2, 2], [ALL_OPS, [], ALL_OPS], [False] * 3, (4, 4, 2), 3)
    assert not empty.code[3:6].any() and not empty.constants[3:6].any()
    assert empty.lengths.tolist() == [2, 2, 2]
    with pytest.raises(ValueError):
        Slots([1, 3, 3], [0, 0, 0], [2, 2, 2], [ALL_OPS] * 3, [False] * 3, (4, 4, 2), 3)


@settings(max_examples=60)
@given(slots=slot_programs(), extra=st.lists(st.integers(0, 3), min_size=3, max_size=3))
def test_slots_round_trip(slots, extra):
    program = slots.program()
    offsets = slot_offsets(slots.max_sizes.tolist())
    code, constants, lengths = program_slots(program, offsets, len(slots.code))
    assert np.array_equal(code, slots.code)
    assert np.array_equal(constants, slots.constants)
    assert np.array_equal(offsets, slots.offsets) and np.array_equal(lengths, slots.lengths)
    assert slots_program(code, constants, offsets, lengths) == program
    bigger = [int(m) + e for m, e in zip(slots.max_sizes, extra)]
    wide = slot_offsets(bigger)
    assert slots_program(*program_slots(program, wide, sum(bigger))[:2], wide, lengths) == program
    assert Program.parse(str(program)) == program
