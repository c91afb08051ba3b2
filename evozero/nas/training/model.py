"""A trainable network: an :class:`~evozero.nas.spaces.network.Architecture` with its weights,
run forward and backward with the :mod:`ops.neural` kernels (float32, NHWC).

A batch norm whose only reader is a ReLU runs as one fused kernel; a ReLU of a tensor
that is rectified already reads the earlier result; convolutions of one geometry that
read the same tensor run as one convolution with their filters side by side (one im2col,
one wider matrix product), their outputs and weight gradients split again. Weights are kept per
layer name (see :class:`~evozero.nas.spaces.network.Layer`), which is what lets a child
network start from its parent's trained weights where its layers are unchanged, and a
supernet's networks share one set of arrays (``shared``).

A supernet's mixed edges (``mix`` layers) weigh their inputs by :attr:`Model.mixing`, set
by name before a forward pass; the backward pass leaves in :attr:`Model.mix_grads`, by
name, the inner product of the output gradient with each input and its plain sum (what a
coefficient of an op that was not computed receives when its value is added as a scalar).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from evozero.nas.spaces.network import Architecture, Layer
from ops import neural

# Layers whose weights train, and the kinds that carry running statistics.
WEIGHTED = ("conv", "dwconv", "bn", "dense")
_BN_MOMENTUM = 0.1


def _initial_weights(layer: Layer, in_channels: int, rng: np.random.Generator
                     ) -> list[np.ndarray]:
    kh, kw = layer.kernel
    channels = layer.shape[2]
    if layer.kind == "conv":
        return [neural.he_normal(rng, (kh, kw, in_channels, channels), kh * kw * in_channels)]
    if layer.kind == "dwconv":
        return [neural.he_normal(rng, (kh, kw, channels), kh * kw)]
    if layer.kind == "bn":
        return [np.ones(channels, np.float32), np.zeros(channels, np.float32)]
    # dense: scaled so that logits start small, as a linear layer's default init does
    bound = 1.0 / np.sqrt(in_channels)
    return [rng.uniform(-bound, bound, (in_channels, channels)).astype(np.float32),
            np.zeros(channels, np.float32)]


class Model:
    """An architecture's weights and its forward and backward passes."""

    def __init__(self, arch: Architecture, seed: int, dtype: type = np.float32,
                 merge: bool = True,
                 shared: Mapping[str, list[np.ndarray]] | None = None) -> None:
        """Weights drawn from ``seed``, or for a layer named in ``shared`` that layer's
        arrays themselves (not copies: training updates them for every model sharing
        them); ``merge`` False runs every layer on its own (no duplicate ReLU read back,
        no sibling convolutions joined), as a reference."""
        self.arch = arch
        self.dtype = dtype        # float64 serves gradient checks
        rng = np.random.default_rng(seed)
        self.weights: dict[int, list[np.ndarray]] = {}
        self.stats: dict[int, list[np.ndarray]] = {}    # bn running mean and variance
        for index, layer in enumerate(arch.layers):
            if layer.kind in WEIGHTED and shared is not None and layer.name in shared:
                self.weights[index] = list(shared[layer.name])
            elif layer.kind in WEIGHTED:
                self.weights[index] = [w.astype(dtype) for w in
                                       _initial_weights(layer, arch.in_channels(index), rng)]
            if layer.kind == "bn":
                channels = layer.shape[2]
                self.stats[index] = [np.zeros(channels, dtype), np.ones(channels, dtype)]
        self.grads: dict[int, list[np.ndarray]] = {}
        #: Coefficients of each mixed edge's inputs by its name, one per op number.
        self.mixing: dict[str, np.ndarray] = {}
        #: After backward: per mixed edge name, <gradient, input> per input and sum(gradient).
        self.mix_grads: dict[str, tuple[np.ndarray, float]] = {}
        # Pools with TensorFlow's 'same' padding (padded after the input).
        self._same_pools = {i for i in range(1, len(arch.layers)) if arch.pad_after(i) != (0, 0)}
        self._fused = arch.fused_relus()
        duplicates = arch.duplicate_relus() if merge else {}
        skipped = set(self._fused.values()) | set(duplicates)
        self._schedule = [i for i in range(1, len(arch.layers)) if i not in skipped]
        # What each layer reads, a duplicate relu replaced by the one that runs.
        self._inputs = [tuple(duplicates.get(i, i) for i in layer.inputs)
                        for layer in arch.layers]
        self._siblings = {member: group for group in (arch.sibling_convs() if merge else [])
                          for member in group}
        self._caches: list[Any] = []

    # -- weights ------------------------------------------------------------------------

    def parameters(self) -> list[np.ndarray]:
        """Every trainable array, in a fixed order."""
        return [w for index in sorted(self.weights) for w in self.weights[index]]

    def decayed(self) -> list[bool]:
        """For each of :meth:`parameters`: whether weight decay applies (not to batch
        norm's scale and shift, nor to biases)."""
        flags = []
        for index in sorted(self.weights):
            kind = self.arch.layers[index].kind
            flags += [kind != "bn" and position == 0
                      for position in range(len(self.weights[index]))]
        return flags

    def gradients(self) -> list[np.ndarray]:
        """Gradients of :meth:`parameters` from the last :meth:`backward`."""
        return [g for index in sorted(self.weights) for g in self.grads[index]]

    def named_gradients(self) -> dict[str, list[np.ndarray]]:
        """Gradients from the last :meth:`backward` by layer name."""
        return {self.arch.layers[index].name: grads for index, grads in self.grads.items()}

    def named_state(self) -> dict[str, list[np.ndarray]]:
        """Weights and running statistics by layer name."""
        state: dict[str, list[np.ndarray]] = {}
        for index, layer in enumerate(self.arch.layers):
            if index in self.weights and layer.name:
                state[layer.name] = self.weights[index] + self.stats.get(index, [])
        return state

    def inherit(self, state: dict[str, list[np.ndarray]]) -> int:
        """Take the weights of layers with the same name and shapes from ``state`` (a
        parent's :meth:`named_state`); returns how many layers inherited."""
        taken = 0
        for index, layer in enumerate(self.arch.layers):
            if index not in self.weights or layer.name not in state:
                continue
            mine = self.weights[index] + self.stats.get(index, [])
            theirs = state[layer.name]
            if len(theirs) == len(mine) and all(a.shape == b.shape for a, b in zip(mine, theirs)):
                for target, source in zip(mine, theirs):
                    target[...] = source
                taken += 1
        return taken

    # -- passes -------------------------------------------------------------------------

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        """Logits ``(N, classes)`` for a batch ``x`` (N, H, W, C); in training mode batch
        norm uses (and updates) batch statistics and the pass is kept for :meth:`backward`."""
        layers = self.arch.layers
        values: list[np.ndarray | None] = [None] * len(layers)
        values[0] = np.ascontiguousarray(x, dtype=self.dtype)
        caches: list[Any] = [None] * len(layers)
        for index in self._schedule:
            layer = layers[index]
            group = self._siblings.get(index)
            if group is not None:
                if index == group[0]:     # the first of the group computes them all
                    outputs, caches[index] = self._forward_siblings(group, values)
                    for member, output in zip(group, outputs):
                        values[member] = output
                continue
            values[index], caches[index] = self._forward_layer(
                index, layer, [values[i] for i in self._inputs[index]], training)
            if index in self._fused:
                values[self._fused[index]] = values[index]
        self._caches = caches if training else []
        logits = values[-1]
        assert logits is not None   # the schedule ends with the last layer
        return logits

    def _forward_siblings(self, group: tuple[int, ...], values: list) -> tuple[list, Any]:
        layer = self.arch.layers[group[0]]
        w = np.concatenate([self.weights[member][0] for member in group], axis=3)
        y, cache = neural.conv_forward(values[self._inputs[group[0]][0]], w, layer.stride,
                                       *layer.pad)
        bounds = self._channel_bounds(group)
        return [np.ascontiguousarray(y[..., lo:hi]) for lo, hi in zip(bounds, bounds[1:])], cache

    def _channel_bounds(self, group: tuple[int, ...]) -> np.ndarray:
        return np.cumsum([0] + [self.arch.layers[member].shape[2] for member in group])

    def _forward_layer(self, index: int, layer: Layer, inputs: list, training: bool) -> tuple:
        kind = layer.kind
        x = inputs[0]
        if kind == "bn":
            gamma, beta = self.weights[index]
            running_mean, running_var = self.stats[index]
            run = neural.bn_relu_forward if index in self._fused else neural.batchnorm_forward
            return run(x, gamma, beta, running_mean, running_var, training, _BN_MOMENTUM)
        if kind == "conv":
            return neural.conv_forward(x, self.weights[index][0], layer.stride, *layer.pad)
        if kind == "dwconv":
            return neural.depthwise_forward(x, self.weights[index][0], layer.stride, *layer.pad)
        if kind == "relu":
            return neural.relu_forward(x)
        if kind == "maxpool" and index in self._same_pools:
            return neural.max_pool_same_forward(x, *layer.kernel, layer.stride)
        if kind in ("maxpool", "avgpool"):
            return neural.pool_forward(x, kind[:3], *layer.kernel, layer.stride, *layer.pad)
        if kind == "add":
            return neural.add_forward(inputs), None
        if kind == "concat":
            return neural.concat_forward(inputs)
        if kind == "slice":
            return neural.slice_forward(x, layer.shape[2])
        if kind == "zero":
            return np.zeros((x.shape[0],) + layer.shape, self.dtype), None
        if kind == "gap":
            return neural.gap_forward(x)
        if kind == "mix":
            return self._forward_mix(layer, inputs)
        if kind == "dense":
            return neural.dense_forward(x, *self.weights[index])
        raise ValueError(f"unknown layer kind {kind!r}")

    def _forward_mix(self, layer: Layer, inputs: list) -> tuple:
        if not layer.choices:
            return np.zeros_like(inputs[0]), (layer, [], np.zeros(0))
        coefficients: np.ndarray = np.asarray(self.mixing[layer.name],
                                              dtype=self.dtype)[list(layer.choices)]
        output = coefficients[0] * inputs[0]
        for coefficient, value in zip(coefficients[1:], inputs[1:]):
            output += coefficient * value
        return output, (layer, inputs, coefficients)

    def _backward_mix(self, gradient: np.ndarray, cache: tuple) -> list:
        layer, inputs, coefficients = cache
        wide = gradient.astype(np.float64).ravel()
        inner = np.array([wide @ value.astype(np.float64).ravel() for value in inputs])
        self.mix_grads[layer.name] = (inner, float(wide.sum()))
        if not layer.choices:
            return [None]
        return [coefficient * gradient for coefficient in coefficients]

    def backward(self, dlogits: np.ndarray) -> None:
        """Gradients of every weight (:meth:`gradients`) from the gradient of the loss
        with respect to the logits of the last training :meth:`forward`."""
        layers = self.arch.layers
        flowing: list[np.ndarray | None] = [None] * len(layers)
        flowing[-1] = dlogits.astype(self.dtype, copy=False)
        self.grads = {}
        self.mix_grads = {}
        for index in reversed(self._schedule):
            group = self._siblings.get(index)
            if group is not None and index != group[0]:
                continue   # the group's first member runs last, when every gradient is in
            gradient = flowing[self._fused.get(index, index)]
            if group is not None:
                gradient = self._sibling_gradient(group, flowing)
            if gradient is None:       # nothing downstream depends on this layer
                gradient = self._zero_gradient(index)
                if gradient is None:
                    continue
            layer = layers[index]
            for source, dx in zip(self._inputs[index],
                                  self._backward_layer(index, layer, gradient)):
                if dx is None or source == 0:
                    continue
                if flowing[source] is None:
                    flowing[source] = dx
                else:
                    flowing[source] = flowing[source] + dx
        self._caches = []

    def _sibling_gradient(self, group: tuple[int, ...], flowing: list) -> np.ndarray | None:
        # The output gradients of the group side by side, zeros for a member that reaches
        # no loss; None when none does.
        if all(flowing[member] is None for member in group):
            for member in group:
                self._zero_gradient(member)
            return None
        batch = next(g for g in (flowing[member] for member in group) if g is not None).shape[0]
        return np.concatenate([flowing[member] if flowing[member] is not None else
                               np.zeros((batch,) + self.arch.layers[member].shape, self.dtype)
                               for member in group], axis=-1)

    def _zero_gradient(self, index: int) -> np.ndarray | None:
        # A weighted layer whose output reaches no loss still needs (zero) gradients.
        if index not in self.weights:
            return None
        self.grads[index] = [np.zeros_like(w) for w in self.weights[index]]
        return None

    def _backward_layer(self, index: int, layer: Layer, gradient: np.ndarray) -> list:
        kind = layer.kind
        cache = self._caches[index]
        if kind == "bn":
            bn_backward = (neural.bn_relu_backward if index in self._fused
                           else neural.batchnorm_backward)
            dx, dgamma, dbeta = bn_backward(gradient, cache)
            self.grads[index] = [dgamma, dbeta]
            return [dx]
        if kind == "conv":
            # The images need no gradient: the first convolution skips that product.
            input_gradient, dw = neural.conv_backward(
                gradient, cache, input_gradient=self._inputs[index][0] != 0)
            group = self._siblings.get(index, (index,))
            bounds = self._channel_bounds(group)
            for member, lo, hi in zip(group, bounds, bounds[1:]):
                self.grads[member] = [np.ascontiguousarray(dw[..., lo:hi])]
            return [input_gradient]
        if kind == "dwconv":
            dx, dw = neural.depthwise_backward(gradient, cache)
            self.grads[index] = [dw]
            return [dx]
        if kind == "dense":
            dx, dw, db = neural.dense_backward(gradient, cache)
            self.grads[index] = [dw, db]
            return [dx]
        if kind == "relu":
            return [neural.relu_backward(gradient, cache)]
        if kind in ("maxpool", "avgpool"):
            return [neural.pool_backward(gradient, cache)]
        if kind == "add":
            return [gradient] * len(layer.inputs)
        if kind == "concat":
            return neural.concat_backward(gradient, cache)
        if kind == "slice":
            return [neural.slice_backward(gradient, cache)]
        if kind == "gap":
            return [neural.gap_backward(gradient, cache)]
        if kind == "mix":
            return self._backward_mix(gradient, cache)
        return [None]      # zero: no gradient flows back

    def predict(self, x: np.ndarray, batch: int = 512) -> np.ndarray:
        """Logits in inference mode, computed in batches."""
        return np.concatenate([self.forward(x[start:start + batch], training=False)
                               for start in range(0, len(x), batch)])
