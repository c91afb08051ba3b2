"""Running a study: one record per (arm, seed), built from the run directories; resume
records what is missing and runs nothing twice; the study directory is guarded."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import cli, nas_data
from study_helpers import write_study

import evozero
from evozero.errors import EvozeroError
from evozero.runs.rundir import RunDir
from evozero.study.command import resume_study, run_study
from evozero.study.directory import StudyDir
from evozero.study.records import judge
from evozero.study.spec import load_study


def _quiet():
    return open(os.devnull, "w")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished two-arm, two-seed study on two workers, and its records."""
    folder = tmp_path_factory.mktemp("study")
    path = write_study(folder, workers=2, success={"at_least": 0.3, "on": "search"})
    records = run_study(str(path), out=str(folder / "out"), stream=_quiet())
    return folder / "out", records


def _copy(finished, tmp_path) -> Path:
    directory = tmp_path / "copy"
    shutil.copytree(finished[0], directory, ignore=shutil.ignore_patterns("*.lock"))
    return directory


def _lines(directory: Path) -> list[dict]:
    return [json.loads(line) for line in (directory / "runs.jsonl").read_text().splitlines()]


def test_every_pair_is_recorded_once_from_its_run_directory(finished):
    directory, records = finished
    assert [(r["arm"], r["seed"]) for r in records] == [
        ("evolution", 0), ("random", 0), ("evolution", 1), ("random", 1)] or \
        sorted((r["arm"], r["seed"]) for r in records) == [
        ("evolution", 0), ("evolution", 1), ("random", 0), ("random", 1)]
    assert _lines(directory) == records
    for record in records:
        assert record["run"] == f"runs/{record['arm']}/seed-{record['seed']}"
        run = RunDir.open(directory / record["run"])
        final = run.read_final()
        for key in ("search_fitness", "select_fitness", "final_fitness", "individuals",
                    "train_steps", "seconds", "program", "solved"):
            assert record[key] == final[key], key
        assert record["domain"] == "programs"
        assert record["tuned"] is None and record["baselines"] is None
        assert (directory / record["run"] / "console.log").read_text().startswith(
            "run directory: ")
        assert run.read_config().seed == record["seed"]
    assert (directory / "summary.json").is_file()
    assert json.loads((directory / "summary.json").read_text())["finished_runs"] == 4


def test_seeds_are_paired_across_arms(finished):
    directory, _ = finished
    for seed in (0, 1):
        evolution = RunDir.open(directory / f"runs/evolution/seed-{seed}").read_config()
        random = RunDir.open(directory / f"runs/random/seed-{seed}").read_config()
        assert evolution.seed == random.seed == seed
        assert evolution.search_tasks == random.search_tasks
        assert (evolution.strategy, random.strategy) == ("evolution", "random")


def test_at_least_success_and_effort(finished):
    _, records = finished
    for record in records:
        assert record["threshold"] == 0.3
        assert record["success"] == (record["search_fitness"] >= 0.3)
        if record["success"]:
            effort = record["to_success"]
            assert 0 < effort["individuals"] <= record["individuals"]
            assert 0 < effort["train_steps"] <= record["train_steps"]
        else:
            assert record["to_success"] is None


def test_a_finished_study_resumes_to_nothing_new(finished, tmp_path):
    directory = _copy(finished, tmp_path)
    before = (directory / "runs.jsonl").read_bytes()
    records = resume_study(str(directory), stream=_quiet()).execute()
    assert records == finished[1]
    assert (directory / "runs.jsonl").read_bytes() == before


def test_a_run_finished_but_not_recorded_is_recorded_from_its_directory(finished, tmp_path):
    directory = _copy(finished, tmp_path)
    lines = (directory / "runs.jsonl").read_text().splitlines(keepends=True)
    (directory / "runs.jsonl").write_text("".join(lines[:-1]))
    dropped = json.loads(lines[-1])
    final = directory / dropped["run"] / "final.json"
    stamp = final.stat().st_mtime_ns
    resume_study(str(directory), stream=_quiet()).execute()
    assert _lines(directory) == finished[1]
    assert final.stat().st_mtime_ns == stamp    # not run again


def test_a_run_directory_with_nothing_worth_keeping_starts_over(finished, tmp_path):
    directory = _copy(finished, tmp_path)
    lines = (directory / "runs.jsonl").read_text().splitlines(keepends=True)
    (directory / "runs.jsonl").write_text("".join(lines[1:]))
    dropped = json.loads(lines[0])
    run = directory / dropped["run"]
    shutil.rmtree(run)
    run.mkdir()
    (run / "junk.txt").write_text("not a run")
    resume_study(str(directory), stream=_quiet()).execute()
    records = _lines(directory)
    assert sorted((r["arm"], r["seed"]) for r in records) == sorted(
        (r["arm"], r["seed"]) for r in finished[1])
    again = next(r for r in records if (r["arm"], r["seed"]) == (dropped["arm"],
                                                                   dropped["seed"]))
    assert not (run / "junk.txt").exists()
    # Same seed, same run: a fresh run repeats it exactly on one island.
    assert again["program"] == dropped["program"]


def test_a_torn_last_line_is_ignored_and_cut(finished, tmp_path):
    directory = _copy(finished, tmp_path)
    lines = (directory / "runs.jsonl").read_text().splitlines(keepends=True)
    (directory / "runs.jsonl").write_text("".join(lines[:-1]) + lines[-1][:40])
    assert len(resume_study(str(directory), stream=_quiet()).execute()) == 4
    assert _lines(directory) == finished[1]


def test_the_api_and_the_cli_agree(tmp_path):
    path = write_study(tmp_path, seeds=[7])
    records = evozero.run_study(str(path), out=str(tmp_path / "api"), stream=_quiet())
    process = cli("study", str(path), "--out", str(tmp_path / "cli"), "--workers", "1")
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert f"study directory: {tmp_path / 'cli'}" in out
    assert [r["program"] for r in _lines(tmp_path / "cli")] == [r["program"] for r in records]


@pytest.mark.parametrize("garbage, expected", [
    ('{"arm": "evolution", "seed": 0}\nnot json\n{"arm": "random", "seed": 0}\n',
     "runs.jsonl:2: corrupt line"),
    ('{"arm": "nobody", "seed": 0}\n', "arm 'nobody' is not an arm of the study"),
    ('{"arm": "random", "seed": 0}\n{"arm": "random", "seed": 0}\n',
     "already recorded on line 1"),
])
def test_garbage_in_runs_jsonl_is_a_clear_error(finished, tmp_path, garbage, expected):
    directory = _copy(finished, tmp_path)
    (directory / "runs.jsonl").write_text(garbage)
    process = cli("resume", str(directory))
    _, err = process.communicate(timeout=300)
    assert process.returncode == 2, err
    assert expected in err and "Traceback" not in err


@pytest.mark.parametrize("edit", [
    lambda text: text.replace("seeds: [0, 1]", "seeds: [0, 0]"),
    lambda text: text + "\n  - stray: [\n",
    lambda text: text.replace("strategy: random", "strategy: sideways"),
])
def test_an_edited_study_yaml_is_a_clear_error(finished, tmp_path, edit):
    directory = _copy(finished, tmp_path)
    path = directory / "study.yaml"
    path.write_text(edit(path.read_text()))
    process = cli("resume", str(directory))
    _, err = process.communicate(timeout=300)
    assert process.returncode == 2, err
    assert err.startswith(f"error: {path}") and "Traceback" not in err


def test_a_second_process_on_a_running_study_is_refused(finished, tmp_path):
    directory = _copy(finished, tmp_path)
    holder = StudyDir.open(directory)
    holder.acquire()
    try:
        process = cli("resume", str(directory))
        _, err = process.communicate(timeout=300)
    finally:
        holder.release()
    assert process.returncode == 2, err
    assert "another process is running this study" in err and f"pid {os.getpid()}" in err


def test_a_new_study_into_an_existing_directory(finished, tmp_path):
    directory = _copy(finished, tmp_path)
    study_file = finished[0].parent / "study.yaml"    # the file it was made from
    with pytest.raises(EvozeroError, match=f"holds this study already; continue it with "
                                           f"`evozero resume {directory}`"):
        StudyDir.create(directory, load_study(study_file))
    other = write_study(tmp_path, seeds=5)
    with pytest.raises(EvozeroError, match="holds another study"):
        StudyDir.create(directory, load_study(other))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(EvozeroError, match="not empty and is not a study"):
        StudyDir.create(tmp_path / "busy", load_study(other))
    assert yaml.safe_load((directory / "study.yaml").read_text())["seeds"] == [0, 1]


def test_judge_effort_counts_earlier_experiments_and_the_kept_program(tmp_path):
    study = load_study(write_study(tmp_path, success={"at_least": 0.5, "on": "select"}))
    final = {"program": "B", "solved": False, "individuals": 900, "train_steps": 9000,
             "seconds": 9.0,
             "per_experiment": [{"experiment": 1, "individuals": 500, "train_steps": 5000},
                                {"experiment": 2, "individuals": 400, "train_steps": 4000}]}
    discoveries = [
        {"experiment": 1, "individual": 10, "train_steps": 100, "seconds": 1.0,
         "fitness": 0.9, "program": "A"},
        {"experiment": 2, "individual": 30, "train_steps": 300, "seconds": 6.0,
         "fitness": 0.8, "program": "B"}]
    record = {"search_fitness": 0.8, "select_fitness": 0.6, "final_fitness": 0.4,
              "solved": False}
    judge(record, study, study.configs["evolution"], final, discoveries, None)
    assert record["success"] and record["threshold"] == 0.5
    # Found in experiment 2: the 500 individuals of experiment 1 come first.
    assert record["to_success"] == {"individuals": 530, "train_steps": 5300, "seconds": 6.0}
    record["select_fitness"] = 0.4
    judge(record, study, study.configs["evolution"], final, discoveries, None)
    assert record["success"] is False and record["to_success"] is None


def test_baseline_success_and_tuned_records(tmp_path):
    path = write_study(tmp_path, seeds=[1], success={"baseline": "linear", "tune_trials": 5},
                       tune={"trials": 4, "baselines": ["linear", "neural_net"]})
    records = run_study(str(path), out=str(tmp_path / "out"), stream=_quiet())
    baselines = sorted((tmp_path / "out" / "baselines").iterdir())
    # One threshold and one result per baseline, shared by the two arms of seed 1.
    assert len(baselines) == 3 and all(p.name.startswith("seed-1-") for p in baselines)
    evolution, random = records
    assert evolution["threshold"] == random["threshold"] > 0.0
    assert evolution["baselines"] == random["baselines"]
    assert set(evolution["baselines"]) == {"linear", "neural_net"}
    for record in records:
        best = max([record["search_fitness"]] + [
            d["fitness"] for d in RunDir.open(tmp_path / "out" / record["run"])
            .read_discoveries()])
        assert record["success"] == (best >= record["threshold"])
        tuned = record["tuned"]
        assert tuned["fitness"] >= 0.0 and tuned["final_fitness"] is not None
        assert tuned["program"].startswith("def Setup():")
        for result in record["baselines"].values():
            assert set(result) == {"fitness", "final_fitness"}


def test_a_cell_search_study_records_accuracies(tmp_path):
    nas = nas_data()
    for key in ("name", "workers"):
        nas.pop(key)
    (tmp_path / "nas.yaml").write_text(yaml.safe_dump(nas))
    path = write_study(tmp_path, seeds=[0], success={"at_least": 0.1, "on": "final"},
                       arms={"evolution": {"config": "nas.yaml"},
                             "random": {"config": "nas.yaml", "set": {"strategy": "random"}}})
    records = run_study(str(path), out=str(tmp_path / "out"), stream=_quiet())
    assert [r["arm"] for r in records] == ["evolution", "random"]
    for record in records:
        final = RunDir.open(tmp_path / "out" / record["run"]).read_final()
        assert record["domain"] == "cells" and record["program"] == final["cell"]
        assert record["search_fitness"] == record["select_fitness"] == final["valid_accuracy"]
        assert record["final_fitness"] == final["test_accuracy"]
        assert record["success"] == (final["test_accuracy"] >= 0.1)


def test_tuning_is_for_programs_only(tmp_path):
    (tmp_path / "nas.yaml").write_text(yaml.safe_dump(
        {k: v for k, v in nas_data().items() if k not in ("name", "workers")}))
    path = write_study(tmp_path, tune={"trials": 3},
                       arms={"cells": {"config": "nas.yaml"}})
    with pytest.raises(EvozeroError, match="tune: tunes programs, but arm 'cells' searches "
                                           "network cells"):
        load_study(path)


@pytest.mark.ray
@pytest.mark.slow
def test_a_study_on_ray_actors_records_the_same_runs(finished, tmp_path):
    path = write_study(tmp_path, workers=2, backend="ray",
                       success={"at_least": 0.3, "on": "search"})
    records = run_study(str(path), out=str(tmp_path / "ray"), stream=_quiet())
    local = {(r["arm"], r["seed"]): r for r in finished[1]}
    assert len(records) == len(local)
    for record in records:
        same = local[(record["arm"], record["seed"])]
        for key in ("program", "search_fitness", "final_fitness", "individuals", "success"):
            assert record[key] == same[key], key
