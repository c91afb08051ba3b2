"""Exported standalone modules reproduce the VM's predictions bit for bit.

Every comparison here is exact: NaN where the VM has NaN, otherwise identical bits
(so even -0.0 versus 0.0 would be caught). No tolerance is needed because the generated
helpers sum in the kernel's order and call the same C library functions.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import ALL_OPS
from helpers import random_program as shared_random_program
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evozero as ez
from evozero.analysis.export import export_python, instruction_line
from evozero.evaluation.vm import evaluate_group, group_tasks
from evozero.programs.liveness import resolve_memory, strip_dead_code
from evozero.programs.reference import linear_program, neural_net_program
from ops.table import OPS

MEMORY = (5, 4, 2)


def vm_record(program: ez.Program, tasks, seed: int, memory=None) -> np.ndarray:
    """Predictions the VM records (training steps, then validation), one row per task.

    A record of n_train + n_valid columns, ``max_abs_error`` infinite (only NaN stops a task) and one epoch.
    """
    sizes = resolve_memory(program, memory)
    live = strip_dead_code(program, sizes)
    (group,) = group_tasks(tasks)
    record = np.zeros((group.num_tasks, group.x_train.shape[1] + group.x_valid.shape[0]))
    evaluate_group(live, group, sizes, seed, np.inf, record)
    return record


def load(source: str) -> dict:
    """Exec exported source in a fresh namespace."""
    namespace: dict = {"__name__": "exported"}
    exec(compile(source, "<exported>", "exec"), namespace)
    return namespace


def exported_record(namespace: dict, tasks, seed: int, name: str = "EvolvedAlgorithm"):
    rows = []
    for index, task in enumerate(tasks):
        model = namespace[name](seed=seed, task_index=index,
                                classification=task.classification)
        model.fit(task.x_train, task.y_train)
        rows.append(np.concatenate([model.training_predictions_, model.predict(task.x_valid)]))
    return np.array(rows)


def assert_bitwise_equal(vm: np.ndarray, ours: np.ndarray) -> None:
    """Equal NaN positions and identical bits elsewhere (so -0.0 != 0.0)."""
    vm_nan, our_nan = np.isnan(vm), np.isnan(ours)
    np.testing.assert_array_equal(vm_nan, our_nan)
    same = vm[~vm_nan].view(np.int64) == ours[~our_nan].view(np.int64)
    assert same.all(), (vm, ours)


def compare(program: ez.Program, tasks, seed: int = 0, memory=None, n_features=None) -> None:
    vm = vm_record(program, tasks, seed, memory)
    source = export_python(program, n_features=n_features)
    ours = exported_record(load(source), tasks, seed)
    n_train = tasks[0].n_train
    # The VM returns once every task diverged (NaN) in training: compare what it recorded.
    stops = []
    for row in ours:
        bad = np.flatnonzero(np.isnan(row[:n_train]))
        stops.append(int(bad[0]) + 1 if bad.size else None)
    if all(s is not None for s in stops):
        cut = max(stops)
        assert not vm[:, cut:].any()
        vm, ours = vm[:, :cut], ours[:, :cut]
    assert_bitwise_equal(vm, ours)


def random_tasks(rng: np.random.Generator, features: int, classification: bool,
                 num_tasks: int = 2, train: int = 6, valid: int = 4):
    tasks = []
    for _ in range(num_tasks):
        x_train = rng.normal(size=(train, features))
        x_valid = rng.normal(size=(valid, features))
        if classification:
            y_train = rng.integers(0, 2, train).astype(float)
            y_valid = rng.integers(0, 2, valid).astype(float)
        else:
            y_train, y_valid = rng.normal(size=train), rng.normal(size=valid)
        tasks.append(ez.Task("linear", x_train, y_train, x_valid, y_valid, classification))
    return tasks


def random_program(seed: int, sizes=(4, 4, 4), allowed=None, memory=MEMORY) -> ez.Program:
    return shared_random_program(seed, sizes, ALL_OPS if allowed is None else allowed, memory)


@pytest.fixture(scope="module")
def linear_tasks():
    return ez.make_tasks("linear", 2, 4, train=30, valid=10, seed=1)


@pytest.fixture(scope="module")
def digit_tasks():
    return ez.make_tasks("digits", 2, 4, train=30, valid=10, seed=3)


# --- the hand-written programs ---------------------------------------------------------

@pytest.mark.parametrize("make", [linear_program, neural_net_program])
@pytest.mark.parametrize("kind", ["linear", "digits"])
def test_known_programs_match_vm(make, kind, linear_tasks, digit_tasks):
    tasks = linear_tasks if kind == "linear" else digit_tasks
    for seed in (0, 7):
        compare(make(), tasks, seed=seed)
        compare(make(), tasks, seed=seed, n_features=4)


def test_neural_net_differs_by_seed_and_task(linear_tasks):
    namespace = load(export_python(neural_net_program()))
    task = linear_tasks[0]
    runs = [namespace["EvolvedAlgorithm"](seed=s, task_index=i).fit(task.x_train, task.y_train)
            .predict(task.x_valid) for s, i in ((0, 0), (1, 0), (0, 1))]
    assert not np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])


# --- the generated module ------------------------------------------------------------------

def test_module_text_is_readable():
    source = export_python(neural_net_program(), name="TinyNet")
    assert "def Setup():" in source and "m0 = gaussian(0.0, 0.1, (n_features, n_features))" in source
    for line in ("s[4] = s[0] - s[1]", "v[6] = s[4] * v[2]", "s[1] = dot(v[4], v[2])",
                 "m[1] = np.outer(v[6], v[0])", "v[3] = matvec(m[0], v[0])",
                 "def setup(memory, rng):", "def predict(memory, rng):",
                 "def learn(memory, rng):", "class TinyNet(OnlineLearner):", "class SplitMix64:"):
        assert line in source
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["from __future__ import annotations", "import math", "import numpy as np"]
    compile(source, "<exported>", "exec")


def test_dead_code_is_stripped_and_noted():
    program = ez.Program.parse("def Setup():\n  s3 = gaussian(0.0, 1.0)\n  s2 = 0.5\n"
                               "def Predict():\n  s1 = s2 * s2\ndef Learn():\n")
    source = export_python(program)
    assert "1 instruction(s) that cannot affect a prediction were removed, as" in source
    assert "gaussian(rng" not in source
    kept = export_python(program, strip_dead_code=False)
    assert "s[3] = gaussian(rng, 0.0, 1.0)" in kept


def test_fixed_feature_count_uses_literal_indices():
    program = ez.Program.parse("def Setup():\n  v1[0.6] = 2.0\n  m0[0.99, 0.0] = 3.0\n"
                               "def Predict():\n  s1 = dot(v1, v0)\n  v2 = dot(m0, v0)\n"
                               "  s2 = mean(v2)\n  s1 = s1 + s2\ndef Learn():\n")
    source = export_python(program, n_features=3)
    assert "v[1][1] = 2.0" in source and "m[0][2, 0] = 3.0" in source
    flexible = export_python(program)
    assert "v[1][index(0.6, n_features)] = 2.0" in flexible
    namespace = load(source)
    with pytest.raises(ValueError, match="3 features"):
        namespace["EvolvedAlgorithm"]().fit(np.zeros((2, 4)), np.zeros(2))
    tasks = random_tasks(np.random.default_rng(0), 3, False)
    compare(program, tasks, n_features=3)
    compare(program, tasks)


def test_bad_arguments():
    with pytest.raises(ez.EvozeroError):
        export_python(linear_program(), name="not valid")
    with pytest.raises(ez.EvozeroError):
        export_python(linear_program(), name="class")
    with pytest.raises(ez.EvozeroError):
        export_python(linear_program(), n_features=0)


def test_splitmix_matches_ops_rng():
    from ops.rng import Stream
    namespace = load(export_python(linear_program()))
    for seed, index in ((0, 0), (3, 5), (2**63 + 11, 2**40)):
        ours, theirs = namespace["SplitMix64"](seed, index), Stream(seed, index)
        for _ in range(50):
            assert ours.uniform() == theirs.uniform()
            assert ours.normal() == theirs.normal()


def test_standalone_in_subprocess(tmp_path, linear_tasks):
    """The module imports and runs in a fresh interpreter that never loads evozero."""
    (tmp_path / "evolved_net.py").write_text(export_python(neural_net_program(), name="Net"))
    task = linear_tasks[0]
    (tmp_path / "data.json").write_text(json.dumps({
        "x_train": task.x_train.tolist(), "y_train": task.y_train.tolist(),
        "x_valid": task.x_valid.tolist()}))
    script = (
        "import json, sys\n"
        # Any import of these would fail: the module must not need them.
        "sys.modules.update(evozero=None, ops=None, numba=None)\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import evolved_net\n"
        f"data = json.load(open({str(tmp_path / 'data.json')!r}))\n"
        "model = evolved_net.Net(seed=3).fit(data['x_train'], data['y_train'])\n"
        "out = list(model.training_predictions_) + list(model.predict(data['x_valid']))\n"
        "bad = [m for m in ('evozero', 'ops', 'numba') if sys.modules.get(m)]\n"
        "print(json.dumps({'bad': bad, 'out': [float(x).hex() for x in out]}))\n")
    result = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["bad"] == []
    ours = np.array([float.fromhex(x) for x in answer["out"]])
    vm = vm_record(neural_net_program(), [task], seed=3)[0]
    assert_bitwise_equal(vm[None], ours[None])


# --- random programs over every op -----------------------------------------------------------

def op_program(op: int, seed: int) -> ez.Program:
    """Setup fills memory with random values; Predict runs ``op`` (random addresses and
    constants) and folds its output into s1; Learn runs ``op`` once more."""
    rows = [random_program(seed + k, sizes=(0, 1, 0), allowed=np.array([op])) for k in range(2)]
    setup = ["s2 = gaussian(0.5, 1.0)", "s3 = uniform(-2.0, 2.0)", "s4 = gaussian(-0.1, 0.7)",
             "v1 = gaussian(0.2, 1.0, n_features)", "v2 = uniform(-1.0, 3.0, n_features)",
             "v3 = gaussian(0.0, 2.0, n_features)",
             "m0 = gaussian(0.1, 1.0, (n_features, n_features))",
             "m1 = uniform(-1.5, 0.5, (n_features, n_features))"]
    predict_row = rows[0].instructions("predict")[0]
    kind, out = OPS[op].out, predict_row.out
    fold = {"s": [f"s1 = s1 + s{out}"], "v": [f"s4 = mean(v{out})", "s1 = s1 + s4"],
            "m": [f"s4 = mean(m{out})", "s1 = s1 + s4"]}[kind]
    text = ("def Setup():\n" + "".join(f"  {line}\n" for line in setup)
            + f"def Predict():\n  {predict_row}\n" + "".join(f"  {line}\n" for line in fold)
            + f"def Learn():\n  {rows[1].instructions('predict')[0]}\n")
    return ez.Program.parse(text)


@pytest.mark.parametrize("op", range(1, len(OPS)))
def test_each_op_matches_vm(op):
    """Every op, live in Predict, on random inputs, regression and classification, with F
    taken from the data and fixed at export: the exported module matches the VM exactly."""
    rng = np.random.default_rng(op)
    for seed in range(4):
        program = op_program(op, 1000 * op + 10 * seed)
        assert op in strip_dead_code(program, MEMORY).code[:, 0]
        features = 1 + seed
        tasks = random_tasks(rng, features, classification=bool(seed % 2))
        compare(program, tasks, seed=seed, memory=MEMORY)
        compare(program, tasks, seed=seed, memory=MEMORY, n_features=features)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), setup=st.integers(0, 6), predict=st.integers(1, 6),
       learn=st.integers(0, 6), features=st.integers(1, 4), classification=st.booleans(),
       fixed=st.booleans())
def test_random_programs_match_vm(seed, setup, predict, learn, features, classification, fixed):
    program = random_program(seed, sizes=(setup, predict, learn))
    tasks = random_tasks(np.random.default_rng(seed), features, classification)
    compare(program, tasks, seed=seed % 1000, memory=MEMORY,
            n_features=features if fixed else None)


@pytest.mark.parametrize("first, second", [("-0.0", "0.0"), ("0.0", "-0.0")])
def test_signed_zeros_in_min_max(first, second):
    """min/max of equal zeros pick the operand the kernel picks (seen through 1 / x)."""
    lines = []
    for fn, k in (("minimum", 2), ("maximum", 3)):
        lines += [f"s4 = {fn}(s2, s3)", "s4 = 1 / s4", "s1 = s1 + s4",
                  f"v{k} = {fn}(v1, v2)", f"v{k} = 1 / v{k}", f"s4 = dot(v{k}, v{k})",
                  "s1 = s1 + s4",
                  f"m{k - 2} = {fn}(m0, m1)", f"m{k - 2} = 1 / m{k - 2}", f"s4 = mean(m{k - 2})",
                  "s1 = s1 + s4"]
    text = (f"def Setup():\n  s2 = {first}\n  s3 = {second}\n  v1 = bcast(s2)\n  v2 = bcast(s3)\n"
            "  m0 = bcast(v1, axis=0)\n  m1 = bcast(v2, axis=1)\n"
            "def Predict():\n" + "".join(f"  {line}\n" for line in lines) + "def Learn():\n")
    program = ez.Program.parse(text)
    tasks = random_tasks(np.random.default_rng(5), 2, False)
    compare(program, tasks, memory=(5, 4, 2))


def test_runtime_module_stream_matches_ops_rng():
    """The runtime module itself (not only its copy) draws the VM's streams."""
    from evozero.analysis.export_runtime import SplitMix64
    from ops.rng import Stream
    for seed, index in ((0, 0), (7, 2), (2**64 - 1, 3)):
        ours, theirs = SplitMix64(seed, index), Stream(seed, index)
        for _ in range(20):
            assert ours.uniform() == theirs.uniform()
            assert ours.normal() == theirs.normal()


def test_every_op_line_comes_from_the_table():
    """Each op's exported line is its numpy_form; every helper it calls is in the runtime."""
    import re

    from evozero.analysis import export_runtime
    for spec in OPS:
        line = instruction_line(spec.code, 0, 1, 2, (0.5, 0.25, 1.0))
        for helper in re.findall(r"(?<![\w.])([a-z_]+)\(", line):
            assert helper == "abs" or hasattr(export_runtime, helper), (spec.name, helper)


def test_export_takes_a_built_in_program_by_name(tmp_path, capsys):
    from evozero.cli import main

    out = tmp_path / "affine.py"
    assert main(["export", "affine", "--python", str(out)]) == 0
    assert out.read_text() == export_python(ez.builtin_program("affine"))
