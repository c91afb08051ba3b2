"""`evozero eval`: a program on other tasks, from a run or a file, on .npz or YAML tasks."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

from evozero.analysis.transfer import load_program, load_tasks
from evozero.cli import main
from evozero.config import config_from_dict
from evozero.domains import start_run
from evozero.evaluation.tasks import make_tasks
from evozero.evaluation.vm import evaluate
from evozero.programs.reference import builtin_program, linear_program


@pytest.fixture()
def program_file(tmp_path):
    path = tmp_path / "linear.txt"
    path.write_text(str(linear_program(0.05)))
    return path


def test_task_spec_yaml_with_more_features(tmp_path, program_file, capsys):
    spec = tmp_path / "tasks.yaml"
    spec.write_text("kind: linear\nnum_tasks: 3\nfeatures: 8\ntrain: 500\nvalid: 50\nseed: 9\n")
    assert main(["eval", str(program_file), "--tasks", str(spec), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    expected = evaluate(linear_program(0.05), make_tasks("linear", 3, 8, 500, 50, seed=9),
                        combine=None)
    assert [t["fitness"] for t in report["tasks"]] == pytest.approx(list(expected), abs=0)
    assert report["fitness"] == pytest.approx(float(np.mean(expected)), abs=0)


def test_users_npz_and_seed_override(tmp_path, program_file, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    np.savez(tmp_path / "mine.npz", x=x, y=x @ rng.normal(size=5))
    assert main(["eval", str(program_file), "--tasks", str(tmp_path / "mine.npz")]) == 0
    out = capsys.readouterr().out
    assert "mean fitness over 1 tasks" in out
    assert float(out.split()[-1]) > 0.9


def test_run_directory_and_config_final_tasks(tmp_path, capsys):
    config = config_from_dict({"name": "tiny", "population_size": 20, "tournament_size": 5,
                               "search_tasks": {"num_tasks": 2, "train": 20, "valid": 20},
                               "select_tasks": {"num_tasks": 2, "train": 20, "valid": 20},
                               "final_tasks": {"num_tasks": 2, "train": 20, "valid": 20},
                               "budget": {"individuals": 200, "train_steps": None},
                               "max_experiments": 1})
    run = start_run(config, str(tmp_path / "runs"), out=io.StringIO())
    result = run.execute()
    experiment = tmp_path / "final.yaml"
    experiment.write_text("final_tasks: {num_tasks: 2, train: 20, valid: 20, seed: 2000000}\n")
    assert main(["eval", str(run.rundir.path), "--tasks", str(experiment)]) == 0
    assert f"{result['final_fitness']:.6f}" in capsys.readouterr().out


@pytest.mark.parametrize("tasks_text, words", [
    ("kind: linaer\nnum_tasks: 2\n", ["kind", "linaer"]),
    ("final_tasks: {num_tasks: -1}\n", ["num_tasks", "-1"]),
])
def test_bad_tasks_exit_2(tmp_path, program_file, capsys, tasks_text, words):
    spec = tmp_path / "bad.yaml"
    spec.write_text(tasks_text)
    assert main(["eval", str(program_file), "--tasks", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(spec) in err
    for word in words:
        assert word in err


def test_bad_program_and_missing_file(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("def Setup():\n  s1 = frobnicate(s0)\n")
    assert main(["eval", str(bad), "--tasks", str(tmp_path / "none.npz")]) == 2
    assert "bad.txt" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "nothing.txt"), "--tasks", "x.yaml"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_built_in_programs_by_name_and_a_file_of_that_name_wins(tmp_path, monkeypatch, capsys):
    spec = tmp_path / "tasks.yaml"
    spec.write_text("kind: linear\nnum_tasks: 2\nfeatures: 4\ntrain: 200\nvalid: 50\n")
    assert main(["eval", "affine", "--tasks", str(spec), "--format", "json"]) == 0
    expected = evaluate(builtin_program("affine"), load_tasks(str(spec)))
    assert json.loads(capsys.readouterr().out)["fitness"] == expected
    monkeypatch.chdir(tmp_path)
    (tmp_path / "affine").write_text(str(linear_program(0.05)))
    assert load_program("affine") == (linear_program(0.05), None)
    assert main(["eval", "affin", "--tasks", str(spec)]) == 2
    assert "linear, logistic, affine, neural_net" in capsys.readouterr().err
