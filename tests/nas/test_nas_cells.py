"""NAS-Bench-101 and -201 cell genomes: validation, pruning, string form, isomorphism hash."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evozero.errors import EvozeroError
from evozero.nas.spaces.cells import NB101_OPS, NB201_OPS, Nb101Cell, Nb201Cell

pytestmark = pytest.mark.nas

# The NAS-Bench-101 example cell: 7 vertices, 9 edges.
EXAMPLE_MATRIX = [[0, 1, 1, 1, 0, 1, 0],
                  [0, 0, 0, 0, 0, 0, 1],
                  [0, 0, 0, 0, 0, 0, 1],
                  [0, 0, 0, 0, 1, 0, 0],
                  [0, 0, 0, 0, 0, 0, 1],
                  [0, 0, 0, 0, 0, 0, 1],
                  [0, 0, 0, 0, 0, 0, 0]]
EXAMPLE_OPS = ["input", "conv3x3-bn-relu", "conv3x3-bn-relu", "conv3x3-bn-relu",
               "conv3x3-bn-relu", "maxpool3x3", "output"]


@st.composite
def nb101_cells(draw):
    size = draw(st.integers(3, 7))
    bits = draw(st.lists(st.booleans(), min_size=size * (size - 1) // 2,
                         max_size=size * (size - 1) // 2))
    matrix = np.zeros((size, size), dtype=np.int64)
    matrix[np.triu_indices(size, 1)] = bits
    ops = ["input"] + [draw(st.sampled_from(NB101_OPS)) for _ in range(size - 2)] + ["output"]
    try:
        return Nb101Cell.make(matrix, ops, max_edges=21)
    except EvozeroError:
        return None


def random_topological_relabelling(cell, rng):
    """The same graph with its vertices renumbered in another topological order (input
    first, output last)."""
    matrix = np.array(cell.matrix)
    size = len(cell.ops)
    remaining = matrix.sum(axis=0)
    ready = [v for v in range(1, size - 1) if remaining[v] == 0]
    order = [0]
    for w in np.flatnonzero(matrix[0]):
        remaining[w] -= 1
        if remaining[w] == 0 and w != size - 1:
            ready.append(w)
    while ready:
        v = ready.pop(rng.integers(len(ready)))
        order.append(v)
        for w in np.flatnonzero(matrix[v]):
            remaining[w] -= 1
            if remaining[w] == 0 and w != size - 1:
                ready.append(w)
    order.append(size - 1)
    permuted = matrix[np.ix_(order, order)]
    assert not np.tril(permuted).any()
    return Nb101Cell.make(permuted, [cell.ops[v] for v in order], max_edges=21)


@settings(max_examples=200)
@given(cell=nb101_cells(), seed=st.integers(0, 2**32 - 1))
def test_nb101_hash_is_invariant_under_vertex_renumbering(cell, seed):
    if cell is None:
        return
    other = random_topological_relabelling(cell, np.random.default_rng(seed))
    assert other.hash() == cell.hash()
    assert other.pruned()[0].sum() == cell.pruned()[0].sum()


def test_nb101_hash_tells_different_cells_apart_and_ignores_dead_material():
    cell = Nb101Cell.make(EXAMPLE_MATRIX, EXAMPLE_OPS)
    changed = Nb101Cell.make(EXAMPLE_MATRIX, EXAMPLE_OPS[:5] + ["conv1x1-bn-relu", "output"])
    assert cell.hash() != changed.hash()
    # Vertex 2 made dead (no way out): the phenotype drops it.
    dead = [row[:] for row in EXAMPLE_MATRIX]
    dead[2][6] = 0
    with_dead = Nb101Cell.make(dead, EXAMPLE_OPS)
    matrix, ops = with_dead.pruned()
    assert matrix.shape == (6, 6) and len(ops) == 6
    other_op = Nb101Cell.make(dead, EXAMPLE_OPS[:2] + ["maxpool3x3"] + EXAMPLE_OPS[3:])
    assert other_op.hash() == with_dead.hash(), "a dead vertex's op does not matter"
    assert with_dead.hash() != cell.hash()


def test_nb101_edges_are_counted_on_the_pruned_cell():
    # Ten edges in the genome, two of them into the dead vertex 2: 8 live edges, allowed.
    matrix = [row[:] for row in EXAMPLE_MATRIX]
    matrix[1][2] = 1
    matrix[2][6] = 0
    matrix[0][4] = 1
    cell = Nb101Cell.make(matrix, EXAMPLE_OPS)
    assert int(np.sum(cell.matrix)) == 10
    assert int(cell.pruned()[0].sum()) == 8


@pytest.mark.parametrize("matrix, ops, message", [
    ([[0, 1], [0, 0], [0, 0]], ["input", "output"], "must be square"),
    ([[0, 1], [0, 0]], ["input", "maxpool3x3", "output"], "2 vertices in its matrix but 3 ops"),
    ([[0, 1], [1, 0]], ["input", "output"], "matrix[1][0] is 1 on or below the diagonal"),
    ([[0, 2], [0, 0]], ["input", "output"], "matrix[0][1] is 2"),
    ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv5x5", "output"],
     "op 1 is 'conv5x5'; allowed: conv3x3-bn-relu"),
    ([[0, 1], [0, 0]], ["output", "input"], "first op must be 'input'"),
    ([[0, 1, 0], [0, 0, 0], [0, 0, 0]], ["input", "maxpool3x3", "output"],
     "output is not reachable"),
    (np.triu(np.ones((8, 8), dtype=int), 1), ["input"] + ["maxpool3x3"] * 6 + ["output"],
     "8 vertices; at most 7"),
    (np.triu(np.ones((7, 7), dtype=int), 1), ["input"] + ["maxpool3x3"] * 5 + ["output"],
     "21 edges on input-output paths; at most 9"),
])
def test_nb101_invalid_cells_get_precise_errors(matrix, ops, message):
    with pytest.raises(EvozeroError) as error:
        Nb101Cell.make(matrix, ops)
    assert message in str(error.value)


def test_nb201_strings_round_trip_for_every_cell():
    for ops in itertools.product(NB201_OPS, repeat=6):
        cell = Nb201Cell(ops)
        assert Nb201Cell.parse(str(cell)) == cell
    text = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    assert str(Nb201Cell.parse(text)) == text


@pytest.mark.parametrize("text, message", [
    ("|skip_connect~0|+|none~0|none~1|", "3 groups"),
    ("|skip_connect~0|+|none~0|none~1|+|none~0|none~1|conv~2|", "edge 2->3 has op 'conv'"),
    ("|skip_connect~1|+|none~0|none~1|+|none~0|none~1|none~2|", "must be op~0"),
    ("|skip_connect~0|+|none~0|+|none~0|none~1|none~2|", "node 2 must have 2"),
    ("skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|", "must start and end"),
])
def test_nb201_bad_strings_get_precise_errors(text, message):
    with pytest.raises(EvozeroError) as error:
        Nb201Cell.parse(text)
    assert message in str(error.value)


def test_nb201_hash_merges_isomorphic_cells_and_keeps_what_the_network_runs():
    a = Nb201Cell(("nor_conv_3x3", "avg_pool_3x3", "none", "skip_connect", "nor_conv_1x1",
                   "nor_conv_3x3"))
    # Nodes 1 and 2 are not joined (edge 2-1 is none): swapping them changes nothing.
    swapped = Nb201Cell(("avg_pool_3x3", "nor_conv_3x3", "none", "skip_connect",
                         "nor_conv_3x3", "nor_conv_1x1"))
    assert a.hash() == swapped.hash()
    # Node 1 feeds nothing (1->3 and 1->2 are none), but the benchmark still runs its
    # edge: a conv there has parameters and FLOPs a pool has not.
    dead1 = Nb201Cell(("nor_conv_3x3", "skip_connect", "none", "nor_conv_1x1", "none",
                       "avg_pool_3x3"))
    dead2 = Nb201Cell(("avg_pool_3x3", "skip_connect", "none", "nor_conv_1x1", "none",
                       "avg_pool_3x3"))
    assert dead1.hash() != dead2.hash()
    # An output that is always zero, with and without a conv computed on the way.
    zero1 = Nb201Cell(("nor_conv_3x3",) + ("none",) * 5)
    zero2 = Nb201Cell(("none",) * 6)
    assert zero1.hash() != zero2.hash()
    # A conv from a node no edge reaches learns a constant: not the same as no edge.
    unreached = Nb201Cell.parse("|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
                                "|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    without = Nb201Cell.parse("|none~0|+|nor_conv_3x3~0|none~1|+"
                              "|nor_conv_3x3~0|none~1|nor_conv_3x3~2|")
    assert unreached.hash() != without.hash()
    different = Nb201Cell(("nor_conv_1x1", "avg_pool_3x3", "none", "skip_connect",
                           "nor_conv_1x1", "nor_conv_3x3"))
    assert different.hash() != a.hash()
    # The number of keys over all cells: tests/nas/test_nas_benchmark_networks.py.
