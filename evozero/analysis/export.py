"""Export a program as a standalone, readable Python module that needs only numpy.

:func:`export_python` writes one numpy line per instruction (``s[3] = s[0] - s[1]``,
``v[2] = s[4] * v[0]``, ``s[1] = dot(v[0], v[1])``, ...) into ``setup``, ``predict`` and
``learn`` functions. Each line is the op's ``numpy_form`` from :mod:`ops.table`; the
helpers those lines call, the random stream and the learner class are copied from
:mod:`evozero.analysis.export_runtime`, which reproduces the kernel bit for bit.

By default the program is first stripped of dead code (:func:`evozero.programs.liveness.strip_dead_code`),
because the VM runs only the live rows and random ops draw in the order of those rows;
exporting the stripped program is what makes random draws match the VM bit for bit.
"""
from __future__ import annotations

import ast
import keyword
import math
import re
from pathlib import Path
from types import ModuleType

from evozero.analysis import export_runtime
from evozero.errors import EvozeroError
from evozero.programs.program import COMPONENTS, Program
from ops.table import FRACTION, OPS


def runtime_parts(module: ModuleType) -> tuple[list[str], dict[str, str]]:
    """The source of a runtime module split as exporters copy it into generated modules:
    the parts always copied, and the public functions by name (copied when called).

    The module docstring, the imports and an ``if TYPE_CHECKING:`` block are left out (a
    generated module has its own imports and evaluates no annotation).
    """
    source = Path(str(module.__file__)).read_text(encoding="utf-8")
    lines = source.splitlines()
    always: list[str] = []
    helpers: dict[str, str] = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) or (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) or (
                isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"):
            continue
        text = "\n".join(lines[node.lineno - 1:node.end_lineno])
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            helpers[node.name] = text
        elif isinstance(node, ast.Assign) and always and always[-1].startswith("_MASK64"):
            always[-1] += "\n" + text  # the stream's constants stay one block
        else:
            always.append(text)
    return always, helpers


_COMPONENT_DOCS = {
    "setup": "Setup: runs once, on fresh (zeroed) memory, before training.",
    "predict": "Predict: v[0] holds the features, s[0] is 0; leaves the prediction in s[1].",
    "learn": "Learn: runs after Predict on a training row, with the label in s[0].",
}


def _operand(kind: str | None, address: int) -> str:
    return f"{kind}[{address}]" if kind else ""


def _index_text(fraction: float, n_features: int | None) -> str:
    if n_features is None:
        return f"index({fraction!r}, n_features)"
    position = math.floor(n_features * fraction)
    return str(min(max(position, 0), n_features - 1))


def instruction_line(op: int, in1: int, in2: int, out: int, constants: tuple[float, ...],
                     n_features: int | None = None) -> str:
    """One instruction as a line of numpy code on arrays ``s``, ``v``, ``m``."""
    spec = OPS[op]
    c = [float(x) for x in constants] + [0.0] * (3 - len(constants))
    fields = {"out": _operand(spec.out, out), "in1": _operand(spec.in1, in1),
              "in2": _operand(spec.in2, in2)}
    for k, value in enumerate(c):
        fraction = k < len(spec.constants) and spec.constants[k].kind == FRACTION
        fields[f"c{k}"] = _index_text(value, n_features) if fraction else repr(value)
    return spec.numpy_form.format(**fields)


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
        from evozero.programs.liveness import strip_dead_code as strip
        exported = strip(program)
    num_s, num_v, num_m = exported.memory_needs()

    bodies = {}
    for component in COMPONENTS:
        lines = [instruction_line(inst.op, inst.in1, inst.in2, inst.out, inst.constants,
                                  n_features) for inst in exported.instructions(component)]
        bodies[component] = lines
    all_lines = "\n".join(line for lines in bodies.values() for line in lines)
    always, runtime_helpers = runtime_parts(export_runtime)
    helpers = [source for helper, source in runtime_helpers.items() if _calls(all_lines, helper)]

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
           f"N_FEATURES = {n_features!r}  # None: taken from the data"]
    for source in always + helpers:
        out.append("\n\n" + source)
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
    out += ["", "", f"class {name}(OnlineLearner):",
            '    """The program above as an online learner (see OnlineLearner)."""',
            "", "    components = (setup, predict, learn)",
            "    memory_sizes = (NUM_SCALARS, NUM_VECTORS, NUM_MATRICES)",
            "    fixed_features = N_FEATURES"]
    return "\n".join(out) + "\n"


def _calls(text: str, helper: str) -> bool:
    """Whether ``text`` calls ``helper`` as a bare name (not ``np.helper`` / ``math.helper``)."""
    return re.search(rf"(?<![\w.]){helper}\(", text) is not None
