"""`evozero tune`: tunes on --tasks, tests on --test or a config's final tasks, writes the
tuned program; bad input is one error line and exit code 2."""
from __future__ import annotations

import json

import pytest

from evozero.analysis.transfer import load_tasks
from evozero.analysis.tuning import tune
from evozero.cli import main
from evozero.config import load_config
from evozero.evaluation.vm import evaluate
from evozero.programs.program import Program
from evozero.programs.reference import linear_program

SPEC = "kind: linear\nnum_tasks: 2\nfeatures: 4\ntrain: 300\nvalid: 30\nseed: {seed}\n"


@pytest.fixture()
def specs(tmp_path):
    tuning, test = tmp_path / "tune.yaml", tmp_path / "test.yaml"
    tuning.write_text(SPEC.format(seed=1))
    test.write_text(SPEC.format(seed=2))
    return str(tuning), str(test)


def test_a_built_in_tuned_and_tested(specs, tmp_path, capsys):
    output = tmp_path / "tuned.txt"
    assert main(["tune", "linear", "--tasks", specs[0], "--test", specs[1], "--trials", "15",
                 "--seed", "3", "--output", str(output), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    tuned = tune(linear_program(), load_tasks(specs[0]), trials=15, seed=3)
    held_out = load_tasks(specs[1])
    assert report["untuned"] == {"fitness": tuned.untuned_fitness,
                                 "held_out_fitness": evaluate(linear_program(), held_out)}
    assert report["tuned"] == {"fitness": tuned.fitness,
                               "held_out_fitness": evaluate(tuned.program, held_out)}
    assert report["factors"] == list(tuned.factors) and report["trials"] == 15
    assert Program.parse(output.read_text()) == tuned.program == Program.parse(report["program"])


def test_a_config_tunes_on_select_and_tests_on_final_tasks(tmp_path, capsys):
    config = tmp_path / "experiment.yaml"
    config.write_text("select_tasks: {num_tasks: 2, train: 50, valid: 20, seed: 5}\n"
                      "final_tasks: {num_tasks: 3, train: 50, valid: 20, seed: 6}\n")
    assert main(["tune", "affine", "--tasks", str(config), "--trials", "4"]) == 0
    out = capsys.readouterr().out
    loaded = load_config(str(config))
    tuned = tune(Program.parse(out.split("\n\n", 1)[1]), loaded.select_tasks.make(), trials=1)
    assert f"{tuned.fitness:.6f}" in out.splitlines()[3]
    final = evaluate(tuned.program, loaded.final_tasks.make())
    assert out.splitlines()[3].split()[-1] == f"{final:.6f}"
    assert "tuned on 2 tasks, best of 4 trials" in out


def test_without_held_out_tasks_the_report_says_so(specs, capsys):
    assert main(["tune", "logistic", "--tasks", specs[0], "--trials", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[2].split()[-1] == "-"


@pytest.mark.parametrize("arguments, message", [
    (["nothing-here", "--tasks", "{tune}"], "the built-ins are linear, logistic"),
    (["linear", "--tasks", "{missing}"], "no such"),
    (["linear", "--tasks", "{tune}", "--seed", "-1"], "seed must be an integer"),
    (["linear", "--tasks", "{tune}", "--output", "{missing}/x.txt"], "does not exist"),
])
def test_bad_input_is_an_error_line_and_exit_2(arguments, message, specs, tmp_path, capsys):
    values = {"tune": specs[0], "missing": str(tmp_path / "missing")}
    assert main(["tune", *(a.format(**values) for a in arguments)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("trials", ["0", "many"])
def test_bad_trials_exit_2(trials, specs, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["tune", "linear", "--tasks", specs[0], "--trials", trials])
    assert stop.value.code == 2 and "--trials: must be an integer >= 1" in capsys.readouterr().err


def test_a_run_directory_is_tuned_in_its_own_memory(tmp_path, capsys):
    from helpers import run_quietly, small_config

    from evozero.analysis.show import best_program
    from evozero.runs.rundir import RunDir

    config = small_config(budget={"individuals": 300, "train_steps": None},
                          memory={"scalars": 8, "vectors": 5, "matrices": 2})
    run, _ = run_quietly(config, tmp_path / "runs")
    spec = tmp_path / "tune.yaml"
    spec.write_text(SPEC.format(seed=4))
    assert main(["tune", str(run.rundir.path), "--tasks", str(spec), "--trials", "5",
                 "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    best = best_program(RunDir.open(run.rundir.path), (8, 5, 2))
    tuned = tune(best, load_tasks(str(spec)), trials=5, memory=(8, 5, 2))
    assert report["tuned"]["fitness"] == tuned.fitness
    assert report["program"] == str(tuned.program)
