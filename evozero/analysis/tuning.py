"""Tuning a program's constants, as AutoML-Zero tuned its baselines before comparing.

Each tunable constant is multiplied by its own factor ``10 ** U(-3, 3)`` (log-uniform in
[0.001, 1000]) per trial; trial 0 is the program as given; the trial with the best
combined (mean) fitness on the tuning tasks wins, the earlier one on ties. A constant is
tunable when it is a value of a live instruction (a constant's value, a bound of a
uniform draw, a mean or spread of a gaussian draw) and not zero; index fractions and the
constants of dead code are never touched, and a uniform draw's bounds are kept in order.
Factors come from ``numpy.random.default_rng(seed)``; random ops in the program draw
from evaluation seed 0, as ``evozero eval`` evaluates.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from evozero.errors import EvozeroError
from evozero.evaluation.tasks import Task
from evozero.evaluation.vm import (
    DEFAULT_MAX_ABS_ERROR,
    combine_fitness,
    evaluate,
    evaluate_group,
    group_tasks,
)
from evozero.programs.liveness import live_rows, resolve_memory, strip_dead_code
from evozero.programs.program import Program
from ops.codes import SPREAD_KIND, VALUE_KIND
from ops.kinds import CONST_KIND, SORTED_BOUNDS
from ops.rng import SEED_MAX

#: Factors are 10 ** U(-LOG10_RANGE, LOG10_RANGE).
LOG10_RANGE = 3.0
EVALUATION_SEED = 0
#: Most trials a tuning takes: far beyond any sensible tuning, so a typo (an extra 000)
#: is refused instead of running for years.
MAX_TRIALS = 10**7
# Trials whose factors are drawn at once: the draws of any number of trials fit in memory
# (drawn block by block, they are the same numbers as drawn all at once).
_DRAW_BLOCK = 4096


@dataclass(frozen=True)
class Tuned:
    """The result of :func:`tune`."""

    program: Program            # the best trial's program (trial 0 is the program as given)
    fitness: float              # its combined fitness on the tuning tasks
    untuned_fitness: float
    factors: tuple[float, ...]  # one per tunable constant
    trials: int


def tunable_constants(program: Program,
                      memory: tuple[int, int, int] | None = None) -> list[tuple[int, int]]:
    """(row, slot) of every tunable constant of ``program``, in program order."""
    sizes = resolve_memory(program, memory)
    live = live_rows(program.code, program.bounds, sizes)
    ops = program.code[:, 0]
    kinds = CONST_KIND[ops]
    tunable = ((kinds == VALUE_KIND) | (kinds == SPREAD_KIND)) & live[:, None] \
        & (program.constants != 0.0)
    rows, slots = np.nonzero(tunable)
    return [(int(r), int(s)) for r, s in zip(rows, slots)]


def scaled_program(program: Program, positions: Sequence[tuple[int, int]],
                   factors: Sequence[float]) -> Program | None:
    """``program`` with the constants at ``positions`` times ``factors`` (uniform bounds
    re-sorted), or None when a product overflows."""
    constants = program.constants.copy()
    for (row, slot), factor in zip(positions, factors):
        constants[row, slot] *= factor
    if not np.all(np.isfinite(constants)):
        return None
    swap = SORTED_BOUNDS[program.code[:, 0]] & (constants[:, 0] > constants[:, 1])
    constants[swap, :2] = constants[swap, 1::-1]
    return Program(program.code, constants, np.diff(program.bounds).tolist())


def tune(program: Program, tasks: Sequence[Task], *, trials: int = 100, seed: int = 0,
         memory: tuple[int, int, int] | None = None) -> Tuned:
    """Tune ``program``'s constants on ``tasks``: the best of ``trials`` trials (see the
    module docstring); deterministic given the arguments."""
    if isinstance(trials, bool) or not isinstance(trials, (int, np.integer)) \
            or not 1 <= trials <= MAX_TRIALS:
        raise EvozeroError(f"trials must be an integer in [1, {MAX_TRIALS}], got "
                           f"{trials!r}"[:200])
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= seed <= SEED_MAX:
        raise EvozeroError(f"seed must be an integer in [0, {SEED_MAX}], got {seed!r}"[:200])
    sizes = resolve_memory(program, memory)
    # Validates the tasks, and is trial 0.
    untuned = float(evaluate(program, tasks, memory=sizes, seed=EVALUATION_SEED))
    positions = tunable_constants(program, sizes)
    best = Tuned(program, untuned, untuned, (1.0,) * len(positions), int(trials))
    if not positions:
        return best
    groups = group_tasks(tasks)
    for factors in _factors(int(seed), int(trials) - 1, len(positions)):
        candidate = scaled_program(program, positions, factors)
        if candidate is None:
            continue
        live = strip_dead_code(candidate, sizes)
        per_task = np.zeros(len(tasks))
        for group in groups:
            per_task[group.indices] = evaluate_group(live, group, sizes, EVALUATION_SEED,
                                                     DEFAULT_MAX_ABS_ERROR)
        fitness = float(combine_fitness(per_task, "mean"))
        if fitness > best.fitness:
            best = Tuned(candidate, fitness, untuned, tuple(float(f) for f in factors),
                         int(trials))
    return best


def _factors(seed: int, trials: int, count: int) -> Iterator[Sequence[float]]:
    """``trials`` rows of ``count`` factors 10 ** U(-LOG10_RANGE, LOG10_RANGE) from
    ``numpy.random.default_rng(seed)``, drawn a block of rows at a time."""
    rng = np.random.default_rng(seed)
    for start in range(0, trials, _DRAW_BLOCK):
        yield from 10.0 ** rng.uniform(-LOG10_RANGE, LOG10_RANGE,
                                       size=(min(_DRAW_BLOCK, trials - start), count))
