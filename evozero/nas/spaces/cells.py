"""Cell genomes of the two NAS-Bench spaces: validation, pruning and isomorphism hashes.

**NAS-Bench-101 cells** (:class:`Nb101Cell`): a strictly upper-triangular 0/1 adjacency
matrix over V vertices (vertex 0 the input, V-1 the output) and one op per vertex. The
genome is kept as written (dead material included, so mutations can revive it); the
*phenotype* (:meth:`Nb101Cell.pruned`) drops every vertex that is not on a path from the
input to the output. Limits (vertices, edges counted on the pruned cell, ops) are the
benchmark's by default and configurable.

**NAS-Bench-201 cells** (:class:`Nb201Cell`): 4 nodes, every pair i < j joined by an edge
that carries one of five ops, written ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``. Nothing is
pruned: as in the benchmark, every edge but ``none`` is part of the network.

Both hash to the same kind of key (:func:`graph_hash`, the Weisfeiler-Lehman refinement the
NAS-Bench-101 dataset uses), computed on what the network runs (a NAS-Bench-101 cell's
pruned phenotype, a NAS-Bench-201 cell's live edges), so isomorphic cells (and NAS-Bench-101
genomes differing only in dead material) share one cache entry.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evozero.config.cell_search import NB101_OPS
from evozero.errors import EvozeroError

INPUT, OUTPUT = "input", "output"
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_NODES = 4


def graph_hash(matrix: np.ndarray, labels: Sequence[int]) -> str:
    """An isomorphism-invariant hash of a labelled DAG (Weisfeiler-Lehman colour refinement
    with MD5, as in the NAS-Bench-101 dataset: with the labels it uses, the same keys)."""
    rows = np.asarray(matrix).tolist()    # plain lists: numpy scalar indexing is slow here
    size = len(rows)
    incoming = [[w for w in range(size) if rows[w][v]] for v in range(size)]
    outgoing = [[w for w in range(size) if rows[v][w]] for v in range(size)]
    colours = [_md5(str((len(outgoing[v]), len(incoming[v]), int(labels[v]))))
               for v in range(size)]
    for _ in range(size):
        colours = [_md5("".join(sorted(colours[w] for w in incoming[v])) + "|"
                        + "".join(sorted(colours[w] for w in outgoing[v])) + "|" + colours[v])
                   for v in range(size)]
    return _md5(str(sorted(colours)))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _on_a_path(matrix: np.ndarray) -> np.ndarray:
    """Vertices reachable from vertex 0 and reaching the last vertex."""
    size = matrix.shape[0]
    forward = np.zeros(size, dtype=bool)
    forward[0] = True
    for v in range(size):            # vertices are in topological order
        if forward[v]:
            forward |= matrix[v].astype(bool)
    backward = np.zeros(size, dtype=bool)
    backward[-1] = True
    for v in range(size - 1, -1, -1):
        if backward[v]:
            backward |= matrix[:, v].astype(bool)
    return forward & backward


@dataclass(frozen=True)
class Nb101Cell:
    """A NAS-Bench-101 cell genome (see the module docstring); checked on creation."""

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]
    max_vertices: int = 7
    max_edges: int = 9
    allowed_ops: tuple[str, ...] = NB101_OPS

    def __post_init__(self) -> None:
        matrix = np.array(self.matrix, dtype=np.int64) if len(self.matrix) else np.zeros((0, 0))
        size = len(self.ops)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise EvozeroError(f"cell matrix must be square, got shape {matrix.shape}")
        if matrix.shape[0] != size:
            raise EvozeroError(f"cell has {matrix.shape[0]} vertices in its matrix but "
                               f"{size} ops; give one op per vertex")
        if size < 2:
            raise EvozeroError("a cell needs at least 2 vertices (input and output)")
        if size > self.max_vertices:
            raise EvozeroError(f"cell has {size} vertices; at most {self.max_vertices} "
                               f"are allowed")
        bad = np.argwhere((matrix != 0) & (matrix != 1))
        if len(bad):
            i, j = bad[0]
            raise EvozeroError(f"cell matrix[{i}][{j}] is {matrix[i, j]}; entries must be 0 "
                               f"or 1")
        below = np.argwhere(np.tril(matrix) != 0)
        if len(below):
            i, j = below[0]
            raise EvozeroError(f"cell matrix[{i}][{j}] is 1 on or below the diagonal; the "
                               f"matrix must be strictly upper-triangular (an edge goes "
                               f"from a vertex to a later one)")
        if self.ops[0] != INPUT or self.ops[-1] != OUTPUT:
            raise EvozeroError(f"the first op must be {INPUT!r} and the last {OUTPUT!r}, "
                               f"got {self.ops[0]!r} and {self.ops[-1]!r}")
        for k, op in enumerate(self.ops[1:-1], start=1):
            if op not in self.allowed_ops:
                raise EvozeroError(f"op {k} is {op!r}; allowed: "
                                   f"{', '.join(self.allowed_ops)}")
        pruned, _ = self._prune(matrix)
        if pruned is None:
            raise EvozeroError("the cell's output is not reachable from its input")
        edges = int(pruned.sum())
        if edges > self.max_edges:
            raise EvozeroError(f"cell has {edges} edges on input-output paths; at most "
                               f"{self.max_edges} are allowed")

    @classmethod
    def make(cls, matrix: Sequence[Sequence[int]] | np.ndarray, ops: Sequence[str],
             **limits) -> Nb101Cell:
        """A cell from any nested sequence (lists, numpy) of 0/1 and a list of op names."""
        if not _is_list(matrix) or not all(_is_list(row) for row in matrix):
            raise EvozeroError(f"cell matrix must be a list of rows, each a list of 0s and "
                               f"1s, got {str(matrix)[:60]}")
        if not _is_list(ops) or not all(isinstance(op, str) for op in ops):
            raise EvozeroError(f"cell ops must be a list of op names, got {str(ops)[:60]}")
        if any(len(row) != len(matrix) for row in matrix):
            raise EvozeroError(f"cell matrix must be square: {len(matrix)} rows of "
                               f"{len(matrix)} entries, got rows of "
                               f"{sorted({len(row) for row in matrix})[:5]} entries")
        rows = []
        for i, row in enumerate(matrix):
            for j, x in enumerate(row):
                # 1.5 or True would be silently made 1: only exact 0 and 1 are entries.
                if isinstance(x, (bool, np.bool_)) or x not in (0, 1):
                    raise EvozeroError(f"cell matrix[{i}][{j}] is {x!r}; entries must be 0 "
                                       f"or 1")
            rows.append(tuple(int(x) for x in row))
        return cls(tuple(rows), tuple(ops), **limits)

    @staticmethod
    def _prune(matrix: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        keep = _on_a_path(matrix)
        if not keep[0] or not keep[-1]:
            return None, keep
        return matrix[np.ix_(keep, keep)], keep

    def pruned(self) -> tuple[np.ndarray, tuple[str, ...]]:
        """The phenotype: matrix and ops of the vertices on input-output paths."""
        matrix, keep = self._prune(np.array(self.matrix, dtype=np.int64))
        assert matrix is not None   # a cell's output is reachable (checked when it is made)
        return matrix, tuple(op for op, k in zip(self.ops, keep) if k)

    def vertices(self) -> tuple[int, ...]:
        """The genome's numbers of the phenotype's vertices (stable names for them)."""
        _, keep = self._prune(np.array(self.matrix, dtype=np.int64))
        return tuple(int(v) for v in np.flatnonzero(keep))

    def hash(self) -> str:
        """Isomorphism-invariant key of the phenotype (equal to the NAS-Bench-101
        dataset's module hash with its three ops)."""
        matrix, ops = self.pruned()
        labels = [-1] + [self.allowed_ops.index(op) for op in ops[1:-1]] + [-2]
        return graph_hash(matrix, labels)


def _is_list(value: object) -> bool:
    """A sequence of items a cell is made of (not a string, whose items are letters, nor a
    mapping, whose items are its keys)."""
    return isinstance(value, (list, tuple, np.ndarray))


def _edges() -> list[tuple[int, int]]:
    return [(i, j) for j in range(1, NB201_NODES) for i in range(j)]


#: The (source, target) nodes of each NAS-Bench-201 edge, in string order.
NB201_EDGES = tuple(_edges())


@dataclass(frozen=True)
class Nb201Cell:
    """A NAS-Bench-201 cell: the op of each edge (i, j), in string order (1-0, 2-0, 2-1,
    3-0, 3-1, 3-2)."""

    edge_ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.edge_ops) != len(_edges()):
            raise EvozeroError(f"a NAS-Bench-201 cell has {len(_edges())} edges, got "
                               f"{len(self.edge_ops)} ops")
        for (i, j), op in zip(_edges(), self.edge_ops):
            if op not in NB201_OPS:
                raise EvozeroError(f"edge {i}->{j} has op {op!r}; allowed: "
                                   f"{', '.join(NB201_OPS)}")

    @classmethod
    def parse(cls, text: str) -> Nb201Cell:
        """A cell from its string form ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
        groups = text.strip().split("+")
        if len(groups) != NB201_NODES - 1:
            raise EvozeroError(f"{text!r}: a NAS-Bench-201 cell string has "
                               f"{NB201_NODES - 1} groups separated by '+', got {len(groups)}")
        ops = []
        for node, group in enumerate(groups, start=1):
            if not (group.startswith("|") and group.endswith("|")):
                raise EvozeroError(f"{text!r}: group {node} ({group!r}) must start and end "
                                   f"with '|'")
            items = group[1:-1].split("|")
            if len(items) != node:
                raise EvozeroError(f"{text!r}: node {node} must have {node} incoming edge(s) "
                                   f"(op~0 ... op~{node - 1}), got {len(items)}")
            for source, item in enumerate(items):
                op, tilde, number = item.partition("~")
                if not tilde or number != str(source):
                    raise EvozeroError(f"{text!r}: {item!r} must be op~{source} (the edge "
                                       f"from node {source} to node {node})")
                ops.append(op)
        return cls(tuple(ops))

    def __str__(self) -> str:
        ops = iter(self.edge_ops)
        return "+".join("|" + "|".join(f"{next(ops)}~{i}" for i in range(node)) + "|"
                        for node in range(1, NB201_NODES))

    def live_edges(self) -> list[tuple[int, int, int, str]]:
        """``(number, source, target, op)`` of every edge that is not ``none``, in string
        order: what the network runs (the benchmark runs each of them, whether or not a
        live edge reaches its source and whether or not its result reaches the output)."""
        return [(number, i, j, op) for number, ((i, j), op)
                in enumerate(zip(_edges(), self.edge_ops)) if op != "none"]

    def hash(self) -> str:
        """Isomorphism-invariant key of the network the cell compiles to: the four nodes
        and one vertex per live edge (node i -> edge -> node j), labelled by its op. Cells
        share a key only when their networks are the same up to renumbering nodes 1 and 2:
        an edge from a node no live edge reaches still runs (its ReLU-conv-BN learns a
        per-channel constant), and an edge whose result never reaches the output still
        counts in the parameters and FLOPs."""
        live = self.live_edges()
        size = NB201_NODES + len(live)
        matrix = np.zeros((size, size), dtype=np.int64)
        labels = [-1, -3, -3, -2] + [NB201_OPS.index(op) for *_, op in live]
        for k, (_, i, j, _) in enumerate(live):
            matrix[i, NB201_NODES + k] = 1
            matrix[NB201_NODES + k, j] = 1
        return graph_hash(matrix, labels)
