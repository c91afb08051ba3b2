"""Architectures: what a cell genome compiles to, as a flat list of layers.

An :class:`Architecture` is a DAG of :class:`Layer` records in execution order (layer 0
is the input); each layer names the earlier layers it reads and the shape it produces
for one example, ``(H, W, C)`` (1-D data has ``H == 1`` and kernels of height 1). The
same record serves the trainer (:mod:`evozero.nas.training.model`), the cost model
(:mod:`evozero.nas.devices.cost`) and the code export.

Layer kinds and their fields:

- ``input``: the example, no inputs.
- ``conv``: ``kernel`` (kh, kw), ``stride``, ``pad`` (ph, pw); no bias (a batch norm
  follows every convolution). ``dwconv`` is the depthwise form (same channels in and out).
- ``bn``: batch norm over (N, H, W) per channel; ``relu``.
- ``maxpool`` / ``avgpool``: ``kernel``, ``stride``, ``pad`` (average excludes padding).
  A pool whose ``shape`` is larger than the padding gives has TensorFlow's 'same' padding:
  the rest is padded after the input (:meth:`Architecture.pad_after`); padding never
  takes part.
- ``add``: sum of equal-shaped inputs; ``concat``: along channels; ``slice``: the first
  ``shape[2]`` channels of its input; ``zero``: zeros shaped like its output (a
  NAS-Bench-201 node that no live edge reaches).
- ``gap``: global average pooling to ``(1, 1, C)``; ``dense``: a classifier with bias to
  ``(1, 1, classes)``.
- ``mix``: a supernet's mixed edge, the sum of its inputs (the outputs of candidate ops)
  weighted by coefficients the trainer sets per layer name; ``choices`` numbers the op of
  each input. With no choices its one input only gives the shape: the output is zeros.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class Layer:
    """One layer of an architecture (see the module docstring)."""

    kind: str
    inputs: tuple[int, ...]
    shape: Shape
    kernel: tuple[int, int] = (1, 1)
    stride: int = 1
    pad: tuple[int, int] = (0, 0)
    name: str = ""           # a layer with weights: its role, stable across mutations
    choices: tuple[int, ...] = ()    # mix: the op number of each input


@dataclass(frozen=True)
class Architecture:
    """A network as layers in execution order; the last layer gives the logits."""

    layers: tuple[Layer, ...]

    @property
    def input_shape(self) -> Shape:
        """Shape of one example."""
        return self.layers[0].shape

    @property
    def classes(self) -> int:
        """Number of logits."""
        return self.layers[-1].shape[2]

    def in_channels(self, index: int) -> int:
        """Channels entering layer ``index`` (of its first input)."""
        return self.layers[self.layers[index].inputs[0]].shape[2]

    def pad_after(self, index: int) -> tuple[int, int]:
        """Padding after the input (rows, columns) beyond ``pad`` that pool ``index`` needs
        for its output shape: (0, 0) except for 'same' pooling."""
        layer = self.layers[index]
        if layer.kind not in ("maxpool", "avgpool"):
            return (0, 0)
        height, width, _ = self.layers[layer.inputs[0]].shape
        extra = [max((out - 1) * layer.stride + kernel - size - 2 * pad, 0)
                 for out, kernel, size, pad in zip(layer.shape[:2], layer.kernel,
                                                   (height, width), layer.pad)]
        return extra[0], extra[1]

    def consumers(self) -> list[list[int]]:
        """For each layer, the layers that read it."""
        readers: list[list[int]] = [[] for _ in self.layers]
        for index, layer in enumerate(self.layers):
            for source in layer.inputs:
                readers[source].append(index)
        return readers

    def fused_relus(self) -> dict[int, int]:
        """``{bn index: relu index}`` for every bn whose only reader is a relu: the pair
        runs as one kernel at the bn's place."""
        readers = self.consumers()
        return {layer.inputs[0]: index for index, layer in enumerate(self.layers)
                if layer.kind == "relu" and self.layers[layer.inputs[0]].kind == "bn"
                and len(readers[layer.inputs[0]]) == 1}

    def duplicate_relus(self) -> dict[int, int]:
        """``{relu index: earlier relu index}`` for every relu of a tensor that an earlier
        relu rectifies already (NAS-Bench-201 edges leaving one node each start with one)."""
        first: dict[int, int] = {}
        duplicates = {}
        for index, layer in enumerate(self.layers):
            if layer.kind == "relu":
                if layer.inputs[0] in first:
                    duplicates[index] = first[layer.inputs[0]]
                else:
                    first[layer.inputs[0]] = index
        return duplicates

    def sibling_convs(self) -> list[tuple[int, ...]]:
        """Groups, in layer order, of two or more spatial convolutions of one geometry that
        read the same tensor (a relu and its duplicates count as one): a group shares one
        im2col and one wider matrix product."""
        duplicates = self.duplicate_relus()
        groups: dict[tuple, list[int]] = {}
        for index, layer in enumerate(self.layers):
            if layer.kind == "conv" and layer.kernel != (1, 1):
                source = duplicates.get(layer.inputs[0], layer.inputs[0])
                groups.setdefault((source, layer.kernel, layer.stride, layer.pad), []).append(index)
        return [tuple(group) for group in groups.values() if len(group) > 1]


class Builder:
    """Appends layers and works out their shapes; layer indices are the handles."""

    def __init__(self, input_shape: Shape) -> None:
        height, width, channels = input_shape
        self.layers: list[Layer] = [Layer("input", (), (height, width, channels))]
        self.one_d = input_shape[0] == 1

    def shape(self, index: int) -> Shape:
        """Output shape of layer ``index``."""
        return self.layers[index].shape

    def _add(self, layer: Layer) -> int:
        self.layers.append(layer)
        return len(self.layers) - 1

    def _window(self, size: int) -> tuple[int, int]:
        return (1, size) if self.one_d else (size, size)

    def _spatial(self, source: int, kernel: tuple[int, int], stride: int,
                 pad: tuple[int, int]) -> tuple[int, int]:
        height, width, _ = self.shape(source)
        return ((height + 2 * pad[0] - kernel[0]) // stride + 1,
                (width + 2 * pad[1] - kernel[1]) // stride + 1)

    def conv(self, source: int, channels: int, size: int, stride: int = 1, name: str = "") -> int:
        """A ``size`` x ``size`` convolution (1 x ``size`` in 1-D), 'same' padding at
        stride 1."""
        kernel = self._window(size)
        pad = (kernel[0] // 2, kernel[1] // 2)
        height, width = self._spatial(source, kernel, stride, pad)
        return self._add(Layer("conv", (source,), (height, width, channels), kernel, stride, pad,
                               name))

    def pool(self, source: int, kind: str, size: int, stride: int, same: bool = False) -> int:
        """Max or average pooling; 'same' padding when ``stride`` is 1, none otherwise
        unless ``same``: then TensorFlow's 'same' padding, output ceil(size / stride), the
        padding split as TensorFlow does (an odd one after)."""
        kernel = self._window(size)
        pad = (kernel[0] // 2, kernel[1] // 2) if stride == 1 else (0, 0)
        height, width = self._spatial(source, kernel, stride, pad)
        if same and stride > 1:
            sizes = self.shape(source)[:2]
            height, width = (-(-sizes[0] // stride), -(-sizes[1] // stride))
            pad = ((max((height - 1) * stride + kernel[0] - sizes[0], 0)) // 2,
                   (max((width - 1) * stride + kernel[1] - sizes[1], 0)) // 2)
        channels = self.shape(source)[2]
        return self._add(Layer(kind, (source,), (height, width, channels), kernel, stride, pad))

    def bn(self, source: int, name: str = "") -> int:
        """Batch norm."""
        return self._add(Layer("bn", (source,), self.shape(source), name=name))

    def relu(self, source: int) -> int:
        """ReLU."""
        return self._add(Layer("relu", (source,), self.shape(source)))

    def conv_bn_relu(self, source: int, channels: int, size: int, stride: int = 1,
                     name: str = "") -> int:
        """Convolution, batch norm, ReLU (NAS-Bench-101's op and projection)."""
        conv = self.conv(source, channels, size, stride, name)
        return self.relu(self.bn(conv, name and name + ".bn"))

    def relu_conv_bn(self, source: int, channels: int, size: int, stride: int = 1,
                     name: str = "") -> int:
        """ReLU, convolution, batch norm (NAS-Bench-201's op)."""
        conv = self.conv(self.relu(source), channels, size, stride, name)
        return self.bn(conv, name and name + ".bn")

    def add(self, sources: Sequence[int]) -> int:
        """Sum of the sources (one source is returned as it is)."""
        if len(sources) == 1:
            return sources[0]
        return self._add(Layer("add", tuple(sources), self.shape(sources[0])))

    def concat(self, sources: Sequence[int]) -> int:
        """Channel concatenation (one source is returned as it is)."""
        if len(sources) == 1:
            return sources[0]
        height, width, _ = self.shape(sources[0])
        channels = sum(self.shape(s)[2] for s in sources)
        return self._add(Layer("concat", tuple(sources), (height, width, channels)))

    def truncate(self, source: int, channels: int) -> int:
        """The first ``channels`` channels (the source itself when it has no more)."""
        height, width, have = self.shape(source)
        if have <= channels:
            return source
        return self._add(Layer("slice", (source,), (height, width, channels)))

    def zero(self, like: int, channels: int) -> int:
        """Zeros with ``like``'s spatial shape and ``channels`` channels."""
        height, width, _ = self.shape(like)
        return self._add(Layer("zero", (like,), (height, width, channels)))

    def mix(self, sources: Sequence[int], choices: Sequence[int], like: int, name: str) -> int:
        """A mixed edge named ``name``: the weighted sum of ``sources`` (op ``choices``),
        zeros shaped like ``like`` when there are none."""
        inputs = tuple(sources) if sources else (like,)
        return self._add(Layer("mix", inputs, self.shape(like), name=name,
                               choices=tuple(choices)))

    def gap(self, source: int) -> int:
        """Global average pooling."""
        return self._add(Layer("gap", (source,), (1, 1, self.shape(source)[2])))

    def dense(self, source: int, classes: int, name: str = "classifier") -> int:
        """Classifier with bias."""
        return self._add(Layer("dense", (source,), (1, 1, classes), name=name))

    def build(self) -> Architecture:
        """The finished architecture."""
        return Architecture(tuple(self.layers))
