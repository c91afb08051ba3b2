"""Compile a cell genome into an :class:`~evozero.nas.spaces.network.Architecture`.

Both spaces keep their benchmark's macro skeleton, scaled to small inputs (8x8 digits,
length-40 MNIST-1D) by :class:`Skeleton`'s numbers:

- **NAS-Bench-101**: stem conv3x3-bn-relu to ``stem_channels``; ``stacks`` stacks of
  ``cells_per_stack`` cells; before every stack but the first a 2x2 max-pool (stride 2,
  TensorFlow's 'same' padding as in the benchmark: 7x7 -> 4x4) and the cells' channels
  doubled; global average pooling; dense. Inside a cell, the
  benchmark's channel rules: the output's channels split over the vertices feeding it,
  other vertices take the largest count of the vertices they feed, inputs from interior
  vertices truncated to the receiver's channels, inputs from the cell input projected by
  conv1x1-bn-relu, the output the concatenation of its feeders plus a projection of the
  input when the input feeds it directly.
- **NAS-Bench-201**: stem conv3x3 + bn to ``stem_channels``; ``stacks`` stages of
  ``cells_per_stack`` cells, joined by a residual reduction block (two relu-conv3x3-bn, the
  first at stride 2; shortcut 2x2 average pool + conv1x1) that doubles the channels; bn,
  relu, global average pooling, dense. A node sums its live incoming edges (``none`` edges
  dropped); a node no live edge reaches is zero. Every live edge runs, as in the
  benchmark's network: one whose source is zero too (relu-conv-bn of zeros gives the bn's
  shift, a learned constant per channel), and one whose result never reaches the output.

A skeleton too deep for its input (see :func:`evozero.config.cell_search.skeleton_problem`)
is an error before anything is built.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from evozero.config.cell_search import skeleton_problem
from evozero.errors import EvozeroError
from evozero.nas.spaces.cells import NB201_NODES, Nb101Cell, Nb201Cell
from evozero.nas.spaces.network import Architecture, Builder, Shape


@dataclass(frozen=True)
class Skeleton:
    """The macro network around the cells."""

    stem_channels: int = 16
    stacks: int = 2
    cells_per_stack: int = 1
    #: False leaves out the NAS-Bench-201 edges that leave a node no live edge reaches,
    #: as earlier versions compiled cells: kept only to rebuild the networks whose weights
    #: they saved (a run directory's best network).
    unreached_edges: bool = True


def compile_cell(cell: Nb101Cell | Nb201Cell, skeleton: Skeleton, input_shape: Shape,
                 classes: int) -> Architecture:
    """The network of ``cell`` in its space's skeleton, for inputs of ``input_shape``."""
    if isinstance(cell, Nb201Cell):
        return compile_nb201(lambda builder, source, scope: _nb201_cell(
            builder, source, cell, scope, skeleton.unreached_edges), skeleton, input_shape,
            classes)
    builder = _checked_builder("nb101", skeleton, input_shape)
    builder.dense(builder.gap(_nb101_body(builder, cell, skeleton)), classes)
    return builder.build()


#: Builds one NAS-Bench-201 cell on ``source`` with its layers named under ``scope``,
#: returning the cell's output.
CellBuilder = Callable[[Builder, int, str], int]


def compile_nb201(cell: CellBuilder, skeleton: Skeleton, input_shape: Shape,
                  classes: int) -> Architecture:
    """The NAS-Bench-201 skeleton with every cell made by ``cell`` (a cell genome's, or a
    supernet's cell of mixed edges)."""
    builder = _checked_builder("nb201", skeleton, input_shape)
    builder.dense(builder.gap(_nb201_body(builder, cell, skeleton)), classes)
    return builder.build()


def _checked_builder(space: str, skeleton: Skeleton, input_shape: Shape) -> Builder:
    problem = skeleton_problem(space, input_shape, skeleton.stacks)
    if problem is not None:
        raise EvozeroError(f"the {space} skeleton is too deep for its input: {problem}")
    return Builder(input_shape)


# -- NAS-Bench-101 ---------------------------------------------------------------------

def vertex_channels(matrix: np.ndarray, in_channels: int, out_channels: int) -> list[int]:
    """Channels of every vertex of a pruned NAS-Bench-101 cell (the benchmark's rule)."""
    size = matrix.shape[0]
    channels = [0] * size
    channels[0], channels[-1] = in_channels, out_channels
    if size == 2:
        return channels
    feeders = int(matrix[1:, -1].sum())
    share, extra = divmod(out_channels, max(feeders, 1))
    for v in range(1, size - 1):
        if matrix[v, -1]:
            channels[v] = share + (1 if extra > 0 else 0)
            extra -= 1
    for v in range(size - 2, 0, -1):
        if not matrix[v, -1]:
            channels[v] = max(channels[w] for w in range(v + 1, size - 1) if matrix[v, w])
    return channels


def _nb101_cell(builder: Builder, source: int, cell: Nb101Cell, out_channels: int,
                scope: str) -> int:
    matrix, ops = cell.pruned()
    # Layers are named by the genome's vertex numbers, which edge flips do not change.
    names = [f"{scope}.v{v}" for v in cell.vertices()]
    size = matrix.shape[0]
    channels = vertex_channels(matrix, builder.shape(source)[2], out_channels)
    values = [source]
    feeding_output = []
    for v in range(1, size - 1):
        inputs = [builder.truncate(values[u], channels[v]) for u in range(1, v) if matrix[u, v]]
        if matrix[0, v]:
            inputs.append(builder.conv_bn_relu(source, channels[v], 1, name=names[v] + ".in"))
        total = builder.add(inputs)
        if ops[v] == "maxpool3x3":
            value = builder.pool(total, "maxpool", 3, 1)
        else:
            size_ = 3 if ops[v] == "conv3x3-bn-relu" else 1
            value = builder.conv_bn_relu(total, channels[v], size_, name=names[v])
        values.append(value)
        if matrix[v, -1]:
            feeding_output.append(value)
    projection = f"{scope}.out.in"
    if not feeding_output:
        return builder.conv_bn_relu(source, out_channels, 1, name=projection)
    output = builder.concat(feeding_output)
    if matrix[0, -1]:
        output = builder.add([output, builder.conv_bn_relu(source, out_channels, 1,
                                                           name=projection)])
    return output


def _nb101_body(builder: Builder, cell: Nb101Cell, skeleton: Skeleton) -> int:
    channels = skeleton.stem_channels
    top = builder.conv_bn_relu(0, channels, 3, name="stem")
    for stack in range(skeleton.stacks):
        if stack > 0:
            top = builder.pool(top, "maxpool", 2, 2, same=True)
            channels *= 2
        for index in range(skeleton.cells_per_stack):
            top = _nb101_cell(builder, top, cell, channels, f"s{stack}.c{index}")
    return top


# -- NAS-Bench-201 ---------------------------------------------------------------------

def nb201_edge(builder: Builder, source: int, op: str, name: str) -> int:
    """The layers of a live NAS-Bench-201 edge running ``op`` on ``source`` (a skip
    connection adds none: it returns ``source``)."""
    channels = builder.shape(source)[2]
    if op == "skip_connect":
        return source
    if op == "avg_pool_3x3":
        return builder.pool(source, "avgpool", 3, 1)
    return builder.relu_conv_bn(source, channels, 3 if op == "nor_conv_3x3" else 1, name=name)


def _nb201_cell(builder: Builder, source: int, cell: Nb201Cell, scope: str,
                unreached_edges: bool) -> int:
    # A node no live edge reaches is zero, made when an edge reads it. Such edges still
    # run, as in the benchmark: relu-conv-bn of zeros is the bn's shift, a learned
    # per-channel constant. A node whose result never reaches the output is computed too.
    nodes: list[int | None] = [source]
    live = cell.live_edges()
    for node in range(1, NB201_NODES):
        incoming = []
        for number, i, _, op in (edge for edge in live if edge[2] == node):
            value = nodes[i]
            if value is None:
                if not unreached_edges:
                    continue
                value = nodes[i] = builder.zero(source, builder.shape(source)[2])
            incoming.append(nb201_edge(builder, value, op, f"{scope}.e{number}"))
        nodes.append(builder.add(incoming) if incoming else None)
    output = nodes[-1]
    return builder.zero(source, builder.shape(source)[2]) if output is None else output


def _nb201_reduction(builder: Builder, source: int, channels: int, scope: str) -> int:
    branch = builder.relu_conv_bn(source, channels, 3, stride=2, name=scope + ".a")
    branch = builder.relu_conv_bn(branch, channels, 3, name=scope + ".b")
    shortcut = builder.conv(builder.pool(source, "avgpool", 2, 2), channels, 1,
                            name=scope + ".shortcut")
    return builder.add([branch, shortcut])


def _nb201_body(builder: Builder, cell: CellBuilder, skeleton: Skeleton) -> int:
    channels = skeleton.stem_channels
    top = builder.bn(builder.conv(0, channels, 3, name="stem"), "stem.bn")
    for stage in range(skeleton.stacks):
        if stage > 0:
            channels *= 2
            top = _nb201_reduction(builder, top, channels, f"r{stage}")
        for index in range(skeleton.cells_per_stack):
            top = cell(builder, top, f"s{stage}.c{index}")
    return builder.relu(builder.bn(top, "head.bn"))
