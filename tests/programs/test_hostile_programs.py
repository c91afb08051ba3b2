"""Hostile programs at every door into the kernels: each is a clear EvozeroError, never a
crash, a traceback or a silently changed program.

Cases that used to kill the interpreter run in a subprocess, so a regression fails one
test instead of ending the session.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import small_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evozero as ez
from evozero.analysis.estimator import EvolvedRegressor
from evozero.config import load_config
from evozero.domains import domain_for
from evozero.errors import EvozeroError
from evozero.nas.spaces.cells import Nb101Cell
from evozero.programs.instruction import ADDRESS_LIMIT, Instruction
from evozero.runs.checkpointing import check_checkpoint_islands
from evozero.runs.island import IslandSpec, ProgramIsland, check_program_snapshot
from evozero.search.settings import read_programs
from ops.codes import OLDEST
from ops.table import OPS, OPS_BY_NAME

REPO = Path(__file__).resolve().parents[2]
EMPTY = "def Setup():\ndef Predict():\ndef Learn():\n"
CONST_SET = OPS_BY_NAME["SCALAR_CONST_SET"].code


@pytest.fixture(scope="module")
def tasks():
    return ez.make_tasks("linear", num_tasks=2, features=3, train=8, valid=8)


def _message(call, *args, **kwargs) -> str:
    with pytest.raises(EvozeroError) as info:
        call(*args, **kwargs)
    return str(info.value)


# --- programs that crashed the process (run in a subprocess) -------------------------------

_CRASHERS = {
    "negative address": ("[[56, 0, 0, -100000000]]", "[[5., 0, 0]]", "[1, 0, 0]",
                         "out address must be >= 0, got -100000000"),
    "op code past the table": ("[[200, 0, 0, 1]]", "[[0., 0, 0]]", "[1, 0, 0]",
                               "unknown op code 200"),
    "a control code as op": ("[[100, 0, 0, 1]]", "[[0., 0, 0]]", "[0, 1, 0]",
                             "unknown op code 100"),
    "address past any memory": ("[[56, 0, 0, 10**12]]", "[[5., 0, 0]]", "[1, 0, 0]",
                                "too large"),
    "NaN index fraction": ("[[57, 0, 0, 1]]", "[[float('nan'), 1., 0]]", "[1, 0, 0]",
                           "must be finite"),
}


@pytest.mark.parametrize("name", sorted(_CRASHERS))
def test_malformed_program_arrays_are_a_clear_error_not_a_crash(name):
    code, constants, sizes, expected = _CRASHERS[name]
    script = textwrap.dedent(f"""
        import numpy as np, evozero as ez
        tasks = ez.make_tasks("linear", num_tasks=2, features=3, train=8, valid=8)
        try:
            program = ez.Program(np.array({code}), np.array({constants}), {sizes})
            print("fitness", ez.evaluate(program, tasks))
        except ez.EvozeroError as error:
            print("error:", error)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("error: program setup[0]") or "predict[0]" in done.stdout
    assert expected in done.stdout


def test_memory_smaller_than_the_program_is_refused_before_the_kernel(tasks):
    program = ez.Program.parse("def Setup():\n  s9 = 0.5\ndef Predict():\n  s1 = s9 * s0\n"
                               "def Learn():\n")
    message = _message(ez.evaluate, program, tasks, memory=(4, 3, 1))
    assert "uses 10 scalars but memory allows 4" in message


# --- the Program constructor ---------------------------------------------------------------

@pytest.mark.parametrize("code, constants, sizes, expected", [
    (np.array([[56.0, 0, 0, 1.7]]), np.zeros((1, 3)), [1, 0, 0], "integer array"),
    (np.zeros((2, 5), dtype=np.int64), np.zeros((2, 3)), [2, 0, 0], "shape (n, 4)"),
    (np.zeros((1, 4), dtype=np.int64), np.array([["a", "b", "c"]]), [1, 0, 0], "real-valued"),
    (np.zeros((1, 4), dtype=np.int64), np.zeros((1, 3), dtype=complex), [1, 0, 0],
     "real-valued"),
    (np.array([[2**64 - 1, 0, 0, 0]], dtype=np.uint64), np.zeros((1, 3)), [1, 0, 0],
     "64-bit"),
    (np.zeros((1, 4), dtype=np.int64), np.zeros((1, 3)), [1, -1, 1], "sizes"),
    (np.zeros((1, 4), dtype=np.int64), np.zeros((1, 3)), "abc", "sizes"),
    (np.zeros((1, 4), dtype=np.int64), np.zeros((1, 3)), [0.5, 0.5, 0], "sizes"),
    (np.zeros((1, 4), dtype=np.int64), np.zeros((1, 3)), [2, 0, 0], "disagree"),
    (np.array([[CONST_SET, 0, 0, 1]]), np.array([[math.inf, 0, 0]]), [1, 0, 0], "finite"),
    (np.array([[CONST_SET, 0, 0, 1]]), np.array([[0.5, 0.25, 0]]), [1, 0, 0],
     "constant 1 must be 0.0"),
    (np.array([[CONST_SET, 0, 0, 0]]), np.array([[0.5, 0, 0]]), [1, 0, 0], "writes s0"),
    (np.array([[OPS_BY_NAME["VECTOR_CONST_SET"].code, 0, 0, 1]]), np.array([[1.0, 2, 0]]),
     [1, 0, 0], "index fraction 'index' must be in [0, 1), got 1.0"),
    (np.array([[OPS_BY_NAME["SCALAR_ABS"].code, 1, 3, 2]]), np.zeros((1, 3)), [1, 0, 0],
     "no in2"),
    (np.array([[OPS_BY_NAME["SCALAR_SUM"].code, 1, ADDRESS_LIMIT, 2]]), np.zeros((1, 3)),
     [1, 0, 0], "in2 address 10000 is too large"),
])
def test_constructor_refuses_what_the_kernels_would_misread(code, constants, sizes, expected):
    assert expected in _message(ez.Program, code, constants, sizes)


def test_constructor_names_the_component_and_row():
    code = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [200, 0, 0, 0]])
    message = _message(ez.Program, code, np.zeros((3, 3)), [1, 1, 1])
    assert message.startswith("program learn[0] (row 2): unknown op code 200")


_GARBAGE_INTS = st.one_of(st.integers(-3, 70), st.integers(-2**63, 2**63 - 1),
                          st.sampled_from([0, 1, 2, 64, 65, 99, 100, 105, 9_999, 10_000]))
_GARBAGE_FLOATS = st.one_of(st.floats(), st.sampled_from([0.0, 0.5, 1.0, -0.0, math.nan]))


@st.composite
def garbage_arrays(draw):
    rows = draw(st.integers(0, 6))
    code = np.array(draw(st.lists(st.lists(_GARBAGE_INTS, min_size=4, max_size=4),
                                  min_size=rows, max_size=rows)), dtype=np.int64).reshape(-1, 4)
    # Mostly small addresses and valid ops, so that many examples get past construction.
    if draw(st.booleans()):
        code[:, 0] %= 65
        code[:, 1:] %= 4
    constants = np.array(draw(st.lists(st.lists(_GARBAGE_FLOATS, min_size=3, max_size=3),
                                       min_size=rows, max_size=rows))).reshape(-1, 3)
    if draw(st.booleans()):
        constants = np.abs(np.nan_to_num(constants, nan=0.0, posinf=0.0, neginf=0.0)) % 1.0
    cut = sorted(draw(st.lists(st.integers(0, rows), min_size=2, max_size=2)))
    sizes = [cut[0], cut[1] - cut[0], rows - cut[1]]
    shape = draw(st.sampled_from(["ok", "ok", "ok", "transposed", "flat", "floats"]))
    if shape == "transposed":
        code = code.T
    elif shape == "flat":
        code = code.reshape(-1)
    elif shape == "floats":
        code = code.astype(np.float64) + 0.5
    return code, constants, sizes


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(garbage_arrays())
def test_garbage_arrays_give_a_clear_error_or_a_finite_fitness(tasks, arrays):
    code, constants, sizes = arrays
    try:
        program = ez.Program(code, constants, sizes)
    except EvozeroError as error:
        assert str(error).startswith("program ")
        return
    fitness = ez.evaluate(program, tasks)
    assert math.isfinite(fitness) and 0.0 <= fitness <= 1.0
    assert ez.Program.parse(str(program)) == program


# --- text and JSON -----------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    (None, "takes the program text as a str, got NoneType"),
    (b"def Setup():\n", "got bytes (decode bytes first"),
    (42, "got int"),
    ("def Setup():\n  s" + "9" * 4000 + " = 0.5\ndef Predict():\ndef Learn():\n",
     "line 2: address s999999999999... (4000 digits) is too large"),
    ("def Setup():\n  s10000 = 0.5\ndef Predict():\ndef Learn():\n", "below 10,000"),
    ("def Setup():\n  s2 = " + "9" * 400 + "\ndef Predict():\ndef Learn():\n",
     "must be finite"),
])
def test_parse_refuses_non_text_and_huge_numbers(text, expected):
    assert expected in _message(ez.Program.parse, text)


def _json(**setup_item) -> str:
    return json.dumps({"format": "evozero.program/1", "setup": [setup_item], "predict": [],
                       "learn": []})


@pytest.mark.parametrize("data, expected", [
    ("{bad", "not valid JSON"),
    (b"{}", "got bytes"),
    (None, "got NoneType"),
    ("[" * 100_000, "not valid JSON"),
    (_json(op="SCALAR_CONST_SET", out=1.7, constants=[0.5]),
     "setup[0]: out must be a whole-number address, got 1.7"),
    (_json(op="SCALAR_CONST_SET", out=2.0, constants=[0.5]), "got 2.0"),
    (_json(op="SCALAR_CONST_SET", out=True, constants=[0.5]), "got true"),
    (_json(op="SCALAR_CONST_SET", out=int("9" * 4000), constants=[0.5]), "(64-bit)"),
    (_json(op="SCALAR_CONST_SET", out=12_000, constants=[0.5]), "too large"),
    (_json(op="SCALAR_CONST_SET", out=2, constants="0.5"), "constants must be a list"),
    (_json(op="SCALAR_CONST_SET", out=2, constants=["0.5"]), "constants must be numbers"),
])
def test_from_json_refuses_bad_json_and_never_truncates(data, expected):
    assert expected in _message(ez.Program.from_json, data)


def test_instruction_fields_must_be_whole_numbers():
    assert "in1 must be an integer" in _message(
        ez.Program.from_instructions, [Instruction(CONST_SET, 1.5, 0, 2, (0.5, 0, 0))])
    assert "op must be an integer (64-bit), got 1000" in _message(
        ez.Program.from_instructions, [Instruction(10**40, 0, 0, 2)])
    assert "got an integer of about 5,000 digits" in _message(
        ez.Program.from_instructions, [Instruction(10**5000, 0, 0, 2)])
    assert "setup[0]: expected an Instruction" in _message(
        ez.Program.from_instructions, ["s2 = 0.5"])


# --- evaluate's arguments ------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, expected", [
    ({"seed": -1}, "seed must be a whole number in 0..2**64-1, got -1"),
    ({"seed": 2**64}, "seed must be"),
    ({"seed": 1.5}, "seed must be"),
    ({"memory": "abc"}, "memory must be three non-negative integers"),
    ({"memory": (4, 3)}, "memory must be three"),
    ({"memory": (4, 3, 1.5)}, "memory must be three"),
    ({"memory": (10**9, 3, 1)}, "each at most 10,000"),
    ({"max_abs_error": math.nan}, "max_abs_error must be > 0 (a number"),
    ({"max_abs_error": "x"}, "max_abs_error must be"),
    ({"max_abs_error": 0}, "max_abs_error must be"),
    ({"combine": ["mean"]}, "combine must be one of"),
])
def test_evaluate_refuses_bad_arguments(tasks, kwargs, expected):
    assert expected in _message(ez.evaluate, ez.Program.parse(EMPTY), tasks, **kwargs)


@pytest.mark.parametrize("bad", ["linear", None, [1, 2], ["linear"]])
def test_evaluate_needs_task_objects(bad):
    assert "tasks must be a list of Task objects" in _message(
        ez.evaluate, ez.Program.parse(EMPTY), bad)


def test_evaluate_needs_a_program(tasks):
    assert "program must be a Program" in _message(ez.evaluate, EMPTY, tasks)
    assert "program must be a Program" in _message(ez.strip_dead_code, EMPTY)


# --- estimator, NAS cells, initial populations ---------------------------------------------

@pytest.mark.parametrize("params, expected", [
    ({"epochs": 10**12}, "epochs must be an integer in 1..1,000,000"),
    ({"epochs": 0}, "epochs must be"),
    ({"epochs": 2.5}, "epochs must be"),
    ({"max_abs_error": math.nan}, "max_abs_error must be > 0 (a number"),
    ({"max_abs_error": -1.0}, "max_abs_error must be"),
    ({"random_state": -1}, "random_state must be"),
    ({"program": 5}, "program must be a Program"),
    ({"program": "def Setup():\n  s0 = 1.0\n"}, "s0"),
    ({"epochs": 1_000_000}, "lower epochs"),
])
def test_estimator_parameters_are_checked_before_anything_is_allocated(params, expected):
    x, y = np.ones((3_000, 100)), np.ones(3_000)
    assert expected in _message(EvolvedRegressor(**params).fit, x, y)


@pytest.mark.parametrize("entry, shown", [(1.5, "1.5"), (True, "True"), ("1", "'1'")])
def test_nb101_matrix_entries_are_exactly_0_or_1(entry, shown):
    matrix = [[0, entry, 1], [0, 0, 1], [0, 0, 0]]
    message = _message(Nb101Cell.make, matrix, ["input", "conv3x3-bn-relu", "output"])
    assert f"matrix[0][1] is {shown}; entries must be 0 or 1" in message


def test_initial_population_file_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "programs.txt"
    path.write_bytes(b"def Setup():\n  s2 = 0.5 # \xff\xfe\ndef Predict():\ndef Learn():\n")
    message = _message(read_programs, str(path))
    assert message.startswith(f"{path}: the initial programs are not UTF-8")


def test_initial_population_with_a_bad_program_names_file_and_program(tmp_path):
    path = tmp_path / "programs.txt"
    path.write_text(EMPTY + "def Setup():\n  s0 = 1.0\ndef Predict():\ndef Learn():\n")
    message = _message(read_programs, str(path))
    assert message.startswith(f"{path}: program 2 (line 4): line 2:") and "s0" in message


# --- checkpoints and migrants ------------------------------------------------------------

@pytest.fixture(scope="module")
def island():
    config = small_config(population_size=8, tournament_size=2,
                          budget={"individuals": 40, "train_steps": None})
    made = ProgramIsland(IslandSpec(0, 0, config, individuals=40, train_steps=-1,
                                    island_class=ProgramIsland))
    made.advance(5.0)
    return made


def _corrupt(island, name, change):
    return _array_change(name, change)(island.snapshot(), island.config)


def _set(index, value):
    def change(array):
        array[index] = value
        return array
    return change


def _predict_row(row_for):
    """A change that makes the first predict row of program 0 active and ``row_for(config)``."""
    def change(snapshot, config):
        arrays = snapshot["arrays"]
        offset = config.sizes.setup.max
        arrays["lengths"][0, 1] = max(arrays["lengths"][0, 1], 1)
        arrays["code"][0, offset] = row_for(config)
        arrays["constants"][0, offset] = 0.0
        return snapshot
    return change


def _row(op, out):
    kinds = [OPS[op].in1, OPS[op].in2, OPS[op].out]
    return [op] + [0 if k in (None, "m") else 1 for k in kinds[:2]] + [out]


def _allowed_scalar_op(config):
    return next(int(op) for op in config.ops.codes("predict") if OPS[op].out == "s")


def _barred_op(config):
    allowed = set(config.ops.codes("predict").tolist()) | {0}
    return next(op.code for op in OPS if op.code not in allowed and op.out == "s"
                and "m" not in (op.in1, op.in2) and not op.constants)


def _array_change(name, change):
    def apply(snapshot, config):
        snapshot["arrays"][name] = change(snapshot["arrays"][name].copy())
        return snapshot
    return apply


@pytest.mark.parametrize("change, expected", [
    (_array_change("code", _set((0, 0, 0), 200)),
     "population: program 0, row 0: unknown op code 200"),
    (_array_change("code", _set((1, 0, 3), -5)), "-5"),
    (_predict_row(lambda c: _row(_allowed_scalar_op(c), 50)), "outside the config's memory"),
    (_predict_row(lambda c: _row(_barred_op(c), 1)), "not in ops.predict of this config"),
    (_array_change("code", lambda a: a.astype(np.int32)), "code must be a int64 array"),
    (_array_change("code", lambda a: a[:, :-1]), "shape"),
    (_array_change("constants", _set((0, -1, 0), math.nan)), "constant"),
    (_array_change("lengths", _set(0, [0, 0, 0])), "past its lengths"),
    (_array_change("lengths", _set((0, 1), 10_000)), "lengths"),
    (_array_change("lengths", _set((0, 1), -1)), "lengths"),
    (_array_change("best_code", _set((0, 0), 99)), "best program"),
    (_array_change("counters", _set(OLDEST, 10**6)), "counters"),
    (_array_change("counters", _set(0, -1)), "counters"),
    (_array_change("cache_table", _set(0, 10**9)), "cache arrays are inconsistent"),
    (_array_change("cache_meta", _set(2, 7)), "cache arrays are inconsistent"),
    (_array_change("streams", lambda a: a.astype(np.int64)), "streams must be uint64"),
    (_array_change("recent", lambda a: np.zeros(10**3)), "recent"),
])
def test_corrupt_snapshot_arrays_are_refused(island, change, expected):
    snapshot = change(island.snapshot(), island.config)
    message = _message(check_program_snapshot, snapshot, island.config, "island 1 snapshot")
    assert message.startswith("island 1 snapshot: ") and expected in message


def test_a_good_snapshot_passes_and_reopens_to_the_same_state(island):
    snapshot = island.snapshot()
    check_program_snapshot(snapshot, island.config, "island 1 snapshot")
    again = ProgramIsland(island.spec, snapshot)
    assert np.array_equal(again.state.code, island.state.code)


def test_island_refuses_a_corrupt_snapshot_when_it_opens(island):
    snapshot = _corrupt(island, "code", _set((0, 0, 0), 200))
    assert "unknown op code 200" in _message(ProgramIsland, island.spec, snapshot)


def test_the_checkpoint_is_checked_against_the_config_in_the_main_process(island):
    good = {"completed_round": 0,
            "islands": [{"snapshot": island.snapshot(), "summary": {}, "events": []}]}
    domain = domain_for(island.spec.config)
    check_checkpoint_islands(good, domain, 1, "ckpt")
    check_checkpoint_islands(None, domain, 1, "ckpt")
    assert "not 2 island entries" in _message(check_checkpoint_islands, good, domain, 2,
                                              "ckpt")
    bad = {"completed_round": 0,
           "islands": [{"snapshot": _corrupt(island, "code", _set((0, 0, 0), 200)),
                        "summary": {}, "events": []}]}
    assert _message(check_checkpoint_islands, bad, domain, 1, "ckpt").startswith(
        "ckpt: island 1: population: program 0, row 0: unknown op code 200")
    # Another population size (an edited config) no longer matches the arrays.
    other = small_config(population_size=9, tournament_size=2)
    assert "fitness must be float64 (9,) for this config, got float64 (8,)" in _message(
        check_checkpoint_islands, good, domain_for(other), 1, "ckpt")


def test_migrants_are_checked_before_they_enter_the_population(island):
    emigrants = island._emigrants(1)
    code = emigrants["code"][:1].copy()
    code[0, 0, 0] = 200
    arrivals = {"code": code, "constants": emigrants["constants"][:1],
                "lengths": emigrants["lengths"][:1], "fitness": [math.nan],
                "keys": [island.key]}
    before = island.state.code.copy()
    message = _message(island._take_in, arrivals, [])
    assert message.startswith("island 1: migrants: program 0, row 0: unknown op code 200")
    assert np.array_equal(island.state.code, before)


def _nas_snapshot(**changes):
    snapshot = {"meta": {"round": 0, "status": "running", "migrants": 0, "best": None,
                         "seed": 1},
                "rng": np.random.default_rng(1).bit_generator.state,
                "counters": dict.fromkeys(("individuals", "train_steps", "structure_hits",
                                           "full_evaluations", "hurdle_stops",
                                           "budget_rejects", "saved_train_steps"), 0),
                "population": [], "cache": {}, "weights": {}, "best_weights": {}}
    snapshot.update(changes)
    return snapshot


_MEMBER = {"genome": "garbage", "hash": "h", "fitness": 0.1, "valid_accuracy": 0.1,
           "cost_value": 1.0, "first_epoch_accuracy": 0.1}


@pytest.mark.parametrize("snapshot, expected", [
    ({}, "not a NAS island snapshot"),
    (_nas_snapshot(rng={"x": 1}), "rng is not a random generator state"),
    (_nas_snapshot(meta={"round": -1, "status": "running"}), "meta is not a NAS island's"),
    (_nas_snapshot(counters={"individuals": 1}), "counters must be"),
    (_nas_snapshot(population=[_MEMBER]), "population member 0: 'garbage'"),
    (_nas_snapshot(population=[{"genome": 5}]), "population member 0 must have"),
    (_nas_snapshot(weights={"h": {"conv": ["x"]}}), "weights must map layer names"),
])
def test_corrupt_nas_snapshots_are_refused(snapshot, expected):
    config = load_config(str(REPO / "experiments" / "nas_digits_nb201.yaml"))
    domain = domain_for(config)
    domain.check_snapshot(_nas_snapshot(), config, "nas")
    assert expected in _message(domain.check_snapshot, snapshot, config, "nas")


# --- the numba cache -----------------------------------------------------------------------

_CACHED = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from ops.jit import jit

    @jit
    def double(x):
        return 2.0 * x

    print(double(21.0))
""")


def test_a_truncated_kernel_cache_file_is_rebuilt(tmp_path):
    module = tmp_path / "cached_kernel.py"
    module.write_text(_CACHED)
    env = dict(os.environ, EVOZERO_CACHE_DIR=str(tmp_path / "cache"), EVOZERO_NUMBA_CACHE="1")

    def run() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(module), str(REPO)], capture_output=True,
                              text=True, env=env, timeout=300)

    first = run()
    assert first.returncode == 0 and first.stdout.strip() == "42.0", first.stderr[-2000:]
    (data,) = (tmp_path / "cache").rglob("*double*.nbc")
    data.write_bytes(data.read_bytes()[:len(data.read_bytes()) // 2])
    second = run()
    assert second.returncode == 0 and second.stdout.strip() == "42.0", second.stderr[-2000:]
    assert "cache file for double was unreadable" in second.stderr
    assert "Traceback" not in second.stderr
    third = run()
    assert third.returncode == 0 and "unreadable" not in third.stderr
