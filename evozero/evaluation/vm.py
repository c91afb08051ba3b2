"""The virtual machine: evaluates programs on tasks, in numba, all tasks in lockstep.

For a group of tasks of one shape, each decoded instruction runs over every task's
memory at once (see :mod:`ops.interpreter`). The evaluation protocol (epochs, the
sigmoid of classification, divergence, the fitness of a task and of several) is stated
once, in docs/design.md, "Evaluation protocol".
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evozero.errors import EvozeroError
from evozero.evaluation.tasks import Task
from evozero.programs.liveness import resolve_memory, strip_dead_code
from evozero.programs.program import Program
from ops.codes import (
    EPOCH_END,
    MATRIX_KIND,
    SCALAR_KIND,
    TRAIN_BEGIN,
    TRAIN_END,
    TRAIN_PREDICTED,
    VALID_BEGIN,
    VALID_END,
    VECTOR_KIND,
)
from ops.interpreter import run_tape
from ops.jit import jit
from ops.kinds import IN1_KIND, IN2_KIND, OUT_KIND
from ops.rng import SEED_MAX, stream_seed

COMBINE_RULES = ("mean", "median")
# Tasks run in lockstep while all their memories fit in this many bytes (about half of
# a core's L1 data cache); measured with ``evozero bench vm --sizes``.
LOCKSTEP_BYTES = 16_384
DEFAULT_MAX_ABS_ERROR = 100.0


@jit
def reads_features(code, rows, in1_kind, in2_kind):
    """Whether any of the first ``rows`` rows of ``code`` reads v0 (if none, loading
    features can be skipped)."""
    for row in range(rows):
        op = code[row, 0]
        if (in1_kind[op] == VECTOR_KIND and code[row, 1] == 0) \
                or (in2_kind[op] == VECTOR_KIND and code[row, 2] == 0):
            return True
    return False


@jit
def build_tape(code, bounds, tape):
    """Lay out the evaluation of a (dead-code-free) program for :func:`run_tape`.

    Rows are ``(op, in1, in2, out, constants row)``: Setup, then the training step
    (TRAIN_BEGIN, Predict, TRAIN_PREDICTED, Learn, TRAIN_END), then the validation step
    (VALID_BEGIN, Predict, VALID_END) and EPOCH_END. ``tape`` needs at least
    :func:`tape_rows` rows.
    """
    p_start, p_stop, l_stop = bounds[1], bounds[2], bounds[3]
    length = _copy_rows(code, 0, p_start, tape, 0)
    train_begin = length
    length = _control_row(tape, length, TRAIN_BEGIN, 0)
    length = _copy_rows(code, p_start, p_stop, tape, length)
    length = _control_row(tape, length, TRAIN_PREDICTED, 0)
    length = _copy_rows(code, p_stop, l_stop, tape, length)
    length = _control_row(tape, length, TRAIN_END, train_begin)
    valid_begin = length
    length = _control_row(tape, length, VALID_BEGIN, 0)
    length = _copy_rows(code, p_start, p_stop, tape, length)
    length = _control_row(tape, length, VALID_END, valid_begin)
    return _control_row(tape, length, EPOCH_END, train_begin)


@jit
def tape_rows(num_rows):
    """Rows a tape needs for a program of ``num_rows`` rows (Predict appears twice)."""
    return 2 * num_rows + 6


@jit
def _copy_rows(code, start, stop, tape, length):
    for row in range(start, stop):
        tape[length, 0] = code[row, 0]
        tape[length, 1] = code[row, 1]
        tape[length, 2] = code[row, 2]
        tape[length, 3] = code[row, 3]
        tape[length, 4] = row
        length += 1
    return length


@jit
def _control_row(tape, length, control, target):
    tape[length, 0] = control
    tape[length, 1] = target
    tape[length, 2] = 0
    tape[length, 3] = 0
    tape[length, 4] = 0
    return length + 1


@jit
def run_group(code, constants, bounds, scalars, vectors, matrices, streams, scratch, tape,
              x_train, y_train, x_valid, y_valid, classification, load_features, max_abs_error,
              seed, task_ids, fitness, record):
    """Evaluate one (dead-code-free) program on a group of same-shape tasks.

    Data are step-major (see :class:`TaskGroup`): ``x_train[epoch, step, t * F + i]``,
    ``y_train[epoch, step, t]``, ``x_valid[step, t * F + i]``, ``y_valid[step, t]``.
    Memory buffers (flat, as in :mod:`ops.interpreter`, sized for every task) are zeroed
    here; task t draws from sub-stream ``task_ids[t]`` of ``seed``; ``tape`` is scratch for
    :func:`build_tape`. ``fitness[t]`` receives each task's fitness; ``record[t, k]`` (if
    it has columns) the k-th prediction read from s1, training steps first, then
    validation, epoch by epoch. Returns the number of lockstep training steps and
    validation steps executed (each covers every task).
    """
    num_tasks = y_train.shape[2]
    n = x_train.shape[2] // num_tasks
    block = num_tasks if record.shape[1] > 0 else task_block(code, num_tasks, n)
    return run_blocks(code, constants, bounds, scalars, vectors, matrices, streams, scratch,
                      tape, x_train, y_train, x_valid, y_valid, classification, load_features,
                      max_abs_error, seed, task_ids, fitness, record, block)


@jit
def task_block(code, num_tasks, n):
    """How many tasks run in lockstep: all of them while the memory ``code`` touches, for
    every task, fits in ``LOCKSTEP_BYTES``, else as many as fit (at least one)."""
    num_s = num_v = num_m = 0   # highest address used + 1, per kind
    for row in range(code.shape[0]):
        op = code[row, 0]
        for kind, address in ((IN1_KIND[op], code[row, 1]), (IN2_KIND[op], code[row, 2]),
                              (OUT_KIND[op], code[row, 3])):
            if kind == SCALAR_KIND:
                num_s = max(num_s, address + 1)
            elif kind == VECTOR_KIND:
                num_v = max(num_v, address + 1)
            elif kind == MATRIX_KIND:
                num_m = max(num_m, address + 1)
    per_task = 8 * (num_s + num_v * n + num_m * n * n)
    return max(1, min(num_tasks, LOCKSTEP_BYTES // max(per_task, 1)))


@jit
def run_blocks(code, constants, bounds, scalars, vectors, matrices, streams, scratch, tape,
               x_train, y_train, x_valid, y_valid, classification, load_features, max_abs_error,
               seed, task_ids, fitness, record, block):
    """:func:`run_group` with the tasks run ``block`` at a time, each block in lockstep.

    Fitness does not depend on ``block``: every task runs the same arithmetic in the same
    order, on its own memory and random stream. The step counts returned are the
    largest of any block, so they equal those of one lockstep block of every task.
    """
    build_tape(code, bounds, tape)
    num_tasks = y_train.shape[2]
    n = x_train.shape[2] // num_tasks
    num_s, num_v, num_m = scalars.shape[0], vectors.shape[0], matrices.shape[0]
    train_steps = valid_steps = 0
    for first in range(0, num_tasks, block):
        size = min(block, num_tasks - first)
        if size == num_tasks:
            # One block: the buffers themselves (a reshaped view costs a call per buffer,
            # which shows on the many short runs of a search).
            block_scalars, block_vectors, block_matrices = scalars, vectors, matrices
        else:
            # C-contiguous views of the first ``size`` tasks' worth of each buffer.
            block_scalars = scalars.reshape(scalars.size)[:num_s * size].reshape(num_s, size)
            block_vectors = vectors.reshape(vectors.size)[:num_v * size * n].reshape(
                num_v, size * n)
            block_matrices = matrices.reshape(matrices.size)[:num_m * size * n * n].reshape(
                num_m, size * n * n)
        block_scalars[:] = 0.0
        block_vectors[:] = 0.0
        block_matrices[:] = 0.0
        for t in range(size):
            streams[t] = stream_seed(seed, task_ids[first + t])
            fitness[first + t] = 0.0
        train, valid = run_tape(tape, constants, block_scalars, block_vectors, block_matrices,
                                streams[:size], n, scratch, x_train, y_train, x_valid, y_valid,
                                classification, load_features, max_abs_error, fitness, record,
                                first)
        train_steps = max(train_steps, train)
        valid_steps = max(valid_steps, valid)
    return train_steps, valid_steps


@dataclass(frozen=True)
class TaskGroup:
    """Tasks of one shape stacked step-major for the lockstep kernel.

    ``x_train[epoch, step, t * F + i]`` holds task t's features at that step (its
    per-epoch order applied), ``y_train[epoch, step, t]`` its label; likewise
    ``x_valid[step, t * F + i]`` and ``y_valid[step, t]``. ``indices`` are the tasks'
    positions in the list they came from.
    """

    indices: np.ndarray
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    classification: bool
    n_features: int

    @property
    def num_tasks(self) -> int:
        """Number of tasks in the group."""
        return int(self.indices.size)


def group_tasks(tasks: Sequence[Task]) -> list[TaskGroup]:
    """Stack tasks into same-shape groups (order within a group follows the list)."""
    if len(tasks) == 0:
        raise EvozeroError("no tasks to evaluate on: pass at least one task")
    by_key: dict[tuple, list[int]] = {}
    for position, task in enumerate(tasks):
        by_key.setdefault(task.shape_key(), []).append(position)
    groups = []
    for positions in by_key.values():
        members = [tasks[p] for p in positions]
        orders = np.stack([m.train_orders() for m in members])            # (T, E, n)
        x_train = np.stack([m.x_train[o] for m, o in zip(members, orders)])  # (T, E, n, F)
        y_train = np.stack([m.y_train[o] for m, o in zip(members, orders)])  # (T, E, n)
        num_tasks, epochs, n_train, n_features = x_train.shape
        x_valid = np.stack([m.x_valid for m in members])                    # (T, nv, F)
        groups.append(TaskGroup(
            indices=np.array(positions, dtype=np.int64),
            x_train=_contiguous(x_train.transpose(1, 2, 0, 3).reshape(epochs, n_train, -1)),
            y_train=_contiguous(y_train.transpose(1, 2, 0)),
            x_valid=_contiguous(x_valid.transpose(1, 0, 2).reshape(x_valid.shape[1], -1)),
            y_valid=_contiguous(np.stack([m.y_valid for m in members]).T),
            classification=bool(members[0].classification), n_features=int(n_features)))
    return groups


def _contiguous(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float64)


def evaluate(program: Program, tasks: Sequence[Task], *, combine: str | None = "mean",
             seed: int = 0, memory: Sequence[int] | None = None,
             max_abs_error: float = DEFAULT_MAX_ABS_ERROR) -> float | np.ndarray:
    """Fitness of ``program`` on ``tasks``, in [0, 1].

    ``combine`` is "mean", "median" or None (one fitness per task, in task order).
    ``seed`` seeds the random ops (task i draws from sub-stream i), so equal
    arguments always give equal fitness.
    """
    if combine is not None and (not isinstance(combine, str) or combine not in COMBINE_RULES):
        raise EvozeroError(f"combine must be one of {', '.join(COMBINE_RULES)} or None, "
                           f"got {combine!r}")
    _check_arguments(tasks, seed, max_abs_error)
    sizes = resolve_memory(program, memory)
    live = strip_dead_code(program, sizes)
    per_task = np.zeros(len(tasks))
    for group in group_tasks(tasks):
        per_task[group.indices] = evaluate_group(live, group, sizes, seed, max_abs_error)
    return combine_fitness(per_task, combine)


def _check_arguments(tasks: Sequence[object], seed: int, max_abs_error: float) -> None:
    """Raise EvozeroError unless the arguments every evaluation shares are usable."""
    if isinstance(tasks, (str, bytes)) or not isinstance(tasks, Sequence) \
            or not all(isinstance(task, Task) for task in tasks):
        raise EvozeroError(f"tasks must be a list of Task objects (see make_tasks), got "
                           f"{tasks!r}"[:200])
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) \
            or not 0 <= seed <= SEED_MAX:
        raise EvozeroError(f"seed must be a whole number in 0..2**64-1, got {seed!r}"[:200])
    if not isinstance(max_abs_error, (int, float, np.integer, np.floating)) \
            or isinstance(max_abs_error, bool) or not 0 < max_abs_error <= math.inf:
        raise EvozeroError(f"max_abs_error must be > 0 (a number; inf: no limit), got "
                           f"{max_abs_error!r}"[:200])


def evaluate_group(live: Program, group: TaskGroup, sizes: tuple[int, int, int], seed: int,
                   max_abs_error: float, record: np.ndarray | None = None) -> np.ndarray:
    """Per-task fitness of an already dead-code-free program on one task group.

    ``record`` (tasks x k), if given, receives the first k predictions each task read
    from s1: training steps first, then validation, epoch by epoch (see :func:`run_group`).
    """
    num_tasks, n = group.num_tasks, group.n_features
    num_s, num_v, num_m = sizes
    fitness = np.zeros(num_tasks)
    run_group(live.code, live.constants, live.bounds, np.zeros((num_s, num_tasks)),
              np.zeros((num_v, num_tasks * n)), np.zeros((max(num_m, 1), num_tasks * n * n)),
              np.zeros(num_tasks, dtype=np.uint64), np.zeros(n * n),
              np.zeros((tape_rows(live.code.shape[0]), 5), dtype=np.int64),
              group.x_train, group.y_train, group.x_valid, group.y_valid, group.classification,
              reads_features(live.code, len(live.code), IN1_KIND, IN2_KIND), float(max_abs_error),
              np.uint64(seed), group.indices.astype(np.uint64), fitness,
              np.zeros((num_tasks, 0)) if record is None else record)
    return fitness


def combine_fitness(per_task: np.ndarray, combine: str | None) -> float | np.ndarray:
    """Mean or median of per-task fitness (None returns the array itself)."""
    if combine is None:
        return per_task
    return float(np.mean(per_task) if combine == "mean" else np.median(per_task))
