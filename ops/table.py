"""The AutoML-Zero instruction set: every op defined once, in one table.

Each :class:`OpSpec` gives the op's code, name, operand kinds (``"s"`` scalar, ``"v"``
vector of length F, ``"m"`` F x F matrix, ``None`` unused), the constants it carries,
its printed form, its compute-cost weight, its meaning as a plain-numpy reference
function ``reference(a, b, out, consts, n_features, rng) -> new out value``, and
``numpy_form``: the line the exporter (:mod:`evozero.analysis.export`) writes for it, on
arrays ``s``, ``v``, ``m`` with the helpers of :mod:`evozero.analysis.export_runtime`
(``{out}``, ``{in1}``, ``{in2}`` are operands, ``{c0}``.. constants; an index
constant becomes its index).

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

:func:`markdown` renders the table for the README (:func:`readme_with_table`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# Operand kinds as the letters of the memory arrays they address (s, v, m).
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
    in1: str | None
    in2: str | None
    out: str | None
    constants: tuple[ConstSpec, ...]
    form: str
    numpy_form: str
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


def _op(code, name, in1, in2, out, form, cost, reference, constants=(), *, numpy, **flags):
    return OpSpec(code, name, in1, in2, out, tuple(constants), form, numpy, cost, reference,
                  **flags)


OPS: tuple[OpSpec, ...] = (
    _op(0, "NO_OP", None, None, None, "NoOp()", 3.014, lambda a, b, out, c, f, rng: out,
        numpy="pass  # no-op"),
    _op(1, "SCALAR_SUM", SCALAR, SCALAR, SCALAR, "{out} = {in1} + {in2}", 4.704, _scalar2(np.add),
        numpy="{out} = {in1} + {in2}"),
    _op(2, "SCALAR_DIFF", SCALAR, SCALAR, SCALAR, "{out} = {in1} - {in2}", 5.102, _scalar2(np.subtract),
        numpy="{out} = {in1} - {in2}"),
    _op(3, "SCALAR_PRODUCT", SCALAR, SCALAR, SCALAR, "{out} = {in1} * {in2}", 4.418, _scalar2(np.multiply),
        numpy="{out} = {in1} * {in2}"),
    _op(4, "SCALAR_DIVISION", SCALAR, SCALAR, SCALAR, "{out} = {in1} / {in2}", 3.964, _scalar2(np.divide),
        numpy="{out} = {in1} / {in2}"),
    _op(5, "SCALAR_ABS", SCALAR, None, SCALAR, "{out} = abs({in1})", 3.684, _scalar(np.abs),
        numpy="{out} = abs({in1})"),
    _op(6, "SCALAR_RECIPROCAL", SCALAR, None, SCALAR, "{out} = 1 / {in1}", 4.212,
        _scalar(lambda a: np.divide(1.0, a)),
        numpy="{out} = 1.0 / {in1}"),
    _op(7, "SCALAR_SIN", SCALAR, None, SCALAR, "{out} = sin({in1})", 7.539, _scalar(np.sin),
        numpy="{out} = sin({in1})"),
    _op(8, "SCALAR_COS", SCALAR, None, SCALAR, "{out} = cos({in1})", 7.453, _scalar(np.cos),
        numpy="{out} = cos({in1})"),
    _op(9, "SCALAR_TAN", SCALAR, None, SCALAR, "{out} = tan({in1})", 7.583, _scalar(np.tan),
        numpy="{out} = tan({in1})"),
    _op(10, "SCALAR_ARCSIN", SCALAR, None, SCALAR, "{out} = arcsin({in1})", 9.146, _scalar(np.arcsin),
        numpy="{out} = arcsin({in1})"),
    _op(11, "SCALAR_ARCCOS", SCALAR, None, SCALAR, "{out} = arccos({in1})", 7.673, _scalar(np.arccos),
        numpy="{out} = arccos({in1})"),
    _op(12, "SCALAR_ARCTAN", SCALAR, None, SCALAR, "{out} = arctan({in1})", 9.274, _scalar(np.arctan),
        numpy="{out} = math.atan({in1})"),
    _op(13, "SCALAR_EXP", SCALAR, None, SCALAR, "{out} = exp({in1})", 11.756, _scalar(np.exp),
        numpy="{out} = exp({in1})"),
    _op(14, "SCALAR_LOG", SCALAR, None, SCALAR, "{out} = log({in1})", 11.628, _scalar(np.log),
        numpy="{out} = log({in1})"),
    _op(15, "SCALAR_HEAVYSIDE", SCALAR, None, SCALAR, "{out} = heaviside({in1}, 1.0)", 4.057,
        _unary(_heaviside),
        numpy="{out} = heaviside({in1})"),
    _op(16, "VECTOR_HEAVYSIDE", VECTOR, None, VECTOR, "{out} = heaviside({in1}, 1.0)", 3.966,
        _unary(_heaviside),
        numpy="{out} = heaviside({in1})"),
    _op(17, "MATRIX_HEAVYSIDE", MATRIX, None, MATRIX, "{out} = heaviside({in1}, 1.0)", 6.728,
        _unary(_heaviside),
        numpy="{out} = heaviside({in1})"),
    _op(18, "SCALAR_VECTOR_PRODUCT", SCALAR, VECTOR, VECTOR, "{out} = {in1} * {in2}", 3.705,
        _binary(np.multiply),
        numpy="{out} = {in1} * {in2}"),
    _op(19, "SCALAR_BROADCAST", SCALAR, None, VECTOR, "{out} = bcast({in1})", 4.166,
        lambda a, b, out, c, f, rng: np.full(f, a, dtype=np.float64),
        numpy="{out} = np.full(n_features, {in1})"),
    _op(20, "VECTOR_RECIPROCAL", VECTOR, None, VECTOR, "{out} = 1 / {in1}", 6.312,
        _unary(lambda a: np.divide(1.0, a)),
        numpy="{out} = 1.0 / {in1}"),
    _op(21, "VECTOR_NORM", VECTOR, None, SCALAR, "{out} = norm({in1})", 4.811,
        _unary(lambda a: float(np.sqrt(np.sum(a * a)))),
        numpy="{out} = norm({in1})"),
    _op(22, "VECTOR_ABS", VECTOR, None, VECTOR, "{out} = abs({in1})", 3.714, _unary(np.abs),
        numpy="{out} = np.abs({in1})"),
    _op(23, "VECTOR_SUM", VECTOR, VECTOR, VECTOR, "{out} = {in1} + {in2}", 4.702, _binary(np.add),
        numpy="{out} = {in1} + {in2}"),
    _op(24, "VECTOR_DIFF", VECTOR, VECTOR, VECTOR, "{out} = {in1} - {in2}", 4.166, _binary(np.subtract),
        numpy="{out} = {in1} - {in2}"),
    _op(25, "VECTOR_PRODUCT", VECTOR, VECTOR, VECTOR, "{out} = {in1} * {in2}", 4.505, _binary(np.multiply),
        numpy="{out} = {in1} * {in2}"),
    _op(26, "VECTOR_DIVISION", VECTOR, VECTOR, VECTOR, "{out} = {in1} / {in2}", 4.556, _binary(np.divide),
        numpy="{out} = {in1} / {in2}"),
    _op(27, "VECTOR_INNER_PRODUCT", VECTOR, VECTOR, SCALAR, "{out} = dot({in1}, {in2})", 4.295,
        _binary(lambda a, b: float(np.sum(a * b))),
        numpy="{out} = dot({in1}, {in2})"),
    _op(28, "VECTOR_OUTER_PRODUCT", VECTOR, VECTOR, MATRIX, "{out} = outer({in1}, {in2})", 9.834,
        _binary(np.outer),
        numpy="{out} = np.outer({in1}, {in2})"),
    _op(29, "SCALAR_MATRIX_PRODUCT", SCALAR, MATRIX, MATRIX, "{out} = {in1} * {in2}", 5.986,
        _binary(np.multiply),
        numpy="{out} = {in1} * {in2}"),
    _op(30, "MATRIX_RECIPROCAL", MATRIX, None, MATRIX, "{out} = 1 / {in1}", 24.336,
        _unary(lambda a: np.divide(1.0, a)),
        numpy="{out} = 1.0 / {in1}"),
    _op(31, "MATRIX_VECTOR_PRODUCT", MATRIX, VECTOR, VECTOR, "{out} = dot({in1}, {in2})", 9.310,
        _binary(lambda a, b: np.sum(a * b[None, :], axis=1)),
        numpy="{out} = matvec({in1}, {in2})"),
    _op(32, "VECTOR_COLUMN_BROADCAST", VECTOR, None, MATRIX, "{out} = bcast({in1}, axis=0)", 10.993,
        _unary(lambda a: np.repeat(np.asarray(a)[:, None], len(a), axis=1)),
        numpy="{out} = {in1}[:, np.newaxis]  # every column is {in1}"),
    _op(33, "VECTOR_ROW_BROADCAST", VECTOR, None, MATRIX, "{out} = bcast({in1}, axis=1)", 11.087,
        _unary(lambda a: np.repeat(np.asarray(a)[None, :], len(a), axis=0)),
        numpy="{out} = {in1}[np.newaxis, :]  # every row is {in1}"),
    _op(34, "MATRIX_NORM", MATRIX, None, SCALAR, "{out} = norm({in1})", 6.423,
        _unary(lambda a: float(np.sqrt(np.sum(a * a)))),
        numpy="{out} = norm({in1})"),
    _op(35, "MATRIX_COLUMN_NORM", MATRIX, None, VECTOR, "{out} = norm({in1}, axis=0)", 6.682,
        _unary(lambda a: np.sqrt(np.sum(a * a, axis=0))),
        numpy="{out} = column_norm({in1})"),
    _op(36, "MATRIX_ROW_NORM", MATRIX, None, VECTOR, "{out} = norm({in1}, axis=1)", 13.351,
        _unary(lambda a: np.sqrt(np.sum(a * a, axis=1))),
        numpy="{out} = row_norm({in1})"),
    _op(37, "MATRIX_TRANSPOSE", MATRIX, None, MATRIX, "{out} = transpose({in1})", 9.395,
        _unary(lambda a: np.array(np.transpose(a))),
        numpy="{out} = {in1}.T.copy()"),
    _op(38, "MATRIX_ABS", MATRIX, None, MATRIX, "{out} = abs({in1})", 4.631, _unary(np.abs),
        numpy="{out} = np.abs({in1})"),
    _op(39, "MATRIX_SUM", MATRIX, MATRIX, MATRIX, "{out} = {in1} + {in2}", 5.579, _binary(np.add),
        numpy="{out} = {in1} + {in2}"),
    _op(40, "MATRIX_DIFF", MATRIX, MATRIX, MATRIX, "{out} = {in1} - {in2}", 5.429, _binary(np.subtract),
        numpy="{out} = {in1} - {in2}"),
    _op(41, "MATRIX_PRODUCT", MATRIX, MATRIX, MATRIX, "{out} = {in1} * {in2}", 5.475, _binary(np.multiply),
        numpy="{out} = {in1} * {in2}"),
    _op(42, "MATRIX_DIVISION", MATRIX, MATRIX, MATRIX, "{out} = {in1} / {in2}", 18.234, _binary(np.divide),
        numpy="{out} = {in1} / {in2}"),
    _op(43, "MATRIX_MATRIX_PRODUCT", MATRIX, MATRIX, MATRIX, "{out} = matmul({in1}, {in2})", 14.516,
        _binary(lambda a, b: np.sum(a[:, :, None] * b[None, :, :], axis=1)),
        numpy="{out} = matmul({in1}, {in2})"),
    _op(44, "SCALAR_MIN", SCALAR, SCALAR, SCALAR, "{out} = minimum({in1}, {in2})", 3.677,
        _scalar2(np.minimum),
        numpy="{out} = minimum({in1}, {in2})"),
    _op(45, "VECTOR_MIN", VECTOR, VECTOR, VECTOR, "{out} = minimum({in1}, {in2})", 3.990,
        _binary(np.minimum),
        numpy="{out} = minimum({in1}, {in2})"),
    _op(46, "MATRIX_MIN", MATRIX, MATRIX, MATRIX, "{out} = minimum({in1}, {in2})", 5.458,
        _binary(np.minimum),
        numpy="{out} = minimum({in1}, {in2})"),
    _op(47, "SCALAR_MAX", SCALAR, SCALAR, SCALAR, "{out} = maximum({in1}, {in2})", 4.574,
        _scalar2(np.maximum),
        numpy="{out} = maximum({in1}, {in2})"),
    _op(48, "VECTOR_MAX", VECTOR, VECTOR, VECTOR, "{out} = maximum({in1}, {in2})", 3.974,
        _binary(np.maximum),
        numpy="{out} = maximum({in1}, {in2})"),
    _op(49, "MATRIX_MAX", MATRIX, MATRIX, MATRIX, "{out} = maximum({in1}, {in2})", 5.841,
        _binary(np.maximum),
        numpy="{out} = maximum({in1}, {in2})"),
    _op(50, "VECTOR_MEAN", VECTOR, None, SCALAR, "{out} = mean({in1})", 4.280,
        _unary(lambda a: float(np.mean(a))),
        numpy="{out} = mean({in1})"),
    _op(51, "MATRIX_MEAN", MATRIX, None, SCALAR, "{out} = mean({in1})", 4.595,
        _unary(lambda a: float(np.mean(a))),
        numpy="{out} = mean({in1})"),
    _op(52, "MATRIX_ROW_MEAN", MATRIX, None, VECTOR, "{out} = mean({in1}, axis=1)", 9.764,
        _unary(lambda a: np.mean(a, axis=1)),
        numpy="{out} = row_mean({in1})"),
    _op(53, "MATRIX_ROW_ST_DEV", MATRIX, None, VECTOR, "{out} = std({in1}, axis=1)", 16.766,
        _unary(_row_std),
        numpy="{out} = row_std({in1})"),
    _op(54, "VECTOR_ST_DEV", VECTOR, None, SCALAR, "{out} = std({in1})", 5.586, _unary(_std),
        numpy="{out} = std({in1})"),
    _op(55, "MATRIX_ST_DEV", MATRIX, None, SCALAR, "{out} = std({in1})", 10.640, _unary(_std),
        numpy="{out} = std({in1})"),
    _op(56, "SCALAR_CONST_SET", None, None, SCALAR, "{out} = {c0}", 3.691,
        lambda a, b, out, c, f, rng: float(c[0]), (ConstSpec("value", VALUE),),
        numpy="{out} = {c0}"),
    _op(57, "VECTOR_CONST_SET", None, None, VECTOR, "{out}[{c0}] = {c1}", 3.991, _vector_const,
        (ConstSpec("index", FRACTION), ConstSpec("value", VALUE)),
        numpy="{out}[{c0}] = {c1}"),
    _op(58, "MATRIX_CONST_SET", None, None, MATRIX, "{out}[{c0}, {c1}] = {c2}", 3.693, _matrix_const,
        (ConstSpec("row", FRACTION), ConstSpec("column", FRACTION), ConstSpec("value", VALUE)),
        numpy="{out}[{c0}, {c1}] = {c2}"),
    _op(59, "SCALAR_UNIFORM_SET", None, None, SCALAR, "{out} = uniform({c0}, {c1})", 26.611,
        lambda a, b, out, c, f, rng: _uniform(c[0], c[1], rng), _BOUNDS,
        random=True, sorted_bounds=True,
        numpy="{out} = uniform(rng, {c0}, {c1})"),
    _op(60, "VECTOR_UNIFORM_SET", None, None, VECTOR, "{out} = uniform({c0}, {c1}, n_features)", 57.817,
        lambda a, b, out, c, f, rng: _fill(f, lambda: _uniform(c[0], c[1], rng)), _BOUNDS,
        random=True, sorted_bounds=True,
        numpy="{out} = uniform(rng, {c0}, {c1}, n_features)"),
    _op(61, "MATRIX_UNIFORM_SET", None, None, MATRIX,
        "{out} = uniform({c0}, {c1}, (n_features, n_features))", 208.339,
        lambda a, b, out, c, f, rng: _fill((f, f), lambda: _uniform(c[0], c[1], rng)), _BOUNDS,
        random=True, sorted_bounds=True,
        numpy="{out} = uniform(rng, {c0}, {c1}, (n_features, n_features))"),
    _op(62, "SCALAR_GAUSSIAN_SET", None, None, SCALAR, "{out} = gaussian({c0}, {c1})", 20.776,
        lambda a, b, out, c, f, rng: _gaussian(c[0], c[1], rng), _GAUSS, random=True,
        numpy="{out} = gaussian(rng, {c0}, {c1})"),
    _op(63, "VECTOR_GAUSSIAN_SET", None, None, VECTOR, "{out} = gaussian({c0}, {c1}, n_features)",
        77.483, lambda a, b, out, c, f, rng: _fill(f, lambda: _gaussian(c[0], c[1], rng)), _GAUSS,
        random=True,
        numpy="{out} = gaussian(rng, {c0}, {c1}, n_features)"),
    _op(64, "MATRIX_GAUSSIAN_SET", None, None, MATRIX,
        "{out} = gaussian({c0}, {c1}, (n_features, n_features))", 277.690,
        lambda a, b, out, c, f, rng: _fill((f, f), lambda: _gaussian(c[0], c[1], rng)), _GAUSS,
        random=True,
        numpy="{out} = gaussian(rng, {c0}, {c1}, (n_features, n_features))"),
)

OPS_BY_NAME: dict[str, OpSpec] = {op.name: op for op in OPS}



BEGIN_MARK = "<!-- op-table:begin (generated by `evozero ops`; do not edit) -->"
END_MARK = "<!-- op-table:end -->"


def markdown() -> str:
    """The table as Markdown, one row per op: code, name, operand kinds, constants, form, cost."""
    rows = ["| code | name | in1 | in2 | out | constants | printed form | cost |",
            "|---:|---|---|---|---|---|---|---:|"]
    for op in OPS:
        kinds = [KIND_NAMES[k] if k else "" for k in (op.in1, op.in2, op.out)]
        constants = ", ".join(f"{c.name} ({c.kind})" for c in op.constants)
        example = op.form.format(out=f"{op.out}2" if op.out else "", in1=f"{op.in1}0" if op.in1 else "",
                                 in2=f"{op.in2}1" if op.in2 else "",
                                 **{f"c{k}": c.name for k, c in enumerate(op.constants)})
        rows.append(f"| {op.code} | {op.name} | {' | '.join(kinds)} | {constants} | "
                    f"`{example}` | {op.cost} |")
    return "\n".join(rows) + "\n"


def readme_with_table(readme: str) -> str:
    """``readme`` with the text between the op-table marks replaced by the current table."""
    start = readme.index(BEGIN_MARK) + len(BEGIN_MARK)
    stop = readme.index(END_MARK)
    return readme[:start] + "\n" + markdown() + readme[stop:]
