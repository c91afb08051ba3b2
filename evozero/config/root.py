"""The whole experiment config (:class:`Config`), its islands, and plain-data conversion.

:class:`Config` composes the sections of ``program`` and ``cell_search`` and checks what involves
several of them; ``loading`` reads it from YAML.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from evozero.config.cell_search import CELL_STRATEGIES, SUPERNET_STRATEGIES, Nas
from evozero.config.program import (
    Budget,
    ComputeBudget,
    Fec,
    Hurdles,
    Memory,
    OpLists,
    Sizes,
    TaskSpec,
    _InitialPopulation,
    _Mutations,
    _ProgramName,
    initial_memory,
    named_program,
)
from evozero.config.schema import (
    _COUNT_MAX,
    _SIZE_MAX,
    _Bool,
    _Choice,
    _Context,
    _Float,
    _Int,
    _join,
    _Name,
    _Optional,
    _OptionalSection,
    _Section,
    _section,
    _setting,
    _show,
    _Spec,
    _Str,
    _unknown,
    _WordOrCount,
)
from evozero.errors import EvozeroError
from evozero.programs.program import COMPONENTS, Program
from ops.rng import SEED_MAX
from ops.table import MATRIX, OPS_BY_NAME, VECTOR

#: Settings an entry of the ``islands`` list may change for its island. Memory, sizes and
#: ops stay shared: migrants must run and mutate on every island.
ISLAND_KEYS = ("search_tasks", "population_size", "tournament_size", "mutate_prob",
               "mutations", "constant_mutation", "strategy", "fec", "hurdles")
# Far beyond any sensible run, like the bounds in schema: a typo must not reach an allocation.
_MAX_ISLANDS = 10_000
_MAX_WORKERS = 4096


class _Islands(_Spec):
    allowed = (f"null (one island per worker), an integer in [1, {_MAX_ISLANDS}] (that many "
               f"islands), or a list (at most {_MAX_ISLANDS} long) with one mapping per island "
               f"of settings it changes (allowed keys: {', '.join(ISLAND_KEYS)}; an empty "
               f"mapping keeps every setting)")

    def parse(self, value: Any, key: str, ctx: _Context) -> int | tuple[dict, ...] | None:
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return _Int(1, _MAX_ISLANDS).parse(value, key, ctx)
        if not isinstance(value, (list, tuple)) or not value or len(value) > _MAX_ISLANDS:
            raise self.fail(value, key, ctx)
        entries = []
        for i, entry in enumerate(value):
            where = f"{key}[{i}]"
            if entry is None:
                entry = {}
            if not isinstance(entry, dict):
                raise ctx.error(where, f"must be a mapping of settings for island {i + 1}, "
                                       f"got {_show(entry)}")
            for name, setting in entry.items():
                if name not in ISLAND_KEYS:
                    shared = name in _CONFIG.fields
                    raise ctx.error(_join(where, str(name)), (
                        f"cannot differ between islands (programs migrate, so they must "
                        f"run and mutate on every island); allowed per island: "
                        f"{', '.join(ISLAND_KEYS)}") if shared else _unknown(
                        "key", name, ISLAND_KEYS, " per island"))
                # Checked on its own here; merged with the shared settings by island_config.
                _CONFIG.spec(name).parse(setting, _join(where, str(name)), ctx)
            entries.append(dict(entry))
        return tuple(entries)

    def dump(self, value: Any) -> Any:
        return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class Config:
    """A complete, validated experiment (see the evozero.config docstring)."""

    name: str | None = _setting(_Optional(_Name()), None)
    seed: int = _setting(_Int(0, SEED_MAX), 0)
    memory: Memory = _section(Memory)
    search_tasks: TaskSpec = _section(TaskSpec)
    select_tasks: TaskSpec = _section(TaskSpec, num_tasks=100, train=1000, seed=1_000_000)
    final_tasks: TaskSpec = _section(TaskSpec, num_tasks=100, train=1000, seed=2_000_000)
    ops: OpLists = _section(OpLists)
    sizes: Sizes = _section(Sizes)
    initial_population: str = _setting(_InitialPopulation(), "random")
    frozen_program: str | None = _setting(_ProgramName(), None)
    strategy: str = _setting(_Choice("evolution", "random", *CELL_STRATEGIES,
                                                   *SUPERNET_STRATEGIES), "evolution")
    population_size: int = _setting(_Int(2, _SIZE_MAX), 1000)
    tournament_size: int = _setting(_Int(1, _SIZE_MAX), 10)
    mutate_prob: float = _setting(_Float(0.0, 1.0), 0.9)
    mutations: dict[str, float] = _setting(
        _Mutations({"alter_param": 1.0, "randomize_instruction": 1.0,
                    "randomize_component": 1.0}),
        factory=lambda: {"alter_param": 1.0, "randomize_instruction": 1.0,
                         "randomize_component": 1.0})
    constant_mutation: str = _setting(_Choice("lognormal", "uniform_scale"), "lognormal")
    fitness_combine: str = _setting(_Choice("mean", "median"), "mean")
    max_abs_error: float = _setting(_Float(0.0, min_open=True), 100.0)
    fec: Fec = _section(Fec)
    hurdles: Hurdles = _section(Hurdles)
    compute_budget: ComputeBudget = _section(ComputeBudget)
    budget: Budget = _section(Budget)
    sufficient_fitness: float | None = _setting(_Optional(_Float()), 0.9999)
    max_experiments: int = _setting(_Int(0, _SIZE_MAX), 0)
    randomize_task_seeds: bool = _setting(_Bool(), True)
    progress_every: float = _setting(_Float(0.0, min_open=True), 1.0)
    checkpoint_every: float = _setting(_Float(0.0, min_open=True), 60.0)
    workers: str | int = _setting(
        _WordOrCount(f"auto (every core of this machine) or an integer in [1, {_MAX_WORKERS}]",
                     _MAX_WORKERS, "auto"), "auto")
    islands: int | tuple[dict, ...] | None = _setting(_Islands(), None)
    migrate_every: int = _setting(_Int(1, _COUNT_MAX, whole_floats=True), 1_000_000)
    migration: str | int = _setting(
        _WordOrCount(f"half (a random half of the population), none, or the integer number of "
                     f"programs (in [1, {_SIZE_MAX}]) each island sends and receives", _SIZE_MAX,
                     "half", "none"), "half")
    deterministic: bool = _setting(_Bool(), False)
    backend: str = _setting(_Choice("local", "ray"), "local")
    address: str | None = _setting(_Optional(_Str()), None)
    nas: Nas | None = _setting(_OptionalSection(Nas), None)

    def _problems(self) -> Iterator[tuple[Any, str]]:
        if self.tournament_size > self.population_size:
            yield ("tournament_size", "population_size"), (
                f"must be <= population_size ({self.population_size}), "
                f"got {self.tournament_size}")
        if self.max_experiments == 0 and self.sufficient_fitness is None:
            yield ("max_experiments", "sufficient_fitness"), (
                "max_experiments 0 (unlimited) needs sufficient_fitness to stop; set "
                "max_experiments to an integer >= 1 or sufficient_fitness to a number")
        if not any(getattr(self.ops, c) for c in COMPONENTS):
            yield "ops", ("all three op lists are empty, so nothing can evolve; give at "
                          "least one of ops.setup, ops.predict, ops.learn an op")
        yield from self._memory_problems()
        yield from self._strategy_problems()
        if self.address is not None and self.backend != "ray":
            yield ("address", "backend"), ("is the address of a Ray cluster, used with "
                                           "backend: ray only; set backend: ray or remove it")
        if isinstance(self.islands, tuple):
            for i in range(len(self.islands)):
                try:
                    island_config(self, i)
                except EvozeroError as error:
                    yield "islands", str(error)
        yield from self._frozen_problems()
        need = initial_memory(self.initial_population)
        have = self.memory.sizes
        if need and any(h < n for h, n in zip(have, need)):
            yield ("initial_population", "memory"), (
                f"the {self.initial_population!r} initial population needs memory "
                f"scalars >= {need[0]}, vectors >= {need[1]}, matrices >= {need[2]}; "
                f"the config has {have[0]}, {have[1]}, {have[2]}")

    def _strategy_problems(self) -> Iterator[tuple[Any, str]]:
        if self.nas is not None and self.nas.table is not None \
                and self.budget.individuals is None and self.strategy not in SUPERNET_STRATEGIES:
            yield ("budget.individuals", "nas.table"), (
                "a table search needs budget.individuals: a cell asked again is answered "
                "by the cache at no simulated cost, so only a count of networks surely "
                "ends a search (nas.lookup.seconds can end it sooner)")
        if self.strategy not in CELL_STRATEGIES + SUPERNET_STRATEGIES:
            return
        if self.nas is None:
            yield ("strategy", "nas"), (f"{self.strategy} is a cell-search strategy, but "
                                        f"the config has no nas section; use evolution or "
                                        f"random, or add a nas section")
            return
        nas = self.nas
        if nas.space != "nb201":
            what = ("trains a supernet of the NAS-Bench-201 cell space (nb101 has none)"
                    if self.strategy in SUPERNET_STRATEGIES else "searches NAS-Bench-201 cells")
            yield ("strategy", "nas.space"), (f"{self.strategy} {what}, but nas.space is "
                                              f"{nas.space}; use space: nb201, or evolution "
                                              f"or random")
        if self.strategy in SUPERNET_STRATEGIES:
            yield from self._supernet_problems(nas)
        if nas.hurdle != type(nas.hurdle)() or nas.weight_inheritance \
                or nas.constraints != type(nas.constraints)() \
                or nas.objective.kind == "pareto":
            yield ("strategy", "nas"), (f"nas.hurdle, nas.weight_inheritance, "
                                        f"nas.constraints and the pareto objective are "
                                        f"settings of evolution and random search; "
                                        f"{self.strategy} does not use them")

    def _supernet_problems(self, nas: Nas) -> Iterator[tuple[Any, str]]:
        budget = self.budget
        if budget.individuals is not None or budget.train_steps != type(budget)().train_steps:
            yield ("budget", "strategy"), (f"{self.strategy} trains one supernet for "
                                           f"nas.supernet.epochs and ends by itself; "
                                           f"remove budget.individuals and "
                                           f"budget.train_steps")
        if nas.objective.kind != "accuracy":
            yield ("nas.objective", "strategy"), (
                f"{self.strategy} maximises validation accuracy (proxyless adds its "
                f"latency term: nas.supernet.latency_target_ms)")
        if self.strategy == "proxyless" and nas.supernet.latency_target_ms is None:
            yield ("nas.supernet.latency_target_ms", "strategy"), (
                "proxyless adds a latency term to the loss: give its target in ms on "
                "nas.profile as nas.supernet.latency_target_ms (the term's weight is "
                "nas.supernet.latency_weight)")
        if self.strategy != "proxyless" and nas.supernet.latency_target_ms is not None:
            yield ("nas.supernet.latency_target_ms", "strategy"), (
                f"a latency term is proxyless's; {self.strategy} has none")
        if nas.supernet.few_shot.edge is not None and self.strategy not in ("rsps", "spos"):
            yield ("nas.supernet.few_shot", "strategy"), (
                f"few-shot sub-supernets are trained by uniform sampling: use rsps or spos, "
                f"not {self.strategy}")

    def _frozen_problems(self) -> Iterator[tuple[Any, str]]:
        # Checked here, not when the run starts: a frozen component that cannot hold the
        # program, or memory it overruns, would only show as a search that never learns.
        if self.frozen_program is None:
            return
        frozen = self.ops.frozen
        if not frozen:
            yield ("frozen_program", "ops"), (
                "gives the frozen components (those with an empty op list), but no op list "
                "is empty; empty the op lists of the components to keep fixed (e.g. "
                "ops.setup: [] and ops.predict: []) or remove frozen_program")
            return
        try:
            program = named_program(self.frozen_program)
        except EvozeroError as error:
            yield "frozen_program", str(error)
            return
        for component, length in zip(COMPONENTS, program.sizes):
            bound = getattr(self.sizes, component).max
            if component in frozen and length > bound:
                yield ("frozen_program", f"sizes.{component}"), (
                    f"{self.frozen_program}: its {component} has {length} instructions but "
                    f"sizes.{component}.max is {bound}; raise sizes.{component}.max to "
                    f">= {length}")
                return
        need = Program.from_instructions().with_components(program, frozen).memory_needs()
        have = self.memory.sizes
        if any(h < n for h, n in zip(have, need)):
            yield ("frozen_program", "memory"), (
                f"{self.frozen_program}: the frozen components ({', '.join(frozen)}) need "
                f"memory scalars >= "
                f"{need[0]}, vectors >= {need[1]}, matrices >= {need[2]}; the config has "
                f"{have[0]}, {have[1]}, {have[2]}")

    def _memory_problems(self) -> Iterator[tuple[Any, str]]:
        # The randomizer draws output addresses from v1.. and any address from m0..; with
        # no such address it would produce an out-of-range index inside numba, which
        # corrupts memory silently instead of failing.
        for component in COMPONENTS:
            for name in getattr(self.ops, component):
                op = OPS_BY_NAME[name]
                if MATRIX in (op.in1, op.in2, op.out) and self.memory.matrices < 1:
                    yield ("memory.matrices", f"ops.{component}"), (
                        f"op {name} in ops.{component} uses a matrix but memory.matrices "
                        f"is 0; set memory.matrices >= 1 or remove the op")
                    return
                if op.out == VECTOR and self.memory.vectors < 2:
                    yield ("memory.vectors", f"ops.{component}"), (
                        f"op {name} in ops.{component} writes a vector but memory.vectors "
                        f"is {self.memory.vectors} (v0 holds the features); set "
                        f"memory.vectors >= 2 or remove the op")
                    return


_CONFIG = _Section(Config)


# --- public API ----------------------------------------------------------------------


def island_count(config: Config, workers: int) -> int:
    """How many islands a run of ``config`` has when it starts on ``workers`` workers."""
    if config.islands is None:
        return workers
    return config.islands if isinstance(config.islands, int) else len(config.islands)


def island_config(config: Config, island: int) -> Config:
    """The config island number ``island`` (from 0) searches with: its ``islands`` entry
    (if any) merged into the shared settings, sections key by key."""
    if not isinstance(config.islands, tuple):
        return config
    entry = config.islands[island % len(config.islands)]
    if not entry:
        return config
    data = config_to_dict(config)
    for name, value in entry.items():
        if isinstance(data[name], dict) and isinstance(value, dict) and name != "mutations":
            data[name] = {**data[name], **value}
        else:
            data[name] = value
    data["islands"] = None
    return config_from_dict(data, f"island {island + 1}")


def default_config() -> Config:
    """The config of an empty file: AutoML-Zero's demo (rediscover linear regression)."""
    return Config()


def config_from_dict(data: Mapping[str, Any] | None, source: str = "<config>", *,
                     base_dir: str | os.PathLike | None = None) -> Config:
    """Validate plain data (as loaded from YAML) into a :class:`Config`.

    ``source`` names the data in error messages; relative paths resolve against
    ``base_dir`` (default: the current directory).
    """
    ctx = _Context(source, {}, os.fspath(base_dir) if base_dir is not None else os.getcwd())
    if data is not None and not isinstance(data, Mapping):
        raise ctx.error("", f"the config must be a mapping of keys to values, got {_show(data)}")
    return _CONFIG.parse(dict(data or {}), "", ctx)


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain YAML-ready data with every field present; config_from_dict reverses it."""
    return _CONFIG.dump(config)

