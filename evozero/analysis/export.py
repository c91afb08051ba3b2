"""Export a program as a standalone, readable Python module that needs only numpy.

:func:`export_python` writes one numpy line per instruction (``s[3] = s[0] - s[1]``,
``v[2] = s[4] * v[0]``, ``s[1] = dot(v[0], v[1])``, ...) into ``setup``, ``predict`` and
``learn`` functions, plus small helpers that reproduce the rules of :mod:`ops.table`
exactly as the numba kernel (:mod:`ops.interpreter`) computes them:

* sums (dot products, norms, means, standard deviations, matrix products) are added
  left to right in the kernel's order, so results are bit-identical, not merely close;
* scalar transcendental functions call the C library through :mod:`math` (as numba
  does), with IEEE results (NaN, +-Inf) instead of Python exceptions;
* minimum / maximum propagate NaN and pick operands exactly as the kernel does;
* random ops draw from a pure-Python splitmix64 stream identical to :mod:`ops.rng`.

By default the program is first stripped of dead code (:func:`evozero.evaluation.vm.strip_dead_code`),
because the VM runs only the live rows and random ops draw in the order of those rows;
exporting the stripped program is what makes random draws match the VM bit for bit.
"""
from __future__ import annotations

import keyword
import math
import re
from typing import Optional

from evozero.errors import EvozeroError
from evozero.programs.program import COMPONENTS, Program
from ops.table import OPS

_KIND_ARRAY = {"s": "s", "v": "v", "m": "m"}

# op code -> line template; {o}, {a}, {b} are operands, {c0}.. constants, {i}/{j} indices.
_TEMPLATES: dict[int, str] = {
    0: "pass  # no-op",
    1: "{o} = {a} + {b}",
    2: "{o} = {a} - {b}",
    3: "{o} = {a} * {b}",
    4: "{o} = {a} / {b}",
    5: "{o} = abs({a})",
    6: "{o} = 1.0 / {a}",
    7: "{o} = sin({a})",
    8: "{o} = cos({a})",
    9: "{o} = tan({a})",
    10: "{o} = arcsin({a})",
    11: "{o} = arccos({a})",
    12: "{o} = math.atan({a})",
    13: "{o} = exp({a})",
    14: "{o} = log({a})",
    15: "{o} = heaviside({a})",
    16: "{o} = heaviside({a})",
    17: "{o} = heaviside({a})",
    18: "{o} = {a} * {b}",
    19: "{o} = np.full(n_features, {a})",
    20: "{o} = 1.0 / {a}",
    21: "{o} = norm({a})",
    22: "{o} = np.abs({a})",
    23: "{o} = {a} + {b}",
    24: "{o} = {a} - {b}",
    25: "{o} = {a} * {b}",
    26: "{o} = {a} / {b}",
    27: "{o} = dot({a}, {b})",
    28: "{o} = np.outer({a}, {b})",
    29: "{o} = {a} * {b}",
    30: "{o} = 1.0 / {a}",
    31: "{o} = matvec({a}, {b})",
    32: "{o} = {a}[:, np.newaxis]  # every column is {a}",
    33: "{o} = {a}[np.newaxis, :]  # every row is {a}",
    34: "{o} = norm({a})",
    35: "{o} = column_norm({a})",
    36: "{o} = row_norm({a})",
    37: "{o} = {a}.T.copy()",
    38: "{o} = np.abs({a})",
    39: "{o} = {a} + {b}",
    40: "{o} = {a} - {b}",
    41: "{o} = {a} * {b}",
    42: "{o} = {a} / {b}",
    43: "{o} = matmul({a}, {b})",
    44: "{o} = minimum({a}, {b})",
    45: "{o} = minimum({a}, {b})",
    46: "{o} = minimum({a}, {b})",
    47: "{o} = maximum({a}, {b})",
    48: "{o} = maximum({a}, {b})",
    49: "{o} = maximum({a}, {b})",
    50: "{o} = mean({a})",
    51: "{o} = mean({a})",
    52: "{o} = row_mean({a})",
    53: "{o} = row_std({a})",
    54: "{o} = std({a})",
    55: "{o} = std({a})",
    56: "{o} = {c0}",
    57: "{o}[{i}] = {c1}",
    58: "{o}[{i}, {j}] = {c2}",
    59: "{o} = uniform(rng, {c0}, {c1})",
    60: "{o} = uniform(rng, {c0}, {c1}, n_features)",
    61: "{o} = uniform(rng, {c0}, {c1}, (n_features, n_features))",
    62: "{o} = gaussian(rng, {c0}, {c1})",
    63: "{o} = gaussian(rng, {c0}, {c1}, n_features)",
    64: "{o} = gaussian(rng, {c0}, {c1}, (n_features, n_features))",
}

# Helper functions of the generated module, emitted only when a line calls them.
_HELPERS: dict[str, str] = {
    "sin": '''
def sin(x):
    """sin(x); NaN for +-Inf (no exception)."""
    return math.sin(x) if math.isfinite(x) else math.nan
''',
    "cos": '''
def cos(x):
    """cos(x); NaN for +-Inf (no exception)."""
    return math.cos(x) if math.isfinite(x) else math.nan
''',
    "tan": '''
def tan(x):
    """tan(x); NaN for +-Inf (no exception)."""
    return math.tan(x) if math.isfinite(x) else math.nan
''',
    "arcsin": '''
def arcsin(x):
    """arcsin(x); NaN outside [-1, 1]."""
    return math.asin(x) if -1.0 <= x <= 1.0 else math.nan
''',
    "arccos": '''
def arccos(x):
    """arccos(x); NaN outside [-1, 1]."""
    return math.acos(x) if -1.0 <= x <= 1.0 else math.nan
''',
    "exp": '''
def exp(x):
    """exp(x); +Inf on overflow (no exception)."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf
''',
    "log": '''
def log(x):
    """Natural log; -Inf at 0, NaN for negative or NaN input (no exception)."""
    if x > 0.0:
        return math.log(x)
    return -math.inf if x == 0.0 else math.nan
''',
    "heaviside": '''
def heaviside(x):
    """1.0 where x > 0, else 0.0 (NaN gives 0.0); scalars and arrays alike."""
    return np.where(np.asarray(x) > 0.0, 1.0, 0.0)
''',
    "minimum": '''
def minimum(a, b):
    """Element-wise minimum; NaN in either operand gives NaN."""
    a, b = np.asarray(a), np.asarray(b)
    return np.where((a != a) | (b != b), np.nan, np.where(a < b, a, b))
''',
    "maximum": '''
def maximum(a, b):
    """Element-wise maximum; NaN in either operand gives NaN."""
    a, b = np.asarray(a), np.asarray(b)
    return np.where((a != a) | (b != b), np.nan, np.where(a > b, a, b))
''',
    "dot": '''
def dot(a, b):
    """Inner product, summed left to right."""
    total = 0.0
    for x, y in zip(a.tolist(), b.tolist()):
        total += x * y
    return total
''',
    "norm": '''
def norm(a):
    """Euclidean (Frobenius) norm, squares summed in row-major order."""
    total = 0.0
    for x in a.ravel().tolist():
        total += x * x
    return math.sqrt(total)
''',
    "column_norm": '''
def column_norm(a):
    """Norm of each column, squares summed from the top row down."""
    total = np.zeros(a.shape[1])
    for row in a:
        total = total + row * row
    return np.sqrt(total)
''',
    "row_norm": '''
def row_norm(a):
    """Norm of each row, squares summed left to right."""
    total = np.zeros(a.shape[0])
    for j in range(a.shape[1]):
        total = total + a[:, j] * a[:, j]
    return np.sqrt(total)
''',
    "matvec": '''
def matvec(a, x):
    """Matrix-vector product a @ x, each row summed left to right."""
    total = np.zeros(a.shape[0])
    for j in range(a.shape[1]):
        total = total + a[:, j] * x[j]
    return total
''',
    "matmul": '''
def matmul(a, b):
    """Matrix product a @ b, each entry summed over k in increasing order."""
    total = np.zeros((a.shape[0], b.shape[1]))
    for k in range(a.shape[1]):
        total = total + a[:, k:k + 1] * b[k:k + 1, :]
    return total
''',
    "mean": '''
def mean(a):
    """Mean of all elements, summed in row-major order."""
    total = 0.0
    values = a.ravel().tolist()
    for x in values:
        total += x
    return total / len(values)
''',
    "row_mean": '''
def row_mean(a):
    """Mean of each row, summed left to right."""
    total = np.zeros(a.shape[0])
    for j in range(a.shape[1]):
        total = total + a[:, j]
    return total / a.shape[1]
''',
    "std": '''
def std(a):
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
''',
    "row_std": '''
def row_std(a):
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
''',
    "index": '''
def index(fraction, n):
    """Index of an index fraction: floor(n * fraction) clipped to 0..n-1."""
    position = math.floor(n * fraction)
    return min(max(position, 0), n - 1)
''',
    "uniform": '''
def uniform(rng, low, high, shape=None):
    """Uniform draws from [min(low, high), max(low, high)), in row-major order."""
    lo, hi = min(low, high), max(low, high)
    if shape is None:
        return lo + (hi - lo) * rng.uniform()
    values = np.empty(shape)
    flat = values.reshape(-1)
    for k in range(flat.size):
        flat[k] = lo + (hi - lo) * rng.uniform()
    return values
''',
    "gaussian": '''
def gaussian(rng, mean, std, shape=None):
    """Normal draws with the given mean and abs(std), in row-major order."""
    if shape is None:
        return mean + abs(std) * rng.normal()
    values = np.empty(shape)
    flat = values.reshape(-1)
    for k in range(flat.size):
        flat[k] = mean + abs(std) * rng.normal()
    return values
''',
}

_RNG_SOURCE = '''
_MASK64 = 0xFFFFFFFFFFFFFFFF
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def _mix64(z):
    """splitmix64's output function on a 64-bit integer."""
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
    return z ^ (z >> 31)


class SplitMix64:
    """The random stream of the evozero VM: splitmix64 sub-stream ``task_index`` of ``seed``."""

    def __init__(self, seed=0, task_index=0):
        inner = _mix64((int(task_index) + _GOLDEN) & _MASK64)
        self.state = _mix64(((int(seed) & _MASK64) * _GOLDEN + inner) & _MASK64)

    def uniform(self):
        """Next double uniform in [0, 1)."""
        self.state = (self.state + _GOLDEN) & _MASK64
        return float(_mix64(self.state) >> 11) * (1.0 / 9007199254740992.0)

    def normal(self):
        """Next standard normal (Box-Muller, cosine half)."""
        u1 = 1.0 - self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
'''

_CLASS_SOURCE = '''

def _sigmoid(x):
    """The VM's squash of classification predictions: 1 / (1 + exp(-x))."""
    try:
        e = math.exp(-x)
    except OverflowError:
        e = math.inf
    return 1.0 / (1.0 + e)


class {name}:
    """The evolved algorithm as an online learner: ``fit`` then ``predict``.

    ``seed`` and ``task_index`` choose the random stream (the VM's seed and the task's
    position in its task list); ``classification`` squashes the prediction with a
    sigmoid during training, as the VM does.
    """

    def __init__(self, seed=0, task_index=0, classification=False):
        self.seed = seed
        self.task_index = task_index
        self.classification = classification
        self.memory = None
        self.rng = None
        self.training_predictions_ = np.zeros(0)

    def _start(self, n_features):
        if N_FEATURES is not None and n_features != N_FEATURES:
            raise ValueError(f"this algorithm was exported for {{N_FEATURES}} features, "
                             f"got {{n_features}}")
        self.memory = Memory(n_features)
        self.rng = SplitMix64(self.seed, self.task_index)
        with np.errstate(all="ignore"):
            setup(self.memory, self.rng)

    def fit(self, X, y, epochs=1):
        """Fresh memory, Setup once, then Predict and Learn on every row in order, per epoch.

        ``training_predictions_`` receives the prediction made before learning each row
        (squashed for classification). Returns self.
        """
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if len(X) != len(y):
            raise ValueError(f"X has {{len(X)}} rows but y has {{len(y)}} labels")
        self._start(X.shape[1])
        memory, rng = self.memory, self.rng
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

    def predict(self, X):
        """s1 after Predict on each row in order (raw, unsquashed, as the VM validates).

        Memory carries over between rows, as in the VM; without ``fit``, Setup runs first.
        """
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if self.memory is None:
            self._start(X.shape[1])
        memory, rng = self.memory, self.rng
        predictions = np.empty(len(X))
        with np.errstate(all="ignore"):
            for row, features in enumerate(X):
                memory.v[0] = features
                memory.s[0] = 0.0
                predict(memory, rng)
                predictions[row] = memory.s[1]
        return predictions
'''

_MEMORY_SOURCE = '''

class Memory:
    """The program's memory: scalars s, vectors v (length n_features), matrices m."""

    def __init__(self, n_features):
        self.n_features = n_features
        self.s = np.zeros(NUM_SCALARS)
        self.v = np.zeros((NUM_VECTORS, n_features))
        self.m = np.zeros((NUM_MATRICES, n_features, n_features))
'''

_COMPONENT_DOCS = {
    "setup": "Setup: runs once, on fresh (zeroed) memory, before training.",
    "predict": "Predict: v[0] holds the features, s[0] is 0; leaves the prediction in s[1].",
    "learn": "Learn: runs after Predict on a training row, with the label in s[0].",
}


def _operand(kind: Optional[str], address: int) -> str:
    return f"{_KIND_ARRAY[kind]}[{address}]" if kind else ""


def _index_text(fraction: float, n_features: Optional[int]) -> str:
    if n_features is None:
        return f"index({fraction!r}, n_features)"
    position = math.floor(n_features * fraction)
    return str(min(max(position, 0), n_features - 1))


def instruction_line(op: int, in1: int, in2: int, out: int, constants: tuple[float, ...],
                     n_features: Optional[int] = None) -> str:
    """One instruction as a line of numpy code on arrays ``s``, ``v``, ``m``."""
    spec = OPS[op]
    c = [float(x) for x in constants] + [0.0] * (3 - len(constants))
    fields = {"o": _operand(spec.out, out), "a": _operand(spec.in1, in1),
              "b": _operand(spec.in2, in2), "c0": repr(c[0]), "c1": repr(c[1]),
              "c2": repr(c[2])}
    if op == 57:
        fields["i"] = _index_text(c[0], n_features)
    elif op == 58:
        fields["i"] = _index_text(c[0], n_features)
        fields["j"] = _index_text(c[1], n_features)
    return _TEMPLATES[op].format(**fields)


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())


def export_python(program: Program, *, n_features: int | None = None,
                  name: str = "EvolvedAlgorithm", strip_dead_code: bool = True) -> str:
    """Source of a standalone numpy module implementing ``program`` exactly as the VM runs it.

    The module defines ``Memory``, ``SplitMix64``, ``setup/predict/learn(memory, rng)``
    and a class ``name`` with ``fit(X, y, epochs=1)`` and ``predict(X)``. With
    ``n_features`` the module is fixed to that many features (index constants become
    literal indices); otherwise F is taken from the data. ``strip_dead_code`` removes the
    rows the VM would not run, which keeps random draws in the VM's order.
    """
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise EvozeroError(f"name must be a Python identifier, got {name!r}")
    if n_features is not None and (int(n_features) != n_features or n_features < 1):
        raise EvozeroError(f"n_features must be an integer >= 1, got {n_features!r}")
    n_features = None if n_features is None else int(n_features)
    exported = program
    if strip_dead_code:
        from evozero.evaluation.vm import strip_dead_code as strip
        exported = strip(program)
    num_s, num_v, num_m = exported.memory_needs()

    bodies = {}
    for component in COMPONENTS:
        lines = [instruction_line(inst.op, inst.in1, inst.in2, inst.out, inst.constants,
                                  n_features) for inst in exported.instructions(component)]
        bodies[component] = lines
    all_lines = "\n".join(line for lines in bodies.values() for line in lines)
    helpers = [source for helper, source in _HELPERS.items() if _calls(all_lines, helper)]

    removed = sum(program.sizes) - sum(exported.sizes)
    doc = [f"{name}: a learning algorithm evolved by evozero, as a standalone numpy module.",
           "",
           "Program (evozero text form):",
           "",
           _indent(str(exported).rstrip("\n"), "    "),
           ""]
    if removed:
        doc += [f"{removed} instruction(s) that cannot affect a prediction were removed, as",
                "the evozero VM does; the original program was:",
                "",
                _indent(str(program).rstrip("\n"), "    "),
                ""]
    doc += ["Memory: s[0] holds the label during Learn (0 during Predict), s[1] the",
            "prediction, v[0] the features. Random ops draw from a splitmix64 stream",
            "(seed, task_index) exactly as the VM does, so predictions match it bit for bit.",
            "",
            "Usage::",
            "",
            f"    model = {name}(seed=0, task_index=0, classification=False)",
            "    model.fit(X_train, y_train)",
            "    predictions = model.predict(X_valid)",
            "",
            "Generated by evozero.analysis.export; depends only on numpy."]

    out = ['"""' + "\n".join(doc) + '\n"""',
           "from __future__ import annotations", "",
           "import math", "",
           "import numpy as np", "",
           f"NUM_SCALARS = {num_s}",
           f"NUM_VECTORS = {num_v}",
           f"NUM_MATRICES = {num_m}",
           f"N_FEATURES = {n_features!r}  # None: taken from the data",
           _RNG_SOURCE.rstrip("\n"),
           _MEMORY_SOURCE.rstrip("\n")]
    for source in helpers:
        out.append("\n" + source.rstrip("\n"))
    for component in COMPONENTS:
        out.append("")
        out.append("")
        out.append(f"def {component}(memory, rng):")
        out.append(f'    """{_COMPONENT_DOCS[component]}"""')
        body = "\n".join(bodies[component])
        names = [n for n in ("s", "v", "m", "n_features") if re.search(rf"\b{n}\b", body)]
        if names:
            out.append(f"    {', '.join(names)} = "
                       + ", ".join(f"memory.{n}" for n in names))
        out.extend("    " + line for line in bodies[component])
    out.append(_CLASS_SOURCE.format(name=name).rstrip("\n"))
    return "\n".join(out) + "\n"


def _calls(text: str, helper: str) -> bool:
    """Whether ``text`` calls ``helper`` as a bare name (not ``np.helper`` / ``math.helper``)."""
    return re.search(rf"(?<![\w.]){helper}\(", text) is not None
