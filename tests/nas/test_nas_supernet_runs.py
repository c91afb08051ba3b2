"""Supernet strategies as runs: each derives and retrains a cell, reproducibly, resumes
exactly after a stop, and bad inputs are refused before anything is made."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from helpers import nas_data, run_quietly, stop_after_evaluations

from evozero.cli import main
from evozero.config import config_from_dict
from evozero.domains import resume_run, start_run
from evozero.errors import EvozeroError
from evozero.nas.spaces.cells import Nb201Cell
from evozero.nas.supernet.island import check_supernet_snapshot
from evozero.runs.flow import Interrupted
from evozero.runs.rundir import RunDir

pytestmark = pytest.mark.nas

STRATEGIES = ("rsps", "spos", "enas", "darts", "darts2", "gdas", "proxyless")


def supernet_data(strategy: str, **supernet) -> dict:
    settings = {"epochs": 2, "batch_size": 128, "candidates": 4, "eval_batch_size": 256,
                "enas": {"steps": 2, "samples": 3},
                "spos": {"population": 4, "generations": 2, "parents": 2, "mutations": 2,
                         "crossovers": 2}, **supernet}
    if strategy == "proxyless":
        settings.setdefault("latency_target_ms", 0.05)
        settings.setdefault("warmup_epochs", 0)
        settings.setdefault("arch_every", 2)
    data = nas_data(strategy=strategy, budget={"individuals": None},
                    nas={"supernet": settings, "profile": "host"})
    data["name"] = strategy
    return data


def _records(rundir: RunDir) -> list:
    return [(r["phase"], r["genome"], r["valid_accuracy"], r.get("alphas"))
            for r in rundir.read_evaluations()]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_derives_retrains_and_reproduces_its_cell(strategy, tmp_path):
    config = config_from_dict(supernet_data(strategy))
    first, final = run_quietly(config, tmp_path / "a")
    second, again = run_quietly(config, tmp_path / "b")
    assert _records(first.rundir) == _records(second.rundir)
    records = first.rundir.read_evaluations()
    phases = [r["phase"] for r in records]
    assert phases[-2:] == ["derived", "retrained"]
    # Methods with architecture parameters report the cell they derive after each epoch.
    assert phases.count("epoch") == (2 if strategy not in ("rsps", "spos") else 0)
    derived, retrained = records[-2:]
    assert derived["genome"] == retrained["genome"] == final["cell"]
    Nb201Cell.parse(final["cell"])
    assert final["valid_accuracy"] == retrained["valid_accuracy"] == final["search_fitness"]
    assert final["supernet"]["strategy"] == strategy
    assert final["supernet"]["search_seconds"] > 0
    assert len([h for h in final["supernet"]["history"] if "epoch" in h]) == 2
    assert final["evaluations"] == 1 and final["pareto_front"]
    assert again["cell"] == final["cell"]


def test_a_stopped_darts_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    config = config_from_dict(supernet_data("darts", epochs=4))
    _, whole = run_quietly(config, tmp_path / "whole")
    expected = RunDir.open(tmp_path / "whole" / "darts")
    run = start_run(config, str(tmp_path / "cut"), out=open(os.devnull, "w"))
    stop_after_evaluations(run, 2, monkeypatch)
    with pytest.raises(Interrupted):
        run.execute()
    monkeypatch.undo()
    resumed = resume_run(str(run.rundir.path), out=open(os.devnull, "w")).execute()
    assert _records(RunDir.open(run.rundir.path)) == _records(expected)
    assert resumed["cell"] == whole["cell"]
    assert resumed["valid_accuracy"] == whole["valid_accuracy"]


def test_few_shot_trains_one_sub_supernet_per_op_of_its_edge(tmp_path):
    config = config_from_dict(supernet_data("rsps", few_shot={"edge": 3, "epochs": 1}))
    _, final = run_quietly(config, tmp_path)
    history = [h for h in final["supernet"]["history"] if "epoch" in h]
    assert [h["shot"] for h in history] == [None, None, 0, 1, 2, 3, 4]


def test_show_and_export_work_on_a_supernet_run(tmp_path, capsys):
    run, final = run_quietly(config_from_dict(supernet_data("gdas")), tmp_path)
    assert main(["show", str(run.rundir.path)]) == 0
    assert final["cell"] in capsys.readouterr().out
    module = tmp_path / "cell.py"
    assert main(["export", str(run.rundir.path), "--python", str(module)]) == 0
    assert "def predict" in module.read_text()


@pytest.mark.parametrize("changes, message", [
    ({"nas": {"space": "nb101"}}, "nb101 has none"),
    ({"budget": {"individuals": 10}}, "ends by itself"),
    ({"nas": {"supernet": {"latency_target_ms": None}}}, "latency_target_ms"),
    ({"nas": {"supernet": {"few_shot": {"edge": 1}}}}, "few-shot"),
    ({"nas": {"supernet": {"min_learning_rate": 1.0}}}, "cosine starts from"),
])
def test_bad_supernet_configs_are_refused_naming_the_key(changes, message):
    data = supernet_data("proxyless")
    for key, value in changes.items():
        if key == "nas":
            for name, setting in value.items():
                if isinstance(setting, dict):
                    data["nas"][name] = {**data["nas"].get(name, {}), **setting}
                else:
                    data["nas"][name] = setting
        else:
            data[key] = value
    with pytest.raises(EvozeroError, match=message):
        config_from_dict(data)


def test_a_latency_term_needs_a_calibrated_profile(tmp_path):
    data = supernet_data("proxyless")
    data["nas"]["profile"] = "mobile-cpu"
    with pytest.raises(EvozeroError, match="declared, not calibrated"):
        run_quietly(config_from_dict(data), tmp_path)
    assert not any(tmp_path.rglob("config.yaml"))


def test_a_corrupt_supernet_snapshot_is_refused(tmp_path, monkeypatch):
    config = config_from_dict(supernet_data("darts", epochs=3))
    run = start_run(config, str(tmp_path), out=open(os.devnull, "w"))
    stop_after_evaluations(run, 1, monkeypatch)
    with pytest.raises(Interrupted):
        run.execute()
    [island] = run.rundir.load_checkpoint()["islands"]["islands"]
    snapshot = island["snapshot"]
    check_supernet_snapshot(snapshot, config, config.nas, "island 1")
    name = next(iter(snapshot["search"]["weights"]))
    for corrupt in (np.zeros(3, np.float32), np.full_like(snapshot["search"]["weights"][name][0],
                                                          np.nan)):
        bad = {**snapshot, "search": {**snapshot["search"],
                                      "weights": {**snapshot["search"]["weights"],
                                                  name: [corrupt]}}}
        with pytest.raises(EvozeroError, match=f"island 1: search: weights: layer {name}"):
            check_supernet_snapshot(bad, config, config.nas, "island 1")
    bad_meta = {**snapshot, "meta": {**snapshot["meta"], "phase": "retrain"}}
    with pytest.raises(EvozeroError, match="meta is not a supernet island's"):
        check_supernet_snapshot(bad_meta, config, config.nas, "island 1")


def test_a_supernet_run_on_a_table_is_judged_and_ranked_by_the_table(tmp_path, capsys):
    from evozero.study.records import _fitnesses

    data = supernet_data("darts", epochs=1)
    data["nas"].update({"dataset": "mnist1d", "stem_channels": 8, "stacks": 2,
                        "table": "nb201-mnist1d", "latency_drift": "none",
                        "training": {"epochs": 6, "batch_size": 256, "learning_rate": 0.2,
                                     "nesterov": True}})
    run, final = run_quietly(config_from_dict(data), tmp_path)
    assert final["final_fitness"] == final["table_test_accuracy"]
    assert final["valid_accuracy"] == final["search_fitness"]
    assert _fitnesses(final, cells=True)["final_fitness"] == final["table_test_accuracy"]
    # Every other cell search's final.json has no other test accuracy.
    assert _fitnesses({"test_accuracy": 0.5}, cells=True)["final_fitness"] == 0.5
    # The trained supernet ranks cells against the table.
    assert main(["supernet", "rank", str(run.rundir.path), "--cells", "12",
                 "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["strategy"] for row in rows] == ["darts", "parameter count"]
    assert all(row["cells"] == 12 and -1 <= row["all"]["kendall"] <= 1 for row in rows)


def test_rank_agreement_of_a_perfect_and_a_reversed_scorer():
    from evozero.nas.reports.supernet_rank import agreement

    truth = np.linspace(0.1, 0.9, 40)
    perfect, reversed_ = agreement(truth * 2, truth), agreement(-truth, truth)
    assert perfect["all"]["kendall"] == pytest.approx(1.0)
    assert perfect["top5_precision"] == perfect["top10_precision"] == 1.0
    assert perfect["regret"] == 0.0
    assert reversed_["all"]["spearman"] == pytest.approx(-1.0)
    assert reversed_["top10_precision"] == 0.0
    assert reversed_["regret"] == pytest.approx(0.8)
    low, high = perfect["all"]["kendall_95"]
    assert low <= 1.0 + 1e-12 and high == pytest.approx(1.0)
