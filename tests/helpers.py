"""Helpers shared by several test modules."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from evozero.program import Program
from evozero.randomize import randomize_rows
from ops.kinds import CONST_KIND, IN1_KIND, IN2_KIND, OUT_KIND
from ops.table import OPS

ALL_OPS = np.arange(len(OPS), dtype=np.int64)


def random_program(seed: int, sizes: Sequence[int], allowed: np.ndarray = ALL_OPS,
                   memory: Sequence[int] = (5, 4, 2)) -> Program:
    """A random program of ``sizes`` instructions over the ``allowed`` op codes."""
    total = sum(sizes)
    code = np.zeros((total, 4), dtype=np.int64)
    constants = np.zeros((total, 3))
    state = np.array([seed], dtype=np.uint64)
    randomize_rows(code, constants, 0, total, allowed, state, 0, *memory,
                   IN1_KIND, IN2_KIND, OUT_KIND, CONST_KIND)
    return Program(code, constants, tuple(sizes))
