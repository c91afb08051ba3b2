"""Hostile input to the commands that read a run: `evozero tune`, `eval`, `export`, `show`
and `plot`. Damaged files, the wrong kind of directory, sizes the data or the memory cannot
give: each is one `error:` line naming the file, key or argument and exit code 2, never a
traceback, and nothing already written is changed."""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import nas_config, run_quietly, small_config

import evozero as ez
from evozero.analysis import tuning
from evozero.cli import main
from evozero.config import dump_config
from evozero.programs.reference import builtin_program
from evozero.runs.rundir import RunDir

TASKS = "{kind: linear, num_tasks: 2, features: 4, train: 20, valid: 20, seed: 1}"


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished program run."""
    run, _ = run_quietly(small_config(), tmp_path_factory.mktemp("programs"))
    return run.rundir.path


@pytest.fixture(scope="module")
def finished_nas(tmp_path_factory) -> Path:
    """A finished cell search with its best network's weights."""
    run, _ = run_quietly(nas_config(), tmp_path_factory.mktemp("cells"))
    return run.rundir.path


@pytest.fixture
def tasks(tmp_path) -> str:
    path = tmp_path / "tasks.yaml"
    path.write_text(TASKS)
    return str(path)


def _copy(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / run.name
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(RunDir.LOCK))
    return copy


def _error(capsys, *argv: str) -> str:
    """The error of `evozero ARGV`, which must exit 2 with one `error:` line."""
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


# --- tune and eval ----------------------------------------------------------------------

def test_tune_refuses_a_trial_count_beyond_its_bound_before_drawing(capsys, tasks):
    # 10**12 trials once allocated their factors at once: terabytes.
    line = _error(capsys, "tune", "linear", "--tasks", tasks, "--trials", str(10**12))
    assert f"trials must be an integer in [1, {tuning.MAX_TRIALS}]" in line


def test_factors_drawn_in_blocks_are_those_drawn_at_once(monkeypatch):
    at_once = 10.0 ** np.random.default_rng(7).uniform(-3, 3, size=(10, 3))
    monkeypatch.setattr(tuning, "_DRAW_BLOCK", 4)
    assert np.array_equal(np.array(list(tuning._factors(7, 10, 3))), at_once)


def test_tuning_is_the_same_whatever_the_block(monkeypatch):
    tasks = ez.make_tasks("linear", 2, 4, train=20, valid=10, seed=2)
    whole = ez.tune(builtin_program("linear"), tasks, trials=9, seed=3)
    monkeypatch.setattr(tuning, "_DRAW_BLOCK", 2)
    blocked = ez.tune(builtin_program("linear"), tasks, trials=9, seed=3)
    assert (blocked.factors, blocked.fitness) == (whole.factors, whole.fitness)


@pytest.mark.parametrize("command", ["tune", "eval"])
def test_a_cell_search_is_named_as_one(capsys, tmp_path, tasks, command):
    run = tmp_path / "nas"
    run.mkdir()
    (run / RunDir.CONFIG).write_text(dump_config(nas_config()))
    line = _error(capsys, command, str(run), "--tasks", tasks)
    assert f"{run}: a cell search" in line and "def Setup" not in line


@pytest.mark.parametrize("command", ["tune", "eval"])
def test_sizes_the_data_cannot_give_name_the_file(capsys, tmp_path, command):
    spec = tmp_path / "digits.yaml"
    spec.write_text("{kind: digits, num_tasks: 2, features: 16, train: 5000, valid: 20}")
    line = _error(capsys, command, "linear", "--tasks", str(spec))
    assert line.startswith(f"error: {spec}: ") and "exceeds" in line


def test_run_names_the_config_whose_task_sizes_the_data_cannot_give(capsys, tmp_path):
    config = tmp_path / "digits.yaml"
    config.write_text("search_tasks: {kind: digits, num_tasks: 2, features: 16, train: 5000, "
                      "valid: 20}\n")
    line = _error(capsys, "run", str(config), "--out", str(tmp_path / "runs"))
    assert line.startswith(f"error: {config}: search_tasks: train + valid = 5020 exceeds")
    assert not (tmp_path / "runs").exists()


def test_tune_names_the_section_of_a_config_whose_sizes_fail(capsys, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("select_tasks: {kind: digits, num_tasks: 2, features: 16, train: 5000, "
                      "valid: 20}\n")
    line = _error(capsys, "tune", "linear", "--tasks", str(config))
    assert line.startswith(f"error: {config}: select_tasks: ")


@pytest.mark.parametrize("argv, expected", [
    (["--trials", "-5"], "argument --trials: must be an integer >= 1, got '-5'"),
    (["--seed", "-1"], "seed must be an integer in [0, "),
])
def test_tune_bad_arguments(capsys, tasks, argv, expected):
    try:
        code = main(["tune", "linear", "--tasks", tasks, *argv])
    except SystemExit as stop:
        code = stop.code
    assert code == 2 and expected in capsys.readouterr().err


# --- export -----------------------------------------------------------------------------

def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


def _objects(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        stored = path.with_suffix(".npy")
        np.save(stored, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        archive.write(stored, "layer/0.npy")


def _foreign(path: Path) -> None:
    np.savez(path, nothing=np.zeros(3))


def _not_finite(path: Path) -> None:
    with np.load(path) as arrays:
        np.savez(path, **{key: np.full_like(arrays[key], np.nan) for key in arrays.files})


@pytest.mark.nas
@pytest.mark.parametrize("damage, expected", [
    (_truncated, "not the trained weights of a network"),
    (_objects, "not the trained weights of a network"),
    (_foreign, "array 'nothing' is not a layer's weights"),
    (_not_finite, "is not finite floating point weights"),
])
def test_export_refuses_damaged_weights_naming_the_file(finished_nas, tmp_path, capsys,
                                                        damage, expected):
    run = _copy(finished_nas, tmp_path)
    weights = run / "best_network.npz"
    damage(weights)
    out = tmp_path / "net.py"
    line = _error(capsys, "export", str(run), "--python", str(out))
    assert str(weights) in line and expected in line
    assert not out.exists() and not out.with_suffix(".npz").exists()


@pytest.mark.nas
def test_export_names_a_best_txt_that_is_no_cell_of_the_run(finished_nas, tmp_path, capsys):
    run = _copy(finished_nas, tmp_path)
    (run / RunDir.BEST).write_text("|foo~0|\n")
    line = _error(capsys, "export", str(run), "--python", str(tmp_path / "net.py"))
    assert f"{run / RunDir.BEST}: not a cell of this run's space (nb201)" in line


# --- show and plot ----------------------------------------------------------------------

@pytest.mark.parametrize("final, expected", [
    ({"search_fitness": "x"}, "'solved' must be true or false"),
    ({"solved": True, "individuals": "many", "experiments": 1, "seconds": 1.0},
     "'individuals' must be a whole number"),
    ({"solved": True, "individuals": 1, "experiments": 1, "seconds": 1.0,
      "final_fitness": [1]}, "'final_fitness' must be a number or null"),
])
def test_show_names_final_json_with_the_wrong_types(finished, tmp_path, capsys, final,
                                                    expected):
    run = _copy(finished, tmp_path)
    (run / RunDir.FINAL).write_text(json.dumps(final))
    line = _error(capsys, "show", str(run))
    assert str(run / RunDir.FINAL) in line and expected in line


def test_show_names_a_progress_record_with_the_wrong_types(finished, tmp_path, capsys):
    run = _copy(finished, tmp_path)
    (run / RunDir.FINAL).unlink()
    (run / RunDir.PROGRESS).write_text('{"individuals": "x", "seconds": 1, "experiment": 1}\n')
    line = _error(capsys, "show", str(run))
    assert f"{run / RunDir.PROGRESS}: its last record: 'individuals' must be a whole " \
           f"number, got x" in line


@pytest.mark.nas
@pytest.mark.parametrize("damage, expected", [
    (lambda run: (run / RunDir.FINAL).write_text('{"cell": 5}'),
     f"{RunDir.FINAL}: 'cell' must be text, got 5"),
    (lambda run: ((run / RunDir.FINAL).unlink(),
                  (run / RunDir.EVALUATIONS).write_text('{"genome": "|x~0|"}\n')),
     f"{RunDir.EVALUATIONS}: record 1: 'hash' must be text, got None"),
])
def test_show_names_a_nas_record_with_the_wrong_types(finished_nas, tmp_path, capsys, damage,
                                                      expected):
    run = _copy(finished_nas, tmp_path)
    damage(run)
    assert expected in _error(capsys, "show", str(run))


def test_plot_into_a_folder_is_refused_before_drawing(finished, tmp_path, capsys):
    line = _error(capsys, "plot", str(finished), "-o", str(tmp_path))
    assert f"--output {tmp_path}: is a folder" in line
    assert not tmp_path.with_suffix(".png").exists()


def test_plot_replaces_its_png_whole(finished, tmp_path, capsys):
    out = tmp_path / "new" / "fitness.png"
    assert main(["plot", str(finished), "-o", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in out.parent.iterdir()] == ["fitness.png"]   # no temporary left
