"""Mutation operators (AutoML-Zero spec 2.5, 2.6 and 5.2), in numba, on programs in slots.

A program being evolved lives in a fixed-capacity *slot* layout: ``code`` int64
(capacity_total, 4) rows ``(op, in1, in2, out)``, ``constants`` float64
(capacity_total, 3), ``offsets`` int64 (3,) and ``lengths`` int64 (3,). Component c
(0 setup, 1 predict, 2 learn) occupies rows ``offsets[c] .. offsets[c] + lengths[c] - 1``
of a block of ``max_sizes[c]`` rows (so ``offsets`` are the cumulative max sizes, and
the last block ends at the last row of ``code``). Rows of a block past its length are
kept all-zero, and every written instruction has its unused operand fields and constants
at 0, so equal programs have equal arrays.

Each length may be anything in ``0 .. max_sizes[c]``, also below ``min_sizes[c]`` (a
program written by hand, or a minimum raised on resume): removal never takes a component
below its minimum, insertion never past its maximum, and no operator writes outside the
block of the component it mutates. :func:`mutate` raises ValueError, before drawing or
writing anything, when the arrays break this layout (a block overrunning the next one or
the arrays, a length outside ``0 .. max_sizes[c]``, ``slot`` outside ``state``, an
allowed op not in the op tables).

Allowed ops per component come as ``allowed`` int64 (3, K), padded, with
``allowed_counts`` int64 (3,); a count of 0 marks a *frozen* component, which is never
mutated nor randomized.

Decisions (where the reference engine is quirky or the spec leaves a choice):

* :func:`mutate` applies exactly one mutation, its type drawn by weight among ``kinds``
  (zero weights are never drawn) and returns the type id (-1, with nothing changed and no
  draw, if ``kinds`` is empty or no weight is positive). Then every operator, IDENTITY and
  RANDOMIZE_ALGORITHM included, picks a component uniformly among the non-frozen ones;
  if there is none, nothing happens. On an empty component, operators that need an
  existing instruction (alter, randomize instruction, remove, trade) do nothing.
* ALTER_PARAM (spec 2.6) picks an instruction uniformly; NO_OP (an op without an
  output): nothing. Data ops (no inputs; ops 56-64): 1/2 re-draw the output address, 1/2
  alter one constant. 1-input ops: 1/2 re-draw in1, 1/2 re-draw out. 2-input ops: 1/3
  each in1, in2, out. A re-drawn address may equal the old one (as in the reference).
* Altering constants (spec 2.5): the constant is chosen uniformly among the op's
  constants, which reproduces the spec's table (VECTOR_CONST_SET 1/2 index, 1/2 value;
  MATRIX_CONST_SET 1/3 row, 1/3 column, 1/3 value; gaussian 1/2 mean, 1/2 std; uniform
  1/2 low, 1/2 high). By constant kind:

  - index fraction: re-drawn U[0, 1) under both rules;
  - value, ``constant_rule`` 0 = LOGNORMAL (reference code): with probability 0.1 the
    sign flips, otherwise x becomes x * exp(z), z ~ N(0, 1) (0 stays 0);
    ``constant_rule`` 1 = UNIFORM_SCALE (paper S3): x becomes x * U[0.5, 2.0) and then,
    with probability 0.1, its sign flips;
  - spread (a std): the same scaling without any flip (x * exp(z) or x * U[0.5, 2)),
    so a non-negative std stays non-negative.

  Every altered value or spread is clipped to [-1e30, 1e30] (it stays finite) and a
  negative zero is stored as +0.0. After altering low or high of an op with sorted
  bounds (the uniform ops), the two are re-ordered so that low <= high.
* RANDOMIZE_INSTRUCTION replaces a uniformly chosen instruction by a fresh random one
  (op from the component's allowed list). RANDOMIZE_COMPONENT re-randomizes every
  instruction of the component keeping its length; RANDOMIZE_ALGORITHM does so for every
  non-frozen component.
* INSERT_INSTRUCTION respects ``max_sizes`` exactly (a component may reach its maximum,
  unlike the reference's off-by-one): if length < max, a random instruction is inserted
  at a position uniform in 0..length, later rows shifting down into the block's first
  free row; at the maximum nothing happens.
* REMOVE_INSTRUCTION: if length > min, a uniformly chosen instruction is deleted, later
  rows shifting up, the freed last row zeroed; at or below the minimum nothing happens.
* TRADE_INSTRUCTION = insert at a position p uniform in 0..length, then delete one of
  the length *old* instructions chosen uniformly (never the one just inserted, unlike the
  reference). The length never changes, so it stays within its bounds and the block's
  capacity is never exceeded (it is done as remove-then-insert at the equivalent
  position); on an empty component nothing happens.

All randomness comes from ``state[slot]`` (a splitmix64 stream, :mod:`ops.rng`), so the
same state gives the same mutation. Output addresses need ``num_s >= 2``, ``num_v >= 2``
and ``num_m >= 1`` (outputs are s1.., v1.., m0..). The operators keep a valid program
valid (ops from the allowed lists, addresses in range, finite constants, zero rows past
each length); they are not meant to repair an invalid one.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from evozero.errors import EvozeroError
from evozero.programs.instruction import first_problem
from evozero.programs.program import COMPONENTS
from evozero.programs.randomize import draw_address, draw_int, random_op, randomize_row, randomize_rows
from evozero.programs.slots import slot_offsets
from ops.codes import (
    ALTER_PARAM,
    FRACTION_KIND,
    IDENTITY,
    INSERT_INSTRUCTION,
    NO_CONSTANT,
    NONE_KIND,
    RANDOMIZE_ALGORITHM,
    RANDOMIZE_COMPONENT,
    RANDOMIZE_INSTRUCTION,
    REMOVE_INSTRUCTION,
    SPREAD_KIND,
    TRADE_INSTRUCTION,
    VALUE_KIND,
)
from ops.jit import jit
from ops.kinds import IN1_KIND, IN2_KIND, OUT_KIND, OpArrays
from ops.rng import next_normal, next_uniform
from ops.table import OPS

MUTATION_NAMES = {
    "alter_param": ALTER_PARAM,
    "randomize_instruction": RANDOMIZE_INSTRUCTION,
    "randomize_component": RANDOMIZE_COMPONENT,
    "identity": IDENTITY,
    "insert_instruction": INSERT_INSTRUCTION,
    "remove_instruction": REMOVE_INSTRUCTION,
    "trade_instruction": TRADE_INSTRUCTION,
    "randomize_algorithm": RANDOMIZE_ALGORITHM,
}

LOGNORMAL = 0
UNIFORM_SCALE = 1
CONSTANT_RULES = {"lognormal": LOGNORMAL, "uniform_scale": UNIFORM_SCALE}

FLIP_PROBABILITY = 0.1
CONSTANT_LIMIT = 1e30


# --- constants --------------------------------------------------------------------------

@jit
def _finite(value):
    if value > CONSTANT_LIMIT:
        return CONSTANT_LIMIT
    if value < -CONSTANT_LIMIT:
        return -CONSTANT_LIMIT
    if value == 0.0:
        return 0.0  # no negative zero
    return value


@jit
def alter_value(value: float, kind: int, rule: int, state: np.ndarray, slot: int) -> float:
    """The altered form of one constant of ``kind`` (1 value, 2 fraction, 3 spread).

    ``rule`` 0 = lognormal (reference), 1 = uniform_scale (paper); see the module docstring.
    Any other ``kind`` (0 = unused) returns ``value`` unchanged.
    """
    if kind == FRACTION_KIND:
        return next_uniform(state, slot)
    if kind != VALUE_KIND and kind != SPREAD_KIND:
        return value
    if rule == UNIFORM_SCALE:
        value = value * (0.5 + 1.5 * next_uniform(state, slot))
        if kind == VALUE_KIND and next_uniform(state, slot) < FLIP_PROBABILITY:
            value = -value
    else:
        if kind == VALUE_KIND and next_uniform(state, slot) < FLIP_PROBABILITY:
            value = -value
        else:
            value = value * math.exp(next_normal(state, slot))
    return _finite(value)


@jit
def alter_constant(constants: np.ndarray, row: int, op: int, rule: int, state: np.ndarray,
                   slot: int, const_kind: np.ndarray, sorted_bounds: np.ndarray) -> None:
    """Alter one constant of the instruction in ``row`` (chosen uniformly among its op's)."""
    count = 0
    for k in range(3):
        if const_kind[op, k] != NO_CONSTANT:
            count += 1
    if count == 0:
        return
    k = draw_int(state, slot, count)
    constants[row, k] = alter_value(constants[row, k], const_kind[op, k], rule, state, slot)
    if sorted_bounds[op] and constants[row, 0] > constants[row, 1]:
        low = constants[row, 1]
        constants[row, 1] = constants[row, 0]
        constants[row, 0] = low


@jit
def alter_param(code: np.ndarray, constants: np.ndarray, row: int, rule: int, state: np.ndarray,
                slot: int, sizes: tuple, op_arrays: OpArrays) -> None:
    """Change one argument of the instruction in ``row`` (spec 2.6)."""
    num_s, num_v, num_m = sizes
    in1_kind, in2_kind, out_kind = op_arrays.in1_kind, op_arrays.in2_kind, op_arrays.out_kind
    op = code[row, 0]
    if out_kind[op] == NONE_KIND:
        return  # NO_OP
    if in1_kind[op] == NONE_KIND:
        # data op: output address or one constant
        if draw_int(state, slot, 2) == 0:
            code[row, 3] = draw_address(state, slot, out_kind[op], num_s, num_v, num_m, True)
        else:
            alter_constant(constants, row, op, rule, state, slot, op_arrays.const_kind,
                           op_arrays.sorted_bounds)
        return
    choices = 3 if in2_kind[op] != NONE_KIND else 2
    choice = draw_int(state, slot, choices)
    if choice == choices - 1:
        code[row, 3] = draw_address(state, slot, out_kind[op], num_s, num_v, num_m, True)
    elif choice == 0:
        code[row, 1] = draw_address(state, slot, in1_kind[op], num_s, num_v, num_m, False)
    else:
        code[row, 2] = draw_address(state, slot, in2_kind[op], num_s, num_v, num_m, False)


# --- rows ---------------------------------------------------------------------------

@jit
def _shift_down(code, constants, start, stop):
    # rows start..stop-1 move to start+1..stop
    for row in range(stop, start, -1):
        for j in range(4):
            code[row, j] = code[row - 1, j]
        for j in range(3):
            constants[row, j] = constants[row - 1, j]


@jit
def _delete_row(code, constants, row, stop):
    # rows row+1..stop-1 move up by one; row stop-1 is zeroed
    for r in range(row, stop - 1):
        for j in range(4):
            code[r, j] = code[r + 1, j]
        for j in range(3):
            constants[r, j] = constants[r + 1, j]
    for j in range(4):
        code[stop - 1, j] = 0
    for j in range(3):
        constants[stop - 1, j] = 0.0


@jit
def _pick_component(allowed_counts, state, slot):
    active = 0
    for c in range(3):
        if allowed_counts[c] > 0:
            active += 1
    if active == 0:
        return -1
    pick = draw_int(state, slot, active)
    for c in range(3):
        if allowed_counts[c] > 0:
            if pick == 0:
                return c
            pick -= 1
    return -1


@jit
def _pick_mutation_type(mutation_types, mutation_weights, state, slot):
    total = 0.0
    last = -1
    for i in range(mutation_types.size):
        if mutation_weights[i] > 0.0:
            total += mutation_weights[i]
            last = i
    if last < 0:
        return -1
    target = next_uniform(state, slot) * total
    cumulative = 0.0
    for i in range(mutation_types.size):
        if mutation_weights[i] > 0.0:
            cumulative += mutation_weights[i]
            if target < cumulative:
                return mutation_types[i]
    return mutation_types[last]


@jit
def _block_end(code, offsets, c):
    return offsets[c + 1] if c < 2 else code.shape[0]


@jit
def _check_layout(code, constants, offsets, lengths, max_sizes, allowed, allowed_counts,
                  state, slot, out_kind):
    # numba does not check indices: a layout that lets a block overrun would corrupt the heap.
    if code.shape[1] != 4 or constants.shape[0] != code.shape[0] or constants.shape[1] != 3:
        raise ValueError("mutate: code must be (n, 4) and constants (n, 3)")
    if slot < 0 or slot >= state.size:
        raise ValueError("mutate: slot is outside state")
    if offsets[0] < 0:
        raise ValueError("mutate: offsets must start at row 0 or later")
    for c in range(3):
        if max_sizes[c] < 0 or offsets[c] + max_sizes[c] > _block_end(code, offsets, c):
            raise ValueError("mutate: a component's block (offset + max size) overruns the next "
                             "block or the arrays")
        if lengths[c] < 0 or lengths[c] > max_sizes[c]:
            raise ValueError("mutate: a length is outside 0..max size")
        if allowed_counts[c] < 0 or allowed_counts[c] > allowed.shape[1]:
            raise ValueError("mutate: an allowed count is outside 0..allowed.shape[1]")
        for i in range(allowed_counts[c]):
            if allowed[c, i] < 0 or allowed[c, i] >= out_kind.size:
                raise ValueError("mutate: an allowed op is not in the op tables")


# --- the mutator ----------------------------------------------------------------------

@jit
def mutate(code: np.ndarray, constants: np.ndarray, offsets: np.ndarray, lengths: np.ndarray,
           min_sizes: np.ndarray, max_sizes: np.ndarray, allowed: np.ndarray,
           allowed_counts: np.ndarray, mutation_types: np.ndarray, mutation_weights: np.ndarray,
           constant_rule: int, sizes: tuple, state: np.ndarray, slot: int,
           op_arrays: OpArrays) -> int:
    """Apply exactly one mutation drawn by weight from ``mutation_types``; return its type id.

    See the module docstring for the operators, the layout it needs and the decisions
    taken. ``lengths``, ``code``, ``constants`` and ``state[slot]`` are changed in place;
    -1 means no mutation type had a positive weight. Raises ValueError for a broken layout.
    ``sizes`` = (num_s, num_v, num_m); ``op_arrays`` = :data:`ops.kinds.OP_ARRAYS`.
    """
    _check_layout(code, constants, offsets, lengths, max_sizes, allowed, allowed_counts,
                  state, slot, op_arrays.out_kind)
    mutation_type = _pick_mutation_type(mutation_types, mutation_weights, state, slot)
    if mutation_type < 0:
        return -1
    c = _pick_component(allowed_counts, state, slot)
    if c < 0:
        return mutation_type
    start = offsets[c]
    length = lengths[c]
    ops = allowed[c, :allowed_counts[c]]
    if mutation_type == ALTER_PARAM:
        if length > 0:
            row = start + draw_int(state, slot, length)
            alter_param(code, constants, row, constant_rule, state, slot, sizes, op_arrays)
    elif mutation_type == RANDOMIZE_INSTRUCTION:
        if length > 0:
            row = start + draw_int(state, slot, length)
            randomize_row(code, constants, row, random_op(ops, state, slot), state, slot,
                          sizes, op_arrays)
    elif mutation_type == RANDOMIZE_COMPONENT:
        randomize_rows(code, constants, start, start + length, ops, state, slot, sizes,
                       op_arrays)
    elif mutation_type == INSERT_INSTRUCTION:
        # At the maximum the block has no free row for the shift to move into.
        if length < max_sizes[c]:
            position = draw_int(state, slot, length + 1)
            _shift_down(code, constants, start + position, start + length)
            randomize_row(code, constants, start + position, random_op(ops, state, slot), state,
                          slot, sizes, op_arrays)
            lengths[c] = length + 1
    elif mutation_type == REMOVE_INSTRUCTION:
        if length > min_sizes[c] and length > 0:
            position = draw_int(state, slot, length)
            _delete_row(code, constants, start + position, start + length)
            lengths[c] = length - 1
    elif mutation_type == TRADE_INSTRUCTION:
        if length > 0:
            insert_at = draw_int(state, slot, length + 1)   # among length + 1 gaps
            removed = draw_int(state, slot, length)         # among the old instructions
            # Same result as inserting first: the new row lands before or after the gap.
            if insert_at > removed:
                insert_at -= 1
            _delete_row(code, constants, start + removed, start + length)
            _shift_down(code, constants, start + insert_at, start + length - 1)
            randomize_row(code, constants, start + insert_at, random_op(ops, state, slot), state,
                          slot, sizes, op_arrays)
    elif mutation_type == RANDOMIZE_ALGORITHM:
        for k in range(3):
            if allowed_counts[k] > 0:
                randomize_rows(code, constants, offsets[k], offsets[k] + lengths[k],
                               allowed[k, :allowed_counts[k]], state, slot, sizes, op_arrays)
    # IDENTITY and ids outside 0..7: nothing
    return mutation_type


@jit
def random_program_slots(code: np.ndarray, constants: np.ndarray, offsets: np.ndarray,
                         lengths: np.ndarray, init_sizes: np.ndarray, allowed: np.ndarray,
                         allowed_counts: np.ndarray, sizes: tuple, state: np.ndarray, slot: int,
                         op_arrays: OpArrays) -> None:
    """Fill the slots with a random program of ``init_sizes`` (frozen components: no-ops).

    Rows past each component's length, up to its block end, are zeroed. The block of
    component c ends at ``offsets[c + 1]`` (the last one at ``len(code)``). Raises
    ValueError if a block does not fit the arrays or an init size exceeds its block.
    """
    if code.shape[1] != 4 or constants.shape[0] != code.shape[0] or constants.shape[1] != 3:
        raise ValueError("random_program_slots: code must be (n, 4) and constants (n, 3)")
    if slot < 0 or slot >= state.size:
        raise ValueError("random_program_slots: slot is outside state")
    for c in range(3):
        start = offsets[c]
        end = _block_end(code, offsets, c)
        if start < 0 or end > code.shape[0]:
            raise ValueError("random_program_slots: a block lies outside the arrays")
        if init_sizes[c] < 0 or start + init_sizes[c] > end:
            raise ValueError("random_program_slots: an init size exceeds its component's capacity")
        lengths[c] = init_sizes[c]
        randomize_rows(code, constants, start, start + init_sizes[c],
                       allowed[c, :allowed_counts[c]], state, slot, sizes, op_arrays)
        for row in range(start + init_sizes[c], end):
            for j in range(4):
                code[row, j] = 0
            for j in range(3):
                constants[row, j] = 0.0


# --- Python helpers -----------------------------------------------------------------------

def mutation_arrays(weights: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """``mutation_types`` and ``mutation_weights`` for :func:`mutate` from ``{name: weight}``.

    Raises EvozeroError for an unknown name, a negative or non-finite weight, or when no
    weight is positive.
    """
    kinds, values = [], []
    for name, weight in weights.items():
        if name not in MUTATION_NAMES:
            raise EvozeroError(f"unknown mutation {name!r}; allowed: {', '.join(MUTATION_NAMES)}")
        try:
            value = float(weight)
        except (TypeError, ValueError):
            raise EvozeroError(f"mutation {name!r}: weight must be a number, got {weight!r}") from None
        if not math.isfinite(value) or value < 0:
            raise EvozeroError(f"mutation {name!r}: weight must be finite and >= 0, got {weight!r}")
        kinds.append(MUTATION_NAMES[name])
        values.append(value)
    if not any(v > 0 for v in values):
        raise EvozeroError("mutation weights: at least one weight must be > 0")
    return np.array(kinds, dtype=np.int64), np.array(values, dtype=np.float64)


@dataclass(frozen=True)
class SlotRules:
    """What programs in slots must keep to on one island: block sizes, memory sizes and
    the ops each component may hold (its allowed ops, NoOp padding and the ops of the
    initial programs)."""

    max_sizes: tuple[int, int, int]
    memory: tuple[int, int, int]
    allowed: np.ndarray        # bool (3, NUM_OPS)

    @property
    def rows(self) -> int:
        """Rows of one slot."""
        return sum(self.max_sizes)


def check_slots(code: Any, constants: Any, lengths: Any, rules: SlotRules, where: str) -> None:
    """Raise EvozeroError unless ``code`` (k, rows, 4) int64, ``constants`` (k, rows, 3)
    float64 and ``lengths`` (k, 3) int64 hold k programs the kernels may run under
    ``rules`` (see the module docstring for the layout). Vectorised over all k."""
    count = len(lengths) if isinstance(lengths, np.ndarray) and lengths.ndim else -1
    for name, array, dtype, shape in (("code", code, np.int64, (count, rules.rows, 4)),
                                      ("constants", constants, np.float64, (count, rules.rows, 3)),
                                      ("lengths", lengths, np.int64, (count, 3))):
        if not isinstance(array, np.ndarray) or array.dtype != dtype or array.shape != shape:
            got = (f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray)
                   else type(array).__name__)
            raise EvozeroError(f"{where}: {name} must be a {np.dtype(dtype)} array of shape "
                               f"{shape} for this config (population, sizes), got {got}")
    max_sizes = np.array(rules.max_sizes, dtype=np.int64)
    if ((lengths < 0) | (lengths > max_sizes)).any():
        k = int(np.argwhere((lengths < 0) | (lengths > max_sizes))[0, 0])
        raise EvozeroError(f"{where}: program {k} has lengths {lengths[k].tolist()}; each must "
                           f"be in 0..{list(rules.max_sizes)} (sizes.*.max)")
    flat_code, flat_constants = code.reshape(-1, 4), constants.reshape(-1, 3)
    problem = first_problem(flat_code, flat_constants)
    if problem is not None:
        row, message = problem
        raise EvozeroError(f"{where}: program {row // rules.rows}, row {row % rules.rows}: "
                           f"{message}")
    offsets = slot_offsets(rules.max_sizes)
    rows = np.arange(rules.rows)
    component = np.searchsorted(offsets[1:], rows, side="right")
    active = rows[None, :] < (offsets[component] + lengths[:, component])      # (k, rows)
    if (code[~active] != 0).any() or (constants[~active].view(np.int64) != 0).any():
        k = int(np.argwhere(~active & ((code != 0).any(2)
                                       | (constants.view(np.int64) != 0).any(2)))[0, 0])
        raise EvozeroError(f"{where}: program {k} has instructions past its lengths "
                           f"(rows past a component's length must be zero)")
    ops = code[:, :, 0]
    barred = active & ~rules.allowed[component[None, :], ops]
    if barred.any():
        k, r = (int(x) for x in np.argwhere(barred)[0])
        raise EvozeroError(f"{where}: program {k}, row {r}: op {OPS[ops[k, r]].name} is not "
                           f"in ops.{COMPONENTS[component[r]]} of this config")
    limits = np.array([np.iinfo(np.int64).max, *rules.memory], dtype=np.int64)  # by kind
    kinds = np.stack([IN1_KIND[ops], IN2_KIND[ops], OUT_KIND[ops]], axis=-1)
    outside = code[:, :, 1:] >= limits[kinds]
    if outside.any():
        k, r, slot = (int(x) for x in np.argwhere(outside)[0])
        raise EvozeroError(f"{where}: program {k}, row {r}: {OPS[ops[k, r]].name} address "
                           f"{code[k, r, slot + 1]} is outside the config's memory "
                           f"{rules.memory} (scalars, vectors, matrices)")
