"""Tuned programs in a study (:func:`evozero.analysis.tuning.tune`, seeded by the run's
seed): the threshold of a ``baseline`` success, and the ``tune`` section's tuned best
program and tuned baselines.

- threshold: the baseline program tuned on the search tasks of the run's first search
  experiment; its fitness there is what the run's best search fitness must reach.
- tune: the run's best program tuned on the select tasks (of the first experiment) and
  reported on the final tasks; each baseline tuned and reported the same way.

A baseline's result depends on the seed and the tasks, not on the arm, so it is worked
out once per seed and kept in ``baselines/`` of the study directory, where the other arms'
runs of that seed find it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from evozero.analysis.transfer import check_vm_memory, load_program
from evozero.analysis.tuning import tune
from evozero.config import Config, config_to_dict
from evozero.errors import EvozeroError
from evozero.evaluation.tasks import Task
from evozero.evaluation.vm import evaluate
from evozero.programs.program import Program
from evozero.runs.files import atomic_write_text, json_text
from evozero.search.seeds import search_tasks, select_tasks
from evozero.study.spec import Baseline, Study

BASELINES_FOLDER = "baselines"


def tuned_result(program: Program, memory: tuple[int, int, int] | None, tasks: list[Task],
                 held_out: list[Task] | None, trials: int, seed: int) -> dict[str, Any]:
    """``program`` tuned on ``tasks``: its fitness there, on ``held_out`` (None: not
    measured) and its text."""
    check_vm_memory(program, tasks + (held_out or []), memory)
    tuned = tune(program, tasks, trials=trials, seed=seed, memory=memory)
    final = None if held_out is None else float(evaluate(tuned.program, held_out,
                                                         memory=memory))
    return {"fitness": tuned.fitness, "final_fitness": final, "program": str(tuned.program)}


def _cached(folder: Path, seed: int, key: dict[str, Any], work: Any) -> dict[str, Any]:
    """``work()``'s result for ``key``, from ``folder`` if worked out before (a file per
    seed and key, written atomically: two workers at once write the same result)."""
    digest = hashlib.sha256(json_text(key, sort_keys=True).encode()).hexdigest()[:16]
    path = folder / f"seed-{seed}-{digest}.json"
    if path.is_file():
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            pass   # a damaged file is worked out again
    result = work()
    folder.mkdir(exist_ok=True)
    atomic_write_text(path, json_text(result, indent=2) + "\n")
    return result


def _load(name: str) -> tuple[Program, tuple[int, int, int] | None]:
    try:
        return load_program(name)
    except EvozeroError as error:
        raise EvozeroError(f"baseline {name}: {error}") from None


def threshold(directory: Path, study: Study, config: Config, seed: int) -> float:
    """The fitness a run must reach for a ``baseline`` success (module docstring)."""
    success = study.success
    assert isinstance(success, Baseline)

    def work() -> dict[str, Any]:
        program, memory = _load(success.baseline)
        return tuned_result(program, memory, search_tasks(config, 0), None,
                            success.tune_trials, seed)

    key = {"threshold": success.baseline, "trials": success.tune_trials,
           "tasks": config_to_dict(config)["search_tasks"]}
    return float(_cached(directory / BASELINES_FOLDER, seed, key, work)["fitness"])


def tuned_and_baselines(directory: Path, study: Study, config: Config, seed: int,
                        program_text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``tuned`` and ``baselines`` entries of a run's record (module docstring)."""
    assert study.tune is not None
    trials = study.tune.trials
    tasks, held_out = select_tasks(config, 0), config.final_tasks.make()
    tuned = tuned_result(Program.parse(program_text), config.memory.sizes, tasks, held_out,
                         trials, seed)
    baselines = {}
    data = config_to_dict(config)
    for name in study.tune.baselines:
        key = {"baseline": name, "trials": trials, "tasks": data["select_tasks"],
               "held_out": data["final_tasks"]}

        def work(name: str = name) -> dict[str, Any]:
            program, memory = _load(name)
            return tuned_result(program, memory, tasks, held_out, trials, seed)

        result = _cached(directory / BASELINES_FOLDER, seed, key, work)
        baselines[Path(name).stem if Path(name).is_absolute() else name] = {
            "fitness": result["fitness"], "final_fitness": result["final_fitness"]}
    return tuned, baselines
