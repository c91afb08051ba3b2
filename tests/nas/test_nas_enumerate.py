"""Exhaustive NAS-Bench-101 count: its pruning and keys against the pure-Python cells module."""
from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pytest

from evozero.errors import EvozeroError
from evozero.nas.spaces.cells import NB101_OPS, Nb101Cell, _on_a_path, graph_hash
from evozero.nas.spaces.nb101_count import count_unique_nb101, graph_key, on_a_path_mask

pytestmark = pytest.mark.nas


def upper_triangular_matrices(size):
    """Every strictly upper-triangular 0/1 matrix of ``size`` vertices."""
    rows, cols = np.triu_indices(size, 1)
    for bits in itertools.product((0, 1), repeat=len(rows)):
        matrix = np.zeros((size, size), dtype=np.int64)
        matrix[rows, cols] = bits
        yield matrix


def brute_force_counts(max_vertices, max_edges, num_ops):
    """Distinct Nb101Cell hashes per pruned vertex count, over every matrix and labelling."""
    allowed = NB101_OPS[:num_ops]
    hashes = defaultdict(set)
    for size in range(2, max_vertices + 1):
        for matrix in upper_triangular_matrices(size):
            for interior in itertools.product(allowed, repeat=size - 2):
                try:
                    cell = Nb101Cell.make(matrix, ["input", *interior, "output"],
                                          max_vertices=max_vertices, max_edges=max_edges,
                                          allowed_ops=allowed)
                except EvozeroError:
                    continue
                hashes[len(cell.pruned()[1])].add(cell.hash())
    return {size: len(found) for size, found in hashes.items()}


def test_on_a_path_mask_matches_the_cells_module():
    for size in range(2, 6):
        for matrix in upper_triangular_matrices(size):
            out_masks = (matrix * (1 << np.arange(size))).sum(axis=1).astype(np.int64)
            expected = sum(1 << v for v in np.flatnonzero(_on_a_path(matrix)))
            assert on_a_path_mask(out_masks, size) == expected, matrix


def labelled_graphs_with_permuted_copies(rng, count):
    """Random labelled graphs, each with two copies under random vertex permutations
    (any order, not only topological ones), and a copy with one label changed."""
    graphs = []
    for _ in range(count):
        size = int(rng.integers(2, 8))
        matrix = np.triu(rng.random((size, size)) < rng.uniform(0.2, 0.7), 1).astype(int)
        labels = np.concatenate([[-1], rng.integers(0, 3, size - 2), [-2]])
        graphs.append((matrix, labels))
        for _ in range(2):
            order = rng.permutation(size)
            graphs.append((matrix[np.ix_(order, order)], labels[order]))
        if size > 2:
            changed = labels.copy()
            changed[rng.integers(1, size - 1)] = (changed[1] + 1) % 3
            graphs.append((matrix, changed))
    return graphs


def test_graph_key_partitions_graphs_exactly_like_graph_hash():
    graphs = labelled_graphs_with_permuted_copies(np.random.default_rng(7), 300)
    keys_by_hash, hashes_by_key = defaultdict(set), defaultdict(set)
    for matrix, labels in graphs:
        key, digest = graph_key(matrix, labels), graph_hash(matrix, labels)
        keys_by_hash[digest].add(key)
        hashes_by_key[key].add(digest)
    assert all(len(keys) == 1 for keys in keys_by_hash.values())
    assert all(len(digests) == 1 for digests in hashes_by_key.values())
    # The sample has both merges (permuted copies) and many distinct graphs.
    assert 200 < len(hashes_by_key) < len(graphs) / 2


def test_graph_key_is_invariant_under_vertex_permutation():
    matrix = np.array([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    labels = np.array([-1, 0, 2, -2])
    swapped = [0, 2, 1, 3]
    assert graph_key(matrix[np.ix_(swapped, swapped)], labels[swapped]) == \
        graph_key(matrix, labels)
    assert graph_key(matrix, [-1, 0, 0, -2]) != graph_key(matrix, labels)


# The edge limit bites in all three: 4 vertices have up to 6 edges, 5 up to 10.
@pytest.mark.parametrize("max_vertices, max_edges, num_ops", [(4, 5, 3), (5, 5, 2), (5, 4, 1)])
def test_count_matches_brute_force_through_nb101cell(max_vertices, max_edges, num_ops):
    counts = count_unique_nb101(max_vertices, max_edges, num_ops)
    expected = brute_force_counts(max_vertices, max_edges, num_ops)
    assert {size: n for size, n in counts["unique"].items() if n} == expected
    assert counts["total"] == sum(expected.values())


def test_full_count_is_the_nas_bench_101_figure():
    counts = count_unique_nb101(7, 9, 3)
    assert counts["total"] == 423_624
    assert counts["unique"] == {2: 1, 3: 6, 4: 84, 5: 2441, 6: 62_010, 7: 359_082}
    # Isomorphic labellings merge: fewer unique cells than labelled graphs at every size.
    assert all(counts["unique"][size] <= counts["labelled"][size] for size in range(2, 8))
    assert counts["labelled"][7] == counts["matrices"][7] * 3 ** 5


@pytest.mark.parametrize("limits, message", [
    ((1, 9, 3), "max_vertices is 1"),
    ((9, 9, 3), "max_vertices is 9"),
    ((7, -1, 3), "max_edges >= 0"),
    ((7, 9, 0), "num_ops >= 1"),
])
def test_limits_out_of_range_are_rejected(limits, message):
    with pytest.raises(EvozeroError) as error:
        count_unique_nb101(*limits)
    assert message in str(error.value)
