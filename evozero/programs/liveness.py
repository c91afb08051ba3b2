"""Dead-code analysis: which instructions can affect a prediction.

Execution is Setup, then (Predict, Learn) per training example and Predict per
validation example, with memory carried throughout, and s1 read after every Predict.
A backward liveness fixpoint over that loop marks the rows that matter; the VM runs
only those. Random ops are defined to draw from the stream in the order of the rows
that survive this analysis, so removing dead rows never changes a fitness.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evozero.errors import EvozeroError
from evozero.programs.instruction import ADDRESS_LIMIT
from evozero.programs.program import Program
from ops.codes import MATRIX_KIND, NONE_KIND, SCALAR_KIND, VECTOR_KIND
from ops.jit import jit
from ops.kinds import IN1_KIND, IN2_KIND, OUT_KIND, PARTIAL_WRITE


@jit
def _transfer(code, start, stop, live_s, live_v, live_m, keep, in1_kind, in2_kind, out_kind,
              partial):
    # Walks rows backward; live_* hold the live-out set on entry, the live-in set on exit.
    for row in range(stop - 1, start - 1, -1):
        op = code[row, 0]
        kind = out_kind[op]
        o = code[row, 3]
        if kind == NONE_KIND:
            keep[row] = False
            continue
        if kind == SCALAR_KIND:
            needed = live_s[o]
        elif kind == VECTOR_KIND:
            needed = live_v[o]
        else:
            needed = live_m[o]
        keep[row] = needed
        if not needed:
            continue
        if not partial[op]:
            if kind == SCALAR_KIND:
                live_s[o] = False
            elif kind == VECTOR_KIND:
                live_v[o] = False
            else:
                live_m[o] = False
        for slot in range(2):
            k = in1_kind[op] if slot == 0 else in2_kind[op]
            a = code[row, 1 + slot]
            if k == SCALAR_KIND:
                live_s[a] = True
            elif k == VECTOR_KIND:
                live_v[a] = True
            elif k == MATRIX_KIND:
                live_m[a] = True


@jit
def _merge(destination, source):
    """destination |= source; whether anything was added."""
    changed = False
    for i in range(destination.size):
        if source[i] and not destination[i]:
            destination[i] = True
            changed = True
    return changed


@jit
def live_rows_kernel(code, bounds, num_s, num_v, num_m, in1_kind, in2_kind, out_kind, partial):
    """Boolean mask over rows of ``code``: True where the row can affect a prediction."""
    keep = np.zeros(code.shape[0], dtype=np.bool_)
    # Live sets laid out as [scalars | vectors | matrices]: the live-in sets of Predict and
    # of Learn, grown to a fixpoint, and a work set. One allocation: this runs per child.
    v0, m0 = num_s, num_s + num_v
    sets = np.zeros((3, m0 + num_m), dtype=np.bool_)
    predict, learn, work = sets[0], sets[1], sets[2]
    changed = True
    while changed:
        # After Predict: s1 is read, and Learn or Predict follows.
        for i in range(work.size):
            work[i] = predict[i] or learn[i]
        work[1] = True
        _transfer(code, bounds[1], bounds[2], work[:v0], work[v0:m0], work[m0:], keep, in1_kind,
                  in2_kind, out_kind, partial)
        changed = _merge(predict, work)
        # After Learn: Predict follows.
        work[:] = predict
        _transfer(code, bounds[2], bounds[3], work[:v0], work[v0:m0], work[m0:], keep, in1_kind,
                  in2_kind, out_kind, partial)
        changed = _merge(learn, work) or changed
    work[:] = predict
    _transfer(code, bounds[0], bounds[1], work[:v0], work[v0:m0], work[m0:], keep, in1_kind,
              in2_kind, out_kind, partial)
    return keep


@jit
def compact_into(code, constants, bounds, keep, new_code, new_constants, new_bounds):
    """Copy the rows where ``keep`` is True to the front of ``new_code``/``new_constants``
    (large enough for all rows) and their component bounds to ``new_bounds``."""
    k = 0
    new_bounds[0] = 0
    for component in range(3):
        for row in range(bounds[component], bounds[component + 1]):
            if keep[row]:
                new_code[k] = code[row]
                new_constants[k] = constants[row]
                k += 1
        new_bounds[component + 1] = k


@jit
def compact_kernel(code, constants, bounds, keep):
    """The rows of ``code`` and ``constants`` where ``keep`` is True, and their new bounds."""
    total = 0
    for row in range(code.shape[0]):
        if keep[row]:
            total += 1
    new_code = np.empty((total, 4), dtype=np.int64)
    new_constants = np.empty((total, 3), dtype=np.float64)
    new_bounds = np.zeros(4, dtype=np.int64)
    compact_into(code, constants, bounds, keep, new_code, new_constants, new_bounds)
    return new_code, new_constants, new_bounds


def live_rows(code: np.ndarray, bounds: np.ndarray, memory: tuple[int, int, int]) -> np.ndarray:
    """Boolean mask of the rows that can affect a prediction (see module docstring)."""
    num_s, num_v, num_m = memory
    return live_rows_kernel(code, bounds, num_s, num_v, max(num_m, 1), IN1_KIND, IN2_KIND,
                            OUT_KIND, PARTIAL_WRITE)


def resolve_memory(program: Program, memory: Sequence[int] | None) -> tuple[int, int, int]:
    """Memory sizes (S, V, M): the program's needs, or ``memory`` checked against them."""
    if not isinstance(program, Program):
        raise EvozeroError(f"program must be a Program (see Program.parse), got "
                           f"{type(program).__name__}")
    need = program.memory_needs()
    if memory is None:
        return need
    values = tuple(memory) if isinstance(memory, (tuple, list, np.ndarray)) else ()
    if len(values) != 3 or any(not isinstance(m, (int, np.integer)) or isinstance(m, bool)
                               or not 0 <= m <= ADDRESS_LIMIT for m in values):
        raise EvozeroError(f"memory must be three non-negative integers (scalars, vectors, "
                           f"matrices), each at most {ADDRESS_LIMIT:,}, got {memory!r}"[:300])
    sizes = tuple(int(m) for m in values)
    for name, have, want in zip(("scalars", "vectors", "matrices"), sizes, need):
        if have < want:
            raise EvozeroError(f"memory too small for this program: it uses {want} {name} "
                               f"but memory allows {have}")
    return sizes  # type: ignore[return-value]


def strip_dead_code(program: Program, memory: Sequence[int] | None = None) -> Program:
    """The program without instructions that cannot affect a prediction."""
    num_s, num_v, num_m = resolve_memory(program, memory)
    keep = live_rows_kernel(program.code, program.bounds, num_s, num_v, max(num_m, 1),
                            IN1_KIND, IN2_KIND, OUT_KIND, PARTIAL_WRITE)
    code, constants, bounds = compact_kernel(program.code, program.constants, program.bounds, keep)
    return Program(code, constants, np.diff(bounds))
