"""A search space of cells: random cells, mutations, and the one-line text form.

Mutations follow the benchmarks' practice. NAS-Bench-101, ``bitwise`` (the dataset's
reference notebook): every upper-triangle bit flips with probability rate / vertices
and every interior op is redrawn (to a different op) with probability rate / interior
vertices; ``single``: exactly one edge flip or one op change. NAS-Bench-201, ``single``:
one edge gets a different op; ``bitwise``: every edge gets a different op with
probability rate / 6. A mutant that breaks a limit is drawn again; one that compiles to
its parent's network (same hash: a NAS-Bench-101 mutant pruned to its parent's phenotype,
a NAS-Bench-201 mutant with nodes 1 and 2 swapped) is kept: the evaluation cache answers
it.

Text forms: a NAS-Bench-201 cell is its string ``|op~0|+...``; a NAS-Bench-101 cell is one
line of JSON, ``{"matrix": [[...]], "ops": [...]}``.
"""
from __future__ import annotations

import json

import numpy as np

from evozero.config import Nas
from evozero.errors import EvozeroError
from evozero.nas.spaces.cells import INPUT, NB201_OPS, OUTPUT, Nb101Cell, Nb201Cell

Cell = Nb101Cell | Nb201Cell
# Draws before a space is declared unable to produce a valid cell.
_MAX_DRAWS = 10_000


class CellSpace:
    """The cells one search explores (``nas.space`` with its limits)."""

    def __init__(self, nas: Nas) -> None:
        self.nas = nas
        self.limits = {"max_vertices": nas.max_vertices, "max_edges": nas.max_edges,
                       "allowed_ops": nas.nb101_ops}

    # -- text --------------------------------------------------------------------------

    def text(self, cell: Cell) -> str:
        """The one-line text form of ``cell``."""
        if isinstance(cell, Nb201Cell):
            return str(cell)
        return json.dumps({"matrix": [list(row) for row in cell.matrix], "ops": list(cell.ops)},
                          separators=(",", ":"))

    def parse(self, text: str) -> Cell:
        """A cell of this space from its text form (precise errors for bad text)."""
        text = text.strip()
        if self.nas.space == "nb201":
            return Nb201Cell.parse(text)
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as error:
            raise EvozeroError(f"{text[:60]!r}: a NAS-Bench-101 cell is one line of JSON "
                               f"({str(error) or 'nested too deeply'})") from None
        if not isinstance(data, dict) or set(data) != {"matrix", "ops"}:
            raise EvozeroError(f"{text[:60]!r}: a NAS-Bench-101 cell is a JSON object with "
                               f"keys matrix and ops")
        return Nb101Cell.make(data["matrix"], data["ops"], **self.limits)

    # -- drawing -----------------------------------------------------------------------

    def random(self, rng: np.random.Generator) -> Cell:
        """A uniformly drawn valid cell (NAS-Bench-101: every vertex count at the limit,
        each edge present with probability 1/2)."""
        if self.nas.space == "nb201":
            return Nb201Cell(tuple(NB201_OPS[i] for i in rng.integers(len(NB201_OPS), size=6)))
        size = self.nas.max_vertices
        for _ in range(_MAX_DRAWS):
            matrix = np.triu(rng.integers(0, 2, size=(size, size)), 1)
            interior = [self.nas.nb101_ops[i]
                        for i in rng.integers(len(self.nas.nb101_ops), size=size - 2)]
            cell = self._valid(matrix, [INPUT, *interior, OUTPUT])
            if cell is not None:
                return cell
        raise EvozeroError(f"no valid NAS-Bench-101 cell found in {_MAX_DRAWS} draws with "
                           f"max_vertices {size} and max_edges {self.nas.max_edges}")

    def mutate(self, cell: Cell, rng: np.random.Generator) -> Cell:
        """A mutant of ``cell`` (see the module docstring)."""
        for _ in range(_MAX_DRAWS):
            mutant = (self._mutate_201(cell, rng) if isinstance(cell, Nb201Cell)
                      else self._mutate_101(cell, rng))
            if mutant is not None:
                return mutant
        raise EvozeroError(f"no valid mutant of {self.text(cell)} found in {_MAX_DRAWS} draws")

    def _valid(self, matrix: np.ndarray, ops: list[str]) -> Nb101Cell | None:
        try:
            return Nb101Cell.make(matrix, ops, **self.limits)
        except EvozeroError:
            return None

    @staticmethod
    def _other_op(op: str, choices: tuple[str, ...], rng: np.random.Generator) -> str:
        others = [c for c in choices if c != op]
        return others[rng.integers(len(others))] if others else op

    def _mutate_201(self, cell: Nb201Cell, rng: np.random.Generator) -> Nb201Cell:
        ops = list(cell.edge_ops)
        if self.nas.mutation == "single":
            edge = int(rng.integers(len(ops)))
            ops[edge] = self._other_op(ops[edge], NB201_OPS, rng)
        else:
            for hit in np.flatnonzero(rng.random(len(ops)) < self.nas.mutation_rate / len(ops)):
                ops[hit] = self._other_op(ops[hit], NB201_OPS, rng)
        return Nb201Cell(tuple(ops))

    def _mutate_101(self, cell: Nb101Cell, rng: np.random.Generator) -> Nb101Cell | None:
        matrix = np.array(cell.matrix, dtype=np.int64)
        ops = list(cell.ops)
        size = len(ops)
        choices = self.nas.nb101_ops
        if self.nas.mutation == "single":
            edges = [(i, j) for i in range(size) for j in range(i + 1, size)]
            changes = len(edges) + (size - 2) * (len(choices) > 1)
            pick = int(rng.integers(changes))
            if pick < len(edges):
                i, j = edges[pick]
                matrix[i, j] = 1 - matrix[i, j]
            else:
                vertex = pick - len(edges) + 1
                ops[vertex] = self._other_op(ops[vertex], choices, rng)
        else:
            rate = self.nas.mutation_rate
            flips = np.triu(rng.random((size, size)) < rate / size, 1)
            matrix = np.where(flips, 1 - matrix, matrix)
            for vertex in range(1, size - 1):
                if rng.random() < rate / max(size - 2, 1):
                    ops[vertex] = self._other_op(ops[vertex], choices, rng)
        return self._valid(matrix, ops)


def nb201_neighbours(ops: np.ndarray) -> np.ndarray:
    """Every cell one edge away from the NAS-Bench-201 cell of op numbers ``ops`` (6,):
    ``(24, 6)``, edge by edge, ops in ``NB201_OPS`` order."""
    ops = np.asarray(ops, dtype=np.int64)
    edges, choices = len(ops), len(NB201_OPS)
    neighbours = np.repeat(ops[None], edges * (choices - 1), axis=0)
    for edge in range(edges):
        others = [op for op in range(choices) if op != ops[edge]]
        neighbours[edge * (choices - 1):(edge + 1) * (choices - 1), edge] = others
    return neighbours
