"""The Python side of one search experiment: :class:`SearchRunner` builds the task groups
and buffers once and runs batches of the kernels of :mod:`evozero.search.evolution` on a
:class:`~evozero.search.state.SearchState`."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evozero.evaluation.fec_cache import cache_arrays
from evozero.evaluation.vm import TaskGroup, tape_rows
from evozero.search.evolution import (
    Layout,
    Population,
    Scratch,
    SlotPrograms,
    TaskArrays,
    TaskParts,
    VMMemory,
    evolve,
    immigrate,
)
from evozero.search.state import SearchState, Settings
from ops.kinds import OP_ARRAYS


def group_arrays(group: TaskGroup) -> TaskArrays:
    """A task group as the kernels take it."""
    return TaskArrays(group.x_train, group.y_train, group.x_valid, group.y_valid,
                      group.indices.astype(np.uint64))


def fingerprint_group(group: TaskGroup, train: int, valid: int) -> TaskGroup:
    """The first ``train`` training (first epoch) and ``valid`` validation examples."""
    return TaskGroup(indices=group.indices, x_train=np.ascontiguousarray(group.x_train[:1, :train]),
                     y_train=np.ascontiguousarray(group.y_train[:1, :train]),
                     x_valid=np.ascontiguousarray(group.x_valid[:valid]),
                     y_valid=np.ascontiguousarray(group.y_valid[:valid]),
                     classification=group.classification, n_features=group.n_features)


def split_group(group: TaskGroup) -> tuple[TaskGroup, TaskGroup]:
    """The first task alone and the others (for hurdles); needs at least two tasks."""
    n = group.n_features

    def part(tasks: slice) -> TaskGroup:
        count = len(range(*tasks.indices(group.num_tasks)))
        x_train = group.x_train.reshape(*group.x_train.shape[:2], group.num_tasks, n)
        x_valid = group.x_valid.reshape(group.x_valid.shape[0], group.num_tasks, n)
        return TaskGroup(indices=group.indices[tasks],
                         x_train=np.ascontiguousarray(x_train[:, :, tasks].reshape(
                             *group.x_train.shape[:2], count * n)),
                         y_train=np.ascontiguousarray(group.y_train[:, :, tasks]),
                         x_valid=np.ascontiguousarray(x_valid[:, tasks].reshape(-1, count * n)),
                         y_valid=np.ascontiguousarray(group.y_valid[:, tasks]),
                         classification=group.classification, n_features=n)

    return part(slice(0, 1)), part(slice(1, None))


def memory_buffers(num_tasks: int, n_features: int, sizes: Sequence[int], rows: int) -> VMMemory:
    """VM memory for ``num_tasks`` tasks and programs of up to ``rows`` rows, with an empty
    prediction record. Every array is C-contiguous, so the kernels compile for one layout
    only (each extra layout costs a full compile)."""
    num_s, num_v, num_m = sizes
    return VMMemory(np.zeros((num_s, num_tasks)), np.zeros((num_v, num_tasks * n_features)),
                    np.zeros((max(num_m, 1), num_tasks * n_features * n_features)),
                    np.zeros(num_tasks, dtype=np.uint64), np.zeros(n_features * n_features),
                    np.zeros((tape_rows(rows), 5), dtype=np.int64), np.zeros((num_tasks, 0)))


def scratch_buffers(rows: int, num_tasks: int, record_width: int) -> Scratch:
    """Scratch for programs of up to ``rows`` rows on ``num_tasks`` tasks."""
    buffer = np.zeros(1)
    return Scratch(np.zeros((rows, 4), dtype=np.int64), np.zeros((rows, 3)),
                   np.zeros(4, dtype=np.int64), np.zeros((num_tasks, record_width)),
                   np.zeros(num_tasks), buffer, buffer.view(np.uint64),
                   np.zeros((rows, 4), dtype=np.int64), np.zeros((rows, 3)),
                   np.zeros(3, dtype=np.int64),
                   np.zeros((rows, 4), dtype=np.int64), np.zeros((rows, 3)),
                   np.zeros(4, dtype=np.int64))


def _population(state: SearchState) -> Population:
    return Population(state.code, state.constants, state.lengths, state.fitness)


def _best(state: SearchState) -> SlotPrograms:
    return SlotPrograms(state.best_code, state.best_constants, state.best_lengths)


class SearchRunner:
    """Runs batches of :func:`evolve` for one experiment on its search tasks."""

    def __init__(self, settings: Settings, group: TaskGroup, fec_train: int, fec_valid: int,
                 memory: Sequence[int]) -> None:
        self.settings = settings
        n = group.n_features
        num_tasks = group.num_tasks
        if num_tasks > 1:
            first, rest = split_group(group)
        else:
            first = rest = group
        train = min(fec_train, group.x_train.shape[1])
        valid = min(fec_valid, group.x_valid.shape[0])
        self.groups = TaskParts(group_arrays(group), group_arrays(first), group_arrays(rest),
                                group_arrays(fingerprint_group(group, train, valid)))
        rows = settings.rows
        self.memories = TaskParts(memory_buffers(num_tasks, n, memory, rows),
                                  memory_buffers(1, n, memory, rows),
                                  memory_buffers(max(num_tasks - 1, 1), n, memory, rows),
                                  memory_buffers(num_tasks, n, memory, rows))
        self.work = scratch_buffers(rows, num_tasks, train + valid)
        self.layout = Layout(settings.offsets, settings.min_sizes, settings.max_sizes,
                             settings.init_sizes, settings.allowed, settings.allowed_counts,
                             settings.mutation_types, settings.mutation_weights)

    def step(self, state: SearchState, max_children: int) -> int:
        """Run one batch on ``state`` (in place); returns the batch outcome."""
        s = self.settings
        return int(evolve(_population(state), _best(state), state.counters, state.values,
                          state.streams, state.recent, s.ints, s.floats, self.layout,
                          SlotPrograms(s.init_code, s.init_constants, s.init_lengths),
                          s.init_random,
                          SlotPrograms(s.frozen_code, s.frozen_constants, s.frozen_lengths),
                          np.uint64(s.eval_seed), self.groups, self.memories,
                          self.work, cache_arrays(state.cache), OP_ARRAYS, int(max_children)))

    def immigrate(self, state: SearchState, code: np.ndarray, constants: np.ndarray,
                  lengths: np.ndarray, fitness: np.ndarray) -> None:
        """Add migrants (slots; NaN fitness = evaluate here) to ``state`` (see :func:`immigrate`)."""
        s = self.settings
        immigrate(_population(state), _best(state), state.counters, state.values, s.ints, s.floats,
                  s.offsets, np.uint64(s.eval_seed), self.groups, self.memories, self.work,
                  cache_arrays(state.cache), OP_ARRAYS,
                  Population(np.ascontiguousarray(code, dtype=np.int64),
                             np.ascontiguousarray(constants, dtype=np.float64),
                             np.ascontiguousarray(lengths, dtype=np.int64),
                             np.ascontiguousarray(fitness, dtype=np.float64)))
