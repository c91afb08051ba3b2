"""Predictor-guided search over NAS-Bench-201 cells (BANANAS' scheme): ``initial`` random
cells first; then, each round, an ensemble of small nets (:class:`MlpEnsemble`) is fitted
on every cell evaluated so far (path encoding to fitness), ranks proposals — ``mutations``
one-edge mutants of the best ten cells so far plus ``random`` random cells, never a cell
already evaluated — by independent Thompson sampling over the members' mean and spread,
and the best ``batch`` of them are evaluated, one per ask.

The ensemble is refitted from scratch each round with a generator drawn from the island's,
so the state a snapshot keeps is the evaluations and the round's queue.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from evozero.errors import EvozeroError
from evozero.nas.search.predictors import MlpEnsemble, nb201_path_encoding, thompson_pick
from evozero.nas.search.strategy import CellStrategy, check_fields, check_indices
from evozero.nas.spaces.space import nb201_neighbours
from evozero.nas.table.store import NB201_CELLS, cell_ops, ops_index

# Cells whose mutants are proposed each round (the best so far).
_PARENTS = 10


class PredictorSearch(CellStrategy):
    """BANANAS-style search (see the module docstring)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.cells: list[int] = []          # evaluated, in order
        self.fitness: list[float] = []
        self.queue: list[int] = []          # this round's picks not yet asked
        self._seen = np.zeros(NB201_CELLS, dtype=bool)

    def exhausted(self) -> bool:
        """Whether every cell of the space has been evaluated."""
        return len(self.cells) >= NB201_CELLS

    def ask(self, rng: np.random.Generator) -> tuple[int, int]:
        """The next pick of the round (a new round when none is left)."""
        settings = self.nas.predictor
        while self.queue:
            cell = self.queue.pop(0)
            if not self._seen[cell]:
                return cell, self.signal_epoch
        unseen = np.flatnonzero(~self._seen)
        if len(self.cells) < settings.initial:
            return int(unseen[rng.integers(len(unseen))]), self.signal_epoch
        proposals = self._proposals(rng, unseen)
        ensemble = MlpEnsemble(members=settings.members, epochs=settings.epochs)
        ensemble.fit(nb201_path_encoding(cell_ops(self.cells)), np.array(self.fitness),
                     np.random.default_rng(rng.integers(2**63)))
        mean, std = ensemble.predict(nb201_path_encoding(cell_ops(proposals)))
        picks = proposals[thompson_pick(mean, std, settings.batch, rng)]
        self.queue = [int(cell) for cell in picks[1:]]
        return int(picks[0]), self.signal_epoch

    def _proposals(self, rng: np.random.Generator, unseen: np.ndarray) -> np.ndarray:
        settings = self.nas.predictor
        order = np.argsort(-np.asarray(self.fitness), kind="stable")[:_PARENTS]
        parents = np.asarray(self.cells)[order]
        mutants = []
        for parent in parents[rng.integers(len(parents), size=settings.mutations)]:
            neighbours = nb201_neighbours(cell_ops([parent])[0])
            mutants.append(neighbours[rng.integers(len(neighbours))])
        proposals = ops_index(np.array(mutants)) if mutants else np.empty(0, np.int64)
        randoms = unseen[rng.integers(len(unseen), size=settings.random)]
        proposals = np.unique(np.concatenate([proposals, randoms]).astype(np.int64))
        proposals = proposals[~self._seen[proposals]]
        # Every mutant seen already: the random unseen cells stand in.
        return proposals if len(proposals) else unseen[rng.integers(len(unseen), size=1)]

    def tell(self, index: int, epochs: int, fitness: float) -> None:
        """Record the cell's fitness (a failed training ranks lowest: the lowest seen)."""
        value = float(fitness) if fitness == fitness else min(self.fitness, default=0.0)
        self.cells.append(index)
        self.fitness.append(value)
        self._seen[index] = True

    def state(self) -> dict[str, Any]:
        """The cells evaluated with their fitness and the round's remaining picks."""
        return {"cells": list(self.cells), "fitness": list(self.fitness),
                "queue": list(self.queue)}

    def restore(self, state: Any, where: str) -> None:
        """See :meth:`CellStrategy.restore`."""
        check_fields(state, {"cells": list, "fitness": list, "queue": list}, where)
        cells = check_indices(state["cells"], f"{where}: cells")
        check_indices(state["queue"], f"{where}: queue")
        fitness = state["fitness"]
        if len(fitness) != len(cells) or not all(isinstance(f, float) and np.isfinite(f)
                                                 for f in fitness):
            raise EvozeroError(f"{where}: fitness must hold one finite number per cell")
        self.cells, self.fitness, self.queue = list(cells), list(fitness), list(state["queue"])
        self._seen = np.zeros(NB201_CELLS, dtype=bool)
        self._seen[cells] = True
