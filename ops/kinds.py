"""The op table as flat arrays, for numba code (the mutator, dead-code analysis, the VM)."""
from __future__ import annotations

import numpy as np

from ops.table import MATRIX, OPS, SCALAR, VECTOR

NONE_KIND, SCALAR_KIND, VECTOR_KIND, MATRIX_KIND = 0, 1, 2, 3
_KIND_CODE = {None: NONE_KIND, SCALAR: SCALAR_KIND, VECTOR: VECTOR_KIND, MATRIX: MATRIX_KIND}
VALUE_KIND, FRACTION_KIND, SPREAD_KIND = 1, 2, 3
_CONST_KIND_CODE = {"value": VALUE_KIND, "fraction": FRACTION_KIND, "spread": SPREAD_KIND}

NUM_OPS = len(OPS)
IN1_KIND = np.array([_KIND_CODE[op.in1] for op in OPS], dtype=np.int64)
IN2_KIND = np.array([_KIND_CODE[op.in2] for op in OPS], dtype=np.int64)
OUT_KIND = np.array([_KIND_CODE[op.out] for op in OPS], dtype=np.int64)
NUM_CONSTANTS = np.array([len(op.constants) for op in OPS], dtype=np.int64)
# CONST_KIND[op, k]: 0 unused, 1 value, 2 index fraction, 3 spread (std)
CONST_KIND = np.zeros((NUM_OPS, 3), dtype=np.int64)
for _op in OPS:
    for _k, _const in enumerate(_op.constants):
        CONST_KIND[_op.code, _k] = _CONST_KIND_CODE[_const.kind]
PARTIAL_WRITE = np.array([op.partial_write for op in OPS], dtype=np.bool_)
IS_RANDOM = np.array([op.random for op in OPS], dtype=np.bool_)
SORTED_BOUNDS = np.array([op.sorted_bounds for op in OPS], dtype=np.bool_)
COST = np.array([op.cost for op in OPS], dtype=np.float64)
NO_OP = 0
