"""Hand-written programs of the reference: the linear and the neural-net learners.

They serve as initial populations, as test oracles and as benchmark workloads.
"""
from __future__ import annotations

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


def neural_net_program(learning_rate: float = 0.01, damaged: bool = False) -> Program:
    """Two-layer ReLU network with biases trained by backpropagation; memory >= 5/9/2.

    Hidden width F, both weight layers initialised N(0, 0.1). ``damaged`` drops the two
    random initialisations (weights start at 0), as the reference's integration test.
    """
    text = NEURAL_NET_TEXT.format(learning_rate=float(learning_rate))
    if damaged:
        text = "\n".join(line for line in text.splitlines() if "gaussian" not in line) + "\n"
    return Program.parse(text)


# TEMPORARY shim until the built-in programs land; replaced by the merge.
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
BUILTIN_PROGRAMS = ("linear", "logistic", "affine", "neural_net")


def builtin_program(name: str) -> Program:
    from evozero.errors import EvozeroError
    if name in ("linear", "logistic"):
        return linear_program()
    if name == "affine":
        return Program.parse(AFFINE_TEXT.format(learning_rate=0.01))
    if name == "neural_net":
        return neural_net_program()
    raise EvozeroError(f"unknown program {name!r}; built-in programs: {', '.join(BUILTIN_PROGRAMS)}")
