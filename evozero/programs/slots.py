"""The slot layout of a program being evolved, and the conversion to and from Program.

A slot is ``code`` int64 (rows, 4) and ``constants`` float64 (rows, 3) with component c
in a block of ``max_sizes[c]`` rows starting at ``offsets[c]`` (the cumulative max
sizes), holding ``lengths[c]`` instructions; rows past a length are zero (see
:mod:`evozero.programs.mutation`, which checks and mutates slots in numba).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evozero.programs.program import Program


def slot_offsets(max_sizes: Sequence[int] | np.ndarray) -> np.ndarray:
    """Row where each component's block starts: the cumulative max sizes."""
    sizes = [int(s) for s in max_sizes]
    return np.array([0, sizes[0], sizes[0] + sizes[1]], dtype=np.int64)


def slots_program(code: np.ndarray, constants: np.ndarray, offsets: np.ndarray,
                  lengths: np.ndarray) -> Program:
    """The Program held in one slot."""
    rows = np.concatenate([np.arange(offsets[c], offsets[c] + lengths[c]) for c in range(3)])
    rows = rows.astype(np.int64)
    return Program(code[rows], constants[rows], [int(n) for n in lengths])


def program_slots(program: Program, offsets: np.ndarray, rows: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``program`` laid out in one slot of ``rows`` rows (component c at ``offsets[c]``);
    the caller makes sure each component fits its block."""
    code = np.zeros((rows, 4), dtype=np.int64)
    constants = np.zeros((rows, 3))
    lengths = np.array(program.sizes, dtype=np.int64)
    for c in range(3):
        start, stop = program.bounds[c], program.bounds[c + 1]
        code[offsets[c]:offsets[c] + lengths[c]] = program.code[start:stop]
        constants[offsets[c]:offsets[c] + lengths[c]] = program.constants[start:stop]
    return code, constants, lengths
