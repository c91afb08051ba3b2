"""Behaviour of evozero.runs.rundir: run creation, atomic writes, JSON lines, checkpoints."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import pickle
import stat
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evozero.config import default_config, dump_config
from evozero.errors import EvozeroError
from evozero.runs import checkpoint_files as checkpoint_module
from evozero.runs.checkpoint_files import CheckpointWarning
from evozero.runs.files import atomic_write_bytes, atomic_write_text, finite_json
from evozero.runs.rundir import RunDir

FAST = settings(max_examples=30)


@pytest.fixture
def run(tmp_path: Path) -> RunDir:
    return RunDir.create(tmp_path / "runs", "demo")


def sample_state(step: int) -> dict:
    return {
        "step": step,
        "population": {"code": np.arange(12, dtype=np.int64).reshape(3, 4) + step,
                       "constants": np.linspace(0.0, 1.0, 6).reshape(2, 3) * step,
                       "fitness": np.array([0.5, np.nan, -np.inf])},
        "rng": np.array([2**64 - 1, step], dtype=np.uint64),
        "names": ["a", "b"],
        "best": None,
    }


def assert_state_equal(got: dict, expected: dict) -> None:
    assert set(got) == set(expected)
    for key, value in expected.items():
        if isinstance(value, dict):
            assert_state_equal(got[key], value)
        elif isinstance(value, np.ndarray):
            assert isinstance(got[key], np.ndarray)
            assert got[key].dtype == value.dtype and got[key].shape == value.shape
            np.testing.assert_array_equal(got[key], value)
        else:
            assert got[key] == value


def checkpoint_files(run: RunDir) -> list[str]:
    return sorted(entry.name for entry in run.checkpoint_dir.iterdir())


# --- creating and opening -------------------------------------------------------------


def test_create_makes_a_directory_holding_only_its_writer_lock(tmp_path):
    run = RunDir.create(tmp_path / "runs", "demo")
    assert run.path == tmp_path / "runs" / "demo"
    assert [entry.name for entry in run.path.iterdir()] == [RunDir.LOCK]
    assert os.listdir(tmp_path / "runs") == ["demo"]


def test_create_never_reuses_an_existing_run(tmp_path):
    first = RunDir.create(tmp_path, "demo")
    first.write_best("precious")
    (tmp_path / "demo-3").write_text("a file, not a run")
    second = RunDir.create(tmp_path, "demo")
    third = RunDir.create(tmp_path, "demo")
    assert [second.path.name, third.path.name] == ["demo-2", "demo-4"]
    assert first.read_best() == "precious"
    assert (tmp_path / "demo-3").read_text() == "a file, not a run"


def test_concurrent_creates_get_different_directories(tmp_path):
    with ThreadPoolExecutor(max_workers=8) as pool:
        runs = list(pool.map(lambda _: RunDir.create(tmp_path, "race"), range(16)))
    assert len({run.path for run in runs}) == 16


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\\b", "nul\0"])
def test_create_rejects_names_that_are_not_a_directory_name(tmp_path, name):
    with pytest.raises(EvozeroError, match="invalid run name"):
        RunDir.create(tmp_path, name)


def test_create_under_a_file_names_the_file(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("")
    with pytest.raises(EvozeroError) as caught:
        RunDir.create(blocker, "demo")
    assert str(blocker) in str(caught.value)


def test_open_needs_a_run_directory(tmp_path):
    with pytest.raises(EvozeroError, match="no such run directory"):
        RunDir.open(tmp_path / "missing")
    (tmp_path / "file").write_text("")
    with pytest.raises(EvozeroError, match="it is a file"):
        RunDir.open(tmp_path / "file")
    with pytest.raises(EvozeroError, match="no config.yaml") as caught:
        RunDir.open(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_config_written_to_a_run_loads_back_equal(run):
    config = dataclasses.replace(default_config(), name="demo")
    run.write_config(dump_config(config))
    opened = RunDir.open(run.path)
    assert opened.read_config() == config
    assert opened.read_config_text() == dump_config(config)


# --- atomic writes ----------------------------------------------------------------------


def test_atomic_write_replaces_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new ✓")
    assert path.read_text(encoding="utf-8") == "new ✓"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_atomic_write_gives_the_mode_of_a_normal_file(tmp_path):
    atomic_write_bytes(tmp_path / "atomic", b"x")
    (tmp_path / "plain").write_bytes(b"x")
    mode = stat.S_IMODE((tmp_path / "atomic").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain").stat().st_mode)


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_a_failed_atomic_write_keeps_the_old_content(tmp_path, monkeypatch, failing):
    path = tmp_path / "best.txt"
    atomic_write_text(path, "old")

    def crash(*args, **kwargs):
        raise OSError("disk on fire")

    if failing == "write":
        monkeypatch.setattr(os, "fdopen", lambda fd, mode: _ExplodingFile(fd))
    else:
        monkeypatch.setattr(os, failing, crash)
    with pytest.raises(EvozeroError, match=f"{path}: cannot write"):
        atomic_write_text(path, "new")
    monkeypatch.undo()
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["best.txt"]


class _ExplodingFile:
    """A file object that writes half the data and then fails, like a full disk."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> _ExplodingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    def fileno(self) -> int:
        return self.fd

    def write(self, data: bytes) -> int:
        os.write(self.fd, data[: len(data) // 2])
        raise OSError("no space left on device")


def test_readers_see_the_old_or_the_new_file_never_a_mix(tmp_path):
    path = tmp_path / "final.json"
    versions = [b"A" * 200_000, b"B" * 300_000]
    atomic_write_bytes(path, versions[0])
    seen: set[bytes] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.add(path.read_bytes())

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(60):
            atomic_write_bytes(path, versions[i % 2])
    finally:
        stop.set()
        thread.join()
    assert seen <= set(versions)


# --- JSON lines ---------------------------------------------------------------------------


def test_jsonl_records_round_trip_with_numpy_values(run):
    run.append_progress({"t": 0.5, "best": np.float64(0.25), "n": np.int64(3),
                         "ok": np.bool_(True), "per_worker": np.array([1, 2]),
                         "name": np.str_("w0"), "path": Path("x"), "note": "ünïcode\nline"})
    run.append_progress({"t": 1.0})
    assert run.read_progress() == [
        {"t": 0.5, "best": 0.25, "n": 3, "ok": True, "per_worker": [1, 2], "name": "w0",
         "path": "x", "note": "ünïcode\nline"},
        {"t": 1.0}]
    assert run.read_discoveries() == []


def test_jsonl_reader_skips_a_torn_last_line_and_the_next_append_repairs_it(run):
    run.append_discovery({"fitness": 0.1})
    run.append_discovery({"fitness": 0.2})
    path = run.path / RunDir.DISCOVERIES
    with open(path, "ab") as handle:
        handle.write(b'{"fitness": 0.3, "progr')  # a crash in the middle of a write
    assert run.read_discoveries() == [{"fitness": 0.1}, {"fitness": 0.2}]
    run.append_discovery({"fitness": 0.4})
    assert run.read_discoveries() == [{"fitness": 0.1}, {"fitness": 0.2}, {"fitness": 0.4}]
    assert path.read_bytes().endswith(b'{"fitness": 0.4}\n')
    assert path.read_bytes().count(b"\n") == 3


def test_a_torn_first_line_is_repaired_too(run):
    path = run.path / RunDir.PROGRESS
    path.write_bytes(b'{"t": ')
    assert run.read_progress() == []
    run.append_progress({"t": 2})
    assert path.read_bytes() == b'{"t": 2}\n'


@FAST
@given(records=st.lists(st.dictionaries(st.text(max_size=5),
                                        st.integers() | st.floats(allow_nan=False) | st.text(),
                                        max_size=3), max_size=5),
       torn=st.binary(max_size=40).filter(lambda b: b"\n" not in b))
def test_any_torn_tail_is_skipped_and_cut_off(tmp_path_factory, records, torn):
    run = RunDir.create(tmp_path_factory.mktemp("jsonl"), "run")
    for record in records:
        run.append_progress(record)
    with open(run.path / RunDir.PROGRESS, "ab") as handle:
        handle.write(torn)
    written = [finite_json(record) for record in records]   # strict JSON: +-inf reads as null
    assert run.read_progress() == written
    run.append_progress({"after": True})
    assert run.read_progress() == written + [{"after": True}]


def test_a_corrupt_middle_line_is_an_error_naming_file_and_line(run):
    path = run.path / RunDir.PROGRESS
    path.write_bytes(b'{"t": 1}\nnot json\n{"t": 3}\n')
    with pytest.raises(EvozeroError) as caught:
        run.read_progress()
    assert str(caught.value).startswith(f"{path}:2: corrupt line")


def test_a_line_that_is_not_an_object_is_an_error(run):
    path = run.path / RunDir.PROGRESS
    path.write_bytes(b'{"t": 1}\n[1, 2]\n')
    with pytest.raises(EvozeroError, match=r":2: expected a JSON object, got list"):
        run.read_progress()


def test_blank_lines_are_ignored(run):
    (run.path / RunDir.PROGRESS).write_bytes(b'{"t": 1}\n\n{"t": 2}\n')
    assert run.read_progress() == [{"t": 1}, {"t": 2}]


def test_records_must_be_dicts(run):
    with pytest.raises(TypeError):
        run.append_progress([1, 2])  # type: ignore[arg-type]
    assert not (run.path / RunDir.PROGRESS).exists()


# --- whole-file results ------------------------------------------------------------------


def test_best_and_final_round_trip(run):
    assert run.read_best() is None and run.read_final() is None
    run.write_best("def setup():\n")
    run.write_final({"final_fitness": np.float64(0.99), "tasks": np.arange(2)})
    assert run.read_best() == "def setup():\n"
    assert run.read_final() == {"final_fitness": 0.99, "tasks": [0, 1]}


def test_corrupt_final_json_is_an_error_naming_the_file(run):
    path = run.path / RunDir.FINAL
    path.write_text('{"final": ')
    with pytest.raises(EvozeroError, match="corrupt JSON") as caught:
        run.read_final()
    assert str(path) in str(caught.value)
    path.write_text("[1]")
    with pytest.raises(EvozeroError, match="expected a JSON object"):
        run.read_final()


# --- checkpoints ---------------------------------------------------------------------------


def test_no_checkpoint_loads_as_none(run):
    assert run.checkpoint_sequences() == []
    assert run.load_checkpoint() is None


def test_checkpoint_round_trip_keeps_dtypes_shapes_and_values(run):
    state = sample_state(3)
    state["extras"] = {"empty": np.zeros((0, 4), dtype=np.float32), "scalar": np.array(7.5),
                       "flags": np.array([True, False]), "labels": np.array(["x", "yz"]),
                       "nested": [np.arange(3, dtype=np.int8), {"deep": np.eye(2)}]}
    assert run.save_checkpoint(state) == 1
    loaded = RunDir(run.path).load_checkpoint()
    extras = loaded.pop("extras")
    expected_extras = state.pop("extras")
    assert_state_equal(loaded, state)
    for name in ("empty", "scalar", "flags", "labels"):
        assert extras[name].dtype == expected_extras[name].dtype
        np.testing.assert_array_equal(extras[name], expected_extras[name])
    assert extras["nested"][0].dtype == np.int8
    np.testing.assert_array_equal(extras["nested"][1]["deep"], np.eye(2))


def test_scalars_and_tuples_come_back_as_plain_python(run):
    run.save_checkpoint({"f": np.float32(0.5), "i": np.int64(2), "b": np.bool_(False),
                         "s": np.str_("x"), "t": (1, 2), "nan": float("nan"),
                         "inf": -math.inf, "big": 2**70})
    loaded = run.load_checkpoint()
    assert loaded["f"] == 0.5 and type(loaded["f"]) is float
    assert loaded["i"] == 2 and type(loaded["i"]) is int
    assert loaded["b"] is False and loaded["s"] == "x" and loaded["t"] == [1, 2]
    assert math.isnan(loaded["nan"]) and loaded["inf"] == -math.inf
    assert loaded["big"] == 2**70


array_strategy = st.builds(
    lambda values, dtype: np.array(values, dtype=dtype),
    st.lists(st.integers(0, 100), max_size=6),
    st.sampled_from([np.int64, np.int32, np.float64, np.float32, np.uint8, np.bool_]))
state_strategy = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.text(max_size=8)
    | st.floats(allow_nan=False) | array_strategy,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6).filter(lambda k: k != "__ndarray__"), children,
                      max_size=3),
    max_leaves=10)


@FAST
@given(state=st.dictionaries(st.text(max_size=6), state_strategy, max_size=4))
def test_any_state_of_allowed_values_round_trips(tmp_path_factory, state):
    run = RunDir.create(tmp_path_factory.mktemp("ckpt"), "run")
    run.save_checkpoint(state)

    def same(a, b) -> bool:
        if isinstance(b, np.ndarray):
            return (isinstance(a, np.ndarray) and a.dtype == b.dtype
                    and np.array_equal(a, b))
        if isinstance(b, dict):
            return isinstance(a, dict) and a.keys() == b.keys() and all(
                same(a[k], b[k]) for k in b)
        if isinstance(b, list):
            return isinstance(a, list) and len(a) == len(b) and all(map(same, a, b))
        return a == b and type(a) is type(b)

    assert same(RunDir(run.path).load_checkpoint(), state)


def test_only_the_last_two_checkpoints_are_kept(run):
    for step in range(1, 6):
        assert run.save_checkpoint(sample_state(step)) == step
    assert checkpoint_files(run) == ["000004.json", "000004.npz", "000005.json",
                                     "000005.npz"]
    assert run.checkpoint_sequences() == [4, 5]
    assert RunDir(run.path).load_checkpoint()["step"] == 5


def test_a_reopened_run_continues_the_numbering(run):
    run.save_checkpoint(sample_state(1))
    reopened = RunDir(run.path)
    reopened.load_checkpoint()
    assert reopened.save_checkpoint(sample_state(2)) == 2
    assert reopened.checkpoint_sequences() == [1, 2]


def corrupt(run: RunDir, number: int, how: str) -> Path:
    """Damage checkpoint ``number`` in one of the ways a crash or a disk can."""
    json_path = run.checkpoint_dir / f"{number:06d}.json"
    npz_path = run.checkpoint_dir / f"{number:06d}.npz"
    if how == "bad npz bytes":
        npz_path.write_bytes(b"\x00garbage" * 10)
        return npz_path
    if how == "truncated npz":
        npz_path.write_bytes(npz_path.read_bytes()[:100])
        return npz_path
    if how == "missing npz":
        npz_path.unlink()
        return npz_path
    if how == "sha mismatch":
        meta = json.loads(json_path.read_text())
        meta["sha256"] = "0" * 64
        json_path.write_text(json.dumps(meta))
        return npz_path
    if how == "truncated json":
        json_path.write_bytes(json_path.read_bytes()[:30])
        return json_path
    if how == "wrong format":
        meta = json.loads(json_path.read_text())
        meta["format"] = "something else"
        json_path.write_text(json.dumps(meta))
        return json_path
    if how == "damaged zip with matching sha":
        # The hash guards against this; without it np.load would raise BadZipFile.
        data = npz_path.read_bytes()[:-40]
        npz_path.write_bytes(data)
        meta = json.loads(json_path.read_text())
        meta["sha256"] = hashlib.sha256(data).hexdigest()
        json_path.write_text(json.dumps(meta))
        return npz_path
    if how == "unknown array reference":
        meta = json.loads(json_path.read_text())
        meta["state"]["rng"] = {"__ndarray__": "a99"}
        json_path.write_text(json.dumps(meta))
        return json_path
    raise ValueError(how)


DAMAGE = ["bad npz bytes", "truncated npz", "missing npz", "sha mismatch", "truncated json",
          "wrong format", "damaged zip with matching sha", "unknown array reference"]


@pytest.mark.parametrize("how", DAMAGE)
def test_a_corrupt_newest_checkpoint_falls_back_to_the_older_one(run, how):
    run.save_checkpoint(sample_state(1))
    run.save_checkpoint(sample_state(2))
    damaged = corrupt(run, 2, how)
    reopened = RunDir(run.path)
    with pytest.warns(CheckpointWarning) as record:
        state = reopened.load_checkpoint()
    assert_state_equal(state, sample_state(1))
    assert len(record) == 1
    message = str(record[0].message)
    assert str(damaged) in message and "using checkpoint 000001 instead" in message


def test_fallback_problems_can_be_collected_instead_of_warned(run):
    run.save_checkpoint(sample_state(1))
    run.save_checkpoint(sample_state(2))
    corrupt(run, 2, "sha mismatch")
    problems: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        state = RunDir(run.path).load_checkpoint(problems)
    assert state["step"] == 1
    assert len(problems) == 1 and "000002.npz" in problems[0]


def test_saving_after_a_fallback_keeps_the_good_checkpoint(run):
    run.save_checkpoint(sample_state(1))
    run.save_checkpoint(sample_state(2))
    corrupt(run, 2, "truncated json")
    resumed = RunDir(run.path)
    with pytest.warns(CheckpointWarning):
        resumed.load_checkpoint()
    assert resumed.save_checkpoint(sample_state(3)) == 3
    assert resumed.checkpoint_sequences() == [1, 3]
    corrupt(resumed, 3, "bad npz bytes")
    with pytest.warns(CheckpointWarning):
        assert RunDir(run.path).load_checkpoint()["step"] == 1


@pytest.mark.parametrize("how", ["bad npz bytes", "truncated json"])
def test_all_checkpoints_corrupt_is_a_clear_error_naming_the_files(run, how):
    run.save_checkpoint(sample_state(1))
    run.save_checkpoint(sample_state(2))
    first, second = corrupt(run, 1, how), corrupt(run, 2, how)
    with pytest.raises(EvozeroError) as caught:
        RunDir(run.path).load_checkpoint()
    message = str(caught.value)
    assert message.startswith(f"no usable checkpoint in {run.checkpoint_dir}")
    assert str(first) in message and str(second) in message


def test_a_crash_between_npz_and_json_leaves_no_checkpoint(run):
    run.save_checkpoint(sample_state(1))
    (run.checkpoint_dir / "000002.npz").write_bytes(b"half written")
    (run.checkpoint_dir / ".000003.json.abc.tmp").write_bytes(b"{")
    reopened = RunDir(run.path)
    assert reopened.checkpoint_sequences() == [1]
    assert reopened.load_checkpoint()["step"] == 1
    assert reopened.save_checkpoint(sample_state(2)) == 2
    assert checkpoint_files(reopened) == ["000001.json", "000001.npz", "000002.json",
                                          "000002.npz"]
    assert RunDir(run.path).load_checkpoint()["step"] == 2


def test_foreign_files_are_not_checkpoints(run):
    run.save_checkpoint(sample_state(1))
    (run.checkpoint_dir / "2.json").write_text("{}")
    (run.checkpoint_dir / "notes.json").write_text("{}")
    assert run.checkpoint_sequences() == [1]
    assert RunDir(run.path).load_checkpoint()["step"] == 1


@pytest.mark.parametrize("state, match", [
    ({"x": np.array([object()], dtype=object)}, "object arrays need pickle"),
    ({"x": {"__ndarray__": "a0"}}, "reserved"),
    ({"x": {1: 2}}, "keys must be strings"),
    ({"x": {1, 2}}, "cannot store set"),
    ([1, 2], "must be a dict"),
])
def test_states_that_need_pickle_are_refused_when_saving(run, state, match):
    with pytest.raises(TypeError, match=match):
        run.save_checkpoint(state)
    assert run.checkpoint_sequences() == []


def test_loading_never_unpickles(run, monkeypatch):
    """A checkpoint whose npz holds a pickled object array is refused, not executed."""
    run.save_checkpoint(sample_state(1))
    run.save_checkpoint(sample_state(2))
    buffer = io.BytesIO()
    np.savez(buffer, a0=np.array([{"evil": True}], dtype=object))
    data = buffer.getvalue()
    npz_path = run.checkpoint_dir / "000002.npz"
    npz_path.write_bytes(data)
    json_path = run.checkpoint_dir / "000002.json"
    meta = json.loads(json_path.read_text())
    meta["sha256"] = hashlib.sha256(data).hexdigest()
    json_path.write_text(json.dumps(meta))

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    real_load = np.load
    calls = []

    def checked_load(*args, **kwargs):
        calls.append(kwargs.get("allow_pickle"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(checkpoint_module.np, "load", checked_load)
    with pytest.warns(CheckpointWarning, match="000002.npz"):
        state = RunDir(run.path).load_checkpoint()
    assert state["step"] == 1
    assert calls and all(flag is False for flag in calls)
