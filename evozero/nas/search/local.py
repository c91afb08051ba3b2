"""Local search over NAS-Bench-201 cells: from the current cell, evaluate each neighbour
(one edge's op changed; 24 of them) not evaluated before, in random order; when all are
known, move to the best neighbour if it beats the current cell, else the current cell is
a local optimum and the search restarts from a random cell it has not evaluated.

Every cell evaluated is remembered (index and fitness, at most the 15,625 cells), so a
neighbour is never evaluated twice and a restart never lands on a known cell.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from evozero.errors import EvozeroError
from evozero.nas.search.strategy import CellStrategy, check_fields, check_indices
from evozero.nas.spaces.space import nb201_neighbours
from evozero.nas.table.store import NB201_CELLS, cell_ops, ops_index


def neighbour_indices(index: int) -> np.ndarray:
    """The indices of the 24 cells one edge away from cell ``index``."""
    return ops_index(nb201_neighbours(cell_ops([index])[0]))


class LocalSearch(CellStrategy):
    """Local search with random restarts (see the module docstring)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.seen: dict[int, float] = {}     # cell index -> fitness (failed: -inf)
        self._unseen = np.ones(NB201_CELLS, dtype=bool)
        self.current: int | None = None      # None: the next cell is a random start
        self.pending: list[int] = []         # neighbours of the current cell still to try

    def ask(self, rng: np.random.Generator) -> tuple[int, int]:
        """The next untried neighbour of the current cell; when none is left, the next
        after moving to the best neighbour, or a random start at a local optimum."""
        while True:
            if self.current is None:
                unseen = np.flatnonzero(self._unseen)
                self._arrive(int(unseen[rng.integers(len(unseen))]), rng)
                assert self.current is not None
                return self.current, self.signal_epoch
            while self.pending:
                index = self.pending.pop()
                if index not in self.seen:
                    return index, self.signal_epoch
            best = max((int(n) for n in neighbour_indices(self.current)),
                       key=lambda n: self.seen[n])
            if self.seen[best] > self.seen[self.current]:
                self._arrive(best, rng)
            else:
                self.current = None

    def exhausted(self) -> bool:
        """Whether every cell of the space has been evaluated."""
        return len(self.seen) >= NB201_CELLS

    def tell(self, index: int, epochs: int, fitness: float) -> None:
        """Remember the cell's fitness."""
        self.seen[index] = -np.inf if fitness != fitness else float(fitness)
        self._unseen[index] = False

    def _arrive(self, index: int, rng: np.random.Generator) -> None:
        neighbours = neighbour_indices(index)
        self.current = index
        self.pending = [int(n) for n in neighbours[rng.permutation(len(neighbours))]]

    def state(self) -> dict[str, Any]:
        """The cells evaluated with their fitness, the current cell, its untried
        neighbours."""
        return {"seen": list(self.seen), "fitness": list(self.seen.values()),
                "current": -1 if self.current is None else self.current,
                "pending": list(self.pending)}

    def restore(self, state: Any, where: str) -> None:
        """See :meth:`CellStrategy.restore`."""
        check_fields(state, {"seen": list, "fitness": list, "current": int, "pending": list},
                     where)
        seen = check_indices(state["seen"], f"{where}: seen")
        check_indices(state["pending"], f"{where}: pending")
        fitness = state["fitness"]
        if len(fitness) != len(seen) or not all(isinstance(f, float) for f in fitness):
            raise EvozeroError(f"{where}: fitness must hold one number per seen cell")
        if not -1 <= state["current"] < NB201_CELLS:
            raise EvozeroError(f"{where}: current must be a cell index or -1")
        self.seen = dict(zip(seen, fitness))
        self._unseen = np.ones(NB201_CELLS, dtype=bool)
        self._unseen[seen] = False
        self.current = None if state["current"] < 0 else state["current"]
        self.pending = list(state["pending"])
