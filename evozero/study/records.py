"""The runs.jsonl record of a finished run, built from its run directory.

Everything comes from what the run wrote (final.json, discoveries.jsonl), so a run that
finished but was not recorded (the study was killed in between) is recorded the same way
later. A record holds the run's fitnesses (for a cell search, accuracies: search and
select are the validation accuracy, final the test accuracy), its totals, whether it
succeeded by the study's criterion (:func:`judge`) and the effort to its first success.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evozero.config import Config
from evozero.domains import domain_for
from evozero.errors import EvozeroError
from evozero.runs.rundir import RunDir
from evozero.study.spec import AtLeast, Study

#: The totals of a run a record and its effort to success give.
EFFORTS = ("individuals", "train_steps", "seconds")


def run_record(study: Study, arm: str, seed: int, run: str, rundir: RunDir,
               threshold: float | None = None) -> dict[str, Any]:
    """The record of the finished run of ``arm`` and ``seed`` in ``rundir`` (``run`` its
    path relative to the study directory); ``threshold``: the tuned baseline's fitness
    when the study's success is a baseline."""
    final = rundir.read_final()
    if final is None:
        raise EvozeroError(f"{rundir.path}: the run has not finished (no final.json)")
    config = study.configs[arm]
    candidates = domain_for(config).candidates
    cells = candidates == "cells"
    record: dict[str, Any] = {
        "arm": arm, "seed": seed, "run": run, "domain": candidates,
        "solved": bool(final.get("solved")), "success": None, "threshold": None,
        **_fitnesses(final, cells),
        **{key: final.get(key) for key in EFFORTS},
        "to_success": None, "program": final.get("program"), "tuned": None,
        "baselines": None}
    judge(record, study, config, final, rundir.read_discoveries(), threshold)
    return record


def _fitnesses(final: dict[str, Any], cells: bool) -> dict[str, Any]:
    if cells:
        # A supernet search on a table is judged by its derived cell's table accuracy
        # (final.json's final_fitness); every other cell search's is its test accuracy.
        return {"search_fitness": final.get("valid_accuracy"),
                "select_fitness": final.get("valid_accuracy"),
                "final_fitness": final.get("final_fitness", final.get("test_accuracy"))}
    return {key: final.get(key) for key in ("search_fitness", "select_fitness",
                                            "final_fitness")}


def judge(record: dict[str, Any], study: Study, config: Config, final: dict[str, Any],
          discoveries: Sequence[dict[str, Any]], threshold: float | None) -> None:
    """Fill in ``record``'s success, threshold and effort to success (see README,
    "Studies")."""
    success = study.success
    record["to_success"] = None
    if success == "solved":
        record["success"] = record["solved"]
        if record["solved"]:
            record["to_success"] = {key: final.get(key) for key in EFFORTS}
        return
    if isinstance(success, AtLeast):
        threshold = success.at_least
        fitness = record[f"{success.on}_fitness"]
        # Discoveries log search fitness: on the other tasks the kept program is the one.
        reached = (lambda found: found["fitness"] >= threshold) if success.on == "search" \
            else (lambda found: found["program"] == final.get("program"))
    else:
        assert threshold is not None, "a baseline success needs its tuned threshold"
        fitness = max([record["search_fitness"]] + [d["fitness"] for d in discoveries],
                      key=lambda value: -float("inf") if value is None else value)
        reached = lambda found: found["fitness"] >= threshold  # noqa: E731
    record["threshold"] = threshold
    record["success"] = fitness is not None and fitness >= threshold
    if record["success"]:
        record["to_success"] = _effort(final, discoveries, reached)


def _effort(final: dict[str, Any], discoveries: Sequence[dict[str, Any]],
            reached: Any) -> dict[str, Any]:
    """Individuals, train steps and seconds of the first discovery ``reached`` accepts
    (counted from the run's start), or the run's totals when none does."""
    before = {"individuals": 0, "train_steps": 0}
    experiments = {r["experiment"]: r for r in final.get("per_experiment") or []}
    for found in discoveries:
        if reached(found):
            # A discovery counts within its experiment; earlier experiments come first.
            for number in range(1, found["experiment"]):
                for key in before:
                    before[key] += experiments.get(number, {}).get(key, 0)
            return {"individuals": before["individuals"] + found["individual"],
                    "train_steps": before["train_steps"] + found["train_steps"],
                    "seconds": found["seconds"]}
    return {key: final.get(key) for key in EFFORTS}
