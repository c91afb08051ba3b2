"""The op table as flat arrays, for numba code (the mutator, dead-code analysis, the VM)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ops.codes import (
    FRACTION_KIND,
    MATRIX_KIND,
    NO_CONSTANT,
    NO_OP,  # noqa: F401 - read with the op arrays by instruction checks
    NONE_KIND,
    SCALAR_KIND,
    SPREAD_KIND,
    VALUE_KIND,
    VECTOR_KIND,
)
from ops.table import FRACTION, MATRIX, OPS, SCALAR, SPREAD, VALUE, VECTOR

# The table's letters and words, as the codes of ops.codes.
_KIND_CODE = {None: NONE_KIND, SCALAR: SCALAR_KIND, VECTOR: VECTOR_KIND, MATRIX: MATRIX_KIND}
_CONST_KIND_CODE = {VALUE: VALUE_KIND, FRACTION: FRACTION_KIND, SPREAD: SPREAD_KIND}

NUM_OPS = len(OPS)
IN1_KIND = np.array([_KIND_CODE[op.in1] for op in OPS], dtype=np.int64)
IN2_KIND = np.array([_KIND_CODE[op.in2] for op in OPS], dtype=np.int64)
OUT_KIND = np.array([_KIND_CODE[op.out] for op in OPS], dtype=np.int64)
NUM_CONSTANTS = np.array([len(op.constants) for op in OPS], dtype=np.int64)
# CONST_KIND[op, k]: a constant kind of ops.codes, NO_CONSTANT past the op's constants
CONST_KIND = np.full((NUM_OPS, 3), NO_CONSTANT, dtype=np.int64)
for _op in OPS:
    for _k, _const in enumerate(_op.constants):
        CONST_KIND[_op.code, _k] = _CONST_KIND_CODE[_const.kind]
PARTIAL_WRITE = np.array([op.partial_write for op in OPS], dtype=np.bool_)
IS_RANDOM = np.array([op.random for op in OPS], dtype=np.bool_)
SORTED_BOUNDS = np.array([op.sorted_bounds for op in OPS], dtype=np.bool_)
COST = np.array([op.cost for op in OPS], dtype=np.float64)


class OpArrays(NamedTuple):
    """The per-op arrays a search kernel reads, passed as one argument."""

    in1_kind: np.ndarray
    in2_kind: np.ndarray
    out_kind: np.ndarray
    const_kind: np.ndarray
    partial_write: np.ndarray
    sorted_bounds: np.ndarray
    cost: np.ndarray


OP_ARRAYS = OpArrays(IN1_KIND, IN2_KIND, OUT_KIND, CONST_KIND, PARTIAL_WRITE, SORTED_BOUNDS, COST)
