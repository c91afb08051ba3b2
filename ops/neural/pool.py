"""Max and average pooling on NHWC tensors.

Padding never takes part: max pooling ignores it and average pooling divides by the
number of real pixels in the window (PyTorch's ``count_include_pad=False``). Max pooling
records, in the forward pass, the flat input index of each maximum, so its backward pass
is a scatter.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from ops.jit import jit
from ops.neural.conv import depthwise_forward, depthwise_input_gradient, output_size
from ops.neural.runs import max_run, tap_outputs, tap_runs, window


class PoolCache(NamedTuple):
    """What :func:`pool_backward` needs: the kind, the input shape, the geometry and, for
    max pooling, the flat index into the input of each output's maximum."""
    kind: str
    x_shape: tuple
    argmax: np.ndarray | None
    kh: int
    kw: int
    stride: int
    pad_h: int
    pad_w: int


@jit
def _max_forward(x, kh, kw, stride, pad_h, pad_w, ho, wo):
    n, h, w, c = x.shape
    y = np.full((n, ho, wo, c), -np.inf, dtype=x.dtype)
    argmax = np.full((n, ho, wo, c), -1, dtype=np.int32)
    flat_x, flat_y, flat_argmax = x.reshape(-1), y.reshape(-1), argmax.reshape(-1)
    for b in range(n):
        for oh in range(ho):
            h0, h1 = window(oh, stride, pad_h, kh, h)
            # Taps in row-major window order, so ties keep the first maximum as PyTorch.
            for ih in range(h0, h1):
                for j in range(kw):
                    lo, hi = tap_outputs(w, j, stride, pad_w, wo)
                    runs, length = tap_runs(lo, hi, stride, c)
                    for ow in range(lo, lo + runs):
                        out = np.uint64(((b * ho + oh) * wo + ow) * c)
                        pixel = np.uint64(((b * h + ih) * w + ow * stride - pad_w + j) * c)
                        max_run(flat_y, flat_argmax, out, flat_x, pixel, length)
    return y, argmax


@jit
def _max_backward(dy, argmax, size):
    dx = np.zeros(size, dtype=dy.dtype)
    flat_dy = dy.reshape(-1)
    flat_arg = argmax.reshape(-1)
    for i in range(flat_dy.size):
        dx[flat_arg[i]] += flat_dy[i]
    return dx


@functools.lru_cache(maxsize=256)
def _inverse_counts(h: int, w: int, c: int, kh: int, kw: int, stride: int, pad_h: int,
                    pad_w: int, ho: int, wo: int, dtype: np.dtype) -> np.ndarray:
    """1 / (real pixels in the window) of every output, shape (Ho, Wo, C), read-only: a
    network asks for the same few geometries at every step."""
    def inside(size, kernel, pad, outputs):
        start = np.arange(outputs) * stride - pad
        return np.minimum(start + kernel, size) - np.maximum(start, 0)

    counts = np.outer(inside(h, kh, pad_h, ho), inside(w, kw, pad_w, wo))
    inverse = np.repeat((1.0 / counts)[:, :, None], c, axis=2).astype(dtype)
    inverse.flags.writeable = False
    return inverse


def pool_forward(x: np.ndarray, kind: str, kh: int, kw: int, stride: int, pad_h: int,
                 pad_w: int) -> tuple[np.ndarray, PoolCache]:
    """Pool ``x`` (N, H, W, C) over kh x kw windows; ``kind`` is "max" or "avg".

    Padding may be at most half the window (as PyTorch), so every window holds a pixel.
    Returns ``y`` (N, Ho, Wo, C) and the cache.
    """
    if 2 * pad_h > kh or 2 * pad_w > kw:
        raise ValueError(f"pool padding ({pad_h}, {pad_w}) exceeds half the window ({kh}, {kw})")
    x = np.ascontiguousarray(x)
    ho, wo = output_size(x.shape[1], kh, stride, pad_h), output_size(x.shape[2], kw, stride, pad_w)
    if kind == "max":
        if x.size > np.iinfo(np.int32).max:
            raise ValueError("max pooling indexes its input with 32-bit integers")
        y, argmax = _max_forward(x, kh, kw, stride, pad_h, pad_w, ho, wo)
    elif kind == "avg":
        # Window sums are a depthwise convolution with weights 1.
        y, _ = depthwise_forward(x, np.ones((kh, kw, x.shape[3]), x.dtype), stride, pad_h, pad_w)
        y *= _inverse_counts(*x.shape[1:], kh, kw, stride, pad_h, pad_w, ho, wo, x.dtype)
        argmax = None
    else:
        raise ValueError(f"unknown pooling kind {kind!r} (expected 'max' or 'avg')")
    return y, PoolCache(kind, x.shape, argmax, kh, kw, stride, pad_h, pad_w)


def pool_backward(dy: np.ndarray, cache: PoolCache) -> np.ndarray:
    """Gradient ``dx`` of :func:`pool_forward` given the output gradient ``dy``."""
    kind, x_shape, argmax, kh, kw, stride, pad_h, pad_w = cache
    dy = np.ascontiguousarray(dy)
    if kind == "max":
        return _max_backward(dy, argmax, int(np.prod(x_shape))).reshape(x_shape)
    _, h, w, c = x_shape
    share = dy * _inverse_counts(h, w, c, kh, kw, stride, pad_h, pad_w, *dy.shape[1:3], dy.dtype)
    return depthwise_input_gradient(share, np.ones((kh, kw, c), dy.dtype), x_shape, stride,
                                    pad_h, pad_w)


def max_pool_same_forward(x: np.ndarray, kh: int, kw: int,
                          stride: int) -> tuple[np.ndarray, PoolCache]:
    """Max pooling with TensorFlow's 'same' padding: the output is ceil(H / stride) x
    ceil(W / stride), the padding is split as TensorFlow splits it (an odd one after the
    input) and takes no part. :func:`pool_backward` is its backward pass."""
    x = np.ascontiguousarray(x)
    if x.size > np.iinfo(np.int32).max:
        raise ValueError("max pooling indexes its input with 32-bit integers")
    h, w = x.shape[1:3]
    ho, wo = -(-h // stride), -(-w // stride)
    pad_h = max((ho - 1) * stride + kh - h, 0) // 2
    pad_w = max((wo - 1) * stride + kw - w, 0) // 2
    y, argmax = _max_forward(x, kh, kw, stride, pad_h, pad_w, ho, wo)
    return y, PoolCache("max", x.shape, argmax, kh, kw, stride, pad_h, pad_w)
