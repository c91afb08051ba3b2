"""A cell's "training" looked up in the tabular benchmark (``nas.table``): the search
signal at the epochs asked for, the simulated seconds that training would have taken, and
what the table reports of the cell (test accuracy, params, FLOPs, latency).

Simulated time: a row's recorded seconds cover the recipe's whole training (every epoch
with its validation pass), so training to epoch e costs seconds x e / recipe epochs. With
``seed: random`` the seconds are those of the seed that answered; with ``mean`` the
seeds' mean. The table is loaded once per process and path.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evozero.config import Config, Nas
from evozero.errors import EvozeroError
from evozero.nas.table.recipe import recipe_mismatch, table_recipe
from evozero.nas.table.store import Table, cell_of_index, load_table, ops_index


@dataclass
class Looked:
    """What the table answers for a batch of cells trained to ``epochs`` epochs."""

    rows: np.ndarray            # int (n,): the networks' rows
    valid_accuracy: np.ndarray  # float (n,): the signal
    seeds: np.ndarray           # int (n,): the seed that answered (-1: the mean of them)
    seconds: np.ndarray         # float (n,): simulated seconds of that much training
    test_accuracy: np.ndarray   # float (n,): mean over trained seeds, final epoch


class TableLookup:
    """Batch lookups in one table for one nas section (see the module docstring)."""

    def __init__(self, table: Table, nas: Nas) -> None:
        self.table = table
        self.nas = nas
        self.epochs = table.epochs
        self.signal_epoch = nas.lookup.epoch or table.epochs
        trained = table.trained()
        self._trained = trained
        self._counts = trained.sum(axis=1)
        # Per row, its trained seeds first (so a draw below the count picks one of them).
        self._order = np.argsort(~trained, axis=1, kind="stable")
        self._test = np.nanmean(table.test_accuracy, axis=1)
        self._mean_seconds = np.nanmean(table.seconds, axis=1)
        self._mean_valid = np.nanmean(table.valid_accuracy, axis=1)
        profiles = table.profiles
        self._latency = {name: table.latency_ms[:, k] for k, name in enumerate(profiles)}
        self._genomes: dict[int, str] = {}

    def genome(self, index: int) -> str:
        """The text form of cell ``index`` (kept once made: a search asks again)."""
        text = self._genomes.get(index)
        if text is None:
            text = self._genomes[index] = str(cell_of_index(index))
        return text

    def nbytes(self) -> int:
        """Bytes the table and the lookup's per-row arrays hold."""
        table = sum(getattr(self.table, name).nbytes for name in (
            "row", "cell", "train_loss", "train_accuracy", "valid_accuracy",
            "test_accuracy", "seconds", "params", "flops", "latency_ms"))
        own = sum(a.nbytes for a in (self._trained, self._counts, self._order, self._test,
                                     self._mean_seconds, self._mean_valid))
        return table + own

    def rows(self, ops: np.ndarray) -> np.ndarray:
        """The rows of cells given by op numbers ``(n, 6)``."""
        return self.table.row[ops_index(ops)]

    def look_up(self, ops: np.ndarray, epochs: np.ndarray | int,
                rng: np.random.Generator, seeds: np.ndarray | None = None) -> Looked:
        """The table's answer for cells ``ops`` (op numbers ``(n, 6)``) trained to
        ``epochs`` (per cell or one for all); ``rng`` draws the answering seeds unless
        ``seeds`` gives them (a run continued to more epochs)."""
        rows = self.rows(ops)
        epoch = np.broadcast_to(np.asarray(epochs, dtype=np.int64), rows.shape)
        if self.nas.lookup.seed == "mean":
            valid = self._mean_valid[rows, epoch - 1]
            seconds = self._mean_seconds[rows]
            seeds = np.full(rows.shape, -1)
        else:
            if seeds is None:
                draws = (rng.random(rows.shape) * self._counts[rows]).astype(np.int64)
                seeds = self._order[rows, draws]
            valid = self.table.valid_accuracy[rows, seeds, epoch - 1]
            seconds = self.table.seconds[rows, seeds]
        return Looked(rows, valid.astype(np.float64), seeds,
                      seconds.astype(np.float64) * epoch / self.epochs,
                      self._test[rows].astype(np.float64))

    def cost(self, row: int) -> dict[str, object]:
        """The cost record the table holds for a row (params, FLOPs, latency)."""
        return {"params": int(self.table.params[row]), "flops": int(self.table.flops[row]),
                "latency_ms": {name: float(v[row]) for name, v in self._latency.items()}}


_LOOKUPS: dict[str, TableLookup] = {}


def lookup_for(nas: Nas) -> TableLookup:
    """The lookup of ``nas.table`` for the section ``nas``, loaded once per process."""
    assert nas.table is not None
    key = repr(nas)
    if key not in _LOOKUPS:
        _LOOKUPS[key] = TableLookup(load_table(nas.table), nas)
    return _LOOKUPS[key]


def check_table(config: Config, nas: Nas) -> None:
    """Refuse (EvozeroError naming ``nas.table``) a table that is missing, unreadable,
    built with another recipe, or without the cost the objective reports."""
    assert nas.table is not None
    try:
        lookup = lookup_for(nas)
    except EvozeroError as error:
        raise EvozeroError(f"nas.table: {error}") from None
    where = f"nas.table: {nas.table}"
    mismatch = recipe_mismatch(table_recipe(config), lookup.table.meta["recipe"])
    if mismatch is not None:
        raise EvozeroError(f"{where}: built with another recipe: {mismatch}")
    if nas.objective.cost == "latency_ms" and nas.profile not in lookup.table.profiles:
        raise EvozeroError(f"{where}: no latency for nas.profile {nas.profile!r} (the "
                           f"table has {', '.join(lookup.table.profiles)}); set nas.profile "
                           f"to one of them")
