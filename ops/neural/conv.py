"""Convolutions on NHWC tensors: dense (im2col + GEMM) and depthwise (direct loops, also
the window sums of average pooling).

The im2col matrix has one row per output pixel and columns ordered (ki, kj, cin), the
memory order of a (kh, kw, Cin, Cout) weight, so the weight reshapes to the GEMM's right
operand without a copy. A 1x1 stride-1 convolution without padding skips im2col: the
input itself, seen as (N*H*W, Cin), is that matrix. Products run through numpy's BLAS.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ops.jit import jit
from ops.neural.runs import add_run, copy_run, multiply_add_run, tap_outputs, tap_runs, window, zero_run


class ConvCache(NamedTuple):
    """What :func:`conv_backward` needs: the input, the weight, the geometry and the
    im2col matrix as consecutive blocks of rows, or None where the backward pass rebuilds
    it (too large to keep) or needs none (pointwise: the input is that matrix)."""
    x: np.ndarray
    w: np.ndarray
    stride: int
    pad_h: int
    pad_w: int
    cols: list | None


class DepthwiseCache(NamedTuple):
    """What :func:`depthwise_backward` needs: the input, the weight and the geometry."""
    x: np.ndarray
    w: np.ndarray
    stride: int
    pad_h: int
    pad_w: int


def output_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Output length of a window sliding over ``size`` (floor division, as PyTorch)."""
    return (size + 2 * pad - kernel) // stride + 1


# The im2col matrix is built and multiplied a block of rows at a time: a block of about
# 1 MiB is still in cache when the GEMM reads it, where the whole matrix (9 times the
# input for a 3x3 kernel) would come back from memory. A matrix of more than 4 MiB is
# not kept for the backward pass: rebuilding its blocks there reads the input, a ninth
# of the traffic, and a deep network's caches stay small.
_BLOCK_BYTES = 1 << 20
_KEEP_BYTES = 4 << 20


def _row_blocks(rows: int, row_bytes: int) -> list:
    step = max(1, _BLOCK_BYTES // row_bytes)
    return [(first, min(first + step, rows)) for first in range(0, rows, step)]


@jit
def _im2col(x, kh, kw, stride, pad_h, pad_w, ho, wo, first_row, cols):
    # Fills cols with the im2col rows first_row, first_row + 1, ... (as many as cols has).
    n, h, w, c = x.shape
    segment = kw * c  # one kernel row: kw neighbouring pixels, contiguous in x and in cols
    flat_cols, flat_x = cols.reshape(-1), x.reshape(-1)
    # The output pixel of a row advances with the row: three divisions per row would
    # cost more than copying a small kernel's row.
    b, oh, ow = first_row // (ho * wo), (first_row // wo) % ho, first_row % wo
    for r in range(cols.shape[0]):
        first, stop = window(ow, stride, pad_w, kw, w)
        j0, j1 = first - (ow * stride - pad_w), stop - (ow * stride - pad_w)
        row = np.uint64(r * kh * segment)
        for i in range(kh):
            ih = oh * stride - pad_h + i
            start = row + np.uint64(i * segment)
            if ih < 0 or ih >= h:
                zero_run(flat_cols, start, segment)
                continue
            zero_run(flat_cols, start, j0 * c)
            source = np.uint64(((b * h + ih) * w + first) * c)
            copy_run(flat_cols, start + np.uint64(j0 * c), flat_x, source, (j1 - j0) * c)
            zero_run(flat_cols, start + np.uint64(j1 * c), segment - j1 * c)
        ow += 1
        if ow == wo:
            ow = 0
            oh += 1
            if oh == ho:
                oh = 0
                b += 1


def _block_buffer(spans: list, columns: int, dtype: np.dtype) -> np.ndarray:
    """One im2col block's worth of memory, refilled block after block."""
    return np.empty((spans[0][1] - spans[0][0], columns), dtype=dtype)


@jit
def _col2im(dcols, first_row, dx, kh, kw, stride, pad_h, pad_w, ho, wo):
    # Adds the rows of dcols, from im2col row first_row on, back into their pixels of dx.
    n, h, w, c = dx.shape
    segment = kw * c
    flat_dcols, flat_dx = dcols.reshape(-1), dx.reshape(-1)
    for r in range(first_row, first_row + dcols.shape[0]):
        b, oh, ow = r // (ho * wo), (r // wo) % ho, r % wo
        first, stop = window(ow, stride, pad_w, kw, w)
        j0, j1 = first - (ow * stride - pad_w), stop - (ow * stride - pad_w)
        row = (r - first_row) * kh * segment
        for i in range(kh):
            ih = oh * stride - pad_h + i
            if ih < 0 or ih >= h:
                continue
            target = np.uint64(((b * h + ih) * w + first) * c)
            add_run(flat_dx, target, flat_dcols, np.uint64(row + i * segment + j0 * c),
                    (j1 - j0) * c)


def _is_pointwise(w: np.ndarray, stride: int, pad_h: int, pad_w: int) -> bool:
    return w.shape[0] == 1 and w.shape[1] == 1 and stride == 1 and pad_h == 0 and pad_w == 0


def _im2col_product(x: np.ndarray, w2: np.ndarray, kh: int, kw: int, stride: int, pad_h: int,
                    pad_w: int, ho: int, wo: int, keep: bool) -> tuple[np.ndarray, list]:
    """im2col(x) @ w2 as (N*Ho*Wo, Cout), and the im2col blocks if ``keep``."""
    rows = x.shape[0] * ho * wo
    y = np.empty((rows, w2.shape[1]), dtype=x.dtype)
    spans = _row_blocks(rows, w2.shape[0] * x.itemsize)
    buffer = _block_buffer(spans, w2.shape[0], x.dtype)
    blocks = []
    for first, stop in spans:
        cols = np.empty_like(buffer) if keep else buffer
        cols = cols[:stop - first]
        _im2col(x, kh, kw, stride, pad_h, pad_w, ho, wo, first, cols)
        np.dot(cols, w2, out=y[first:stop])
        if keep:
            blocks.append(cols)
    return y, blocks


def conv_forward(x: np.ndarray, w: np.ndarray, stride: int, pad_h: int,
                 pad_w: int) -> tuple[np.ndarray, ConvCache]:
    """Convolve ``x`` (N, H, W, Cin) with ``w`` (kh, kw, Cin, Cout), no bias.

    Returns ``y`` (N, Ho, Wo, Cout), Ho = (H + 2 pad_h - kh) // stride + 1, and the cache.
    """
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w, dtype=x.dtype)
    n, h, wd, cin = x.shape
    kh, kw, _, cout = w.shape
    ho, wo = output_size(h, kh, stride, pad_h), output_size(wd, kw, stride, pad_w)
    w2 = w.reshape(kh * kw * cin, cout)
    if _is_pointwise(w, stride, pad_h, pad_w):
        y, cols = np.dot(x.reshape(n * h * wd, cin), w2), None
    else:
        keep = n * ho * wo * w2.shape[0] * x.itemsize <= _KEEP_BYTES
        y, blocks = _im2col_product(x, w2, kh, kw, stride, pad_h, pad_w, ho, wo, keep)
        cols = blocks if keep else None
    return y.reshape(n, ho, wo, cout), ConvCache(x, w, stride, pad_h, pad_w, cols)


def conv_backward(dy: np.ndarray, cache: ConvCache,
                  input_gradient: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """Gradients ``(dx, dw)`` of :func:`conv_forward` given the output gradient ``dy``;
    ``dx`` is None without ``input_gradient`` (a network's first layer needs none)."""
    x, w, stride, pad_h, pad_w, cols = cache
    kh, kw, cin, cout = w.shape
    n, h, wd, _ = x.shape
    dy = np.ascontiguousarray(dy, dtype=w.dtype)
    ho, wo = dy.shape[1], dy.shape[2]
    dy2 = dy.reshape(-1, cout)
    w2 = w.reshape(kh * kw * cin, cout)
    pointwise = _is_pointwise(w, stride, pad_h, pad_w)
    blocks = _row_blocks(dy2.shape[0], w2.shape[0] * x.itemsize)
    buffer = None
    dw = np.zeros_like(w2)
    for index, (first, stop) in enumerate(blocks):
        if pointwise:
            block = x.reshape(-1, cin)[first:stop]
        elif cols is not None:
            block = cols[index]
        else:
            if buffer is None:
                buffer = _block_buffer(blocks, w2.shape[0], x.dtype)
            block = buffer[:stop - first]
            _im2col(x, kh, kw, stride, pad_h, pad_w, ho, wo, first, block)
        dw += np.dot(block.T, dy2[first:stop])
    dw = dw.reshape(w.shape)
    if not input_gradient:
        return None, dw
    if pointwise:
        return np.dot(dy2, w2.T).reshape(x.shape), dw
    if stride == 1 and pad_h < kh and pad_w < kw and cout <= cin:
        # dx is the convolution of dy with the flipped, transposed kernel. Its im2col
        # gathers Cout channels where col2im would scatter Cin, for the same GEMM.
        flipped = np.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2)).reshape(-1, cin)
        dx, _ = _im2col_product(dy, flipped, kh, kw, 1, kh - 1 - pad_h, kw - 1 - pad_w, h, wd,
                                False)
        return dx.reshape(x.shape), dw
    dx = np.zeros_like(x)
    for first, stop in blocks:
        _col2im(np.dot(dy2[first:stop], w2.T), first, dx, kh, kw, stride, pad_h, pad_w, ho, wo)
    return dx, dw


@jit
def _tiled_weight(w, wo):
    # Each kernel tap's C weights repeated for wo output pixels, so a run over several
    # consecutive pixels of a row meets its weights in a run as well.
    kh, kw, c = w.shape
    tiled = np.empty((kh, kw, wo, c), dtype=w.dtype)
    for i in range(kh):
        for j in range(kw):
            for ow in range(wo):
                for ch in range(c):
                    tiled[i, j, ow, ch] = w[i, j, ch]
    return tiled.reshape(-1)


@jit
def _depthwise_taps(outputs, pixels, w, n, h, wd, ho, wo, stride, pad_h, pad_w, into_outputs):
    """Every window tap of a depthwise convolution over flat NHWC arrays: ``outputs +=
    pixels * weight`` (the forward pass) or, with ``into_outputs`` False, ``pixels +=
    outputs * weight`` (the input gradient)."""
    kh, kw, c = w.shape
    tiled = _tiled_weight(w, wo)
    for b in range(n):
        for oh in range(ho):
            for i in range(kh):
                ih = oh * stride - pad_h + i
                if ih < 0 or ih >= h:
                    continue
                for j in range(kw):
                    lo, hi = tap_outputs(wd, j, stride, pad_w, wo)
                    runs, length = tap_runs(lo, hi, stride, c)
                    for ow in range(lo, lo + runs):
                        out = np.uint64(((b * ho + oh) * wo + ow) * c)
                        pixel = np.uint64(((b * h + ih) * wd + ow * stride - pad_w + j) * c)
                        tap = np.uint64(((i * kw + j) * wo + ow) * c)
                        if into_outputs:
                            multiply_add_run(outputs, out, pixels, pixel, tiled, tap, length)
                        else:
                            multiply_add_run(pixels, pixel, outputs, out, tiled, tap, length)


@jit
def _depthwise_forward(x, w, stride, pad_h, pad_w, ho, wo):
    n, h, wd, c = x.shape
    y = np.zeros((n, ho, wo, c), dtype=x.dtype)
    _depthwise_taps(y.reshape(-1), x.reshape(-1), w, n, h, wd, ho, wo, stride, pad_h, pad_w,
                    True)
    return y


@jit
def _depthwise_input_gradient(dy, w, h, wd, stride, pad_h, pad_w):
    n, ho, wo, c = dy.shape
    dx = np.zeros((n, h, wd, c), dtype=dy.dtype)
    _depthwise_taps(dy.reshape(-1), dx.reshape(-1), w, n, h, wd, ho, wo, stride, pad_h, pad_w,
                    False)
    return dx


@jit
def _depthwise_weight_gradient(dy, x, kh, kw, stride, pad_h, pad_w):
    n, h, wd, c = x.shape
    ho, wo = dy.shape[1], dy.shape[2]
    # A weight gradient sums N*Ho*Wo terms: accumulate in double precision, per output
    # column of the row first so that the runs of several pixels stay runs.
    per_column = np.zeros(kh * kw * wo * c, dtype=np.float64)
    flat_x, flat_dy = x.reshape(-1), dy.reshape(-1)
    for b in range(n):
        for oh in range(ho):
            for i in range(kh):
                ih = oh * stride - pad_h + i
                if ih < 0 or ih >= h:
                    continue
                for j in range(kw):
                    lo, hi = tap_outputs(wd, j, stride, pad_w, wo)
                    runs, length = tap_runs(lo, hi, stride, c)
                    for ow in range(lo, lo + runs):
                        out = np.uint64(((b * ho + oh) * wo + ow) * c)
                        pixel = np.uint64(((b * h + ih) * wd + ow * stride - pad_w + j) * c)
                        tap = np.uint64(((i * kw + j) * wo + ow) * c)
                        multiply_add_run(per_column, tap, flat_dy, out, flat_x, pixel, length)
    dw = np.zeros((kh, kw, c), dtype=np.float64)
    columns = per_column.reshape(kh, kw, wo, c)
    for i in range(kh):
        for j in range(kw):
            for ow in range(wo):
                for ch in range(c):
                    dw[i, j, ch] += columns[i, j, ow, ch]
    return dw


def depthwise_forward(x: np.ndarray, w: np.ndarray, stride: int, pad_h: int,
                      pad_w: int) -> tuple[np.ndarray, DepthwiseCache]:
    """Convolve each channel of ``x`` (N, H, W, C) with its own filter ``w[:, :, c]``
    (``w`` is (kh, kw, C)); returns ``y`` (N, Ho, Wo, C) and the cache."""
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w, dtype=x.dtype)
    ho = output_size(x.shape[1], w.shape[0], stride, pad_h)
    wo = output_size(x.shape[2], w.shape[1], stride, pad_w)
    y = _depthwise_forward(x, w, stride, pad_h, pad_w, ho, wo)
    return y, DepthwiseCache(x, w, stride, pad_h, pad_w)


def depthwise_input_gradient(dy: np.ndarray, w: np.ndarray, x_shape: tuple, stride: int,
                             pad_h: int, pad_w: int) -> np.ndarray:
    """``dx`` of :func:`depthwise_forward` for an input of shape ``x_shape``: the part of
    the backward pass that needs the weight only."""
    dy = np.ascontiguousarray(dy)
    return _depthwise_input_gradient(dy, np.ascontiguousarray(w, dtype=dy.dtype), x_shape[1],
                                     x_shape[2], stride, pad_h, pad_w)


def depthwise_backward(dy: np.ndarray, cache: DepthwiseCache) -> tuple[np.ndarray, np.ndarray]:
    """Gradients ``(dx, dw)`` of :func:`depthwise_forward` given the output gradient ``dy``."""
    x, w, stride, pad_h, pad_w = cache
    dy = np.ascontiguousarray(dy, dtype=x.dtype)
    dw = _depthwise_weight_gradient(dy, x, w.shape[0], w.shape[1], stride, pad_h, pad_w)
    return depthwise_input_gradient(dy, w, x.shape, stride, pad_h, pad_w), dw.astype(w.dtype)
