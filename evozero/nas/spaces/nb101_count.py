"""Exhaustive count of the unique NAS-Bench-101 cells.

Every strictly upper-triangular matrix of 2 to ``max_vertices`` vertices is kept when
pruning (:meth:`evozero.nas.spaces.cells.Nb101Cell.pruned`) removes no vertex and it has at most
``max_edges`` edges; a matrix that loses vertices to pruning has the phenotype of a smaller
matrix and is counted at that size. Each kept matrix, with every labelling of its interior
vertices, is keyed by :func:`graph_key` and the distinct keys are counted. With the
benchmark's limits (7 vertices, 9 edges, 3 ops) this gives 423,624.

:func:`graph_key` is :func:`evozero.nas.spaces.cells.graph_hash` with 64-bit integer colours in
place of MD5 strings, run in two lanes with independent seeds so a key has 128 bits and a
collision over the whole enumeration is out of reach.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evozero.errors import EvozeroError
from ops.jit import jit
from ops.rng import mix64

# Labels of the input and output vertices, as in Nb101Cell.hash; interior ops are 0..n-1.
_INPUT_LABEL, _OUTPUT_LABEL = -1, -2
_LANE_SEEDS = (0x243F6A8885A308D3, 0x13198A2E03707344)
# 2^28 matrices at 8 vertices take about a minute; 2^36 at 9 would take days.
_MAX_VERTICES = 8


@jit
def on_a_path_mask(out_masks: np.ndarray, size: int) -> int:
    """Bit v set when vertex v is reachable from vertex 0 and reaches vertex ``size``-1, in
    a DAG in topological order; bit w of ``out_masks[v]`` is the edge v->w."""
    forward = 1
    for v in range(size):
        if (forward >> v) & 1:
            forward |= out_masks[v]
    backward = 1 << (size - 1)
    for v in range(size - 2, -1, -1):
        if out_masks[v] & backward:
            backward |= 1 << v
    return forward & backward


@jit
def _adjacency(out_masks, size, lists, counts):
    """``lists[0, v, :counts[0, v]]``: the in-neighbours of v; ``lists[1, v, ...]``: the
    out-neighbours."""
    for v in range(size):
        counts[0, v] = 0
        counts[1, v] = 0
    for v in range(size):
        for w in range(size):
            if (out_masks[v] >> w) & 1:
                lists[1, v, counts[1, v]] = w
                counts[1, v] += 1
                lists[0, w, counts[0, w]] = v
                counts[0, w] += 1


@jit
def _step(h, x):
    return mix64(h ^ np.uint64(x))


@jit
def _key(size, lists, counts, labels, colours, scratch, seeds):
    """The refinement of graph_hash, in two lanes (rows of ``colours``) computed side by side
    so their independent mixes overlap. Sums of neighbour colours stand in for the sorted
    concatenations: both depend only on the multiset, and sums need no sort."""
    for lane in range(2):
        for v in range(size):
            colours[lane, v] = _step(_step(_step(seeds[lane], counts[1, v]), counts[0, v]),
                                     labels[v])
    for _ in range(size):
        for v in range(size):
            in0, in1, out0, out1 = np.uint64(0), np.uint64(0), np.uint64(0), np.uint64(0)
            for k in range(counts[0, v]):
                in0 += colours[0, lists[0, v, k]]
                in1 += colours[1, lists[0, v, k]]
            for k in range(counts[1, v]):
                out0 += colours[0, lists[1, v, k]]
                out1 += colours[1, lists[1, v, k]]
            scratch[0, v] = _step(_step(_step(seeds[0], in0), out0), colours[0, v])
            scratch[1, v] = _step(_step(_step(seeds[1], in1), out1), colours[1, v])
        colours, scratch = scratch, colours
    total0, total1 = np.uint64(0), np.uint64(0)
    for v in range(size):
        total0 += colours[0, v]
        total1 += colours[1, v]
    return _step(_step(seeds[0], size), total0), _step(_step(seeds[1], size), total1)


def _workspace(size: int) -> tuple[np.ndarray, ...]:
    """Adjacency lists, their counts, and two colour buffers for graphs of ``size`` vertices."""
    return (np.empty((2, size, size), dtype=np.int64), np.empty((2, size), dtype=np.int64),
            np.empty((2, size), dtype=np.uint64), np.empty((2, size), dtype=np.uint64))


def graph_key(matrix: np.ndarray, labels: Sequence[int]) -> tuple[int, int]:
    """A 128-bit isomorphism-invariant key of a labelled directed graph: two graphs share
    a key exactly when :func:`evozero.nas.spaces.cells.graph_hash` gives them the same hash
    (barring a hash collision in either)."""
    matrix = np.asarray(matrix) != 0
    size = matrix.shape[0]
    out_masks = (matrix * np.left_shift(1, np.arange(size, dtype=np.int64))).sum(axis=1)
    lists, counts, colours, scratch = _workspace(size)
    _adjacency(out_masks.astype(np.int64), size, lists, counts)
    first, second = _key(size, lists, counts, np.asarray(labels, dtype=np.int64), colours,
                         scratch, np.array(_LANE_SEEDS, dtype=np.uint64))
    return int(first), int(second)


@jit
def _kept(code, sources, targets, max_edges, out_masks):
    """Whether the matrix whose edge k is bit k of ``code`` is counted at its own size:
    within the edge limit and with every vertex on an input-output path. Fills its
    ``out_masks``."""
    edges = 0
    for v in range(out_masks.size):
        out_masks[v] = 0
    for k in range(sources.size):
        if (code >> k) & 1:
            out_masks[sources[k]] |= 1 << targets[k]
            edges += 1
    size = out_masks.size
    return edges <= max_edges and on_a_path_mask(out_masks, size) == (1 << size) - 1


@jit
def _count_distinct(first, second):
    """Distinct (first, second) pairs, given the pairs sorted by ``first``."""
    distinct = 0
    start = 0
    while start < first.size:
        stop = start + 1
        while stop < first.size and first[stop] == first[start]:
            stop += 1
        # Runs are as long as the isomorphic copies of one cell: a few, so pairwise is cheap.
        for k in range(start, stop):
            seen = False
            for earlier in range(start, k):
                if second[earlier] == second[k]:
                    seen = True
                    break
            if not seen:
                distinct += 1
        start = stop
    return distinct


@jit
def _keys_at_size(size, max_edges, num_ops, seeds, lists, counts, colours, scratch):
    """The number of kept matrices of ``size`` vertices and the two key lanes of all their
    labellings."""
    pairs = size * (size - 1) // 2
    sources = np.empty(pairs, dtype=np.int64)
    targets = np.empty(pairs, dtype=np.int64)
    k = 0
    for j in range(1, size):
        for i in range(j):
            sources[k], targets[k] = i, j
            k += 1
    out_masks = np.zeros(size, dtype=np.int64)
    # Two passes over the matrices (count, then key) keep memory to the kept ones.
    matrices = 0
    for code in range(1 << pairs):
        matrices += _kept(code, sources, targets, max_edges, out_masks)

    labellings = num_ops ** (size - 2)
    first = np.empty(matrices * labellings, dtype=np.uint64)
    second = np.empty(matrices * labellings, dtype=np.uint64)
    labels = np.empty(size, dtype=np.int64)
    labels[0], labels[size - 1] = _INPUT_LABEL, _OUTPUT_LABEL
    n = 0
    for code in range(1 << pairs):
        if not _kept(code, sources, targets, max_edges, out_masks):
            continue
        _adjacency(out_masks, size, lists, counts)
        for labelling in range(labellings):
            rest = labelling
            for v in range(1, size - 1):
                labels[v] = rest % num_ops
                rest //= num_ops
            first[n], second[n] = _key(size, lists, counts, labels, colours, scratch, seeds)
            n += 1
    return matrices, first, second


def count_unique_nb101(max_vertices: int = 7, max_edges: int = 9, num_ops: int = 3) -> dict:
    """Count the NAS-Bench-101 cells distinct up to isomorphism (see the module docstring).

    Returns ``total`` (423,624 with the defaults) and, per vertex count, ``unique`` cells,
    kept adjacency ``matrices`` and ``labelled`` graphs before de-duplication.
    """
    if not 2 <= max_vertices <= _MAX_VERTICES:
        raise EvozeroError(f"max_vertices is {max_vertices}; it must be 2 to {_MAX_VERTICES} "
                           f"(the enumeration doubles with every possible edge)")
    if max_edges < 0 or num_ops < 1:
        raise EvozeroError(f"need max_edges >= 0 and num_ops >= 1, got {max_edges} and "
                           f"{num_ops}")
    seeds = np.array(_LANE_SEEDS, dtype=np.uint64)
    unique, matrices, labelled = {}, {}, {}
    for size in range(2, max_vertices + 1):
        kept, first, second = _keys_at_size(size, max_edges, num_ops, seeds,
                                            *_workspace(size))
        order = np.argsort(first)
        matrices[size], labelled[size] = int(kept), first.size
        unique[size] = int(_count_distinct(first[order], second[order]))
    return {"total": sum(unique.values()), "unique": unique, "matrices": matrices,
            "labelled": labelled}
