"""The AutoML-Zero instruction set: every op defined once, in one table.

Each :class:`OpSpec` gives the op's code, name, operand kinds (``"s"`` scalar, ``"v"``
vector of length F, ``"m"`` F x F matrix, ``None`` unused), the constants it carries,
its printed form, its compute-cost weight and its meaning as a plain-numpy reference
function ``reference(a, b, out, consts, n_features, rng) -> new out value``.

Rules chosen where the original engine is quirky (the VM, the references and the
tests all follow them):

* **heaviside**: 1.0 where the input is > 0, else 0.0, for scalars, vectors and
  matrices alike (NaN gives 0.0). The printed ``1.0`` argument has no effect.
* **std**: computed in two passes about the first element ``x0``:
  ``d = x - x0``, ``sqrt(mean((d - mean(d))**2))``, so a constant input gives exactly
  0 (never NaN, never an overflowed sum), and large offsets lose no precision.
* **minimum / maximum**: NaN in either operand gives NaN (``np.minimum`` rule).
* **uniform(lo, hi)**: draws from ``[min(lo, hi), max(lo, hi))``; equal bounds give
  that value. **gaussian(mean, std)** uses ``abs(std)``; std 0 gives the mean.
* **index constants** are fractions: the index is ``floor(F * fraction)`` clipped to
  ``0..F-1``, so programs work for any F >= 1.
* Division, reciprocal, log, arcsin and arccos follow IEEE arithmetic: NaN and Inf
  flow into memory and only the evaluator reacts to them.
* Products of a matrix with a vector or a matrix, and transposes, are computed
  before anything is written, so an output may alias an input.
* Random ops draw from the evaluation's stream in element order (row-major for
  matrices).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

SCALAR, VECTOR, MATRIX = "s", "v", "m"
KIND_NAMES = {SCALAR: "scalar", VECTOR: "vector", MATRIX: "matrix"}


@dataclass(frozen=True)
class ConstSpec:
    """One constant of an op: its name and how it is drawn and altered.

    ``kind`` is ``"value"`` (drawn from U(-1, 1), altered by log-scale or sign flip),
    ``"fraction"`` (an index fraction drawn from U[0, 1), altered by a fresh draw) or
    ``"spread"`` (a standard deviation drawn from U[0, 1), altered by log-scale only).
    """

    name: str
    kind: str


@dataclass(frozen=True)
class OpSpec:
    """One instruction of the set; see the module docstring for the field meanings."""

    code: int
    name: str
    in1: Optional[str]
    in2: Optional[str]
    out: Optional[str]
    constants: tuple[ConstSpec, ...]
    form: str
    cost: float
    reference: Callable[..., Any]
    random: bool = False
    sorted_bounds: bool = False

    @property
    def partial_write(self) -> bool:
        """True when the op writes one element and keeps the rest of its output."""
        return self.name in ("VECTOR_CONST_SET", "MATRIX_CONST_SET")

    @property
    def num_inputs(self) -> int:
        """How many address inputs the op reads."""
        return (self.in1 is not None) + (self.in2 is not None)


# --- reference semantics -------------------------------------------------------------

def _heaviside(x):
    return np.where(np.asarray(x) > 0, 1.0, 0.0) if np.ndim(x) else (1.0 if x > 0 else 0.0)


def _std(x):
    d = np.asarray(x, dtype=np.float64).ravel()
    d = d - d[0]
    return float(np.sqrt(np.mean((d - np.mean(d)) ** 2)))


def _row_std(m):
    d = m - m[:, :1]
    return np.sqrt(np.mean((d - np.mean(d, axis=1, keepdims=True)) ** 2, axis=1))


def _index(fraction, n):
    position = np.floor(n * fraction)
    return n - 1 if position >= n else int(position) if position >= 0 else 0


def _uniform(lo, hi, rng):
    low, high = min(lo, hi), max(lo, hi)
    return low + (high - low) * rng.uniform()


def _gaussian(mean, std, rng):
    return mean + abs(std) * rng.normal()


def _fill(shape, draw):
    values = np.empty(shape)
    flat = values.reshape(-1)
    for i in range(flat.size):
        flat[i] = draw()
    return values


def _vector_const(a, b, out, c, f, rng):
    new = np.array(out, dtype=np.float64)
    new[_index(c[0], f)] = c[1]
    return new


def _matrix_const(a, b, out, c, f, rng):
    new = np.array(out, dtype=np.float64)
    new[_index(c[0], f), _index(c[1], f)] = c[2]
    return new


def _with_errstate(func):
    def reference(*args):
        with np.errstate(all="ignore"):
            return func(*args)
    reference.__doc__ = func.__doc__
    return reference


def _unary(fn):
    return _with_errstate(lambda a, b, out, c, f, rng: fn(a))


def _binary(fn):
    return _with_errstate(lambda a, b, out, c, f, rng: fn(a, b))


def _scalar(fn):
    return _with_errstate(lambda a, b, out, c, f, rng: float(fn(np.float64(a))))


def _scalar2(fn):
    return _with_errstate(lambda a, b, out, c, f, rng: float(fn(np.float64(a), np.float64(b))))


VALUE, FRACTION, SPREAD = "value", "fraction", "spread"
_BOUNDS = (ConstSpec("low", VALUE), ConstSpec("high", VALUE))
_GAUSS = (ConstSpec("mean", VALUE), ConstSpec("std", SPREAD))
_S, _V, _M = SCALAR, VECTOR, MATRIX


def _op(code, name, in1, in2, out, form, cost, reference, constants=(), **flags):
    return OpSpec(code, name, in1, in2, out, tuple(constants), form, cost, reference, **flags)


OPS: tuple[OpSpec, ...] = (
    _op(0, "NO_OP", None, None, None, "NoOp()", 3.014, lambda a, b, out, c, f, rng: out),
    _op(1, "SCALAR_SUM", _S, _S, _S, "{out} = {in1} + {in2}", 4.704, _scalar2(np.add)),
    _op(2, "SCALAR_DIFF", _S, _S, _S, "{out} = {in1} - {in2}", 5.102, _scalar2(np.subtract)),
    _op(3, "SCALAR_PRODUCT", _S, _S, _S, "{out} = {in1} * {in2}", 4.418, _scalar2(np.multiply)),
    _op(4, "SCALAR_DIVISION", _S, _S, _S, "{out} = {in1} / {in2}", 3.964, _scalar2(np.divide)),
    _op(5, "SCALAR_ABS", _S, None, _S, "{out} = abs({in1})", 3.684, _scalar(np.abs)),
    _op(6, "SCALAR_RECIPROCAL", _S, None, _S, "{out} = 1 / {in1}", 4.212,
        _scalar(lambda a: np.divide(1.0, a))),
    _op(7, "SCALAR_SIN", _S, None, _S, "{out} = sin({in1})", 7.539, _scalar(np.sin)),
    _op(8, "SCALAR_COS", _S, None, _S, "{out} = cos({in1})", 7.453, _scalar(np.cos)),
    _op(9, "SCALAR_TAN", _S, None, _S, "{out} = tan({in1})", 7.583, _scalar(np.tan)),
    _op(10, "SCALAR_ARCSIN", _S, None, _S, "{out} = arcsin({in1})", 9.146, _scalar(np.arcsin)),
    _op(11, "SCALAR_ARCCOS", _S, None, _S, "{out} = arccos({in1})", 7.673, _scalar(np.arccos)),
    _op(12, "SCALAR_ARCTAN", _S, None, _S, "{out} = arctan({in1})", 9.274, _scalar(np.arctan)),
    _op(13, "SCALAR_EXP", _S, None, _S, "{out} = exp({in1})", 11.756, _scalar(np.exp)),
    _op(14, "SCALAR_LOG", _S, None, _S, "{out} = log({in1})", 11.628, _scalar(np.log)),
    _op(15, "SCALAR_HEAVYSIDE", _S, None, _S, "{out} = heaviside({in1}, 1.0)", 4.057,
        _unary(_heaviside)),
    _op(16, "VECTOR_HEAVYSIDE", _V, None, _V, "{out} = heaviside({in1}, 1.0)", 3.966,
        _unary(_heaviside)),
    _op(17, "MATRIX_HEAVYSIDE", _M, None, _M, "{out} = heaviside({in1}, 1.0)", 6.728,
        _unary(_heaviside)),
    _op(18, "SCALAR_VECTOR_PRODUCT", _S, _V, _V, "{out} = {in1} * {in2}", 3.705,
        _binary(np.multiply)),
    _op(19, "SCALAR_BROADCAST", _S, None, _V, "{out} = bcast({in1})", 4.166,
        lambda a, b, out, c, f, rng: np.full(f, a, dtype=np.float64)),
    _op(20, "VECTOR_RECIPROCAL", _V, None, _V, "{out} = 1 / {in1}", 6.312,
        _unary(lambda a: np.divide(1.0, a))),
    _op(21, "VECTOR_NORM", _V, None, _S, "{out} = norm({in1})", 4.811,
        _unary(lambda a: float(np.sqrt(np.sum(a * a))))),
    _op(22, "VECTOR_ABS", _V, None, _V, "{out} = abs({in1})", 3.714, _unary(np.abs)),
    _op(23, "VECTOR_SUM", _V, _V, _V, "{out} = {in1} + {in2}", 4.702, _binary(np.add)),
    _op(24, "VECTOR_DIFF", _V, _V, _V, "{out} = {in1} - {in2}", 4.166, _binary(np.subtract)),
    _op(25, "VECTOR_PRODUCT", _V, _V, _V, "{out} = {in1} * {in2}", 4.505, _binary(np.multiply)),
    _op(26, "VECTOR_DIVISION", _V, _V, _V, "{out} = {in1} / {in2}", 4.556, _binary(np.divide)),
    _op(27, "VECTOR_INNER_PRODUCT", _V, _V, _S, "{out} = dot({in1}, {in2})", 4.295,
        _binary(lambda a, b: float(np.sum(a * b)))),
    _op(28, "VECTOR_OUTER_PRODUCT", _V, _V, _M, "{out} = outer({in1}, {in2})", 9.834,
        _binary(np.outer)),
    _op(29, "SCALAR_MATRIX_PRODUCT", _S, _M, _M, "{out} = {in1} * {in2}", 5.986,
        _binary(np.multiply)),
    _op(30, "MATRIX_RECIPROCAL", _M, None, _M, "{out} = 1 / {in1}", 24.336,
        _unary(lambda a: np.divide(1.0, a))),
    _op(31, "MATRIX_VECTOR_PRODUCT", _M, _V, _V, "{out} = dot({in1}, {in2})", 9.310,
        _binary(lambda a, b: np.sum(a * b[None, :], axis=1))),
    _op(32, "VECTOR_COLUMN_BROADCAST", _V, None, _M, "{out} = bcast({in1}, axis=0)", 10.993,
        _unary(lambda a: np.repeat(np.asarray(a)[:, None], len(a), axis=1))),
    _op(33, "VECTOR_ROW_BROADCAST", _V, None, _M, "{out} = bcast({in1}, axis=1)", 11.087,
        _unary(lambda a: np.repeat(np.asarray(a)[None, :], len(a), axis=0))),
    _op(34, "MATRIX_NORM", _M, None, _S, "{out} = norm({in1})", 6.423,
        _unary(lambda a: float(np.sqrt(np.sum(a * a))))),
    _op(35, "MATRIX_COLUMN_NORM", _M, None, _V, "{out} = norm({in1}, axis=0)", 6.682,
        _unary(lambda a: np.sqrt(np.sum(a * a, axis=0)))),
    _op(36, "MATRIX_ROW_NORM", _M, None, _V, "{out} = norm({in1}, axis=1)", 13.351,
        _unary(lambda a: np.sqrt(np.sum(a * a, axis=1)))),
    _op(37, "MATRIX_TRANSPOSE", _M, None, _M, "{out} = transpose({in1})", 9.395,
        _unary(lambda a: np.array(np.transpose(a)))),
    _op(38, "MATRIX_ABS", _M, None, _M, "{out} = abs({in1})", 4.631, _unary(np.abs)),
    _op(39, "MATRIX_SUM", _M, _M, _M, "{out} = {in1} + {in2}", 5.579, _binary(np.add)),
    _op(40, "MATRIX_DIFF", _M, _M, _M, "{out} = {in1} - {in2}", 5.429, _binary(np.subtract)),
    _op(41, "MATRIX_PRODUCT", _M, _M, _M, "{out} = {in1} * {in2}", 5.475, _binary(np.multiply)),
    _op(42, "MATRIX_DIVISION", _M, _M, _M, "{out} = {in1} / {in2}", 18.234, _binary(np.divide)),
    _op(43, "MATRIX_MATRIX_PRODUCT", _M, _M, _M, "{out} = matmul({in1}, {in2})", 14.516,
        _binary(lambda a, b: np.sum(a[:, :, None] * b[None, :, :], axis=1))),
    _op(44, "SCALAR_MIN", _S, _S, _S, "{out} = minimum({in1}, {in2})", 3.677,
        _scalar2(np.minimum)),
    _op(45, "VECTOR_MIN", _V, _V, _V, "{out} = minimum({in1}, {in2})", 3.990,
        _binary(np.minimum)),
    _op(46, "MATRIX_MIN", _M, _M, _M, "{out} = minimum({in1}, {in2})", 5.458,
        _binary(np.minimum)),
    _op(47, "SCALAR_MAX", _S, _S, _S, "{out} = maximum({in1}, {in2})", 4.574,
        _scalar2(np.maximum)),
    _op(48, "VECTOR_MAX", _V, _V, _V, "{out} = maximum({in1}, {in2})", 3.974,
        _binary(np.maximum)),
    _op(49, "MATRIX_MAX", _M, _M, _M, "{out} = maximum({in1}, {in2})", 5.841,
        _binary(np.maximum)),
    _op(50, "VECTOR_MEAN", _V, None, _S, "{out} = mean({in1})", 4.280,
        _unary(lambda a: float(np.mean(a)))),
    _op(51, "MATRIX_MEAN", _M, None, _S, "{out} = mean({in1})", 4.595,
        _unary(lambda a: float(np.mean(a)))),
    _op(52, "MATRIX_ROW_MEAN", _M, None, _V, "{out} = mean({in1}, axis=1)", 9.764,
        _unary(lambda a: np.mean(a, axis=1))),
    _op(53, "MATRIX_ROW_ST_DEV", _M, None, _V, "{out} = std({in1}, axis=1)", 16.766,
        _unary(_row_std)),
    _op(54, "VECTOR_ST_DEV", _V, None, _S, "{out} = std({in1})", 5.586, _unary(_std)),
    _op(55, "MATRIX_ST_DEV", _M, None, _S, "{out} = std({in1})", 10.640, _unary(_std)),
    _op(56, "SCALAR_CONST_SET", None, None, _S, "{out} = {c0}", 3.691,
        lambda a, b, out, c, f, rng: float(c[0]), (ConstSpec("value", VALUE),)),
    _op(57, "VECTOR_CONST_SET", None, None, _V, "{out}[{c0}] = {c1}", 3.991, _vector_const,
        (ConstSpec("index", FRACTION), ConstSpec("value", VALUE))),
    _op(58, "MATRIX_CONST_SET", None, None, _M, "{out}[{c0}, {c1}] = {c2}", 3.693, _matrix_const,
        (ConstSpec("row", FRACTION), ConstSpec("column", FRACTION), ConstSpec("value", VALUE))),
    _op(59, "SCALAR_UNIFORM_SET", None, None, _S, "{out} = uniform({c0}, {c1})", 26.611,
        lambda a, b, out, c, f, rng: _uniform(c[0], c[1], rng), _BOUNDS,
        random=True, sorted_bounds=True),
    _op(60, "VECTOR_UNIFORM_SET", None, None, _V, "{out} = uniform({c0}, {c1}, n_features)", 57.817,
        lambda a, b, out, c, f, rng: _fill(f, lambda: _uniform(c[0], c[1], rng)), _BOUNDS,
        random=True, sorted_bounds=True),
    _op(61, "MATRIX_UNIFORM_SET", None, None, _M,
        "{out} = uniform({c0}, {c1}, (n_features, n_features))", 208.339,
        lambda a, b, out, c, f, rng: _fill((f, f), lambda: _uniform(c[0], c[1], rng)), _BOUNDS,
        random=True, sorted_bounds=True),
    _op(62, "SCALAR_GAUSSIAN_SET", None, None, _S, "{out} = gaussian({c0}, {c1})", 20.776,
        lambda a, b, out, c, f, rng: _gaussian(c[0], c[1], rng), _GAUSS, random=True),
    _op(63, "VECTOR_GAUSSIAN_SET", None, None, _V, "{out} = gaussian({c0}, {c1}, n_features)",
        77.483, lambda a, b, out, c, f, rng: _fill(f, lambda: _gaussian(c[0], c[1], rng)), _GAUSS,
        random=True),
    _op(64, "MATRIX_GAUSSIAN_SET", None, None, _M,
        "{out} = gaussian({c0}, {c1}, (n_features, n_features))", 277.690,
        lambda a, b, out, c, f, rng: _fill((f, f), lambda: _gaussian(c[0], c[1], rng)), _GAUSS,
        random=True),
)

MAX_CONSTANTS = 3
OPS_BY_NAME: dict[str, OpSpec] = {op.name: op for op in OPS}


def op_named(name: str) -> OpSpec:
    """The op called ``name`` (case-insensitive); KeyError lists nothing, callers explain."""
    return OPS_BY_NAME[name.upper()]
