"""BOHB over NAS-Bench-201 cells: Hyperband's brackets of successive halving over epochs,
with new cells drawn from a TPE-style model instead of at random.

**Brackets.** The rungs are ASHA's (:func:`evozero.nas.search.asha.rung_epochs`), s_max + 1
of them. Bracket s (s_max, s_max - 1, ..., 0, then again) starts
ceil((s_max + 1) / (s + 1) x eta^s) cells at rung s_max - s and keeps the best 1/eta of
each stage for the next rung (floor of n / eta^i), one cell at a time, as one worker runs
it. How a cell reaches a higher rung is as in ASHA (a table continues the recorded run; real
training trains again for the rung's epochs).

**Model.** Every result is kept per rung. A new cell comes from the model of the highest
rung with at least d + 2 = 8 results (d = 6 edges): the best ``top_percent`` % of them (at
least d + 1) are the good set, the next ones (at least d + 1) the bad set; each is a
product of Aitchison-Aitken kernels, one per edge, whose bandwidth is the normal-reference
rule 1.06 sigma n^(-1/(d + 4)) clipped to [``min_bandwidth``, 4/5] (4/5: a uniform draw
over five ops). ``samples`` candidates are drawn from the good set (a random good cell,
each edge kept with probability 1 - bandwidth, else a random op, as BOHB draws a
categorical parameter: its ``bandwidth_factor`` widens continuous ones only, and NAS-Bench-201
has none) and
the one with the highest l(x) / g(x) is taken; with probability ``random_fraction``, or
while no rung has enough results, the cell is random.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from evozero.errors import EvozeroError
from evozero.nas.search.asha import rung_epochs
from evozero.nas.search.strategy import CellStrategy, check_fields, check_indices
from evozero.nas.spaces.cells import NB201_OPS
from evozero.nas.table.store import NB201_CELLS, cell_ops, ops_index

_EDGES, _OPS = 6, len(NB201_OPS)
_MIN_POINTS = _EDGES + 1
_MAX_BANDWIDTH = (_OPS - 1) / _OPS


def bracket_sizes(s: int, s_max: int, eta: int) -> list[int]:
    """Cells at each stage of bracket ``s``: n_0 = ceil((s_max + 1) / (s + 1) x eta^s),
    then floor(n_0 / eta^i) for stages i = 1 .. s."""
    first = math.ceil((s_max + 1) / (s + 1) * eta ** s)
    return [max(first // eta ** i, 1) for i in range(s + 1)]


def bandwidths(ops: np.ndarray, minimum: float) -> np.ndarray:
    """Per-edge kernel bandwidths of a set of cells (op numbers ``(n, 6)``)."""
    sigma = ops.std(axis=0)
    return np.clip(1.06 * sigma * len(ops) ** (-1.0 / (_EDGES + 4)), minimum, _MAX_BANDWIDTH)


def density(points: np.ndarray, data: np.ndarray, bandwidth: np.ndarray) -> np.ndarray:
    """The Aitchison-Aitken kernel density of ``data`` at ``points`` (op numbers)."""
    same = points[:, None, :] == data[None, :, :]
    kernel = np.where(same, 1.0 - bandwidth, bandwidth / (_OPS - 1))
    return kernel.prod(axis=2).mean(axis=1)


def tpe_draw(good: np.ndarray, bad: np.ndarray, samples: int, minimum: float,
             rng: np.random.Generator) -> np.ndarray:
    """One cell's op numbers: of ``samples`` draws from the good set's kernels, the one
    with the highest good-to-bad density ratio."""
    good_width, bad_width = bandwidths(good, minimum), bandwidths(bad, minimum)
    centres = good[rng.integers(len(good), size=samples)]
    redraw = rng.random((samples, _EDGES)) < good_width
    draws = np.where(redraw, rng.integers(_OPS, size=(samples, _EDGES)), centres)
    ratio = density(draws, good, good_width) / np.maximum(
        density(draws, bad, bad_width), 1e-32)
    return draws[int(np.argmax(ratio))]


class Bohb(CellStrategy):
    """BOHB (see the module docstring)."""

    multi_fidelity = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        settings = self.nas.bohb
        low = settings.min_epochs or max(1, round(self.epochs * 12 / 200))
        self.rungs = rung_epochs(min(low, self.epochs), self.epochs, settings.eta)
        self.cells: list[list[int]] = [[] for _ in self.rungs]        # results per rung
        self.fitness: list[list[float]] = [[] for _ in self.rungs]
        self.bracket = len(self.rungs) - 1      # s of the running bracket
        self.stage = 0
        self.stage_cells: list[int] = []        # the stage's cells (drawn as they are asked)
        self.stage_fitness: list[float] = []    # results of the stage so far, in order

    def _sizes(self) -> list[int]:
        return bracket_sizes(self.bracket, len(self.rungs) - 1, self.nas.bohb.eta)

    def _rung(self) -> int:
        return len(self.rungs) - 1 - self.bracket + self.stage

    def ask(self, rng: np.random.Generator) -> tuple[int, int]:
        """The stage's next cell (a new one from the model in a bracket's first stage)."""
        done = len(self.stage_fitness)
        if done < len(self.stage_cells):
            return self.stage_cells[done], self.rungs[self._rung()]
        assert self.stage == 0
        cell = self._new_cell(rng)
        self.stage_cells.append(cell)
        return cell, self.rungs[self._rung()]

    def tell(self, index: int, epochs: int, fitness: float) -> None:
        """Record the result; a finished stage passes its best 1/eta on, a finished
        bracket starts the next."""
        value = -np.inf if fitness != fitness else float(fitness)
        rung = self.rungs.index(epochs)
        self.cells[rung].append(index)
        self.fitness[rung].append(value)
        self.stage_fitness.append(value)
        sizes = self._sizes()
        if len(self.stage_fitness) < sizes[self.stage]:
            return
        if self.stage + 1 < len(sizes):
            order = np.argsort(-np.asarray(self.stage_fitness), kind="stable")
            self.stage_cells = [self.stage_cells[k] for k in order[:sizes[self.stage + 1]]]
            self.stage += 1
        else:
            self.bracket = self.bracket - 1 if self.bracket > 0 else len(self.rungs) - 1
            self.stage, self.stage_cells = 0, []
        self.stage_fitness = []

    def _new_cell(self, rng: np.random.Generator) -> int:
        settings = self.nas.bohb
        model = next((r for r in range(len(self.rungs) - 1, -1, -1)
                      if len(self.fitness[r]) >= _MIN_POINTS + 1), None)
        if model is None or rng.random() < settings.random_fraction:
            return int(rng.integers(NB201_CELLS))
        order = np.argsort(-np.asarray(self.fitness[model]), kind="stable")
        count = len(order)
        good_count = max(_MIN_POINTS, settings.top_percent * count // 100)
        bad_count = max(_MIN_POINTS, (100 - settings.top_percent) * count // 100)
        ops = cell_ops(np.asarray(self.cells[model], dtype=np.int64)[order])
        good, bad = ops[:good_count], ops[good_count:good_count + bad_count]
        if len(bad) == 0:
            bad = ops[-_MIN_POINTS:]
        draw = tpe_draw(good, bad, settings.samples, settings.min_bandwidth, rng)
        return int(ops_index(draw[None])[0])

    def state(self) -> dict[str, Any]:
        """Every rung's results, the running bracket, its stage and that stage's cells and
        results."""
        return {"rungs": list(self.rungs), "cells": [list(c) for c in self.cells],
                "fitness": [list(f) for f in self.fitness],
                "bracket": self.bracket, "stage": self.stage,
                "stage_cells": list(self.stage_cells),
                "stage_fitness": list(self.stage_fitness)}

    def restore(self, state: Any, where: str) -> None:
        """See :meth:`CellStrategy.restore`."""
        check_fields(state, {"rungs": list, "cells": list, "fitness": list, "bracket": int,
                             "stage": int, "stage_cells": list, "stage_fitness": list}, where)
        if state["rungs"] != self.rungs:
            raise EvozeroError(f"{where}: rungs {state['rungs']}, but nas.bohb and the "
                               f"recipe give {self.rungs}")
        if not len(state["cells"]) == len(state["fitness"]) == len(self.rungs):
            raise EvozeroError(f"{where}: cells and fitness need one list per rung")
        for rung, (cells, fitness) in enumerate(zip(state["cells"], state["fitness"])):
            check_indices(cells, f"{where}: rung {rung} cells")
            if not isinstance(fitness, list) or len(fitness) != len(cells) \
                    or not all(isinstance(f, float) for f in fitness):
                raise EvozeroError(f"{where}: rung {rung} needs one fitness per cell")
        if not 0 <= state["bracket"] < len(self.rungs) \
                or not 0 <= state["stage"] <= state["bracket"]:
            raise EvozeroError(f"{where}: bracket and stage out of range")
        check_indices(state["stage_cells"], f"{where}: stage_cells")
        if len(state["stage_fitness"]) > len(state["stage_cells"]) or not all(
                isinstance(f, float) for f in state["stage_fitness"]):
            raise EvozeroError(f"{where}: stage_fitness must hold at most one number per "
                               f"stage cell")
        self.cells = [list(c) for c in state["cells"]]
        self.fitness = [list(f) for f in state["fitness"]]
        self.bracket, self.stage = state["bracket"], state["stage"]
        self.stage_cells = list(state["stage_cells"])
        self.stage_fitness = list(state["stage_fitness"])
