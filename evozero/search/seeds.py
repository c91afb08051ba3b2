"""The seeds and task sets of one search experiment.

Every random choice of a run derives from its one seed through :func:`derived_seed`, by
purpose and experiment, so the main process and every worker compute the same tasks and
seeds without sending them around.
"""
from __future__ import annotations

import numpy as np

from evozero.config import Config
from evozero.evaluation.tasks import Task
from evozero.evaluation.vm import evaluate
from evozero.programs.program import Program
from ops.rng import stream_seed

# Purposes of derived seeds.
SEARCH_TASKS, SELECT_TASKS, EVALUATION, SEARCH_STATE, FINAL = 1, 2, 3, 4, 5
_ISLAND_PURPOSES = 100
_SEED_LIMIT = 2**31


def derived_seed(seed: int, purpose: int, experiment: int) -> int:
    """A seed for one purpose (see the constants above) of one experiment, from the run's seed."""
    return int(stream_seed(np.uint64(seed), np.uint64(purpose * 1_000_003 + experiment)))


def island_seed(seed: int, island: int, experiment: int) -> int:
    """The seed of one island's random streams (island 0 keeps the one-island seed)."""
    purpose = SEARCH_STATE if island == 0 else _ISLAND_PURPOSES + island
    return derived_seed(seed, purpose, experiment)


def _task_seed(seed: int, purpose: int, experiment: int) -> int:
    return derived_seed(seed, purpose, experiment) % _SEED_LIMIT


def search_tasks(config: Config, experiment: int) -> list[Task]:
    """The search tasks of one experiment (fresh seeds after the first, if randomized)."""
    spec = config.search_tasks
    if config.randomize_task_seeds and experiment > 0:
        spec = spec.with_seed(_task_seed(config.seed, SEARCH_TASKS, experiment))
    return spec.make()


def select_tasks(config: Config, experiment: int) -> list[Task]:
    """The selection tasks of one experiment."""
    spec = config.select_tasks
    if config.randomize_task_seeds and experiment > 0:
        spec = spec.with_seed(_task_seed(config.seed, SELECT_TASKS, experiment))
    return spec.make()


def evaluate_on(config: Config, program: Program, tasks: list[Task], purpose: int,
                experiment: int) -> float:
    """Fitness of ``program`` on ``tasks`` with the run's settings and a seed for ``purpose``."""
    return float(evaluate(program, tasks, combine=config.fitness_combine,
                          seed=derived_seed(config.seed, purpose, experiment),
                          memory=config.memory.sizes, max_abs_error=config.max_abs_error))


# --- from a config to kernel settings ------------------------------------------------------
