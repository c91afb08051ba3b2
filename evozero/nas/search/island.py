"""One island of a neural architecture search: regularized evolution, random search or
one of the strategies of :mod:`evozero.nas.search.strategy` over cells, driven by the main
process exactly like a program island (the advance loop, replies and migration of
:class:`evozero.runs.island.IslandBase`); it reads its settings from the nas section its
spec carries.

Each child is drawn (random while the population fills, then the winner of a tournament
mutated, or always random for ``strategy: random``), compiled and costed; a child over a
constraint is rejected before any training and another drawn. A child whose isomorphism
hash is in the cache is not trained again: it takes the cached result (a cache hit, still
counted as an individual and still aged in the population). Others train briefly; a
hurdle may stop them after the first epoch. Every evaluated network becomes one record of
the run's ``evaluations.jsonl``.

The other strategies ask for a cell and its epochs and are told its fitness; they decide
from their own evaluations only (migrants join the population that migration draws from,
not the strategy's state).

With a table (``nas.table``) a child's training is a lookup
(:mod:`evozero.nas.search.lookup`): no network is built, and the island's clock of
simulated search seconds advances by what the training would have taken; a cache hit
costs nothing, as in real training.

With ``objective.kind: pareto`` the tournament's winner is drawn from the sample's
non-dominated members (higher accuracy, lower cost); the island's best is its most
accurate network.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from evozero.config import Config, Nas
from evozero.config.cell_search import CELL_STRATEGIES
from evozero.errors import EvozeroError
from evozero.nas.evaluate import Evaluator, evaluator_for
from evozero.nas.search.asha import Asha
from evozero.nas.search.bohb import Bohb
from evozero.nas.search.local import LocalSearch
from evozero.nas.search.lookup import TableLookup, lookup_for
from evozero.nas.search.pareto import cost_of, dominated
from evozero.nas.search.predictor import PredictorSearch
from evozero.nas.search.reinforce import Reinforce
from evozero.nas.search.strategy import CellStrategy
from evozero.nas.spaces.space import CellSpace
from evozero.nas.table.store import cell_index, cell_of_index, cell_ops
from evozero.nas.training.model import Model
from evozero.runs import stopflag
from evozero.runs.island import (
    RUNNING,
    SOLVED,
    SPENT,
    STATUSES,
    IslandBase,
    IslandSpec,
    emigrant_count,
    nan_lowest,
)
from evozero.runs.messages import Discovery, IslandResult, IslandSummary
from evozero.search.seeds import island_seed
from ops import neural

# Draws of a child before the constraints are declared unsatisfiable.
_MAX_REJECTS = 1000
_COUNTERS = ("individuals", "train_steps", "structure_hits", "full_evaluations",
             "hurdle_stops", "budget_rejects", "saved_train_steps")


def nas_key(nas: Nas, seed: int) -> str:
    """Islands with equal keys give a cell the same result, so migrants keep theirs."""
    return repr(nas) + repr(seed)


_MEMBER_KEYS = ("genome", "hash", "fitness", "valid_accuracy", "cost_value",
                "first_epoch_accuracy")


def make_strategy(config: Config, nas: Nas, rng: np.random.Generator) -> CellStrategy | None:
    """The strategy object of ``config.strategy`` (None for evolution and random, which
    the island runs itself); ``rng`` draws its initial state."""
    if config.strategy not in CELL_STRATEGIES:
        return None
    epochs = nas.training.epochs
    signal = nas.lookup.epoch or epochs
    if config.strategy == "reinforce":
        return Reinforce(nas, epochs, signal, rng)
    kinds: dict[str, Callable[[Nas, int, int], CellStrategy]] = {
        "asha": Asha, "bohb": Bohb, "local": LocalSearch, "predictor": PredictorSearch}
    return kinds[config.strategy](nas, epochs, signal)


def check_nas_snapshot(snapshot: Any, config: Config, nas: Nas, where: str) -> None:
    """Raise EvozeroError unless ``snapshot`` (see :meth:`NasIsland.snapshot`) is one a NAS
    island of ``config`` and its section ``nas`` may continue from: its meta, random state,
    counters, population (every genome a cell of this space), weights and, for a
    strategy of its own, that strategy's state well-formed. Snapshots written before the
    simulated clock and the strategies existed have neither: their clock is 0."""
    keys = ("meta", "rng", "counters", "population", "cache", "weights", "best_weights")
    if not isinstance(snapshot, dict) or any(key not in snapshot for key in keys):
        raise EvozeroError(f"{where}: not a NAS island snapshot (expected {', '.join(keys)})")
    meta = snapshot["meta"]
    if not isinstance(meta, dict) or meta.get("status") not in STATUSES \
            or not _whole(meta.get("round")) or not _whole(meta.get("migrants")) \
            or not _whole(meta.get("seed")) \
            or not (meta.get("best") is None or isinstance(meta["best"], dict)) \
            or not _seconds(meta.get("clock", 0.0)):
        raise EvozeroError(f"{where}: meta is not a NAS island's (status one of "
                           f"{', '.join(STATUSES)}; round, migrants, seed whole numbers >= 0; "
                           f"best null or a record; clock seconds >= 0)")
    try:
        np.random.default_rng().bit_generator.state = snapshot["rng"]
    except (TypeError, ValueError, KeyError) as error:
        raise EvozeroError(f"{where}: rng is not a random generator state ({error})") from None
    counters = snapshot["counters"]
    if not isinstance(counters, dict) or set(counters) != set(_COUNTERS) \
            or not all(_whole(value) for value in counters.values()):
        raise EvozeroError(f"{where}: counters must be {', '.join(_COUNTERS)}, each a whole "
                           f"number >= 0")
    population = snapshot["population"]
    if not isinstance(population, list) or len(population) > config.population_size:
        raise EvozeroError(f"{where}: population must be a list of at most "
                           f"{config.population_size} members (population_size)")
    space = CellSpace(nas)
    for k, member in enumerate(population):
        if not isinstance(member, dict) or any(key not in member for key in _MEMBER_KEYS):
            raise EvozeroError(f"{where}: population member {k} must have "
                               f"{', '.join(_MEMBER_KEYS)}")
        try:
            space.parse(member["genome"])
        except (EvozeroError, TypeError, AttributeError) as error:
            raise EvozeroError(f"{where}: population member {k}: {error}") from None
    if not isinstance(snapshot["cache"], dict) \
            or not all(isinstance(r, dict) for r in snapshot["cache"].values()):
        raise EvozeroError(f"{where}: cache must map cell hashes to evaluation records")
    layer_sets = [*snapshot["weights"].values(), snapshot["best_weights"]] \
        if isinstance(snapshot["weights"], dict) else [None]
    for layers in layer_sets:
        if not isinstance(layers, dict) or not all(
                isinstance(arrays, list) and all(isinstance(a, np.ndarray) and a.dtype.kind == "f"
                                                 for a in arrays)
                for arrays in layers.values()):
            raise EvozeroError(f"{where}: weights must map layer names to lists of float "
                               f"arrays")
    strategy = make_strategy(config, nas, np.random.default_rng(0))
    if strategy is not None:
        if "strategy" not in snapshot:
            raise EvozeroError(f"{where}: no state of the {config.strategy} strategy")
        strategy.restore(snapshot["strategy"], f"{where}: strategy")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _seconds(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) and value >= 0


class NasIsland(IslandBase):
    """One NAS island in a worker (see the module docstring)."""

    def __init__(self, spec: IslandSpec, snapshot: dict[str, Any] | None = None) -> None:
        self.spec = spec
        config = spec.own_config
        self.config = config
        nas: Nas = spec.section
        if nas.table is None:
            # One BLAS thread: workers are one per core, and sums keep one order
            # (reproducible).
            threadpool_limits(1, user_api="blas")
            neural.retain_freed_memory()
        self.space = CellSpace(nas)
        self.nas = nas
        # A table search trains nothing, so it loads no data set.
        self.table: TableLookup | None = lookup_for(nas) if nas.table is not None else None
        self.evaluator: Evaluator | None = (evaluator_for(nas, config.seed)
                                            if self.table is None else None)
        self.key = nas_key(nas, config.seed)
        self.emigrants = emigrant_count(config) if spec.config.migrate_every else 0
        self.kernel_seconds = 0.0
        if snapshot is None:
            seed = island_seed(config.seed, spec.island, spec.experiment)
            self.rng = np.random.default_rng(seed)
            self.meta: dict[str, Any] = {"round": 0, "status": RUNNING, "migrants": 0,
                                         "best": None, "seed": seed, "clock": 0.0}
            self.counters = dict.fromkeys(_COUNTERS, 0)
            self.population: list[dict[str, Any]] = []
            self.cache: dict[str, dict[str, Any]] = {}
            self.weights: dict[str, dict[str, list[np.ndarray]]] = {}
            self.best_weights: dict[str, list[np.ndarray]] = {}
            self.strategy = make_strategy(config, nas, self.rng)
        else:
            check_nas_snapshot(snapshot, config, nas, f"island {spec.island + 1} snapshot")
            self.meta = {"clock": 0.0, **snapshot["meta"]}
            self.rng = np.random.default_rng()
            self.rng.bit_generator.state = snapshot["rng"]
            self.counters = dict(snapshot["counters"])
            self.population = [dict(member) for member in snapshot["population"]]
            self.cache = dict(snapshot["cache"])
            self.weights = {h: {name: list(arrays) for name, arrays in state.items()}
                            for h, state in snapshot["weights"].items()}
            self.best_weights = {name: list(arrays)
                                 for name, arrays in snapshot["best_weights"].items()}
            self.strategy = make_strategy(config, nas, np.random.default_rng(0))
            if self.strategy is not None:
                self.strategy.restore(snapshot["strategy"], "strategy")
        self.seed = self.meta["seed"]
        # Weights (by layer name) of the network trained last.
        self._trained: dict[str, list[np.ndarray]] = {}

    # -- commands -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The island's whole state (enough to reopen it exactly)."""
        return {"meta": dict(self.meta), "rng": self.rng.bit_generator.state,
                "counters": dict(self.counters),
                "population": [dict(member) for member in self.population],
                "cache": dict(self.cache),
                "weights": {h: {name: [np.array(a) for a in arrays]
                                for name, arrays in state.items()}
                            for h, state in self.weights.items()},
                "best_weights": {name: [np.array(a) for a in arrays]
                                 for name, arrays in self.best_weights.items()},
                **({} if self.strategy is None else {"strategy": self.strategy.state()})}

    def result(self) -> IslandResult:
        """The island's best cell with its fitness (validation-based) and test accuracy."""
        best = self.meta["best"]
        if best is None:
            raise EvozeroError("the island ended without evaluating any network")
        return {"candidate": best["genome"], "search_fitness": best["fitness"],
                "select_fitness": best["fitness"],
                "details": dict(best, weights=self.best_weights)}

    # -- one child ----------------------------------------------------------------------

    def _step(self, events: list[Discovery], evaluations: list[dict[str, Any]]) -> bool:
        if self._spent():
            self.meta["status"] = SPENT
            return True
        started = time.monotonic()
        # Only real training can be stopped midway (a table child is one lookup).
        before = None if self.table is not None else (
            self.rng.bit_generator.state, dict(self.counters),
            self.strategy.state() if self.strategy is not None else None)
        try:
            record = self._child()
        except stopflag.Stopped:
            # Back to the last whole child, so the reply and a snapshot stay exact.
            assert before is not None
            self.rng.bit_generator.state, self.counters, strategy = before
            if self.strategy is not None:
                self.strategy.restore(strategy, "strategy")
            return False
        self.kernel_seconds += time.monotonic() - started
        evaluations.append(record)
        event = self._improved(record)
        if event is not None:
            events.append(event)
        return True

    def _individuals(self) -> int:
        return self.counters["individuals"]

    def _spent(self) -> bool:
        individuals, steps = self.spec.individuals, self.spec.train_steps
        seconds = self.nas.lookup.seconds
        return (0 <= individuals <= self.counters["individuals"]
                or 0 <= steps <= self.counters["train_steps"]
                or (seconds is not None and self.meta["clock"] >= seconds)
                or (self.strategy is not None and self.strategy.exhausted()))

    def _child(self) -> dict[str, Any]:
        config = self.config
        parent = None
        if self.strategy is not None:
            index, epochs = self.strategy.ask(self.rng)
            record = (self._look_up(index, None, epochs) if self.table is not None
                      else self._evaluate(cell_of_index(index), None, epochs))
            assert record is not None       # such strategies run without constraints
            self.strategy.tell(index, epochs, record["fitness"])
            return self._counted(record)
        for _ in range(_MAX_REJECTS):
            if config.strategy == "random" or len(self.population) < config.population_size:
                cell = self.space.random(self.rng)
            else:
                parent = self._tournament()
                cell = self.space.mutate(self.space.parse(parent["genome"]), self.rng)
            record = self._evaluate(cell, parent)
            if record is not None:
                break
            self.counters["budget_rejects"] += 1
        else:
            raise EvozeroError(f"{_MAX_REJECTS} children in a row broke nas.constraints; "
                               f"loosen the caps")
        return self._counted(record)

    def _counted(self, record: dict[str, Any]) -> dict[str, Any]:
        self.counters["individuals"] += 1
        record["island_individual"] = self.counters["individuals"]
        self._add(record)
        return record

    def _evaluate(self, cell: Any, parent: dict[str, Any] | None,
                  epochs: int | None = None) -> dict[str, Any] | None:
        """The evaluation record of ``cell`` trained for ``epochs`` (None: the recipe's;
        on a table, the signal epoch), or None when it breaks a constraint."""
        if self.table is not None:
            return self._look_up(cell_index(cell), parent, epochs or self.table.signal_epoch)
        evaluator = self.evaluator
        assert evaluator is not None
        started = time.perf_counter()
        full = epochs is None or epochs == evaluator.training.epochs
        cell_hash = cell.hash() if full else f"{cell.hash()}@{epochs}"
        genome = self.space.text(cell)
        cached = self.cache.get(cell_hash)
        if cached is not None:
            self.counters["structure_hits"] += 1
            return dict(cached, genome=genome, cache_hit=True, inherited_layers=0,
                        seconds=round(time.perf_counter() - started, 6),
                        parent=parent and parent["hash"])
        arch = evaluator.architecture(cell)
        cost = evaluator.cost(arch)
        if evaluator.violation(cost) is not None:
            return None
        seed = evaluator.train_seed(cell_hash)
        inherit = self.weights.get(parent["hash"]) if parent is not None else None
        result, model, inherited = evaluator.train(arch, seed, self._hurdle(), inherit,
                                                   epochs=None if full else epochs)
        self.counters["full_evaluations"] += 1
        self.counters["train_steps"] += result.steps
        if result.stopped:
            self.counters["hurdle_stops"] += 1
            per_epoch = result.steps // max(result.epochs, 1)
            self.counters["saved_train_steps"] += per_epoch * (
                evaluator.training.epochs - result.epochs)
        record = {"hash": cell_hash, "valid_accuracy": result.valid_accuracy,
                  "test_accuracy": result.test_accuracy,
                  "fitness": evaluator.fitness(result.valid_accuracy, cost),
                  "cost_value": evaluator.cost_value(cost, evaluator.nas.objective.cost),
                  "first_epoch_accuracy": result.first_epoch_accuracy,
                  "epochs": result.epochs, "hurdle_stopped": result.stopped,
                  "train_steps": result.steps, "losses": result.losses, "seed": seed,
                  "cost": cost}
        self.cache[cell_hash] = record
        self._trained = model.named_state()
        if evaluator.nas.weight_inheritance:
            self.weights[cell_hash] = self._trained
        return dict(record, genome=genome, cache_hit=False, inherited_layers=inherited,
                    seconds=round(time.perf_counter() - started, 6),
                    parent=parent and parent["hash"])

    def _look_up(self, index: int, parent: dict[str, Any] | None,
                 epochs: int) -> dict[str, Any]:
        """The table's record of cell ``index`` at ``epochs``. The clock advances by the
        simulated seconds of the training; a cell looked up before at fewer epochs
        continues that run (its seed, the seconds of the epochs added)."""
        table = self.table
        assert table is not None
        started = time.perf_counter()
        row = int(table.table.row[index])
        genome = table.genome(index)
        key = f"row{row}" if epochs == table.epochs else f"row{row}@{epochs}"
        parent_hash = parent and parent["hash"]
        cached = self.cache.get(key)
        if cached is not None:
            self.counters["structure_hits"] += 1
            return dict(cached, genome=genome, cache_hit=True, inherited_layers=0,
                        simulated_seconds=0.0,
                        search_clock=self.meta["clock"], parent=parent_hash,
                        seconds=round(time.perf_counter() - started, 6))
        before = next((self.cache[k] for e in range(epochs - 1, 0, -1)
                       if (k := f"row{row}@{e}") in self.cache), None)
        seeds = None if before is None else np.array([before["seed"]])
        looked = table.look_up(cell_ops(np.array([index])), epochs, self.rng, seeds)
        seconds = float(looked.seconds[0])
        if before is not None:
            seconds *= (epochs - before["epochs"]) / epochs
        self.meta["clock"] += seconds
        self.counters["full_evaluations"] += 1
        accuracy = float(looked.valid_accuracy[0])
        cost = table.cost(row)
        record = {"hash": key, "valid_accuracy": accuracy,
                  "test_accuracy": float(looked.test_accuracy[0]), "fitness": accuracy,
                  "cost_value": cost_of(cost, self.nas.objective.cost, self.nas.profile),
                  "first_epoch_accuracy": math.nan, "epochs": epochs,
                  "hurdle_stopped": False, "train_steps": 0, "losses": [],
                  "seed": int(looked.seeds[0]), "cost": cost}
        self.cache[key] = record
        return dict(record, genome=genome, cache_hit=False, inherited_layers=0,
                    simulated_seconds=seconds, search_clock=self.meta["clock"],
                    parent=parent_hash, seconds=round(time.perf_counter() - started, 6))

    def _hurdle(self) -> Any | None:
        hurdle = self.nas.hurdle
        if hurdle.accuracy is None and hurdle.percentile is None:
            return None
        threshold = -math.inf if hurdle.accuracy is None else hurdle.accuracy
        firsts = [m["first_epoch_accuracy"] for m in self.population
                  if not math.isnan(m["first_epoch_accuracy"])]
        if hurdle.percentile is not None and len(firsts) >= self.config.tournament_size:
            threshold = max(threshold, float(np.percentile(firsts, hurdle.percentile)))
        return lambda accuracy: accuracy < threshold

    def _tournament(self) -> dict[str, Any]:
        chosen = self.rng.choice(len(self.population), size=self.config.tournament_size,
                                 replace=False)
        sample = [self.population[i] for i in chosen]
        if self.nas.objective.kind != "pareto":
            return max(sample, key=lambda m: nan_lowest(m["fitness"]))
        points = [(nan_lowest(m["valid_accuracy"]), m["cost_value"]) for m in sample]
        front = [m for m, p in zip(sample, points) if not dominated(p, points)]
        return front[int(self.rng.integers(len(front)))]

    def _add(self, record: dict[str, Any]) -> None:
        member = {name: record[name] for name in ("genome", "hash", "fitness", "valid_accuracy",
                                                  "cost_value", "first_epoch_accuracy")}
        self.population.append(member)
        if len(self.population) > self.config.population_size:
            self.population.pop(0)      # the oldest goes, whatever its fitness
        if self.weights:
            alive = {m["hash"] for m in self.population}
            self.weights = {h: w for h, w in self.weights.items() if h in alive}

    def _rank(self, record: dict[str, Any]) -> tuple[float, float]:
        # A multi-fidelity strategy's best is the best at the most epochs reached.
        multi = self.strategy is not None and self.strategy.multi_fidelity
        return record.get("epochs", 0) if multi else 0, nan_lowest(record["fitness"])

    def _improved(self, record: dict[str, Any]) -> Discovery | None:
        best = self.meta["best"]
        if best is not None and not self._rank(record) > self._rank(best):
            return None
        self.meta["best"] = {name: record[name] for name in (
            "genome", "hash", "fitness", "valid_accuracy", "test_accuracy", "cost",
            "island_individual", "epochs")}
        if self.table is not None:
            self.meta["best"]["search_clock"] = self.meta["clock"]
        # A cache hit's weights were trained elsewhere (another island): not known here.
        self.best_weights = {} if record["cache_hit"] else self._trained
        event: Discovery = {"island": self.spec.island,
                            "island_individual": record["island_individual"],
                            "island_train_steps": self.counters["train_steps"],
                            "fitness": record["fitness"], "candidate": record["genome"],
                            "select_fitness": None}
        if self.table is not None:
            event["search_clock"] = self.meta["clock"]
        sufficient = self.spec.config.sufficient_fitness
        if sufficient is not None and record["fitness"] >= sufficient:
            event["select_fitness"] = record["fitness"]
            self.meta["status"] = SOLVED
        return event

    # -- migration ----------------------------------------------------------------------

    def _population_size(self) -> int:
        return len(self.population)

    def _emigrant_fields(self, chosen: np.ndarray) -> dict[str, Any]:
        # A member travels with its evaluation record, which an island of equal key keeps.
        members = [self.population[i] for i in chosen]
        return {"fitness": np.array([m["fitness"] for m in members], dtype=np.float64),
                "members": [dict(m, record=self.cache.get(m["hash"])) for m in members]}

    def _immigrate(self, arrivals: dict[str, Any], evaluations: list[dict[str, Any]]
                   ) -> None:
        members = arrivals["members"]
        self.meta["migrants"] += len(members)
        del self.population[:len(members)]          # migrants replace the oldest
        for member, key in zip(members, arrivals["keys"]):
            record = member["record"] if key == self.key else None
            if record is None:
                # Searched under other settings: its result here must be measured here.
                record = self._evaluate(self.space.parse(member["genome"]), None)
                if record is None:
                    continue
                record["island_individual"] = -1
                evaluations.append(record)
            else:
                self.cache.setdefault(member["hash"], record)
            self._add(dict(record, genome=member["genome"]))

    def _summary(self) -> IslandSummary:
        fitness = np.array([nan_lowest(m["fitness"]) for m in self.population]) \
            if self.population else np.zeros(1)
        best = self.meta["best"]
        summary: IslandSummary = dict(self.counters)   # type: ignore[assignment]
        # Program search's second cache has no counterpart here.
        summary.update({"fingerprint_hits": 0, "best": best["fitness"] if best else -1.0,
                        "filled": len(self.population), "migrants": self.meta["migrants"],
                        "mean": float(fitness.mean()), "stdev": float(fitness.std()),
                        "kernel_seconds": self.kernel_seconds})
        return summary


def warm_up(nas: Nas, seed: int) -> None:
    """Load the data and profiles and compile (or load from the cache) the layer kernels
    with one training step of a small network, so that forked workers inherit them."""
    evaluator = evaluator_for(nas, seed)
    space = CellSpace(nas)
    cell = space.random(np.random.default_rng(0))
    model = Model(evaluator.architecture(cell), seed=0)
    data = evaluator.data
    logits = model.forward(data.train_x[:4], training=True)
    _, dlogits = neural.softmax_cross_entropy(logits, data.train_y[:4])
    model.backward(dlogits)
    model.predict(data.valid_x[:4])
