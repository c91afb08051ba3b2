"""Simplify programs for reading: dead code out, exact constant folding, compact addresses.

:func:`simplify` returns a program that makes bit-identical predictions (on any tasks,
with any seed) and needs no more memory than the original:

1. dead-code removal (:func:`evozero.programs.liveness.strip_dead_code`);
2. constant folding, repeated with dead-code removal until nothing more folds: a
   deterministic scalar op (``s = f(s, s)``) whose inputs all hold values known at that
   point becomes ``s = <value>``. A scalar is known where the evaluation fixes it: memory
   starts at 0, ``s = c`` sets it, and a folded row sets it. In Predict and Learn an
   address starts known only if neither of them writes it (so it keeps its value from
   the end of Setup); a constant written earlier in the same component is known after it.
   s0 and s1 (label and prediction, written by the harness) are never known. The value is
   the op's numpy reference from :mod:`ops.table`; the row is folded only if the VM
   computes the same bits and the value is finite. Random ops are never folded, and no
   row is ever reordered, so random draws are unchanged;
3. renaming: per kind, addresses get the smallest numbers in order of first use (s0, s1
   and v0 keep theirs), so ``memory_needs`` shrinks;
4. dead-code removal again.

:func:`program_changes` lists what changed between two programs, :func:`program_diff`
summarises it on one line.
"""
from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence

import numpy as np

from evozero.programs.instruction import format_instruction
from evozero.programs.liveness import resolve_memory, strip_dead_code
from evozero.programs.program import COMPONENTS, Program
from ops.table import OPS, OPS_BY_NAME, SCALAR, VECTOR

__all__ = ["simplify", "program_changes", "program_diff"]

_CONST_SET = OPS_BY_NAME["SCALAR_CONST_SET"].code
# Deterministic ops from scalars only to a scalar: the only ones folded.
_FOLDABLE = frozenset(
    spec.code for spec in OPS
    if spec.out == SCALAR and not spec.random and spec.num_inputs > 0
    and all(kind in (SCALAR, None) for kind in (spec.in1, spec.in2)))
_HARNESS_SCALARS = (0, 1)   # label and prediction: written outside the program
_FIXED = {SCALAR: 2, VECTOR: 1}  # addresses below these keep their numbers


def simplify(program: Program, memory: Sequence[int] | None = None) -> Program:
    """An equivalent, smaller program: dead code removed, constants folded, addresses
    renamed in order of first use (see the module docstring).

    ``memory`` (scalars, vectors, matrices) is the memory the program runs with; by
    default its own needs. The result's ``memory_needs()`` is never larger.
    """
    sizes = resolve_memory(program, memory)
    current = strip_dead_code(program, sizes)
    while True:
        folded, count = _fold_constants(current)
        if count == 0:
            break
        current = strip_dead_code(folded, sizes)
    renamed = _rename(current)
    return strip_dead_code(renamed, renamed.memory_needs())


def program_diff(old: Program, new: Program) -> str:
    """One-line summary of the changes from ``old`` to ``new``: the
    :func:`program_changes` joined with ``"; "``; equal programs give ``"no change"``."""
    return "; ".join(program_changes(old, new)) or "no change"


def program_changes(old: Program, new: Program) -> list[str]:
    """The changes from ``old`` to ``new``, line by line per component, in program order.

    Items read ``+ line (component)`` (added), ``- line (component)`` (removed) and
    ``~ old -> new (component)`` (changed in place); equal programs give none.
    """
    items: list[str] = []
    for component in COMPONENTS:
        before = [format_instruction(i) for i in old.instructions(component)]
        after = [format_instruction(i) for i in new.instructions(component)]
        matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                continue
            removed, added = before[i1:i2], after[j1:j2]
            changed = []
            if tag == "replace":
                # A line changed in place: same position in the block, same destination.
                for k in range(min(len(removed), len(added))):
                    if _destination(removed[k]) == _destination(added[k]):
                        changed.append(k)
            items.extend(f"~ {removed[k]} -> {added[k]} ({component})" for k in changed)
            items.extend(f"- {line} ({component})" for k, line in enumerate(removed)
                         if k not in changed)
            items.extend(f"+ {line} ({component})" for k, line in enumerate(added)
                         if k not in changed)
    return items


def _destination(line: str) -> str:
    """The address an instruction line writes (``v1`` for ``v1[0.5] = 2.0``), else the line."""
    match = re.match(r"\s*([svm]\d+)", line)
    return match.group(1) if match else line


# --- constant folding -----------------------------------------------------------------

def _fold_constants(program: Program) -> tuple[Program, int]:
    """The program with every foldable row replaced by a scalar constant set, and how
    many rows were folded."""
    code = program.code.copy()
    constants = program.constants.copy()
    bounds = [int(b) for b in program.bounds]
    folded = 0

    # Setup runs once on zeroed memory: every scalar but s0 and s1 starts known at 0.0.
    known: dict[int, float] = {a: 0.0 for a in range(program.memory_needs()[0])
                               if a not in _HARNESS_SCALARS}
    folded += _fold_rows(code, constants, bounds[0], bounds[1], known)

    # Predict and Learn repeat: only scalars neither of them writes keep their value.
    written = {int(code[row, 3]) for row in range(bounds[1], bounds[3])
               if OPS[int(code[row, 0])].out == SCALAR}
    entry = {a: v for a, v in known.items() if a not in written}
    for start, stop in ((bounds[1], bounds[2]), (bounds[2], bounds[3])):
        folded += _fold_rows(code, constants, start, stop, dict(entry))
    if folded == 0:
        return program, 0
    sizes = [stop - start for start, stop in zip(bounds, bounds[1:])]
    return Program(code, constants, sizes), folded


def _fold_rows(code: np.ndarray, constants: np.ndarray, start: int, stop: int,
               known: dict[int, float]) -> int:
    """Fold rows ``start..stop-1`` in place, tracking ``known`` scalar values; the count."""
    folded = 0
    for row in range(start, stop):
        op, in1, in2, out = (int(x) for x in code[row])
        spec = OPS[op]
        if spec.out != SCALAR:
            continue
        value: float | None = None
        if op == _CONST_SET:
            value = float(constants[row, 0])
        elif op in _FOLDABLE:
            inputs = [address for address, kind in ((in1, spec.in1), (in2, spec.in2)) if kind]
            if all(address in known for address in inputs):
                value = _folded_value(op, known.get(in1, 0.0), known.get(in2, 0.0))
                if value is not None:
                    code[row] = (_CONST_SET, 0, 0, out)
                    constants[row] = (value, 0.0, 0.0)
                    folded += 1
        if value is None or out in _HARNESS_SCALARS:
            known.pop(out, None)
        else:
            known[out] = value
    return folded


def _folded_value(op: int, a: float, b: float) -> float | None:
    """``op(a, b)`` if it is finite and the VM computes the very same bits, else None."""
    value = float(OPS[op].reference(a, b, 0.0, (0.0, 0.0, 0.0), 1, None))
    if not math.isfinite(value):
        return None
    if np.float64(value).view(np.int64) != np.float64(_vm_value(op, a, b)).view(np.int64):
        return None
    return value


def _vm_value(op: int, a: float, b: float) -> float:
    """What the VM writes for ``s2 = op(s0, s1)`` with s0 = a and s1 = b."""
    from ops.interpreter import run_instructions  # the VM kernel, compiled on first use

    scalars = np.zeros((4, 1))
    scalars[0, 0], scalars[1, 0] = a, b
    run_instructions(np.array([[op, 0, 1, 2]], dtype=np.int64), np.zeros((1, 3)), 0, 1,
                     scalars, np.zeros((4, 1, 2)), np.zeros((4, 1, 2, 2)),
                     np.zeros(1, dtype=np.uint64))
    return float(scalars[2, 0])


# --- renaming ---------------------------------------------------------------------------

def _rename(program: Program) -> Program:
    """Addresses renumbered per kind in order of first use (operands in1, in2, out)."""
    maps: dict[str, dict[int, int]] = {kind: {a: a for a in range(_FIXED.get(kind, 0))}
                                       for kind in ("s", "v", "m")}
    code = program.code.copy()
    for row in range(code.shape[0]):
        spec = OPS[int(code[row, 0])]
        for column, kind in ((1, spec.in1), (2, spec.in2), (3, spec.out)):
            if kind is None:
                continue
            mapping = maps[kind]
            address = int(code[row, column])
            if address not in mapping:
                mapping[address] = len(mapping)
            code[row, column] = mapping[address]
    return Program(code, program.constants, program.sizes)
