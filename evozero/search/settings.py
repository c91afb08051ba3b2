"""From a config to what the search kernels take: the initial programs (read from a file
or built in) and the numba-ready :class:`~evozero.search.state.Settings`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from evozero.config import Config
from evozero.config.program import named_program
from evozero.errors import EvozeroError
from evozero.evaluation.tasks import Task
from evozero.programs.mutation import CONSTANT_RULES, mutation_arrays
from evozero.programs.program import Program
from evozero.programs.reference import (
    BUILTIN_PROGRAMS,
    builtin_program,
    linear_program,
    neural_net_program,
)
from evozero.programs.slots import program_slots, slot_offsets
from evozero.search.evolution import EVOLUTION, MEAN, MEDIAN, RANDOM_SEARCH, program_cost
from evozero.search.state import Settings
from ops.codes import (
    BUDGET_ON,
    CLASSIFICATION,
    COMBINE,
    CONSTANT_RULE,
    COST_LIMIT,
    FEC_ON,
    FORGET_EVERY,
    HURDLE_PERCENTILE,
    HURDLE_WINDOW,
    HURDLES_ON,
    MAX_ABS_ERROR,
    MAX_INDIVIDUALS,
    MAX_TRAIN_STEPS,
    MUTATE_PROB,
    NUM_FLOAT_SETTINGS,
    NUM_INT_SETTINGS,
    NUM_M,
    NUM_S,
    NUM_V,
    POPULATION,
    ROUNDING_SCALE,
    STRATEGY,
    TOURNAMENT,
)


def initial_programs(config: Config) -> list[Program] | None:
    """The initial population's programs (None: random programs)."""
    choice = config.initial_population
    if choice == "random":
        return None
    if choice == "noop":
        return [Program.from_instructions()]
    if choice == "damaged_neural_net":
        return [neural_net_program(damaged=True)]
    if choice in BUILTIN_PROGRAMS:
        return [builtin_program(choice)]
    return read_programs(choice)


def frozen_components(config: Config) -> Program | None:
    """The components of ``frozen_program`` that every initial and every random program
    takes for its frozen components (empty op lists), in a program whose other components
    are empty; None when the config has no frozen_program."""
    if config.frozen_program is None:
        return None
    return Program.from_instructions().with_components(named_program(config.frozen_program),
                                                       config.ops.frozen)


def read_programs(path: str) -> list[Program]:
    """Every program in a text file (each starts at its ``def Setup():`` line)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise EvozeroError(f"{path}: cannot read the initial programs ({error})") from None
    except UnicodeDecodeError as error:
        raise EvozeroError(f"{path}: the initial programs are not UTF-8 text (byte "
                           f"{error.start}: {error.reason}); save the file as UTF-8") from None
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == "def Setup():"]
    if not starts:
        raise EvozeroError(f"{path}: no program found (each program starts with 'def Setup():')")
    programs = []
    for k, start in enumerate(starts):
        stop = starts[k + 1] if k + 1 < len(starts) else len(lines)
        try:
            programs.append(Program.parse("\n".join(lines[start:stop])))
        except EvozeroError as error:
            raise EvozeroError(f"{path}: program {k + 1} (line {start + 1}): {error}") from None
    return programs


def _check_fits(program: Program, config: Config, where: str) -> None:
    sizes = config.sizes
    for component, length in zip(("setup", "predict", "learn"), program.sizes):
        bound = getattr(sizes, component).max
        if length > bound:
            raise EvozeroError(f"{where}: {component} has {length} instructions but "
                               f"sizes.{component}.max is {bound}")
    need = program.memory_needs()
    have = config.memory.sizes
    if any(h < n for h, n in zip(have, need)):
        raise EvozeroError(f"{where}: the program needs memory {need} (scalars, vectors, "
                           f"matrices) but the config's memory is {have}")


def _padded_slot(program: Program, offsets: np.ndarray, rows: int, init_sizes: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    code, constants, lengths = program_slots(program, offsets, rows)
    # Shorter programs are padded with no-ops up to the initial sizes.
    return code, constants, np.maximum(lengths, init_sizes)


def build_settings(config: Config, tasks: list[Task], eval_seed: int) -> Settings:
    """Kernel settings for one search experiment on ``tasks``."""
    names = ("setup", "predict", "learn")
    bounds = [getattr(config.sizes, c) for c in names]
    max_sizes = np.array([b.max for b in bounds], dtype=np.int64)
    init_sizes = np.array([b.init for b in bounds], dtype=np.int64)
    offsets = slot_offsets(max_sizes)
    rows = int(max_sizes.sum())
    op_lists = [config.ops.codes(c) for c in names]
    width = max(1, max(len(ops) for ops in op_lists))
    allowed = np.zeros((3, width), dtype=np.int64)
    for c, ops in enumerate(op_lists):
        allowed[c, :len(ops)] = ops
    mutation_types, mutation_weights = mutation_arrays(config.mutations)
    given = initial_programs(config)
    # A random population is drawn in the kernel; one empty program fills the slots.
    programs = given if given is not None else [Program.from_instructions()]
    # What a random program's frozen components hold: no-ops of the initial sizes, or the
    # frozen program's components (which every given program takes too).
    frozen = frozen_components(config)
    if frozen is None:
        frozen = Program.from_instructions()
    else:
        _check_fits(frozen, config, f"frozen_program {config.frozen_program}")
        programs = [p.with_components(frozen, config.ops.frozen) for p in programs]
    slots = []
    for number, program in enumerate(programs):
        _check_fits(program, config, f"initial_population program {number + 1}")
        slots.append(_padded_slot(program, offsets, rows, init_sizes))
    frozen_slot = _padded_slot(frozen, offsets, rows, init_sizes)
    n_train = tasks[0].n_train * tasks[0].epochs
    baseline = (neural_net_program() if config.compute_budget.baseline == "neural_net"
                else linear_program())
    ints = np.zeros(NUM_INT_SETTINGS, dtype=np.int64)
    ints[STRATEGY] = EVOLUTION if config.strategy == "evolution" else RANDOM_SEARCH
    ints[POPULATION] = config.population_size
    ints[TOURNAMENT] = config.tournament_size
    ints[CONSTANT_RULE] = CONSTANT_RULES[config.constant_mutation]
    ints[FEC_ON] = config.fec.enabled
    ints[FORGET_EVERY] = config.fec.forget_every
    ints[HURDLES_ON] = config.hurdles.enabled
    ints[HURDLE_WINDOW] = config.hurdles.window
    ints[BUDGET_ON] = config.compute_budget.enabled
    ints[COMBINE] = MEAN if config.fitness_combine == "mean" else MEDIAN
    ints[MAX_INDIVIDUALS] = -1 if config.budget.individuals is None else config.budget.individuals
    ints[MAX_TRAIN_STEPS] = -1 if config.budget.train_steps is None else config.budget.train_steps
    ints[NUM_S], ints[NUM_V], ints[NUM_M] = config.memory.sizes
    ints[CLASSIFICATION] = tasks[0].classification
    floats = np.zeros(NUM_FLOAT_SETTINGS)
    floats[MUTATE_PROB] = config.mutate_prob
    floats[MAX_ABS_ERROR] = config.max_abs_error
    floats[HURDLE_PERCENTILE] = config.hurdles.percentile
    floats[COST_LIMIT] = config.compute_budget.factor * program_cost(baseline, n_train)
    floats[ROUNDING_SCALE] = 10.0 ** config.fec.decimals
    return Settings(
        ints=ints, floats=floats, offsets=offsets,
        min_sizes=np.array([b.min for b in bounds], dtype=np.int64), max_sizes=max_sizes,
        init_sizes=init_sizes, allowed=allowed,
        allowed_counts=np.array([len(ops) for ops in op_lists], dtype=np.int64),
        mutation_types=mutation_types, mutation_weights=mutation_weights,
        init_code=np.stack([s[0] for s in slots]), init_constants=np.stack([s[1] for s in slots]),
        init_lengths=np.stack([s[2] for s in slots]),
        init_random=given is None, frozen_code=frozen_slot[0],
        frozen_constants=frozen_slot[1], frozen_lengths=frozen_slot[2], eval_seed=eval_seed)
