"""Regularized (aging) evolution and random search, run in numba a batch at a time.

One search experiment's whole state lives in arrays
(:class:`~evozero.search.state.SearchState`), so a batch of children is one numba call
(made by :class:`~evozero.search.runner.SearchRunner`). Per child:

1. a parent by tournament (``tournament_size`` draws with replacement, strictly greater
   fitness wins, so ties go to the earliest draw), copied and, with probability
   ``mutate_prob``, mutated once (:mod:`evozero.programs.mutation`); under ``strategy: random``
   the child is a fresh random program instead;
2. its cost (setup + N x (predict + learn) by op weights) against the compute budget,
   if enabled: over budget gives fitness 0 without running;
3. an exact copy of its parent (not mutated) takes the parent's fitness when the cache
   is on and hurdles and the compute budget are off (counted as a structure hit);
   otherwise dead code is dropped
   (:mod:`evozero.programs.liveness`);
4. the functional-equivalence cache, if enabled: first a structural hash of the live
   program, then a fingerprint of its rounded predictions on the first ``fec.train``
   training and ``fec.valid`` validation examples of every task (one lockstep mini-run);
5. otherwise a full evaluation, with hurdles if enabled: the first task alone, then the
   rest only if its fitness reaches the hurdle (the ``percentile`` of the unique fitness
   values of the population, or of the last ``window`` children, refreshed every
   population-size or window children). A child stopped at the hurdle keeps its
   first-task fitness.

The child replaces the oldest individual. Each purpose has its own random stream
(mutation, selection); random ops in evaluations draw from streams seeded by the
experiment's evaluation seed and the task, so a program's fitness does not depend on
when it is evaluated and the cache only ever returns what an evaluation would (up to
fingerprint collisions, which is the point of FEC). A batch returns early when the
best fitness improves, so the caller can log every discovery and check a promising
candidate on the selection tasks at once. Results do not depend on batch sizes.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from evozero.evaluation.fec_cache import insert, lookup
from evozero.evaluation.vm import reads_features, run_group
from evozero.programs.liveness import compact_into, live_rows_kernel
from evozero.programs.mutation import mutate, random_program_slots
from evozero.programs.program import Program
from ops.codes import (
    BEST_INDIVIDUAL,
    BUDGET_ON,
    BUDGET_REJECTS,
    CLASSIFICATION,
    COMBINE,
    CONSTANT_RULE,
    COST_LIMIT,
    EVICTIONS,
    FEC_ON,
    FILLED,
    FINGERPRINT_HITS,
    FORGET_EVERY,
    FORGOTTEN,
    FULL_EVALS,
    HURDLE_PERCENTILE,
    HURDLE_STOPS,
    HURDLE_WINDOW,
    HURDLES_ON,
    IDENTITY,
    INDIVIDUALS,
    MAX_ABS_ERROR,
    MAX_INDIVIDUALS,
    MAX_TRAIN_STEPS,
    MUTATE_PROB,
    MUTATION_COUNTS,
    NUM_M,
    NUM_S,
    NUM_V,
    OLDEST,
    POPULATION,
    ROUNDING_SCALE,
    SAVED_TRAIN_STEPS,
    STRATEGY,
    STRUCTURE_HITS,
    TOURNAMENT,
    TRAIN_STEPS,
    VALID_STEPS,
)
from ops.jit import jit
from ops.kinds import COST
from ops.rng import mix64, next_uniform

# Random streams of a search experiment (rows of SearchState.streams).
MUTATION_STREAM, SELECTION_STREAM = 0, 1

# Float state (SearchState.values).
BEST_FITNESS, HURDLE = 0, 1

# Batch outcomes.
BATCH_DONE, BUDGET_SPENT, IMPROVED = 0, 1, 2

EVOLUTION, RANDOM_SEARCH = 0, 1
MEAN, MEDIAN = 0, 1
_PARTIAL = 1                      # cache flag: a fitness stopped at the hurdle
_STRUCTURE_TAG = np.uint64(1 << 63)
_FINGERPRINT_SEED = np.uint64(0x5EED)
_NAN_BITS = np.uint64(0x7FF8000000000000)


class VMMemory(NamedTuple):
    """What the VM runs one task group in: flat memories, random streams, scratch, a tape
    and a prediction record (empty unless fingerprints are taken)."""

    scalars: np.ndarray
    vectors: np.ndarray
    matrices: np.ndarray
    streams: np.ndarray
    scratch: np.ndarray
    tape: np.ndarray
    record: np.ndarray


class Scratch(NamedTuple):
    """Buffers one experiment's kernels reuse for every child."""

    flat_code: np.ndarray       # the child's components in contiguous rows
    flat_constants: np.ndarray
    bounds: np.ndarray
    record: np.ndarray          # fingerprint predictions per task
    per_task: np.ndarray        # fitness per task
    buffer: np.ndarray          # one float, seen as bits through ``bits``
    bits: np.ndarray
    child_code: np.ndarray      # the child, in slots
    child_constants: np.ndarray
    child_lengths: np.ndarray
    live_code: np.ndarray       # the child without dead code
    live_constants: np.ndarray
    live_bounds: np.ndarray


class TaskArrays(NamedTuple):
    """A task group as the kernels take it (see :class:`evozero.evaluation.vm.TaskGroup`)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    task_ids: np.ndarray


class TaskParts(NamedTuple):
    """One value per way a child meets the search tasks: all at once, the first task alone
    and the others (hurdles), and the fingerprint examples (the cache)."""

    full: object
    first: object
    rest: object
    fingerprint: object


class Layout(NamedTuple):
    """Where the components lie in a slot, their sizes and ops, and the mutation weights."""

    offsets: np.ndarray
    min_sizes: np.ndarray
    max_sizes: np.ndarray
    init_sizes: np.ndarray
    allowed: np.ndarray
    allowed_counts: np.ndarray
    mutation_types: np.ndarray
    mutation_weights: np.ndarray


class SlotPrograms(NamedTuple):
    """Programs in slots: (P, R, 4) code, (P, R, 3) constants, (P, 3) lengths, or one
    program without the first axis."""

    code: np.ndarray
    constants: np.ndarray
    lengths: np.ndarray


class Population(NamedTuple):
    """Programs in slots with their fitness (NaN: not evaluated yet)."""

    code: np.ndarray
    constants: np.ndarray
    lengths: np.ndarray
    fitness: np.ndarray


def program_cost(program: Program, n_train: int) -> float:
    """Compute cost by op weights: setup + ``n_train`` x (predict + learn), no-ops included."""
    costs = COST[program.code[:, 0]]
    b = program.bounds
    return float(costs[b[0]:b[1]].sum() + n_train * costs[b[1]:b[3]].sum())


# --- numba kernels ----------------------------------------------------------------------

@jit
def _gather(code, constants, offsets, lengths, out_code, out_constants, bounds):
    """Copy a slot's components into contiguous rows; fill ``bounds``."""
    row = 0
    for c in range(3):
        bounds[c] = row
        for k in range(offsets[c], offsets[c] + lengths[c]):
            out_code[row] = code[k]
            out_constants[row] = constants[k]
            row += 1
    bounds[3] = row
    return row


@jit
def _float_bits(buffer, bits, x):
    buffer[0] = x
    return bits[0]


@jit
def _structure_key(code, constants, bounds, buffer, bits):
    h = np.uint64(0x57C0DE)
    for c in range(1, 4):
        h = mix64(h ^ np.uint64(bounds[c]))
    for row in range(bounds[3]):
        for j in range(4):
            h = mix64(h ^ np.uint64(code[row, j]))
        for j in range(3):
            h = mix64(h ^ _float_bits(buffer, bits, constants[row, j]))
    return h | _STRUCTURE_TAG


@jit
def _fingerprint_key(record, scale, buffer, bits):
    h = np.uint64(0xF1A6E7)
    for t in range(record.shape[0]):
        for k in range(record.shape[1]):
            x = record[t, k]
            if x != x:
                value = _NAN_BITS
            elif math.isinf(x):
                value = _float_bits(buffer, bits, x)
            else:
                # Rounding lets re-associated but equivalent arithmetic share an entry.
                value = _float_bits(buffer, bits, np.floor(x * scale + 0.5) + 0.0)
            h = mix64(h ^ value)
    return h & ~_STRUCTURE_TAG


@jit
def _combine(per_task, rule):
    if rule == MEDIAN:
        return np.median(per_task)
    return np.mean(per_task)


@jit
def _run(code, constants, bounds, group, memory, classification, max_abs_error, seed, fitness,
         record, op_arrays):
    x_train, y_train, x_valid, y_valid, task_ids = group
    load = reads_features(code, bounds[3], op_arrays.in1_kind, op_arrays.in2_kind)
    return run_group(code, constants, bounds, memory.scalars, memory.vectors, memory.matrices,
                     memory.streams, memory.scratch, memory.tape, x_train, y_train, x_valid,
                     y_valid, classification, load, max_abs_error, seed, task_ids, fitness,
                     record)


@jit
def _usable_entry(cache, key, forget_every, hurdle, counters):
    """The cache entry for ``key`` if its fitness may be reused, else -1.

    A fitness stopped at the hurdle is reused only while it is still below the hurdle.
    """
    entry, forgotten = lookup(cache, key, forget_every)
    if forgotten:
        counters[FORGOTTEN] += 1
    if entry >= 0 and not (cache[3][entry] == _PARTIAL and cache[2][entry] >= hurdle):
        return entry
    return -1


@jit
def _evaluate(code, constants, lengths, settings_i, settings_f, offsets, eval_seed, groups,
              memories, work, cache, counters, values, op_arrays):
    """Fitness of the child in ``code``/``constants`` (a slot), counting what it cost."""
    full, first, rest, fingerprint = groups
    full_memory, first_memory, rest_memory, fingerprint_memory = memories
    flat_code, flat_constants, bounds, record = work.flat_code, work.flat_constants, \
        work.bounds, work.record
    per_task, buffer, bits = work.per_task, work.buffer, work.bits
    cost = op_arrays.cost
    num_tasks = full.y_train.shape[2]
    n_train = full.y_train.shape[1] * full.y_train.shape[0]
    _gather(code, constants, offsets, lengths, flat_code, flat_constants, bounds)
    if settings_i[BUDGET_ON]:
        total = 0.0
        for row in range(bounds[1]):
            total += cost[flat_code[row, 0]]
        per_step = 0.0
        for row in range(bounds[1], bounds[3]):
            per_step += cost[flat_code[row, 0]]
        if total + n_train * per_step > settings_f[COST_LIMIT]:
            counters[BUDGET_REJECTS] += 1
            return 0.0
    # Whole buffers, never slices: rows past bounds[3] are ignored, and one array layout
    # means one compiled variant of every kernel below.
    keep = live_rows_kernel(flat_code, bounds, settings_i[NUM_S], settings_i[NUM_V],
                            max(settings_i[NUM_M], 1), op_arrays.in1_kind, op_arrays.in2_kind,
                            op_arrays.out_kind, op_arrays.partial_write)
    live_code, live_constants, live_bounds = work.live_code, work.live_constants, work.live_bounds
    compact_into(flat_code, flat_constants, bounds, keep, live_code, live_constants, live_bounds)
    classification = settings_i[CLASSIFICATION] != 0
    max_abs_error = settings_f[MAX_ABS_ERROR]
    fec_on = settings_i[FEC_ON] != 0
    forget_every = settings_i[FORGET_EVERY]
    structure_key = np.uint64(0)
    fingerprint_key = np.uint64(0)
    hurdle = values[HURDLE]
    if fec_on:
        structure_key = _structure_key(live_code, live_constants, live_bounds, buffer, bits)
        entry = _usable_entry(cache, structure_key, forget_every, hurdle, counters)
        if entry >= 0:
            counters[STRUCTURE_HITS] += 1
            counters[SAVED_TRAIN_STEPS] += n_train * num_tasks
            return cache[2][entry]
        record[:] = np.nan
        steps = _run(live_code, live_constants, live_bounds, fingerprint, fingerprint_memory,
                     classification, max_abs_error, _FINGERPRINT_SEED, per_task, record, op_arrays)
        counters[TRAIN_STEPS] += steps[0] * num_tasks
        fingerprint_key = _fingerprint_key(record, settings_f[ROUNDING_SCALE], buffer, bits)
        entry = _usable_entry(cache, fingerprint_key, forget_every, hurdle, counters)
        if entry >= 0:
            counters[FINGERPRINT_HITS] += 1
            counters[SAVED_TRAIN_STEPS] += n_train * num_tasks
            value = cache[2][entry]
            if insert(cache, structure_key, value, cache[3][entry]):
                counters[EVICTIONS] += 1
            return value
    flags = 0
    counters[FULL_EVALS] += 1
    if settings_i[HURDLES_ON] and hurdle > -np.inf and num_tasks > 1:
        first_fitness = per_task[:1]
        steps = _run(live_code, live_constants, live_bounds, first, first_memory,
                     classification, max_abs_error, eval_seed, first_fitness, first_memory.record,
                     op_arrays)
        counters[TRAIN_STEPS] += steps[0]
        counters[VALID_STEPS] += steps[1]
        if first_fitness[0] < hurdle:
            counters[HURDLE_STOPS] += 1
            counters[SAVED_TRAIN_STEPS] += n_train * (num_tasks - 1)
            fitness = first_fitness[0]
            flags = _PARTIAL
        else:
            steps = _run(live_code, live_constants, live_bounds, rest, rest_memory,
                         classification, max_abs_error, eval_seed, per_task[1:],
                         rest_memory.record, op_arrays)
            counters[TRAIN_STEPS] += steps[0] * (num_tasks - 1)
            counters[VALID_STEPS] += steps[1] * (num_tasks - 1)
            fitness = _combine(per_task, settings_i[COMBINE])
    else:
        steps = _run(live_code, live_constants, live_bounds, full, full_memory, classification,
                     max_abs_error, eval_seed, per_task, full_memory.record, op_arrays)
        counters[TRAIN_STEPS] += steps[0] * num_tasks
        counters[VALID_STEPS] += steps[1] * num_tasks
        fitness = _combine(per_task, settings_i[COMBINE])
    if fec_on:
        if insert(cache, fingerprint_key, fitness, flags):
            counters[EVICTIONS] += 1
        if insert(cache, structure_key, fitness, flags):
            counters[EVICTIONS] += 1
    return fitness


@jit
def _tournament(fitness, size, state):
    best = -1
    for _ in range(size):
        k = min(int(next_uniform(state, SELECTION_STREAM) * fitness.size), fitness.size - 1)
        if best < 0 or fitness[k] > fitness[best]:
            best = k
    return best


@jit
def _refresh_hurdle(fitness, recent, count, window, percentile, values):
    pool = fitness if window == 0 else recent[:min(count, window)]
    values[HURDLE] = np.percentile(np.unique(pool), percentile)


@jit
def _take_frozen(code, constants, lengths, frozen, offsets, allowed_counts):
    """Copy the frozen components (op count 0) of the single program ``frozen`` into a slot."""
    frozen_code, frozen_constants, frozen_lengths = frozen
    for c in range(3):
        if allowed_counts[c] == 0:
            stop = offsets[c + 1] if c < 2 else code.shape[0]
            code[offsets[c]:stop] = frozen_code[offsets[c]:stop]
            constants[offsets[c]:stop] = frozen_constants[offsets[c]:stop]
            lengths[c] = frozen_lengths[c]


@jit
def evolve(pop, best, counters, values, streams, recent, settings_i, settings_f, layout,
           init, init_random, frozen, eval_seed, groups, memories, work, cache, op_arrays,
           max_children):
    """Run up to ``max_children`` children of one experiment; return a batch outcome.

    BUDGET_SPENT once the individual or training-step budget is reached (checked before
    each child), IMPROVED right after a child that beats the best fitness (copied to
    ``best``), BATCH_DONE otherwise. The first population-size children fill the
    population from ``init`` (or at random). A random program's frozen components are
    those of ``frozen`` (one program in a slot).
    """
    code, constants, lengths, fitness = pop
    best_code, best_constants, best_lengths = best
    offsets, min_sizes, max_sizes, init_sizes = layout.offsets, layout.min_sizes, \
        layout.max_sizes, layout.init_sizes
    allowed, allowed_counts = layout.allowed, layout.allowed_counts
    init_code, init_constants, init_lengths = init
    child_code, child_constants, child_lengths = work.child_code, work.child_constants, \
        work.child_lengths
    population = settings_i[POPULATION]
    sizes = (settings_i[NUM_S], settings_i[NUM_V], settings_i[NUM_M])
    window = settings_i[HURDLE_WINDOW]
    refresh_every = window if window > 0 else population
    for _ in range(max_children):
        if (settings_i[MAX_INDIVIDUALS] >= 0 and counters[INDIVIDUALS] >= settings_i[MAX_INDIVIDUALS]) \
                or (settings_i[MAX_TRAIN_STEPS] >= 0
                    and counters[TRAIN_STEPS] >= settings_i[MAX_TRAIN_STEPS]):
            return BUDGET_SPENT
        filling = counters[FILLED] < population
        slot = counters[FILLED] if filling else counters[OLDEST]
        copy = False
        parent = 0
        if (filling and init_random) or (not filling and settings_i[STRATEGY] == RANDOM_SEARCH):
            random_program_slots(child_code, child_constants, offsets, child_lengths, init_sizes,
                                 allowed, allowed_counts, sizes, streams, MUTATION_STREAM,
                                 op_arrays)
            _take_frozen(child_code, child_constants, child_lengths, frozen, offsets,
                         allowed_counts)
        elif filling:
            k = slot % init_code.shape[0]
            child_code[:] = init_code[k]
            child_constants[:] = init_constants[k]
            child_lengths[:] = init_lengths[k]
        else:
            parent = _tournament(fitness, settings_i[TOURNAMENT], streams)
            child_code[:] = code[parent]
            child_constants[:] = constants[parent]
            child_lengths[:] = lengths[parent]
            mutation_type = IDENTITY
            if next_uniform(streams, MUTATION_STREAM) < settings_f[MUTATE_PROB]:
                mutation_type = mutate(child_code, child_constants, offsets, child_lengths, min_sizes,
                              max_sizes, allowed, allowed_counts, layout.mutation_types,
                              layout.mutation_weights,
                              settings_i[CONSTANT_RULE], sizes, streams, MUTATION_STREAM,
                              op_arrays)
                if mutation_type >= 0:
                    counters[MUTATION_COUNTS + mutation_type] += 1
            # An exact copy has its parent's fitness (fitness is a pure function of the
            # program), so with the cache on it is a structure hit without hashing. Not
            # with hurdles (the parent's fitness may be a first-task fitness) nor with the
            # compute budget (whose rejections are counted per child).
            copy = mutation_type == IDENTITY and settings_i[FEC_ON] != 0 \
                and settings_i[HURDLES_ON] == 0 and settings_i[BUDGET_ON] == 0
        if copy:
            y_train = groups.full.y_train
            counters[STRUCTURE_HITS] += 1
            counters[SAVED_TRAIN_STEPS] += y_train.shape[0] * y_train.shape[1] * y_train.shape[2]
            value = fitness[parent]
        else:
            value = _evaluate(child_code, child_constants, child_lengths, settings_i, settings_f,
                              offsets, eval_seed, groups, memories, work, cache, counters,
                              values, op_arrays)
        code[slot] = child_code
        constants[slot] = child_constants
        lengths[slot] = child_lengths
        fitness[slot] = value
        if filling:
            counters[FILLED] += 1
        else:
            counters[OLDEST] = (slot + 1) % population
        recent[counters[INDIVIDUALS] % recent.size] = value
        counters[INDIVIDUALS] += 1
        if settings_i[HURDLES_ON] and counters[FILLED] == population \
                and counters[INDIVIDUALS] % refresh_every == 0:
            _refresh_hurdle(fitness, recent, counters[INDIVIDUALS], window,
                            settings_f[HURDLE_PERCENTILE], values)
        if value > values[BEST_FITNESS]:
            values[BEST_FITNESS] = value
            best_code[:] = child_code
            best_constants[:] = child_constants
            best_lengths[:] = child_lengths
            counters[BEST_INDIVIDUAL] = counters[INDIVIDUALS]
            return IMPROVED
    return BATCH_DONE


@jit
def immigrate(pop, best, counters, values, settings_i, settings_f, offsets, eval_seed, groups,
              memories, work, cache, op_arrays, arrivals):
    """Add programs from other islands as the youngest individuals, replacing the oldest.

    ``arrivals`` = the programs (a :class:`Population`); a NaN
    fitness (the sender searched other tasks) is evaluated here, through the cache. The
    island's best is updated, but not counted as a discovery of this island, and no
    individual is counted: the schedule of children does not depend on migrants.
    """
    code, constants, lengths, fitness = pop
    best_code, best_constants, best_lengths = best
    in_code, in_constants, in_lengths, in_fitness = arrivals
    population = settings_i[POPULATION]
    for k in range(in_code.shape[0]):
        value = in_fitness[k]
        if value != value:
            value = _evaluate(in_code[k], in_constants[k], in_lengths[k], settings_i,
                              settings_f, offsets, eval_seed, groups, memories, work, cache,
                              counters, values, op_arrays)
        filling = counters[FILLED] < population
        slot = counters[FILLED] if filling else counters[OLDEST]
        code[slot] = in_code[k]
        constants[slot] = in_constants[k]
        lengths[slot] = in_lengths[k]
        fitness[slot] = value
        if filling:
            counters[FILLED] += 1
        else:
            counters[OLDEST] = (slot + 1) % population
        if value > values[BEST_FITNESS]:
            values[BEST_FITNESS] = value
            best_code[:] = in_code[k]
            best_constants[:] = in_constants[k]
            best_lengths[:] = in_lengths[k]
