"""Hand-written programs of the reference and the built-in baselines.

They serve as initial populations, as test oracles, as benchmark workloads and, by name,
as baselines wherever a program is accepted (:data:`BUILTIN_PROGRAMS`).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from evozero.errors import EvozeroError
from evozero.programs.program import Program

LINEAR_TEXT = """\
def Setup():
  s2 = {learning_rate!r}
def Predict():
  s1 = dot(v0, v1)
def Learn():
  s3 = s0 - s1
  s3 = s3 * s2
  v2 = s3 * v0
  v1 = v1 + v2
"""

AFFINE_TEXT = """\
def Setup():
  s2 = {learning_rate!r}
def Predict():
  s1 = dot(v0, v1)
  s1 = s1 + s3
def Learn():
  s4 = s0 - s1
  s4 = s4 * s2
  v2 = s4 * v0
  v1 = v1 + v2
  s3 = s3 + s4
"""

NEURAL_NET_TEXT = """\
def Setup():
  v2 = gaussian(0.0, 0.1, n_features)
  m0 = gaussian(0.0, 0.1, (n_features, n_features))
  s3 = {learning_rate!r}
def Predict():
  v3 = dot(m0, v0)
  v3 = v3 + v1
  v4 = maximum(v3, v5)
  s1 = dot(v4, v2)
  s1 = s1 + s2
def Learn():
  s4 = s0 - s1
  s4 = s4 * s3
  s2 = s2 + s4
  v6 = s4 * v2
  v7 = s4 * v4
  v2 = v2 + v7
  v8 = heaviside(v3, 1.0)
  v6 = v6 * v8
  v1 = v1 + v6
  m1 = outer(v6, v0)
  m0 = m0 + m1
"""


def linear_program(learning_rate: float = 0.01) -> Program:
    """SGD linear regression (logistic regression on classification tasks); memory >= 4/3/0."""
    return Program.parse(LINEAR_TEXT.format(learning_rate=float(learning_rate)))


def logistic_program(learning_rate: float = 0.1) -> Program:
    """Logistic regression by SGD: the linear learner, meant for classification tasks.

    On a classification task the VM squashes ``s1`` with a sigmoid before Learn (see
    docs/design.md, "Evaluation protocol"), so ``s0 - s1`` is the negative gradient of
    the log loss with respect to the logit and the update is logistic regression's. On a
    regression task it is plain linear regression. Memory >= 4/3/0.
    """
    return linear_program(learning_rate)


def affine_program(learning_rate: float = 0.01) -> Program:
    """SGD linear regression with a learned bias: ``s1 = dot(v0, v1) + s3``; Learn moves
    the weights ``v1`` and the bias ``s3`` by the same scaled error. Memory >= 5/3/0."""
    return Program.parse(AFFINE_TEXT.format(learning_rate=float(learning_rate)))


def neural_net_program(learning_rate: float = 0.01, damaged: bool = False) -> Program:
    """Two-layer ReLU network with biases trained by backpropagation; memory >= 5/9/2.

    Hidden width F, both weight layers initialised N(0, 0.1). ``damaged`` drops the two
    random initialisations (weights start at 0), as the reference's integration test.
    """
    text = NEURAL_NET_TEXT.format(learning_rate=float(learning_rate))
    if damaged:
        text = "\n".join(line for line in text.splitlines() if "gaussian" not in line) + "\n"
    return Program.parse(text)


#: Built-in baselines by name: each builds its program (default learning rate if none is
#: given). Iterating gives the names.
BUILTIN_PROGRAMS: Mapping[str, Callable[..., Program]] = MappingProxyType({
    "linear": linear_program,
    "logistic": logistic_program,
    "affine": affine_program,
    "neural_net": neural_net_program,
})


def builtin_program(name: str) -> Program:
    """The built-in program ``name`` (see :data:`BUILTIN_PROGRAMS`) with its default rate."""
    if not isinstance(name, str) or name.strip().lower() not in BUILTIN_PROGRAMS:
        raise EvozeroError(f"unknown built-in program {name!r}"[:200]
                           + f"; the built-ins are {', '.join(BUILTIN_PROGRAMS)}")
    return BUILTIN_PROGRAMS[name.strip().lower()]()
