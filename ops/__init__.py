"""The op library: the AutoML-Zero instruction set (table, reference semantics, kernels)."""
from ops.table import KIND_NAMES, MATRIX, OPS, OPS_BY_NAME, SCALAR, VECTOR, ConstSpec, OpSpec

__all__ = ["KIND_NAMES", "MATRIX", "OPS", "OPS_BY_NAME", "SCALAR", "VECTOR", "ConstSpec", "OpSpec"]
