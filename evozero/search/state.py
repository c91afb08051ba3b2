"""The state of one search experiment as arrays: its fixed :class:`Settings` and its mutable
:class:`SearchState` (population, random streams, cache, counters), which a checkpoint saves
as a plain ``.npz``. The kernels that change it are in :mod:`evozero.search.evolution`."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from evozero.evaluation.fec_cache import new_cache
from evozero.programs.program import Program
from evozero.programs.slots import slots_program
from evozero.search.evolution import BEST_FITNESS, HURDLE
from ops.codes import FEC_ON, HURDLE_WINDOW, NUM_COUNTERS, POPULATION
from ops.rng import stream_seed


@dataclass
class Settings:
    """Everything fixed during a search experiment, as numba-ready arrays."""

    ints: np.ndarray
    floats: np.ndarray
    offsets: np.ndarray        # first row of each component's block in a slot
    min_sizes: np.ndarray
    max_sizes: np.ndarray
    init_sizes: np.ndarray
    allowed: np.ndarray        # (3, K) op codes per component, padded
    allowed_counts: np.ndarray
    mutation_types: np.ndarray  # mutation type codes (ops.codes) and their weights
    mutation_weights: np.ndarray
    init_code: np.ndarray      # (K, R, 4) initial programs in slots (unused if random)
    init_constants: np.ndarray
    init_lengths: np.ndarray
    init_random: bool
    frozen_code: np.ndarray    # (R, 4) what every random program's frozen components hold
    frozen_constants: np.ndarray
    frozen_lengths: np.ndarray
    eval_seed: int

    @property
    def rows(self) -> int:
        """Rows of one slot (the sum of the components' maximum sizes)."""
        return int(self.max_sizes.sum())


@dataclass
class SearchState:
    """The mutable state of one search experiment: population, streams, cache, counters."""

    code: np.ndarray           # (P, R, 4)
    constants: np.ndarray      # (P, R, 3)
    lengths: np.ndarray        # (P, 3)
    fitness: np.ndarray        # (P,)
    best_code: np.ndarray      # (R, 4): the best individual seen in this experiment
    best_constants: np.ndarray
    best_lengths: np.ndarray
    counters: np.ndarray
    values: np.ndarray
    streams: np.ndarray
    recent: np.ndarray         # fitness of the last children (for hurdle windows)
    cache: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def fresh(cls, settings: Settings, seed: int, cache_size: int) -> SearchState:
        """An empty population (filled by the first batches) with streams from ``seed``."""
        population, rows = int(settings.ints[POPULATION]), settings.rows
        values = np.zeros(2)
        values[BEST_FITNESS] = -1.0
        values[HURDLE] = -np.inf
        streams = np.array([stream_seed(np.uint64(seed), np.uint64(0xE7010 + k)) for k in range(2)],
                           dtype=np.uint64)
        return cls(code=np.zeros((population, rows, 4), dtype=np.int64),
                   constants=np.zeros((population, rows, 3)),
                   lengths=np.zeros((population, 3), dtype=np.int64),
                   fitness=np.zeros(population),
                   best_code=np.zeros((rows, 4), dtype=np.int64),
                   best_constants=np.zeros((rows, 3)),
                   best_lengths=np.zeros(3, dtype=np.int64),
                   counters=np.zeros(NUM_COUNTERS, dtype=np.int64), values=values,
                   streams=streams,
                   recent=np.zeros(max(int(settings.ints[HURDLE_WINDOW]), 1)),
                   cache=new_cache(cache_size if settings.ints[FEC_ON] else 1))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """All arrays, for a checkpoint."""
        arrays = {name: getattr(self, name) for name in STATE_ARRAYS}
        arrays.update({f"cache_{name}": value for name, value in self.cache.items()})
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> SearchState:
        """The state saved by :meth:`to_arrays`."""
        cache = {name[len("cache_"):]: np.array(value) for name, value in arrays.items()
                 if name.startswith("cache_")}
        return cls(**{name: np.array(arrays[name]) for name in STATE_ARRAYS}, cache=cache)

    def counter(self, index: int) -> int:
        """One of the counters (slots named in :mod:`ops.codes`)."""
        return int(self.counters[index])

    @property
    def best_fitness(self) -> float:
        """Best search fitness seen in this experiment (-1 before any evaluation)."""
        return float(self.values[BEST_FITNESS])

    def best_program(self, offsets: np.ndarray) -> Program:
        """The best individual seen in this experiment."""
        return slots_program(self.best_code, self.best_constants, offsets, self.best_lengths)


STATE_ARRAYS = ("code", "constants", "lengths", "fitness", "best_code", "best_constants",
                 "best_lengths", "counters", "values", "streams", "recent")
