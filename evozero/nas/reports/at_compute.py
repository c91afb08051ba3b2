"""Accuracy reached at equal training compute: what a NAS run had found by the time it
had spent a given number of training steps (:func:`best_at_train_steps`; for example to
compare runs with and without weight inheritance, whose networks cost the same steps but
start from other weights), and its best cell trained afresh (:func:`best_from_scratch`:
with inheritance a network's accuracy also holds its ancestors' training).

A run's compute is the running sum of ``train_steps`` over its evaluations.jsonl, in the
order the networks were evaluated (a cache hit costs nothing; on several islands the
order is the order the main process received them, close to the order in time).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from evozero.errors import EvozeroError
from evozero.nas.evaluate import evaluator_for
from evozero.nas.reports.show import best_cell
from evozero.runs.domain import SearchDomain
from evozero.runs.rundir import RunDir


def best_at_train_steps(run: str | Path | RunDir, marks: Sequence[float]
                        ) -> list[dict[str, Any] | None]:
    """For each of ``marks`` (training steps), the best network by validation accuracy
    among those the run evaluated within that many steps in total: ``valid_accuracy``,
    ``test_accuracy``, ``networks`` (evaluated by then) and ``train_steps`` (spent by
    then); None for a mark before the first network finished. A network whose accuracy is
    not a number (diverged) is never the best."""
    rundir = run if isinstance(run, RunDir) else RunDir.open(str(run))
    records = rundir.read_evaluations()
    if any(m < 0 or not math.isfinite(m) for m in marks):
        raise EvozeroError(f"training-step marks must be finite and >= 0, got {list(marks)}")
    results: list[dict[str, Any] | None] = []
    for mark in marks:
        spent, best = 0, None
        for count, record in enumerate(records, 1):
            # A cache hit repeats the training record of the network it matched.
            steps = 0 if record.get("cache_hit") else record.get("train_steps") or 0
            if spent + steps > mark:
                break
            spent += steps
            accuracy = record.get("valid_accuracy")
            if accuracy is not None and math.isfinite(accuracy) and (
                    best is None or accuracy > best["valid_accuracy"]):
                best = {"valid_accuracy": accuracy, "test_accuracy": record.get("test_accuracy")}
            if best is not None:
                best.update(networks=count, train_steps=spent)
        results.append(best)
    return results


def best_from_scratch(run: str | Path | RunDir, domain: SearchDomain) -> dict[str, float]:
    """The run's best cell (best.txt) trained afresh with the run's training settings and
    the cell's own training seed, as a search without weight inheritance scores it:
    ``valid_accuracy`` and ``test_accuracy``. Set beside the run's own result, it tells
    how much of that came from the cell and how much from inherited training. ``domain``
    is the run's (``evozero.domains.domain_for`` of its config): a cell search's holds
    the nas section the cell is trained by."""
    rundir = run if isinstance(run, RunDir) else RunDir.open(str(run))
    text = rundir.read_best()
    if domain.candidates != "cells" or text is None:
        raise EvozeroError(f"{rundir.path}: not a NAS run with a best cell (best.txt)")
    nas = domain.section
    evaluator = evaluator_for(nas, domain.config.seed)
    cell = best_cell(rundir, nas, text)
    with threadpool_limits(1, user_api="blas"):   # one BLAS thread, as the islands train
        result, _, _ = evaluator.train(evaluator.architecture(cell),
                                       evaluator.train_seed(cell.hash()))
    return {"valid_accuracy": result.valid_accuracy, "test_accuracy": result.test_accuracy}
