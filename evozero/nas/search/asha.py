"""Asynchronous successive halving (ASHA) over NAS-Bench-201 cells, one island being one
worker that asks for a job whenever it is free.

Rungs are epochs of training: the recipe's epochs R, then R / eta, R / eta^2, ...
rounded, down to ``min_epochs`` (R = 27, eta = 3, min 1: 1, 3, 9, 27; R = 200, eta = 3,
min 12: 22, 67, 200, NAS-Bench-201's BOHB budgets). A job is the best result in the top
1/eta of a rung (by that rung's accuracy; ties to the earlier result) not yet promoted
from it, trained at the next rung, looking from the highest rung down; when no rung has
one, a new random cell (not yet at the bottom rung) at the bottom rung.

How a promoted cell reaches the higher rung: on a table it continues its recorded
training (the table holds every epoch of one run; the clock is charged the epochs added,
and the same seed answers); in real training it is trained again from its seed for the
rung's epochs with the recipe's other settings (its schedule spans those epochs), so no
weights are kept between rungs and memory stays that of one network.
"""
from __future__ import annotations

import bisect
import heapq
from typing import Any

import numpy as np

from evozero.errors import EvozeroError
from evozero.nas.search.strategy import CellStrategy, check_fields, check_indices
from evozero.nas.table.store import NB201_CELLS

# Draws of a new bottom-rung cell before one already there is accepted.
_MAX_DRAWS = 100


def rung_epochs(min_epochs: int, max_epochs: int, eta: int) -> list[int]:
    """The rungs' epochs, lowest first: ``max_epochs / eta^k`` rounded, for every k
    that keeps it at or above ``min_epochs`` (at least the top rung)."""
    rungs = [max_epochs]
    while max_epochs / eta ** len(rungs) >= min_epochs:
        rungs.append(round(max_epochs / eta ** len(rungs)))
    return sorted(set(rungs))


class Asha(CellStrategy):
    """ASHA (see the module docstring)."""

    multi_fidelity = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        settings = self.nas.asha
        self.rungs = rung_epochs(min(settings.min_epochs, self.epochs), self.epochs,
                                 settings.eta)
        self._load([[] for _ in self.rungs], [[] for _ in self.rungs],
                   [[] for _ in self.rungs])

    def _load(self, cells: list[list[int]], fitness: list[list[float]],
              promoted: list[list[int]]) -> None:
        self.cells = cells          # per rung, its results in order
        self.fitness = fitness
        self.promoted = promoted    # per rung, the positions of its results promoted
        self._bottom = set(cells[0])
        # Per rung, the ranking keys (-fitness, position) of the results not promoted (a
        # heap) and of those promoted (sorted): the best unpromoted result is in the top
        # 1/eta exactly when fewer than len // eta promoted results rank above it.
        self._waiting: list[list[tuple[float, int]]] = []
        self._ranked: list[list[tuple[float, int]]] = []
        for rung_fitness, rung_promoted in zip(fitness, promoted):
            done = set(rung_promoted)
            keys = [(-f, k) for k, f in enumerate(rung_fitness)]
            waiting = [key for key in keys if key[1] not in done]
            heapq.heapify(waiting)
            self._waiting.append(waiting)
            self._ranked.append(sorted(key for key in keys if key[1] in done))

    def ask(self, rng: np.random.Generator) -> tuple[int, int]:
        """The next job (see the module docstring)."""
        eta = self.nas.asha.eta
        for rung in range(len(self.rungs) - 2, -1, -1):
            waiting, ranked = self._waiting[rung], self._ranked[rung]
            if waiting and bisect.bisect_left(ranked, waiting[0]) < len(self.cells[rung]) // eta:
                key = heapq.heappop(waiting)
                bisect.insort(ranked, key)
                self.promoted[rung].append(key[1])
                return self.cells[rung][key[1]], self.rungs[rung + 1]
        for _ in range(_MAX_DRAWS):
            cell = int(rng.integers(NB201_CELLS))
            if cell not in self._bottom:
                break
        return cell, self.rungs[0]

    def tell(self, index: int, epochs: int, fitness: float) -> None:
        """Record the result in the rung of ``epochs``."""
        rung = self.rungs.index(epochs)
        value = -np.inf if fitness != fitness else float(fitness)
        heapq.heappush(self._waiting[rung], (-value, len(self.cells[rung])))
        self.cells[rung].append(index)
        self.fitness[rung].append(value)
        if rung == 0:
            self._bottom.add(index)

    def state(self) -> dict[str, Any]:
        """Every rung's results in order and the positions of those promoted from it."""
        return {"rungs": list(self.rungs), "cells": [list(c) for c in self.cells],
                "fitness": [list(f) for f in self.fitness],
                "promoted": [list(p) for p in self.promoted]}

    def restore(self, state: Any, where: str) -> None:
        """See :meth:`CellStrategy.restore`."""
        check_fields(state, {"rungs": list, "cells": list, "fitness": list, "promoted": list},
                     where)
        if state["rungs"] != self.rungs:
            raise EvozeroError(f"{where}: rungs {state['rungs']}, but nas.asha and the "
                               f"recipe give {self.rungs}")
        if not len(state["cells"]) == len(state["fitness"]) == len(state["promoted"]) \
                == len(self.rungs):
            raise EvozeroError(f"{where}: cells, fitness and promoted need one list per rung")
        for rung, (cells, fitness, promoted) in enumerate(zip(
                state["cells"], state["fitness"], state["promoted"])):
            check_indices(cells, f"{where}: rung {rung} cells")
            if not isinstance(fitness, list) or len(fitness) != len(cells) \
                    or not all(isinstance(f, float) for f in fitness):
                raise EvozeroError(f"{where}: rung {rung} needs one fitness per cell")
            if not isinstance(promoted, list) or len(set(promoted)) != len(promoted) \
                    or not all(isinstance(k, int) and 0 <= k < len(cells) for k in promoted):
                raise EvozeroError(f"{where}: rung {rung} promoted must list distinct "
                                   f"positions of its results")
        self._load([list(c) for c in state["cells"]], [list(f) for f in state["fitness"]],
                   [list(p) for p in state["promoted"]])
