"""NAS runs through the engine: spaces and mutations, cache, constraints, hurdles,
objectives, reproducibility and resume, and the CLI around them."""
from __future__ import annotations

import math
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import cli, nas_config, nas_data, run_quietly, small_config

from evozero.cli import main
from evozero.config import config_from_dict
from evozero.errors import EvozeroError
from evozero.nas.evaluate import Evaluator
from evozero.nas.search.pareto import dominated
from evozero.nas.spaces.cells import Nb201Cell
from evozero.nas.spaces.space import CellSpace
from evozero.runs.rundir import RunDir

pytestmark = pytest.mark.nas

REPO = Path(__file__).resolve().parents[2]


def _keys(records):
    return [(r["island"], r["island_individual"], r["genome"], r["cache_hit"],
             r["valid_accuracy"], r["test_accuracy"]) for r in records]


@pytest.mark.parametrize("space", ["nb101", "nb201"])
@pytest.mark.parametrize("mutation", ["bitwise", "single"])
def test_random_cells_and_mutants_are_valid_and_round_trip(space, mutation):
    cells = CellSpace(nas_config(nas={"space": space, "mutation": mutation}).nas)
    rng = np.random.default_rng(0)
    for _ in range(30):
        cell = cells.random(rng)
        mutant = cells.mutate(cell, rng)
        for one in (cell, mutant):
            assert cells.parse(cells.text(one)) == one
        if space == "nb201" and mutation == "single":
            changed = sum(a != b for a, b in zip(cell.edge_ops, mutant.edge_ops))
            assert changed == 1


def test_bad_cell_text_is_a_precise_error():
    cells = CellSpace(nas_config(nas={"space": "nb101"}).nas)
    with pytest.raises(EvozeroError, match="JSON"):
        cells.parse("[[0, 1]")
    with pytest.raises(EvozeroError, match="keys matrix and ops"):
        cells.parse('{"matrix": [[0]]}')


def test_mnasnet_rewards_follow_the_formula():
    soft = Evaluator(nas_config(nas={"objective": {"kind": "mnasnet_soft", "target": 2.0,
                                                   "cost": "macs"}}).nas, 0)
    hard = Evaluator(nas_config(nas={"objective": {"kind": "mnasnet_hard", "target": 2.0,
                                                   "cost": "macs"}}).nas, 0)
    assert soft.fitness(0.9, {"macs": 4.0}) == pytest.approx(0.9 * 2.0 ** -0.07)
    assert soft.fitness(0.9, {"macs": 1.0}) == pytest.approx(0.9 * 0.5 ** -0.07)
    assert hard.fitness(0.9, {"macs": 1.0}) == pytest.approx(0.9)
    assert hard.fitness(0.9, {"macs": 4.0}) == pytest.approx(0.45)


def test_a_run_writes_one_record_per_network_and_never_trains_a_cell_twice(tmp_path):
    run, final = run_quietly(nas_config(budget={"individuals": 25, "train_steps": None}),
                             tmp_path)
    records = run.rundir.read_evaluations()
    assert len(records) == final["evaluations"] == final["individuals"] == 25
    trained = [r["hash"] for r in records if not r["cache_hit"]]
    assert len(trained) == len(set(trained))
    assert all(r["hash"] in set(trained) for r in records if r["cache_hit"])
    for record in records:
        assert set(record["cost"]) >= {"params", "macs", "flops", "latency_ms"}
        assert record["cost"]["flops"] >= 2 * record["cost"]["macs"]
        assert Nb201Cell.parse(record["genome"]).hash() == record["hash"]
    best = max(r["valid_accuracy"] for r in records)
    assert final["valid_accuracy"] == best == final["search_fitness"]
    assert final["final_fitness"] == final["test_accuracy"]
    assert (run.rundir.path / "best_network.npz").exists()


def test_constraints_reject_networks_before_training(tmp_path):
    config = nas_config()
    evaluator = Evaluator(config.nas, config.seed)
    smallest, largest = (evaluator.cost(evaluator.architecture(Nb201Cell((op,) * 6)))["params"]
                         for op in ("none", "nor_conv_3x3"))
    cap = smallest + (largest - smallest) // 4
    run, final = run_quietly(nas_config(nas={"constraints": {"max_params": cap}}), tmp_path)
    records = run.rundir.read_evaluations()
    assert records and all(r["cost"]["params"] <= cap for r in records)
    rejects = run.rundir.read_progress()[-1]["budget_rejects"]
    assert rejects > 0


def test_hurdle_stops_weak_children_after_one_epoch(tmp_path):
    run, _ = run_quietly(nas_config(nas={"training": {"epochs": 2},
                                         "hurdle": {"accuracy": 0.99}}), tmp_path)
    trained = [r for r in run.rundir.read_evaluations() if not r["cache_hit"]]
    assert trained and all(r["hurdle_stopped"] and r["epochs"] == 1 for r in trained)
    assert run.rundir.read_progress()[-1]["hurdle_stops"] == len(trained)


def test_pareto_run_reports_a_non_dominated_front(tmp_path):
    run, final = run_quietly(nas_config(nas={"objective": {"kind": "pareto",
                                                           "cost": "params"}}), tmp_path)
    front = final["pareto_front"]
    points = [(f["valid_accuracy"], f["params"]) for f in front]
    assert points and not any(dominated(p, points) for p in points)
    others = {(r["valid_accuracy"], r["cost"]["params"]) for r in run.rundir.read_evaluations()}
    assert all(dominated(p, points) or p in points for p in others)


def test_random_search_and_evolution_both_run(tmp_path):
    for strategy in ("random", "evolution"):
        _, final = run_quietly(nas_config(strategy=strategy, name=strategy), tmp_path)
        assert final["evaluations"] == 10


def test_seeded_runs_are_reproducible_with_two_deterministic_islands(tmp_path):
    changes = {"workers": 2, "deterministic": True, "migrate_every": 4, "migration": 2}
    first, _ = run_quietly(nas_config(name="a", **changes), tmp_path)
    second, _ = run_quietly(nas_config(name="b", **changes), tmp_path)
    records = sorted(_keys(first.rundir.read_evaluations()))
    assert records == sorted(_keys(second.rundir.read_evaluations()))
    assert {r[0] for r in records} == {1, 2}
    assert first.rundir.read_progress()[-1]["islands"][0]["migrants"] > 0


@pytest.mark.slow
def test_killed_nas_run_resumes_to_the_uninterrupted_result(tmp_path):
    # The run to kill has a budget it cannot reach, so the kill always lands mid-run; it
    # is killed once a checkpoint past the initial population is on disk. The
    # uninterrupted run, and the resume (a budget may change on resume), then stop a few
    # networks past that checkpoint, so both must evaluate the same networks.
    endless = nas_data(checkpoint_every=0.2, budget={"individuals": 10**6, "train_steps": None})
    config = tmp_path / "nas.yaml"
    config.write_text(yaml.safe_dump(endless))
    process = cli("run", str(config), "--out", str(tmp_path / "cut"))
    rundir = tmp_path / "cut" / "nas"
    deadline = time.monotonic() + 300
    while (reached := _checkpointed_individuals(rundir)) <= endless["population_size"]:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint past the initial population"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (rundir / "final.json").exists()

    budget = {"individuals": reached + 4, "train_steps": None}
    config.write_text(yaml.safe_dump({**endless, "budget": budget}))
    whole = cli("run", str(config), "--out", str(tmp_path / "whole"))
    assert whole.wait(timeout=600) == 0, whole.communicate()
    expected = RunDir.open(tmp_path / "whole" / "nas")
    saved = yaml.safe_load((rundir / RunDir.CONFIG).read_text())
    (rundir / RunDir.CONFIG).write_text(yaml.safe_dump({**saved, "budget": budget}))
    resumed = cli("resume", str(rundir))
    assert resumed.wait(timeout=600) == 0, resumed.communicate()
    got = RunDir.open(rundir)
    assert _keys(got.read_evaluations()) == _keys(expected.read_evaluations())
    for key in ("cell", "valid_accuracy", "test_accuracy", "individuals", "pareto_front"):
        assert got.read_final()[key] == expected.read_final()[key], key


def _checkpointed_individuals(rundir: Path) -> int:
    """Individuals of the one island in the newest checkpoint of ``rundir`` (0: none yet).
    A run directory appears complete (renamed into place), but its config is waited for
    all the same: opening it any earlier is a race this test must not depend on."""
    if not (rundir / RunDir.CONFIG).exists():
        return 0
    state = RunDir.open(rundir).load_checkpoint()
    if state is None or state["islands"] is None:
        return 0
    [island] = state["islands"]["islands"]
    return island["summary"]["individuals"]


def test_show_and_export_of_a_nas_run(tmp_path, capsys):
    run, final = run_quietly(nas_config(nas={"space": "nb101", "max_vertices": 5}), tmp_path)
    assert main(["show", str(run.rundir.path)]) == 0
    out = capsys.readouterr().out
    assert "best cell" in out and "0 1" in out and "macs" in out and "latency_ms[" in out
    module = tmp_path / "cell.py"
    assert main(["export", str(run.rundir.path), "--python", str(module)]) == 0
    assert module.exists() and module.with_suffix(".npz").exists()
    assert "def predict" in module.read_text()


def test_plot_of_nas_runs_writes_a_png(tmp_path, capsys):
    runs = [str(run_quietly(nas_config(name=name, seed=seed, strategy=strategy),
                            tmp_path)[0].rundir.path)
            for name, seed, strategy in (("re", 1, "evolution"), ("re", 2, "evolution"),
                                         ("rs", 1, "random"))]
    for chosen, name in ((runs[:1], "one.png"), (runs, "compare.png")):
        output = tmp_path / name
        assert main(["plot", *chosen, "-o", str(output)]) == 0
        assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    program_run = run_quietly(small_config(), tmp_path)[0].rundir.path
    assert main(["plot", runs[0], str(program_run), "-o", str(tmp_path / "mixed.png")]) == 2
    assert "not a NAS run" in capsys.readouterr().err


def test_unknown_device_profile_is_a_clear_error(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(nas_data(nas={"profile": "toaster"})))
    assert main(["run", str(config), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "toaster" in err and "mobile-cpu" in err and "Traceback" not in err


def test_nas_config_errors_name_the_key():
    with pytest.raises(EvozeroError, match="nas.objective.kind"):
        config_from_dict(nas_data(nas={"objective": {"kind": "mnasnet_soft"}}))
    with pytest.raises(EvozeroError, match="nas.space"):
        config_from_dict(nas_data(nas={"space": "nb301"}))
    assert math.isclose(nas_config().nas.training.learning_rate, 0.05)
