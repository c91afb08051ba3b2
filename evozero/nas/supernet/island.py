"""An island of a supernet strategy (``strategy: rsps | spos | enas | darts | darts2 |
gdas | proxyless``), driven by the main process like every island.

It goes through three phases, one step each at a time, and checkpoints between them like
any island (a step stopped midway goes back to where it began, so kill -9 or Ctrl-C and a
resume give the same derived cell):

1. ``train``: one supernet epoch per step (:mod:`evozero.nas.supernet.search`); a method
   with architecture parameters or a controller reports the cell they derive after each
   epoch, scored with the shared weights (phase ``epoch``);
2. ``derive``: the method derives its cell (phase ``derived``, scored the same way);
3. ``retrain``: the derived cell trained from scratch with the run's ``nas.training``
   (the table's recipe, for a run on a table: then the same seed gives the table's own
   training), its validation accuracy the island's fitness (phase ``retrained``).

With ``nas.table`` every record also carries the cell's table accuracies (the mean over
the trained seeds). ``search_seconds`` counts the island's CPU seconds in the first two
phases: what the search cost.
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from evozero.config import Config, Nas
from evozero.errors import EvozeroError
from evozero.nas.devices.cost import DeviceProfile, cost_record
from evozero.nas.evaluate import Evaluator, evaluator_for
from evozero.nas.search.island import nas_key
from evozero.nas.search.lookup import TableLookup, lookup_for
from evozero.nas.spaces.cells import NB201_OPS, Nb201Cell
from evozero.nas.supernet.differentiable import Darts, Gdas, Proxyless
from evozero.nas.supernet.enas import Enas
from evozero.nas.supernet.network import EDGES, NONE, OPS
from evozero.nas.supernet.search import SupernetSearch, index_of
from evozero.nas.supernet.uniform import Rsps, Spos
from evozero.runs import stopflag
from evozero.runs.island import RUNNING, SPENT, STATUSES, IslandBase, IslandSpec
from evozero.runs.messages import Discovery, IslandResult, IslandSummary
from evozero.search.seeds import island_seed
from ops import neural

PHASES = ("train", "derive", "retrain", "done")


def calibrated(profile: DeviceProfile) -> bool:
    """Whether ``profile`` was measured (fitted step models or a lookup table), not only
    declared: a latency term in a loss must come from measurements."""
    return bool(profile.fitted or profile.lut)


def op_latencies(evaluator: Evaluator) -> tuple[float, np.ndarray]:
    """The run's profile's latency (ms, batch 1) of the network whose cells have no live
    edge, and per edge and op what that op on that edge alone adds to it."""
    profile = evaluator.profiles[evaluator.nas.profile]
    if not calibrated(profile):
        raise EvozeroError(f"nas.profile: {profile.name} is declared, not calibrated (no "
                           f"fitted step models or lookup table); proxyless's latency term "
                           f"needs measured latencies: run `evozero calibrate` and use host")

    def latency(ops: list[int]) -> float:
        arch = evaluator.architecture(Nb201Cell(tuple(NB201_OPS[op] for op in ops)))
        return float(cost_record(arch, {profile.name: profile})["latency_ms"][profile.name])

    fixed = latency([NONE] * EDGES)
    added = np.zeros((EDGES, OPS))
    for edge in range(EDGES):
        for op in range(OPS):
            ops = [NONE] * EDGES
            ops[edge] = op
            added[edge, op] = latency(ops) - fixed
    return fixed, added


def make_search(strategy: str, nas: Nas, evaluator: Evaluator, seed: int) -> SupernetSearch:
    """The search object of a supernet ``strategy``."""
    data = evaluator.data
    if strategy == "rsps":
        return Rsps(nas, data, seed)
    if strategy == "spos":
        return Spos(nas, data, seed)
    if strategy == "enas":
        return Enas(nas, data, seed)
    if strategy in ("darts", "darts2"):
        return Darts(nas, data, seed, second_order=strategy == "darts2")
    if strategy == "gdas":
        return Gdas(nas, data, seed)
    if strategy == "proxyless":
        return Proxyless(nas, data, seed, op_latencies(evaluator))
    raise EvozeroError(f"strategy {strategy!r} has no supernet")


class SupernetIsland(IslandBase):
    """One supernet search in a worker (see the module docstring)."""

    def __init__(self, spec: IslandSpec, snapshot: dict[str, Any] | None = None) -> None:
        # One BLAS thread: workers are one per core, and sums keep one order.
        threadpool_limits(1, user_api="blas")
        neural.retain_freed_memory()
        self.spec = spec
        self.config = spec.own_config
        nas: Nas = spec.section
        self.nas = nas
        self.key = nas_key(nas, self.config.seed)
        self.emigrants = 0              # islands of one supernet each: nothing to share
        self.kernel_seconds = 0.0
        self.evaluator = evaluator_for(nas, self.config.seed)
        self.table: TableLookup | None = lookup_for(nas) if nas.table is not None else None
        self.seed = island_seed(self.config.seed, spec.island, spec.experiment)
        self.search = make_search(self.config.strategy, nas, self.evaluator, self.seed)
        self.best_weights: dict[str, list[np.ndarray]] = {}
        if snapshot is None:
            self.meta: dict[str, Any] = {"round": 0, "status": RUNNING, "migrants": 0,
                                         "phase": "train", "search_seconds": 0.0,
                                         "derived": None, "best": None, "records": 0}
        else:
            where = f"island {spec.island + 1} snapshot"
            check_supernet_meta(snapshot, where)
            self.search.restore(snapshot["search"], f"{where}: search")
            self.meta = dict(snapshot["meta"])
            self.best_weights = {name: list(arrays)
                                 for name, arrays in snapshot["best_weights"].items()}

    def snapshot(self) -> dict[str, Any]:
        """The island's whole state (enough to reopen it exactly)."""
        return {"meta": dict(self.meta), "search": self.search.state(),
                "best_weights": {name: [np.array(a) for a in arrays]
                                 for name, arrays in self.best_weights.items()}}

    def result(self) -> IslandResult:
        """The derived cell retrained, with the search's summary."""
        best = self.meta["best"]
        if best is None:
            raise EvozeroError("the island ended before its derived cell was retrained")
        summary = {"strategy": self.config.strategy,
                   "search_seconds": self.meta["search_seconds"],
                   "derived": self.meta["derived"], "history": self.search.history}
        return {"candidate": best["genome"], "search_fitness": best["fitness"],
                "select_fitness": best["fitness"],
                "details": dict(best, weights=self.best_weights, supernet=summary,
                                supernet_weights=self.search.weight_groups())}

    # -- phases -------------------------------------------------------------------------

    def _step(self, events: list[Discovery], evaluations: list[dict[str, Any]]) -> bool:
        phase = self.meta["phase"]
        if phase == "done":
            self.meta["status"] = SPENT
            return True
        before = (self.search.state(), dict(self.meta))
        started, cpu = time.monotonic(), time.thread_time()
        try:
            records = self._phase(phase)
        except stopflag.Stopped:
            state, self.meta = before
            self.search.restore(state, "state")
            return False
        if phase != "retrain":
            self.meta["search_seconds"] += time.thread_time() - cpu
        self.kernel_seconds += time.monotonic() - started
        for record in records:
            self.meta["records"] += 1
            record.update(island_individual=self.meta["records"],
                          search_seconds=round(self.meta["search_seconds"], 3))
            evaluations.append(record)
        if records and records[-1]["phase"] == "retrained":
            events.append(self._retrained(records[-1]))
        return True

    def _phase(self, phase: str) -> list[dict[str, Any]]:
        search = self.search
        if phase == "train":
            epoch = search.train_epoch()
            if search.epoch >= search.total_epochs:
                self.meta["phase"] = "derive"
            ops = search.epoch_cell()
            if ops is None:
                return []
            return [self._record(ops, search.score(ops), "epoch", epoch)]
        if phase == "derive":
            ops = search.derive()
            self.meta["derived"] = {"genome": str(_cell(ops)), "index": index_of(ops)}
            self.meta["phase"] = "retrain"
            return [self._record(ops, search.score(ops), "derived", None)]
        return [self._retrain()]

    def _record(self, ops: np.ndarray, score: float, phase: str,
                epoch: dict[str, Any] | None) -> dict[str, Any]:
        cell = _cell(ops)
        record: dict[str, Any] = {
            "genome": str(cell), "hash": cell.hash(), "cache_hit": False,
            "valid_accuracy": score, "test_accuracy": math.nan, "fitness": score,
            "cost": None, "seed": self.seed, "seconds": 0.0, "epochs": search_epoch(epoch),
            "hurdle_stopped": False, "first_epoch_accuracy": math.nan, "train_steps": 0,
            "losses": [] if epoch is None else [epoch["train_loss"]],
            "inherited_layers": 0, "parent": None, "phase": phase}
        if epoch is not None and "alphas" in epoch:
            record["alphas"] = epoch["alphas"]
        record.update(self._table_accuracies(ops))
        return record

    def _table_accuracies(self, ops: np.ndarray) -> dict[str, float]:
        # The table's figures of the cell: the mean over its trained seeds, last epoch.
        if self.table is None:
            return {}
        table = self.table.table
        row = int(table.row[index_of(ops)])
        return {"table_valid_accuracy": float(np.nanmean(table.valid_accuracy[row, :, -1])),
                "table_test_accuracy": float(np.nanmean(table.test_accuracy[row]))}

    def _retrain(self) -> dict[str, Any]:
        derived = self.meta["derived"]
        cell = Nb201Cell.parse(derived["genome"])
        evaluator = self.evaluator
        arch = evaluator.architecture(cell)
        started = time.perf_counter()
        seed = evaluator.train_seed(cell.hash())
        result, model, _ = evaluator.train(arch, seed)
        ops = np.array([NB201_OPS.index(op) for op in cell.edge_ops])
        record = self._record(ops, result.valid_accuracy, "retrained", None)
        record.update(test_accuracy=result.test_accuracy, cost=evaluator.cost(arch),
                      seed=seed, seconds=round(time.perf_counter() - started, 6),
                      epochs=result.epochs, train_steps=result.steps, losses=result.losses)
        self.best_weights = model.named_state()
        self.meta["best"] = {name: record[name] for name in (
            "genome", "hash", "fitness", "valid_accuracy", "test_accuracy", "cost", "epochs")}
        self.meta["best"].update({k: record[k] for k in ("table_valid_accuracy",
                                                         "table_test_accuracy") if k in record})
        self.meta["phase"] = "done"
        self.meta["status"] = SPENT
        return record

    def _retrained(self, record: dict[str, Any]) -> Discovery:
        return {"island": self.spec.island, "island_individual": record["island_individual"],
                "island_train_steps": self.search.steps, "fitness": record["fitness"],
                "candidate": record["genome"], "select_fitness": None}

    # -- what migration and the summary need --------------------------------------------

    def _individuals(self) -> int:
        return self.search.epoch

    def _population_size(self) -> int:
        return 0

    def _emigrant_fields(self, chosen: np.ndarray) -> dict[str, Any]:
        return {"fitness": np.zeros(0)}

    def _immigrate(self, arrivals: dict[str, Any], evaluations: list[dict[str, Any]]
                   ) -> None:
        """Never called: a supernet island sends and takes no migrants."""

    def _summary(self) -> IslandSummary:
        best = self.meta["best"]
        return {"individuals": self.search.epoch, "train_steps": self.search.steps,
                "structure_hits": 0, "fingerprint_hits": 0,
                "full_evaluations": self.meta["records"], "hurdle_stops": 0,
                "budget_rejects": 0, "saved_train_steps": 0,
                "best": best["fitness"] if best else -1.0, "filled": 0,
                "migrants": 0, "mean": 0.0, "stdev": 0.0,
                "kernel_seconds": self.kernel_seconds, "progress": self._progress()}

    def _progress(self) -> float:
        # Training is most of the work; deriving and retraining count as one epoch each.
        done = self.search.epoch + PHASES.index(self.meta["phase"])
        return min(done / (self.search.total_epochs + 2), 1.0)


def search_epoch(epoch: dict[str, Any] | None) -> int:
    """The supernet epoch a record was made after (0: after the training)."""
    return 0 if epoch is None else int(epoch["epoch"])


def _cell(ops: np.ndarray) -> Nb201Cell:
    return Nb201Cell(tuple(NB201_OPS[int(op)] for op in ops))


def check_supernet_meta(snapshot: Any, where: str) -> None:
    """Raise EvozeroError unless ``snapshot`` has a supernet island's parts and meta (the
    search's state is checked when the island takes it)."""
    if not isinstance(snapshot, dict) or any(
            key not in snapshot for key in ("meta", "search", "best_weights")):
        raise EvozeroError(f"{where}: not a supernet island's snapshot (expected meta, "
                           f"search, best_weights)")
    meta = snapshot["meta"]
    keys = {"round", "status", "migrants", "phase", "search_seconds", "derived", "best",
            "records"}
    if not isinstance(meta, dict) or set(meta) != keys or meta["status"] not in STATUSES \
            or meta["phase"] not in PHASES \
            or not isinstance(meta["search_seconds"], (int, float)) \
            or not math.isfinite(meta["search_seconds"]) or meta["search_seconds"] < 0 \
            or not all(isinstance(meta[k], int) and meta[k] >= 0
                       for k in ("round", "migrants", "records")) \
            or (meta["phase"] in ("retrain", "done")) != isinstance(meta["derived"], dict) \
            or (meta["phase"] == "done") != isinstance(meta["best"], dict):
        raise EvozeroError(f"{where}: meta is not a supernet island's (keys "
                           f"{', '.join(sorted(keys))}; phase one of {', '.join(PHASES)}, "
                           f"with a derived cell from retrain on and a best when done)")
    derived = meta["derived"]
    if derived is not None:
        try:
            Nb201Cell.parse(derived.get("genome", ""))
        except (EvozeroError, AttributeError):
            raise EvozeroError(f"{where}: the derived cell is not a NAS-Bench-201 cell") \
                from None
    if not isinstance(snapshot["best_weights"], dict):
        raise EvozeroError(f"{where}: best_weights must map layer names to arrays")


def check_supernet_snapshot(snapshot: Any, config: Config, nas: Nas, where: str) -> None:
    """Raise EvozeroError unless ``snapshot`` is one a supernet island of ``config`` may
    continue from (its parts, meta and the whole search state against this config's
    supernet)."""
    check_supernet_meta(snapshot, where)
    evaluator = evaluator_for(nas, config.seed)
    search = make_search(config.strategy, nas, evaluator, 0)
    search.restore(snapshot["search"], f"{where}: search")
