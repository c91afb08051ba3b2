"""Uniform weight sharing: random search with parameter sharing (RSPS) and single-path
one-shot (SPOS).

Both train the supernet one uniformly drawn cell per step (each edge's op drawn
uniformly, the same cell in every cell of the network, as NAS-Bench-201's RSPS), and
score cells with the shared weights on the whole validation split. RSPS then scores
``candidates`` distinct random cells and keeps the best; SPOS runs its evolution (a random
population, then generations of the best ``parents`` making mutants and uniform
crossovers of cells not scored before) and keeps the best cell it scored.
"""
from __future__ import annotations

import numpy as np

from evozero.nas.supernet.network import EDGES, OPS, menu_of
from evozero.nas.supernet.search import SupernetSearch, index_of, random_cells
from evozero.nas.table.store import cell_ops

# Draws of a new child before a generation settles for fewer (the space is small).
_MAX_DRAWS = 1000


class Rsps(SupernetSearch):
    """Random search with parameter sharing (see the module docstring)."""

    def step(self, x: np.ndarray, y: np.ndarray, lr: float, shot: int | None
             ) -> tuple[float, float]:
        """A weight step on a uniformly drawn cell."""
        return self.train_on(menu_of(self.uniform_ops(shot)), x, y, lr)

    def derive(self) -> np.ndarray:
        """The best of ``candidates`` random cells by shared-weight accuracy."""
        return self.best_of(random_cells(self.sampler, self.settings.candidates))


class Spos(Rsps):
    """Single-path one-shot: RSPS's supernet, SPOS's evolution (module docstring)."""

    def derive(self) -> np.ndarray:
        """The best cell the evolution scored."""
        spos = self.settings.spos
        scored: dict[int, float] = {}

        def score_all(cells: list[int]) -> None:
            fresh = [c for c in cells if c not in scored]
            for cell, value in zip(fresh, self.scores(np.array(fresh, dtype=np.int64))):
                scored[cell] = float(value)

        score_all([int(c) for c in random_cells(self.sampler, spos.population)])
        for _ in range(spos.generations - 1):
            parents = sorted(scored, key=lambda c: (-scored[c], c))[:spos.parents]
            children = self._children(parents, set(scored), spos.mutations, spos.crossovers)
            score_all(children)
            self.history.append({"generation_best": max(scored.values()),
                                 "scored": len(scored)})
        return cell_ops([max(sorted(scored), key=lambda c: scored[c])])[0]

    def _children(self, parents: list[int], seen: set[int], mutations: int,
                  crossovers: int) -> list[int]:
        rng = self.sampler
        spos = self.settings.spos
        parent_ops = cell_ops(parents)
        children: list[int] = []
        for kind, count in (("mutation", mutations), ("crossover", crossovers)):
            made = 0
            for _ in range(_MAX_DRAWS):
                if made == count:
                    break
                if kind == "mutation":
                    ops = parent_ops[rng.integers(len(parents))].copy()
                    redraw = rng.random(EDGES) < spos.mutation_probability
                    ops[redraw] = rng.integers(0, OPS, int(redraw.sum()))
                else:
                    a, b = parent_ops[rng.integers(len(parents), size=2)]
                    ops = np.where(rng.random(EDGES) < 0.5, a, b)
                child = index_of(ops)
                if child not in seen:
                    seen.add(child)
                    children.append(child)
                    made += 1
        return children
