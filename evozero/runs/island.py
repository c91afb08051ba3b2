"""Islands: populations of one search experiment, evolving inside a worker in slices.

The main process drives islands with small commands and gets plain data back
(discoveries, emigrants, a summary, snapshots; see :mod:`evozero.runs.messages`), so the
same code serves worker processes and Ray actors (:mod:`evozero.runs.workers`).
:class:`IslandBase` holds what every island kind does the same way: it searches in steps
until its slice of time ends, stops at every ``migrate_every`` of its individuals to send
a random part of its population (reproducibly chosen from its seed and the migration
round) and, in deterministic runs, waits there for the migrants the main process sends
back. :class:`ProgramIsland` evolves programs with the one-process search loop as it is
(:class:`evozero.search.runner.SearchRunner`); around it, it:

- checks a new best that reaches ``sufficient_fitness`` on the selection tasks at once
  and stops when it solves them, so the main process never evaluates;
- reports each improvement of its best as a discovery.

The cell-search island is :class:`evozero.nas.search.island.NasIsland`.
"""
from __future__ import annotations

import dataclasses
import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from evozero.config import Config, island_config
from evozero.errors import EvozeroError
from evozero.evaluation.fec_cache import COUNT, FREE, NEWEST, new_cache
from evozero.evaluation.fec_cache import OLDEST as CACHE_OLDEST
from evozero.evaluation.vm import group_tasks
from evozero.programs.mutation import SlotRules, check_slots
from evozero.programs.program import COMPONENTS
from evozero.runs.messages import AdvanceReply, Discovery, IslandResult, IslandSummary
from evozero.search.evolution import BUDGET_SPENT, IMPROVED
from evozero.search.runner import SearchRunner
from evozero.search.seeds import (
    EVALUATION,
    SELECT_TASKS,
    derived_seed,
    evaluate_on,
    island_seed,
    search_tasks,
    select_tasks,
)
from evozero.search.settings import build_settings, frozen_components, initial_programs
from evozero.search.state import STATE_ARRAYS, SearchState
from ops.codes import (
    BEST_INDIVIDUAL,
    BUDGET_REJECTS,
    FILLED,
    FINGERPRINT_HITS,
    FULL_EVALS,
    HURDLE_STOPS,
    INDIVIDUALS,
    MAX_INDIVIDUALS,
    MAX_TRAIN_STEPS,
    NUM_COUNTERS,
    OLDEST,
    SAVED_TRAIN_STEPS,
    STRUCTURE_HITS,
    TRAIN_STEPS,
)
from ops.kinds import NO_OP, NUM_OPS

# Island statuses.
RUNNING, WAITING, SPENT, SOLVED = "running", "waiting", "spent", "solved"
FINISHED = (SPENT, SOLVED)
STATUSES = (RUNNING, WAITING, SPENT, SOLVED)
# Counters a summary carries (summed over islands by the main process).
SUMMED_COUNTERS = {"individuals": INDIVIDUALS, "train_steps": TRAIN_STEPS,
                   "structure_hits": STRUCTURE_HITS, "fingerprint_hits": FINGERPRINT_HITS,
                   "full_evaluations": FULL_EVALS, "hurdle_stops": HURDLE_STOPS,
                   "budget_rejects": BUDGET_REJECTS, "saved_train_steps": SAVED_TRAIN_STEPS}
# Seconds a kernel batch should take: long enough that Python's share is small, short
# enough to answer commands promptly.
_BATCH_SECONDS = 0.05


def nan_lowest(value: float) -> float:
    """``value``, with NaN (a failed evaluation) ranked below everything."""
    return -math.inf if value != value else value


@dataclass(frozen=True)
class IslandSpec:
    """What a worker needs to build one island of one experiment (plain, picklable data)."""

    island: int              # from 0
    experiment: int          # from 0
    config: Config           # the run's config; the island's own comes from island_config
    individuals: int         # the experiment's budgets, for each island (-1: none)
    train_steps: int
    island_class: type       # what the worker builds: an IslandBase subclass
    section: Any = None      # the search domain's config section (a cell search's nas)

    @property
    def own_config(self) -> Config:
        """The settings this island searches with."""
        return island_config(self.config, self.island)


def task_key(config: Config) -> str:
    """Islands with equal keys give a program the same fitness, so migrants keep theirs."""
    return repr((config.search_tasks, config.hurdles))


def emigrant_count(config: Config) -> int:
    """Programs an island of ``config`` sends (and receives) per migration; 0 = none."""
    if config.migration == "none":
        return 0
    if config.migration == "half":
        return max(config.population_size // 2, 1)
    return min(int(config.migration), config.population_size)


class IslandBase(ABC):
    """What every island kind shares: the advance loop (status, migration points,
    deadline, reply, result), the reply's frame, the choice of emigrants and the end of a
    migration wait. A subclass sets ``spec``, ``meta`` (with ``round``, ``status`` and
    ``migrants``), ``seed`` (of its emigrant choice), ``key`` (see :func:`task_key`),
    ``emigrants`` (the count sent) and ``kernel_seconds``, and gives one step of its
    search (:meth:`_step`) and the parts below that differ by kind."""

    spec: IslandSpec
    meta: dict[str, Any]
    seed: int
    key: str
    emigrants: int
    kernel_seconds: float

    # -- commands -----------------------------------------------------------------------

    def opened(self) -> AdvanceReply:
        """The reply to opening: a waiting island sends its emigrants again."""
        reply = self._reply([], [])
        if self.meta["status"] == WAITING:
            reply["emigrants"] = self._emigrants(self.meta["round"])
        return reply

    def advance(self, seconds: float, arrivals: dict[str, Any] | None = None
                ) -> AdvanceReply:
        """Take in ``arrivals`` (migrants), then search for about ``seconds`` (at least one
        step). Stops early at a migration point (with emigrants in the reply), when the
        budget is spent or when the island solved its task (with the result)."""
        evaluations: list[dict[str, Any]] = []
        if arrivals is not None:
            self._take_in(arrivals, evaluations)
        events: list[Discovery] = []
        emigrants = None
        deadline = time.monotonic() + seconds
        while self.meta["status"] == RUNNING:
            if not self._step(events, evaluations) or self.meta["status"] != RUNNING:
                break
            emigrants = self._at_migration(self._individuals())
            if emigrants is not None or time.monotonic() >= deadline:
                break
        reply = self._reply(events, evaluations)
        reply["emigrants"] = emigrants
        if self.meta["status"] in FINISHED:
            reply["result"] = self.result()
        return reply

    @abstractmethod
    def snapshot(self) -> dict[str, Any]:
        """The island's whole state (enough to reopen it exactly)."""

    @abstractmethod
    def result(self) -> IslandResult:
        """The island's best candidate with its search and selection fitness."""

    # -- what each kind does ------------------------------------------------------------

    @abstractmethod
    def _step(self, events: list[Discovery], evaluations: list[dict[str, Any]]) -> bool:
        """Search a little (one kernel batch, one child), adding discoveries to ``events``
        and evaluation records to ``evaluations``; set the status when the budget is spent
        or the task solved. False: stop this advance now (a stop request)."""

    @abstractmethod
    def _individuals(self) -> int:
        """Individuals evolved so far."""

    @abstractmethod
    def _population_size(self) -> int:
        """Members of the population now (the emigrants are chosen among them)."""

    @abstractmethod
    def _emigrant_fields(self, chosen: np.ndarray) -> dict[str, Any]:
        """The chosen members (indices into the population) as emigrant fields, each an
        array or a list with one entry per member, ``fitness`` among them."""

    @abstractmethod
    def _immigrate(self, arrivals: dict[str, Any], evaluations: list[dict[str, Any]]
                   ) -> None:
        """Put migrants (``keys`` and the fields of :meth:`_emigrant_fields`) into the
        population; a migrant measured here is added to ``evaluations``."""

    @abstractmethod
    def _summary(self) -> IslandSummary:
        """The island's counters and population statistics for the main process."""

    # -- shared -------------------------------------------------------------------------

    def _next_migration(self) -> int | None:
        if not self.emigrants:
            return None
        target = (self.meta["round"] + 1) * self.spec.config.migrate_every
        # Migrants arriving as the budget ends would never have children.
        return None if 0 <= self.spec.individuals <= target else target

    def _at_migration(self, individuals: int) -> dict[str, Any] | None:
        """At a migration point: the next round's emigrants (a deterministic island then
        waits for its migrants); otherwise None."""
        target = self._next_migration()
        if target is None or individuals < target:
            return None
        self.meta["round"] += 1
        if self.spec.config.deterministic:
            self.meta["status"] = WAITING
        return self._emigrants(self.meta["round"])

    def _emigrants(self, round_: int) -> dict[str, Any]:
        # Drawn from the island's seed and the round, so a replay sends the same ones.
        size = self._population_size()
        rng = np.random.default_rng([self.seed, round_])
        chosen = np.sort(rng.choice(size, size=min(self.emigrants, size), replace=False))
        return {"round": round_, "key": self.key, **self._emigrant_fields(chosen)}

    def _take_in(self, arrivals: dict[str, Any], evaluations: list[dict[str, Any]]) -> None:
        if self.meta["status"] == WAITING:
            self.meta["status"] = RUNNING
        if len(arrivals["fitness"]):
            self._immigrate(arrivals, evaluations)

    def _reply(self, events: list[Discovery], evaluations: list[dict[str, Any]]
               ) -> AdvanceReply:
        return {"kind": "island", "island": self.spec.island, "status": self.meta["status"],
                "round": self.meta["round"], "events": events, "evaluations": evaluations,
                "summary": self._summary(), "emigrants": None, "result": None}


class ProgramIsland(IslandBase):
    """An island of program search in a worker (see the module docstring)."""

    def __init__(self, spec: IslandSpec, snapshot: dict[str, Any] | None = None) -> None:
        self.spec = spec
        config = spec.own_config
        self.config = config
        tasks = search_tasks(config, spec.experiment)
        groups = group_tasks(tasks)
        if len(groups) != 1:
            raise EvozeroError("search_tasks must all have the same shape")
        settings = build_settings(config, tasks,
                                  derived_seed(config.seed, EVALUATION, spec.experiment))
        settings.ints[MAX_INDIVIDUALS] = spec.individuals
        settings.ints[MAX_TRAIN_STEPS] = spec.train_steps
        self.settings = settings
        self.runner = SearchRunner(settings, groups[0], config.fec.train, config.fec.valid,
                                   config.memory.sizes)
        self.seed = island_seed(config.seed, spec.island, spec.experiment)
        self.key = task_key(config)
        self.emigrants = emigrant_count(config) if spec.config.migrate_every else 0
        if snapshot is None:
            self.state = SearchState.fresh(settings, self.seed, config.fec.cache_size)
            self.meta = {"round": 0, "status": RUNNING, "checked": -1.0,
                         "checked_select": math.nan, "migrants": 0}
        else:
            check_program_snapshot(snapshot, config, f"island {spec.island + 1} snapshot")
            self.state = SearchState.from_arrays(snapshot["arrays"])
            self.meta = dict(snapshot["meta"])
        self._rules = slot_rules(config)
        self._select: list | None = None
        self._batch = 64
        self.kernel_seconds = 0.0

    def snapshot(self) -> dict[str, Any]:
        """The island's whole state (enough to reopen it exactly)."""
        return {"meta": dict(self.meta),
                "arrays": {name: np.array(value) for name, value in self.state.to_arrays().items()}}

    def result(self) -> IslandResult:
        """The island's best program with its search and selection fitness."""
        state = self.state
        program = state.best_program(self.settings.offsets)
        if state.best_fitness > self.meta["checked"]:
            self._check(program, state.best_fitness)
        return {"candidate": str(program), "search_fitness": state.best_fitness,
                "select_fitness": self.meta["checked_select"]}

    # -- inside -------------------------------------------------------------------------

    def _step(self, events: list[Discovery], evaluations: list[dict[str, Any]]) -> bool:
        state = self.state
        limit = self._batch
        target = self._next_migration()
        if target is not None:
            limit = min(limit, target - state.counter(INDIVIDUALS))
        if limit <= 0:
            return True
        started = time.monotonic()
        outcome = self.runner.step(state, limit)
        elapsed = time.monotonic() - started
        self.kernel_seconds += elapsed
        if outcome == IMPROVED:
            events.append(self._discovery())
        else:
            self._batch = int(min(max(self._batch * _BATCH_SECONDS / max(elapsed, 1e-4), 16),
                                  1 << 20))
            if outcome == BUDGET_SPENT:
                self.meta["status"] = SPENT
        return True

    def _individuals(self) -> int:
        return self.state.counter(INDIVIDUALS)

    def _population_size(self) -> int:
        return min(self.state.counter(FILLED), self.state.fitness.size)

    def _emigrant_fields(self, chosen: np.ndarray) -> dict[str, Any]:
        state = self.state
        return {"code": state.code[chosen], "constants": state.constants[chosen],
                "lengths": state.lengths[chosen], "fitness": state.fitness[chosen]}

    def _immigrate(self, arrivals: dict[str, Any], evaluations: list[dict[str, Any]]
                   ) -> None:
        # Migrants are the one input an island takes while it runs: check them against
        # this island's layout and memory before a kernel copies them into the population.
        count = len(arrivals["fitness"])
        check_slots(arrivals["code"], arrivals["constants"], arrivals["lengths"], self._rules,
                    f"island {self.spec.island + 1}: migrants")
        if len(arrivals["keys"]) != count:
            raise EvozeroError(f"island {self.spec.island + 1}: migrants: {count} fitness values "
                               f"but {len(arrivals['keys'])} keys")
        self.meta["migrants"] += count
        fitness = np.array(arrivals["fitness"], dtype=np.float64)
        fitness[np.asarray(arrivals["keys"]) != self.key] = np.nan
        self.runner.immigrate(self.state, arrivals["code"], arrivals["constants"],
                              arrivals["lengths"], fitness)

    def _check(self, program: Any, fitness: float) -> float:
        if self._select is None:
            self._select = select_tasks(self.spec.config, self.spec.experiment)
        select = evaluate_on(self.spec.config, program, self._select, SELECT_TASKS,
                             self.spec.experiment)
        self.meta["checked"] = fitness
        self.meta["checked_select"] = select
        return select

    def _discovery(self) -> Discovery:
        state = self.state
        program = state.best_program(self.settings.offsets)
        select_fitness = None
        sufficient = self.spec.config.sufficient_fitness
        if sufficient is not None and state.best_fitness >= sufficient \
                and state.best_fitness > self.meta["checked"]:
            select_fitness = self._check(program, state.best_fitness)
            if select_fitness > sufficient:
                self.meta["status"] = SOLVED
        return {"island": self.spec.island, "island_individual": state.counter(BEST_INDIVIDUAL),
                "island_train_steps": state.counter(TRAIN_STEPS),
                "fitness": state.best_fitness, "candidate": str(program),
                "select_fitness": select_fitness}

    def _summary(self) -> IslandSummary:
        state = self.state
        filled = self._population_size()
        population = state.fitness[:filled] if filled else np.zeros(1)
        summary: IslandSummary = {name: state.counter(index)   # type: ignore[assignment]
                                  for name, index in SUMMED_COUNTERS.items()}
        summary.update({"best": state.best_fitness, "filled": filled,
                        "migrants": self.meta["migrants"],
                        "mean": float(population.mean()), "stdev": float(population.std()),
                        "kernel_seconds": self.kernel_seconds})
        return summary


def slot_rules(config: Config) -> SlotRules:
    """The slot layout, memory and ops that programs on an island of ``config`` keep to."""
    allowed = np.zeros((3, NUM_OPS), dtype=np.bool_)
    allowed[:, NO_OP] = True          # initial programs are padded with no-ops
    for c, component in enumerate(COMPONENTS):
        allowed[c, config.ops.codes(component)] = True
    seeded = [*(initial_programs(config) or ()), frozen_components(config)]
    for program in (p for p in seeded if p is not None):
        for c in range(3):
            allowed[c, program.code[program.bounds[c]:program.bounds[c + 1], 0]] = True
    return SlotRules(max_sizes=tuple(getattr(config.sizes, c).max for c in COMPONENTS),
                     memory=config.memory.sizes, allowed=allowed)


def check_program_snapshot(snapshot: Any, config: Config, where: str) -> None:
    """Raise EvozeroError unless ``snapshot`` (see :meth:`ProgramIsland.snapshot`) is one a
    program island of ``config`` (its own config) may continue from: every array of the
    expected dtype and shape, every program within the config's sizes, memory and ops,
    every index the kernels follow (counters, cache links) in range."""
    if not isinstance(snapshot, dict) or not isinstance(snapshot.get("arrays"), dict) \
            or not isinstance(snapshot.get("meta"), dict):
        raise EvozeroError(f"{where}: not an island snapshot (expected arrays and meta)")
    meta, arrays = snapshot["meta"], snapshot["arrays"]
    if meta.get("status") not in STATUSES or not isinstance(meta.get("round"), int) \
            or meta["round"] < 0 or not isinstance(meta.get("migrants"), int):
        raise EvozeroError(f"{where}: meta {meta!r} is not an island's (status one of "
                           f"{', '.join(STATUSES)}, round and migrants whole numbers)"[:300])
    population = config.population_size
    rules = slot_rules(config)
    capacity = config.fec.cache_size if config.fec.enabled else 1
    expected: dict[str, tuple[DTypeLike, tuple[int, ...]]] = {
                "fitness": (np.float64, (population,)),
                "best_code": (np.int64, (rules.rows, 4)),
                "best_constants": (np.float64, (rules.rows, 3)),
                "best_lengths": (np.int64, (3,)),
                "counters": (np.int64, (NUM_COUNTERS,)), "values": (np.float64, (2,)),
                "streams": (np.uint64, (2,)),
                "recent": (np.float64, (max(config.hurdles.window, 1),))}
    expected.update({f"cache_{name}": (value.dtype, value.shape)
                     for name, value in new_cache(capacity).items()})
    missing = sorted(set(STATE_ARRAYS) - set(arrays))
    if missing:
        raise EvozeroError(f"{where}: arrays {', '.join(missing)} are missing")
    for name, (dtype, shape) in expected.items():
        array = arrays.get(name)
        if not isinstance(array, np.ndarray) or array.dtype != dtype or array.shape != shape:
            got = (f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray)
                   else "missing" if array is None else type(array).__name__)
            raise EvozeroError(f"{where}: {name} must be {np.dtype(dtype)} {shape} for this "
                               f"config, got {got}")
    check_slots(arrays["code"], arrays["constants"], arrays["lengths"], rules,
                f"{where}: population")
    check_slots(arrays["best_code"][None], arrays["best_constants"][None],
                arrays["best_lengths"][None], rules, f"{where}: best program")
    counters = arrays["counters"]
    if (counters < 0).any() or counters[FILLED] > population \
            or counters[OLDEST] >= max(population, 1):
        raise EvozeroError(f"{where}: counters {counters.tolist()} are out of range (none "
                           f"negative, filled <= {population}, oldest < {population})")
    # The cache kernels follow these indices without bounds checks.
    meta_links = arrays["cache_meta"]
    links = [arrays[f"cache_{name}"] for name in ("table", "newer", "older")] \
        + [meta_links[[NEWEST, CACHE_OLDEST, FREE]]]
    table_count = int((links[0] >= 0).sum())
    if any(((link < -1) | (link >= capacity)).any() for link in links) \
            or meta_links[COUNT] != table_count or table_count > capacity:
        raise EvozeroError(f"{where}: the cache arrays are inconsistent (an entry index "
                           f"outside -1..{capacity - 1}, or {table_count} table entries but a "
                           f"count of {meta_links[COUNT]} and a capacity of {capacity})")


def warm_up(config: Config) -> None:
    """Compile (or load from the cache) every kernel an island runs, on tiny tasks, so
    that forked workers inherit them and spawned ones find them in the on-disk cache."""
    # No larger than configured: a small .npz file that fits the config must fit here too.
    search, select = config.search_tasks, config.select_tasks
    tiny = dataclasses.replace(
        config, islands=None, population_size=2, tournament_size=1, sufficient_fitness=None,
        search_tasks=dataclasses.replace(search, num_tasks=2, train=min(4, search.train),
                                         valid=min(4, search.valid), data_seeds=None,
                                         param_seeds=None),
        select_tasks=dataclasses.replace(select, num_tasks=1, train=min(4, select.train),
                                         valid=min(4, select.valid), data_seeds=None,
                                         param_seeds=None))
    island = ProgramIsland(IslandSpec(0, 0, tiny, individuals=4, train_steps=-1,
                                      island_class=ProgramIsland))
    island.advance(0.0)
    emigrants = island._emigrants(1)
    island._take_in({"code": emigrants["code"][:1], "constants": emigrants["constants"][:1],
                     "lengths": emigrants["lengths"][:1], "fitness": [math.nan],
                     "keys": [island.key]}, [])
    island._check(island.state.best_program(island.settings.offsets), 0.0)
