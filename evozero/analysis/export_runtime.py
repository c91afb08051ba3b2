"""The runtime of exported programs: the code :mod:`evozero.analysis.export` copies into every
generated module, kept here as a real module so it is imported, linted and tested.

It reproduces the rules of :mod:`ops.table` exactly as the numba kernel
(:mod:`ops.interpreter`) computes them, with numpy and :mod:`math` only: sums added left
to right in the kernel's order; scalar functions through the C library with IEEE results
instead of exceptions; NaN-propagating minimum / maximum; random draws from a
pure-Python splitmix64 stream identical to :mod:`ops.rng`.

Copying rules (the exporter relies on them): the module docstring, the imports and the
``if TYPE_CHECKING:`` block are not copied (a generated module has its own imports,
``math`` and ``numpy as np``, and evaluates no annotation); a public function
is an op helper, copied only when the program calls it; everything else is copied always.
The program itself (``setup``, ``predict``, ``learn``, memory sizes) is what the exporter
writes; :class:`OnlineLearner` runs it.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: generated modules import neither typing nor these
    from collections.abc import Callable

    from numpy.typing import ArrayLike

    Value = float | np.ndarray
    Shape = int | tuple[int, int] | None

_MASK64 = 0xFFFFFFFFFFFFFFFF
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def _mix64(z: int) -> int:
    """splitmix64's output function on a 64-bit integer."""
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
    return z ^ (z >> 31)


class SplitMix64:
    """The random stream of the evozero VM: splitmix64 sub-stream ``task_index`` of ``seed``."""

    def __init__(self, seed: int = 0, task_index: int = 0) -> None:
        inner = _mix64((int(task_index) + _GOLDEN) & _MASK64)
        self.state = _mix64(((int(seed) & _MASK64) * _GOLDEN + inner) & _MASK64)

    def uniform(self) -> float:
        """Next double uniform in [0, 1)."""
        self.state = (self.state + _GOLDEN) & _MASK64
        return float(_mix64(self.state) >> 11) * (1.0 / 9007199254740992.0)

    def normal(self) -> float:
        """Next standard normal (Box-Muller, cosine half)."""
        u1 = 1.0 - self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


class Memory:
    """The program's memory: scalars s, vectors v (length n_features), matrices m."""

    def __init__(self, n_features: int, num_scalars: int, num_vectors: int,
                 num_matrices: int) -> None:
        self.n_features = n_features
        self.s = np.zeros(num_scalars)
        self.v = np.zeros((num_vectors, n_features))
        self.m = np.zeros((num_matrices, n_features, n_features))


def _sigmoid(x: float) -> float:
    """The VM's squash of classification predictions: 1 / (1 + exp(-x))."""
    try:
        e = math.exp(-x)
    except OverflowError:
        e = math.inf
    return 1.0 / (1.0 + e)


class OnlineLearner:
    """An evolved algorithm as an online learner: ``fit`` then ``predict``.

    A generated module subclasses it with the program: ``components`` (its setup,
    predict and learn functions of ``(memory, rng)``), ``memory_sizes`` and
    ``fixed_features`` (None: F is taken from the data). ``seed`` and ``task_index``
    choose the random stream (the VM's seed and the task's position in its task list);
    ``classification`` squashes the prediction with a sigmoid during training, as the VM
    does.
    """

    components: tuple[Callable, Callable, Callable]
    memory_sizes: tuple[int, int, int]
    fixed_features: int | None = None

    def __init__(self, seed: int = 0, task_index: int = 0, classification: bool = False) -> None:
        self.seed = seed
        self.task_index = task_index
        self.classification = classification
        self.memory: Memory | None = None
        self.rng: SplitMix64 | None = None
        self.training_predictions_ = np.zeros(0)

    def _start(self, n_features: int) -> tuple[Memory, SplitMix64]:
        if self.fixed_features is not None and n_features != self.fixed_features:
            raise ValueError(f"this algorithm was exported for {self.fixed_features} features, "
                             f"got {n_features}")
        self.memory = memory = Memory(n_features, *self.memory_sizes)
        self.rng = rng = SplitMix64(self.seed, self.task_index)
        with np.errstate(all="ignore"):
            self.components[0](memory, rng)
        return memory, rng

    def fit(self, X: ArrayLike, y: ArrayLike, epochs: int = 1) -> OnlineLearner:
        """Fresh memory, Setup once, then Predict and Learn on every row in order, per epoch.

        ``training_predictions_`` receives the prediction made before learning each row
        (squashed for classification). Returns self.
        """
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)} labels")
        memory, rng = self._start(X.shape[1])
        _, predict, learn = self.components
        predictions = []
        with np.errstate(all="ignore"):
            for _ in range(epochs):
                for features, label in zip(X, y):
                    memory.v[0] = features
                    memory.s[0] = 0.0
                    predict(memory, rng)
                    if self.classification:
                        memory.s[1] = _sigmoid(memory.s[1])
                    predictions.append(float(memory.s[1]))
                    memory.s[0] = label
                    learn(memory, rng)
        self.training_predictions_ = np.array(predictions)
        return self

    def predict(self, X: ArrayLike) -> np.ndarray:
        """s1 after Predict on each row in order (raw, unsquashed, as the VM validates).

        Memory carries over between rows, as in the VM; without ``fit``, Setup runs first.
        """
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if self.memory is None or self.rng is None:
            memory, rng = self._start(X.shape[1])
        else:
            memory, rng = self.memory, self.rng
        predict = self.components[1]
        predictions = np.empty(len(X))
        with np.errstate(all="ignore"):
            for row, features in enumerate(X):
                memory.v[0] = features
                memory.s[0] = 0.0
                predict(memory, rng)
                predictions[row] = memory.s[1]
        return predictions


# --- op helpers: copied only when a program calls them ---------------------------------

def sin(x: float) -> float:
    """sin(x); NaN for +-Inf (no exception)."""
    return math.sin(x) if math.isfinite(x) else math.nan


def cos(x: float) -> float:
    """cos(x); NaN for +-Inf (no exception)."""
    return math.cos(x) if math.isfinite(x) else math.nan


def tan(x: float) -> float:
    """tan(x); NaN for +-Inf (no exception)."""
    return math.tan(x) if math.isfinite(x) else math.nan


def arcsin(x: float) -> float:
    """arcsin(x); NaN outside [-1, 1]."""
    return math.asin(x) if -1.0 <= x <= 1.0 else math.nan


def arccos(x: float) -> float:
    """arccos(x); NaN outside [-1, 1]."""
    return math.acos(x) if -1.0 <= x <= 1.0 else math.nan


def exp(x: float) -> float:
    """exp(x); +Inf on overflow (no exception)."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def log(x: float) -> float:
    """Natural log; -Inf at 0, NaN for negative or NaN input (no exception)."""
    if x > 0.0:
        return math.log(x)
    return -math.inf if x == 0.0 else math.nan


def heaviside(x: Value) -> np.ndarray:
    """1.0 where x > 0, else 0.0 (NaN gives 0.0); scalars and arrays alike."""
    return np.where(np.asarray(x) > 0.0, 1.0, 0.0)


def minimum(a: Value, b: Value) -> np.ndarray:
    """Element-wise minimum; NaN in either operand gives NaN."""
    a, b = np.asarray(a), np.asarray(b)
    return np.where((a != a) | (b != b), np.nan, np.where(a < b, a, b))


def maximum(a: Value, b: Value) -> np.ndarray:
    """Element-wise maximum; NaN in either operand gives NaN."""
    a, b = np.asarray(a), np.asarray(b)
    return np.where((a != a) | (b != b), np.nan, np.where(a > b, a, b))


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """Inner product, summed left to right."""
    total = 0.0
    for x, y in zip(a.tolist(), b.tolist()):
        total += x * y
    return total


def norm(a: np.ndarray) -> float:
    """Euclidean (Frobenius) norm, squares summed in row-major order."""
    total = 0.0
    for x in a.ravel().tolist():
        total += x * x
    return math.sqrt(total)


def column_norm(a: np.ndarray) -> np.ndarray:
    """Norm of each column, squares summed from the top row down."""
    total = np.zeros(a.shape[1])
    for row in a:
        total = total + row * row
    return np.sqrt(total)


def row_norm(a: np.ndarray) -> np.ndarray:
    """Norm of each row, squares summed left to right."""
    total = np.zeros(a.shape[0])
    for j in range(a.shape[1]):
        total = total + a[:, j] * a[:, j]
    return np.sqrt(total)


def matvec(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Matrix-vector product a @ x, each row summed left to right."""
    total = np.zeros(a.shape[0])
    for j in range(a.shape[1]):
        total = total + a[:, j] * x[j]
    return total


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Matrix product a @ b, each entry summed over k in increasing order."""
    total = np.zeros((a.shape[0], b.shape[1]))
    for k in range(a.shape[1]):
        total = total + a[:, k:k + 1] * b[k:k + 1, :]
    return total


def mean(a: np.ndarray) -> float:
    """Mean of all elements, summed in row-major order."""
    total = 0.0
    values = a.ravel().tolist()
    for x in values:
        total += x
    return total / len(values)


def row_mean(a: np.ndarray) -> np.ndarray:
    """Mean of each row, summed left to right."""
    total = np.zeros(a.shape[0])
    for j in range(a.shape[1]):
        total = total + a[:, j]
    return total / a.shape[1]


def std(a: np.ndarray) -> float:
    """Population standard deviation, two passes about the first element (constant -> 0)."""
    values = a.ravel().tolist()
    first = values[0]
    total = 0.0
    for x in values:
        total += x - first
    centre = total / len(values)
    total = 0.0
    for x in values:
        d = (x - first) - centre
        total += d * d
    return math.sqrt(total / len(values))


def row_std(a: np.ndarray) -> np.ndarray:
    """Standard deviation of each row, two passes about the row's first element."""
    n = a.shape[1]
    first = a[:, 0]
    total = np.zeros(a.shape[0])
    for j in range(n):
        total = total + (a[:, j] - first)
    centre = total / n
    total = np.zeros(a.shape[0])
    for j in range(n):
        d = (a[:, j] - first) - centre
        total = total + d * d
    return np.sqrt(total / n)


def index(fraction: float, n: int) -> int:
    """Index of an index fraction: floor(n * fraction) clipped to 0..n-1."""
    position = math.floor(n * fraction)
    return min(max(position, 0), n - 1)


def uniform(rng: SplitMix64, low: float, high: float, shape: Shape = None) -> Value:
    """Uniform draws from [min(low, high), max(low, high)), in row-major order."""
    lo, hi = min(low, high), max(low, high)
    if shape is None:
        return lo + (hi - lo) * rng.uniform()
    values = np.empty(shape)
    flat = values.reshape(-1)
    for k in range(flat.size):
        flat[k] = lo + (hi - lo) * rng.uniform()
    return values


def gaussian(rng: SplitMix64, mean: float, std: float, shape: Shape = None) -> Value:
    """Normal draws with the given mean and abs(std), in row-major order."""
    if shape is None:
        return mean + abs(std) * rng.normal()
    values = np.empty(shape)
    flat = values.reshape(-1)
    for k in range(flat.size):
        flat[k] = mean + abs(std) * rng.normal()
    return values
