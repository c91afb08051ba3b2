"""`evozero show`, `show --history`, `export` and `plot` on a real run."""
from __future__ import annotations

import io
import json

import matplotlib.image
import numpy as np
import pytest

from evozero.cli import main
from evozero.config import config_from_dict
from evozero.domains import start_run
from evozero.evaluation.tasks import make_tasks
from evozero.evaluation.vm import evaluate
from evozero.programs.program import Program
from evozero.programs.simplify import simplify


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    config = config_from_dict({"name": "inspect", "seed": 2, "population_size": 100,
                               "search_tasks": {"num_tasks": 3, "train": 50, "valid": 30},
                               "select_tasks": {"num_tasks": 3, "train": 50, "valid": 30},
                               "final_tasks": {"num_tasks": 3, "train": 50, "valid": 30},
                               "budget": {"individuals": 20_000, "train_steps": None},
                               "max_experiments": 1, "progress_every": 0.05})
    run = start_run(config, str(root), out=io.StringIO())
    run.execute()
    return run.rundir.path


def test_show_prints_raw_and_simplified_side_by_side(finished_run, capsys):
    assert main(["show", str(finished_run)]) == 0
    out = capsys.readouterr().out
    final = json.loads((finished_run / "final.json").read_text())
    assert f"final {final['final_fitness']:.6f}" in out
    assert "best program" in out and "simplified" in out
    assert "population_size 100" in out


def test_show_json_holds_an_equivalent_simplified_program(finished_run, capsys):
    assert main(["show", str(finished_run), "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    raw, simple = Program.parse(summary["program"]), Program.parse(summary["simplified"])
    assert simple == simplify(raw, (4, 3, 1))
    tasks = make_tasks("linear", 3, 4, 50, 30, seed=11)
    assert evaluate(simple, tasks) == evaluate(raw, tasks, memory=(4, 3, 1))
    assert summary["fitness"]["final"] is not None and summary["solved"] in (True, False)


def test_history_lists_every_improvement(finished_run, capsys):
    assert main(["show", str(finished_run), "--history", "--format", "json"]) == 0
    events = json.loads(capsys.readouterr().out)
    discoveries = [json.loads(line) for line in
                   (finished_run / "discoveries.jsonl").read_text().splitlines()]
    assert [e["individual"] for e in events] == [d["individual"] for d in discoveries]
    assert events[0]["change"] == "first program"
    assert all(e["change"] for e in events[1:])
    assert main(["show", str(finished_run), "--history"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(events) + 1


def test_plot_writes_a_png(finished_run, tmp_path, capsys):
    output = tmp_path / "curve.png"
    assert main(["plot", str(finished_run), "-o", str(output), "--x", "seconds"]) == 0
    image = matplotlib.image.imread(output)
    assert image.shape[:2] == (600, 960) and len(np.unique(image.reshape(-1, image.shape[2]),
                                                           axis=0)) > 20


def test_missing_run_is_a_clear_error(tmp_path, capsys):
    for command in (["show", str(tmp_path / "none")],
                    ["plot", str(tmp_path / "none"), "-o", str(tmp_path / "x.png")]):
        assert main(command) == 2
        assert "no such run directory" in capsys.readouterr().err


def test_export_writes_a_module_matching_the_run(finished_run, tmp_path, capsys):
    output = tmp_path / "evolved.py"
    assert main(["export", str(finished_run), "--python", str(output), "--name", "Found"]) == 0
    namespace: dict = {}
    exec(compile(output.read_text(), str(output), "exec"), namespace)
    program = Program.parse((finished_run / "best.txt").read_text())
    task = make_tasks("linear", 1, 4, 50, 30, seed=3)[0]
    model = namespace["Found"]().fit(task.x_train, task.y_train)
    predictions = model.predict(task.x_valid)
    fitness = 1 - (2 / np.pi) * np.arctan(np.sqrt(np.mean((task.y_valid - predictions) ** 2)))
    assert fitness == pytest.approx(evaluate(program, [task], memory=(4, 3, 1)), abs=1e-12)
