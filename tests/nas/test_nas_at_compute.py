"""Accuracy reached at equal training compute, from a hand-made evaluations.jsonl."""
from __future__ import annotations

import json
import os

import pytest

from evozero.domains import domain_for, start_run
from evozero.errors import EvozeroError
from evozero.nas.reports.at_compute import best_at_train_steps, best_from_scratch
from evozero.runs.rundir import RunDir
from tests.helpers import nas_config, small_config

# (valid accuracy, test accuracy, train steps, cache hit)
EVALUATIONS = [(0.50, 0.48, 100, False), (None, None, 100, False),   # diverged
               (0.70, 0.66, 100, False), (0.90, 0.80, 100, True),    # a cache hit: free
               (0.60, 0.61, 100, False), (0.95, 0.90, 100, False)]


@pytest.fixture
def run(tmp_path):
    started = start_run(small_config(), str(tmp_path), out=open(os.devnull, "w"))
    started.rundir.release()
    lines = [json.dumps({"island_individual": i, "valid_accuracy": v, "test_accuracy": t,
                         "train_steps": s, "cache_hit": hit})
             for i, (v, t, s, hit) in enumerate(EVALUATIONS, 1)]
    (started.rundir.path / RunDir.EVALUATIONS).write_text("\n".join(lines) + "\n")
    return started.rundir.path


def test_the_best_within_each_mark_of_training_steps(run):
    marks = [0, 99, 100, 250, 300, 400, 10_000]
    results = best_at_train_steps(run, marks)
    assert results[:2] == [None, None]
    assert results[2] == {"valid_accuracy": 0.5, "test_accuracy": 0.48, "networks": 1,
                          "train_steps": 100}
    # The diverged network is spent but never the best.
    assert results[3] == {"valid_accuracy": 0.5, "test_accuracy": 0.48, "networks": 2,
                          "train_steps": 200}
    # The cache hit costs nothing, so it counts within the same 300 steps.
    assert results[4] == {"valid_accuracy": 0.9, "test_accuracy": 0.8, "networks": 4,
                          "train_steps": 300}
    assert results[5]["valid_accuracy"] == 0.9 and results[5]["networks"] == 5
    assert results[6] == {"valid_accuracy": 0.95, "test_accuracy": 0.9, "networks": 6,
                          "train_steps": 500}


def test_marks_must_be_finite_and_not_negative(run):
    for bad in (-1, float("inf"), float("nan")):
        with pytest.raises(EvozeroError, match="marks must be finite"):
            best_at_train_steps(run, [10, bad])


def test_a_best_cell_from_scratch_scores_as_its_search_without_inheritance(tmp_path):
    run = start_run(nas_config(budget={"individuals": 6, "train_steps": None}),
                    str(tmp_path), out=open(os.devnull, "w"))
    run.execute()
    best = max((r for r in run.rundir.read_evaluations() if not r["cache_hit"]),
               key=lambda r: r["valid_accuracy"])
    assert best_from_scratch(run.rundir.path, domain_for(run.rundir.read_config())) == {
        "valid_accuracy": best["valid_accuracy"], "test_accuracy": best["test_accuracy"]}


def test_from_scratch_needs_a_nas_run_with_a_best_cell(run):
    with pytest.raises(EvozeroError, match="not a NAS run with a best cell"):
        best_from_scratch(run, domain_for(RunDir.open(run).read_config()))
