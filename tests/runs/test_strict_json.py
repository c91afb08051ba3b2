"""Every JSON file a run writes is strict JSON (no NaN or Infinity, which most JSON readers
reject): the json_text helper, checkpoints that keep non-finite floats losslessly and still
read older ones, and whole program-search and NAS runs in which training diverges."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import nas_config, run_quietly, small_config, stop_after_evaluations
from hypothesis import given, settings
from hypothesis import strategies as st

from evozero.analysis.plots import load_run
from evozero.runs.files import finite_json, json_line, json_text
from evozero.runs.flow import Interrupted
from evozero.runs.rundir import RunDir

FLOATS = st.floats() | st.sampled_from([math.nan, math.inf, -math.inf])
NUMPY_FLOATS = FLOATS.map(np.float64) | st.floats(width=32).map(np.float32)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5) | FLOATS | NUMPY_FLOATS
    | st.lists(FLOATS, max_size=4).map(np.array),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=12)


def strict_loads(text: str | bytes) -> Any:
    """json.loads that refuses NaN, Infinity and -Infinity, as every other JSON reader does."""
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def assert_strict_json_files(root: Path, older: Path | None = None) -> int:
    """Every JSON and JSON-lines file under ``root`` (and the lock file, JSON too) but
    ``older`` (a file of an older evozero) parses strictly; returns how many were read."""
    count = 0
    for path in sorted(root.rglob("*")):
        if path == older:
            continue
        if path.suffix == ".jsonl":
            for line in path.read_bytes().splitlines():
                strict_loads(line)
        elif path.suffix == ".json" or (path.name == RunDir.LOCK and path.stat().st_size):
            strict_loads(path.read_text())
        else:
            continue
        count += 1
    return count


def same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN."""
    if isinstance(b, float) and math.isnan(b):
        return isinstance(a, float) and math.isnan(a)
    if isinstance(b, dict):
        return isinstance(a, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in b)
    if isinstance(b, (list, tuple)):
        return isinstance(a, list) and len(a) == len(b) and all(map(same, a, b))
    return a == b and type(a) is type(b)


# --- the helper -------------------------------------------------------------------------


@settings(max_examples=200)
@given(value=VALUES)
def test_json_text_is_strict_and_writes_null_for_non_finite_floats(value):
    text = json_text(value)
    parsed = strict_loads(text)

    def expected(item: Any) -> Any:
        if isinstance(item, np.ndarray):
            return expected(item.tolist())
        if isinstance(item, (float, np.floating)):
            return float(item) if math.isfinite(item) else None
        if isinstance(item, dict):
            return {key: expected(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [expected(inner) for inner in item]
        return item

    assert parsed == expected(value) == finite_json(value)
    assert strict_loads(json_line({"value": value})) == {"value": expected(value)}


def test_json_text_keeps_the_layout_options_and_refuses_unknown_objects():
    assert json_text({"b": math.nan, "a": 1}, sort_keys=True) == '{"a": 1, "b": null}'
    assert json_text([np.inf], indent=2) == "[\n  null\n]"
    with pytest.raises(TypeError, match="cannot write object"):
        json_text({"x": object()})


# --- checkpoints ------------------------------------------------------------------------


@settings(max_examples=50)
@given(state=st.dictionaries(st.text(max_size=5), st.recursive(
    FLOATS | st.none() | st.integers(),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8), max_size=4))
def test_checkpoints_keep_non_finite_floats_in_strict_json(tmp_path_factory, state):
    run = RunDir.create(tmp_path_factory.mktemp("ckpt"), "run")
    run.save_checkpoint(state)
    assert assert_strict_json_files(run.checkpoint_dir) == 1
    assert same(RunDir(run.path).load_checkpoint(), state)


def test_the_float_placeholder_is_reserved(tmp_path):
    run = RunDir.create(tmp_path, "run")
    with pytest.raises(TypeError, match="'__float__' is reserved"):
        run.save_checkpoint({"x": {"__float__": "nan"}})


def _as_older_checkpoint(path: Path) -> int:
    """Rewrite the checkpoint JSON ``path`` as evozero wrote it before: the non-finite
    floats literally (NaN, Infinity); returns how many there were."""
    meta = json.loads(path.read_text())
    found = []

    def literal(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"__float__"}:
                found.append(value)
                return float(value["__float__"])
            return {key: literal(item) for key, item in value.items()}
        if isinstance(value, list):
            return [literal(item) for item in value]
        return value

    path.write_text(json.dumps(literal(meta), allow_nan=True) + "\n")
    return len(found)


def test_an_older_checkpoint_with_literal_nan_and_infinity_still_loads(tmp_path):
    run = RunDir.create(tmp_path, "run")
    state = {"fitness": [0.5, math.nan, -math.inf], "best": {"loss": math.inf}}
    number = run.save_checkpoint(state)
    path = run.checkpoint_dir / f"{number:06d}.json"
    assert _as_older_checkpoint(path) == 3
    assert "NaN" in path.read_text() and "-Infinity" in path.read_text()
    assert same(RunDir(run.path).load_checkpoint(), state)


# --- whole runs -------------------------------------------------------------------------


def test_a_program_search_whose_programs_diverge_writes_strict_json(tmp_path):
    # Every prediction is off by more than max_abs_error: each program stops training at
    # once and scores 0 (the fitness rule maps divergence to a number), on every task.
    config = small_config(max_abs_error=1e-12, checkpoint_every=0.2, progress_every=0.2,
                          budget={"individuals": 600, "train_steps": None})
    run, final = run_quietly(config, tmp_path)
    discoveries = run.rundir.read_discoveries()
    assert discoveries and all(record["fitness"] == 0.0 for record in discoveries)
    assert final["final_fitness"] == 0.0
    assert assert_strict_json_files(run.rundir.path) >= 5
    # A null (a non-finite value) in a progress record is a gap in the plot, not an error.
    path = run.rundir.path / RunDir.PROGRESS
    records = [strict_loads(line) for line in path.read_bytes().splitlines()]
    records[-1].update(best=None, mean=None)
    path.write_text("".join(json_text(record) + "\n" for record in records))
    data = load_run(run.rundir.path)
    assert math.isnan(data.progress_mean[-1]) and math.isnan(data.progress_best[-1])
    assert np.isfinite(data.progress_mean[:-1]).all()


def _diverging_nas(**changes: Any):
    """A tiny NAS run whose training diverges (the loss overflows to NaN)."""
    return nas_config(nas={"training": {"epochs": 1, "learning_rate": 1e6}}, **changes)


def test_a_nas_run_whose_training_diverges_writes_null_and_says_why(tmp_path):
    run, final = run_quietly(_diverging_nas(), tmp_path)
    assert assert_strict_json_files(run.rundir.path) >= 4
    records = [strict_loads(line) for line in
               (run.rundir.path / RunDir.EVALUATIONS).read_bytes().splitlines()]
    assert len(records) == final["evaluations"] == 10
    for record in records:
        trained = not record["cache_hit"]
        assert record["diverged"] is (None in record["losses"])
        assert record["first_epoch_accuracy"] is None      # not measured: no hurdle
        if trained:
            assert record["diverged"] and record["losses"] == [None]
    # show --format json is strict too, and reads the nulls back.
    strict_loads(run.domain.show(RunDir.open(run.rundir.path), False, True))


def test_a_stopped_nas_run_resumes_from_an_older_checkpoint_with_literal_nan(tmp_path,
                                                                            monkeypatch):
    from evozero.domains import resume_run, start_run

    config = _diverging_nas(budget={"individuals": 12, "train_steps": None})
    run = start_run(config, str(tmp_path), out=open(os.devnull, "w"))
    stop_after_evaluations(run, 4, monkeypatch)
    with pytest.raises(Interrupted, match="SIGINT"):
        run.execute()
    monkeypatch.undo()
    newest = run.rundir.checkpoint_dir / f"{run.rundir.checkpoint_sequences()[-1]:06d}.json"
    assert assert_strict_json_files(run.rundir.path) >= 3
    # The checkpoint held NaN (unmeasured accuracies, diverged losses); as an older
    # evozero wrote them, literally, the run still resumes from it and completes.
    assert _as_older_checkpoint(newest) > 0
    resumed = resume_run(str(run.rundir.path), out=open(os.devnull, "w"))
    final = resumed.execute()
    assert final["evaluations"] == 12
    # The older checkpoint may stay as the one to fall back to; all the resume wrote is strict.
    assert resumed.rundir.checkpoint_sequences()[-1] > int(newest.stem)
    assert assert_strict_json_files(resumed.rundir.path, older=newest) >= 4
