"""Random instructions and programs, drawn in numba from a splitmix64 stream.

Addresses follow the reference: inputs uniform over their whole space, outputs over
s1.., v1.. and m0.. (s0 and v0 are the harness's). Constants: values U(-1, 1), index
fractions and spreads U[0, 1).
"""
from __future__ import annotations

from ops.codes import FRACTION_KIND, MATRIX_KIND, SCALAR_KIND, SPREAD_KIND, VALUE_KIND, VECTOR_KIND
from ops.jit import jit
from ops.rng import next_uniform


@jit
def draw_int(state, slot, n):
    """Uniform integer in 0..n-1."""
    value = int(next_uniform(state, slot) * n)
    return value if value < n else n - 1


@jit
def draw_address(state, slot, kind, num_s, num_v, num_m, is_output):
    """A random address of ``kind`` (0 for an unused operand)."""
    if kind == SCALAR_KIND:
        return 1 + draw_int(state, slot, num_s - 1) if is_output else draw_int(state, slot, num_s)
    if kind == VECTOR_KIND:
        return 1 + draw_int(state, slot, num_v - 1) if is_output else draw_int(state, slot, num_v)
    if kind == MATRIX_KIND:
        return draw_int(state, slot, num_m)
    return 0


@jit
def draw_constant(state, slot, const_kind):
    """A fresh constant of ``const_kind`` (1 value, 2 fraction, 3 spread; 0 unused)."""
    if const_kind == VALUE_KIND:
        return 2.0 * next_uniform(state, slot) - 1.0
    if const_kind == FRACTION_KIND or const_kind == SPREAD_KIND:
        return next_uniform(state, slot)
    return 0.0


@jit
def randomize_row(code, constants, row, op, state, slot, sizes, op_arrays):
    """Write a fresh random instruction with ``op`` into ``row``.

    ``sizes`` = (num_s, num_v, num_m); ``op_arrays`` = :data:`ops.kinds.OP_ARRAYS`.
    """
    num_s, num_v, num_m = sizes
    code[row, 0] = op
    code[row, 1] = draw_address(state, slot, op_arrays.in1_kind[op], num_s, num_v, num_m, False)
    code[row, 2] = draw_address(state, slot, op_arrays.in2_kind[op], num_s, num_v, num_m, False)
    code[row, 3] = draw_address(state, slot, op_arrays.out_kind[op], num_s, num_v, num_m, True)
    for k in range(3):
        constants[row, k] = draw_constant(state, slot, op_arrays.const_kind[op, k])


@jit
def random_op(allowed, state, slot):
    """An op drawn uniformly from the ``allowed`` list of op codes."""
    return allowed[draw_int(state, slot, allowed.size)]


@jit
def randomize_rows(code, constants, start, stop, allowed, state, slot, sizes, op_arrays):
    """Fill rows ``start..stop-1`` with random instructions from ``allowed`` (no-ops if empty)."""
    for row in range(start, stop):
        if allowed.size == 0:
            code[row, :] = 0
            constants[row, :] = 0.0
        else:
            randomize_row(code, constants, row, random_op(allowed, state, slot), state, slot,
                          sizes, op_arrays)
