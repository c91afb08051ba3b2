"""Batch normalisation over (N, H, W) per channel, alone or fused with a ReLU.

Every kernel sees the tensor as a (N*H*W, C) matrix and sweeps it contiguously: the
statistics and the backward sums in one pass each, the output in another. Sums run in
double precision: a batch of float32 activations has thousands of terms per channel.
The backward pass recomputes the normalised input from the cached input instead of
storing it, and the fused ReLU recomputes its mask with the very expression of the
forward pass.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ops.jit import jit


class BatchNormCache(NamedTuple):
    """What :func:`batchnorm_backward` needs: the input, the statistics it was normalised
    with (batch or running), the affine parameters and the flags of the forward pass."""
    x: np.ndarray
    mean: np.ndarray
    inv_std: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    training: bool
    relu: bool


# A channel loop of C (often 16) iterations is too short to vectorise well, so the
# kernels walk the flat tensor in chunks of several rows, about 128 elements, against
# per-channel parameters tiled to the chunk's length. Chunk offsets are unsigned: an
# index the compiler cannot prove non-negative gets a wrap-around check on every access.
_CHUNK_ELEMENTS = 128


@jit
def _chunk_rows(c):
    return max(1, _CHUNK_ELEMENTS // c)


@jit
def _tiled(values, rows):
    c = values.size
    out = np.empty(rows * c, dtype=values.dtype)
    for r in range(rows):
        for ch in range(c):
            out[r * c + ch] = values[ch]
    return out


@jit
def _folded(chunk_sums, c):
    # Per-channel totals of sums kept per chunk position (rows of c channels).
    totals = np.zeros(c, dtype=chunk_sums.dtype)
    for k in range(chunk_sums.size):
        totals[k % c] += chunk_sums[k]
    return totals


@jit
def _normalised(x, mean, scale, shift):
    # scale = gamma * inv_std and shift = beta: forward and backward share this expression
    # so the fused ReLU's mask is bit-identical in both passes.
    return (x - mean) * scale + shift


@jit
def _batch_statistics(x2, running_mean, running_var, momentum, eps):
    m, c = x2.shape
    rows = _chunk_rows(c)
    chunk = rows * c
    flat = x2.reshape(-1)
    # Sums of x - (first row) and of its square: one pass, and the shift keeps the
    # variance from cancelling when the mean is large against the spread.
    shift = _tiled(x2[0].astype(np.float64), rows)
    sums = np.zeros(chunk, dtype=np.float64)
    squares = np.zeros(chunk, dtype=np.float64)
    for start in range(0, flat.size, chunk):
        base = np.uint64(start)
        for k in range(np.uint64(min(chunk, flat.size - start))):
            d = flat[base + k] - shift[k]
            sums[k] += d
            squares[k] += d * d
    sums, squares = _folded(sums, c), _folded(squares, c)
    mean = np.empty(c, dtype=x2.dtype)
    inv_std = np.empty(c, dtype=x2.dtype)
    for ch in range(c):
        mean_shifted = sums[ch] / m
        var = max(squares[ch] / m - mean_shifted * mean_shifted, 0.0)
        mean[ch] = shift[ch] + mean_shifted
        inv_std[ch] = 1.0 / math.sqrt(var + eps)
        running_mean[ch] = (1.0 - momentum) * running_mean[ch] + momentum * mean[ch]
        running_var[ch] = (1.0 - momentum) * running_var[ch] + momentum * var * m / (m - 1)
    return mean, inv_std


@jit
def _affine(x2, mean, inv_std, gamma, beta, relu):
    m, c = x2.shape
    rows = _chunk_rows(c)
    chunk = rows * c
    means, scales, shifts = _tiled(mean, rows), _tiled(gamma * inv_std, rows), _tiled(beta, rows)
    zero = np.zeros(1, dtype=x2.dtype)[0]
    flat = x2.reshape(-1)
    y = np.empty_like(flat)
    for start in range(0, flat.size, chunk):
        base = np.uint64(start)
        for k in range(np.uint64(min(chunk, flat.size - start))):
            v = _normalised(flat[base + k], means[k], scales[k], shifts[k])
            if relu:
                v = np.maximum(v, zero)
            y[base + k] = v
    return y.reshape(m, c)


@jit
def _backward(dy2, x2, mean, inv_std, gamma, beta, training, relu):
    m, c = x2.shape
    rows = _chunk_rows(c)
    chunk = rows * c
    means, inv_stds = _tiled(mean, rows), _tiled(inv_std, rows)
    scales, shifts = _tiled(gamma * inv_std, rows), _tiled(beta, rows)
    flat_x, flat_dy = x2.reshape(-1), dy2.reshape(-1)
    sum_dy = np.zeros(chunk, dtype=np.float64)
    sum_dy_xhat = np.zeros(chunk, dtype=np.float64)
    for start in range(0, flat_x.size, chunk):
        base = np.uint64(start)
        for k in range(np.uint64(min(chunk, flat_x.size - start))):
            x = flat_x[base + k]
            g = flat_dy[base + k]
            if relu:
                g = g * (_normalised(x, means[k], scales[k], shifts[k]) > 0)
            sum_dy[k] += g
            sum_dy_xhat[k] += g * ((x - means[k]) * inv_stds[k])
    dbeta, dgamma = _folded(sum_dy, c), _folded(sum_dy_xhat, c)
    # With batch statistics dx = scale * (g - mean(g) - xhat * mean(g * xhat)); with
    # running statistics the mean and variance are constants and dx = scale * g.
    mean_dy = _tiled((dbeta / m).astype(x2.dtype), rows)
    mean_dy_xhat = _tiled((dgamma / m).astype(x2.dtype), rows)
    if not training:
        mean_dy[:] = 0
        mean_dy_xhat[:] = 0
    dx = np.empty_like(flat_x)
    for start in range(0, flat_x.size, chunk):
        base = np.uint64(start)
        for k in range(np.uint64(min(chunk, flat_x.size - start))):
            x = flat_x[base + k]
            g = flat_dy[base + k]
            if relu:
                g = g * (_normalised(x, means[k], scales[k], shifts[k]) > 0)
            xhat = (x - means[k]) * inv_stds[k]
            dx[base + k] = scales[k] * (g - mean_dy[k] - xhat * mean_dy_xhat[k])
    return dx.reshape(m, c), dgamma.astype(x2.dtype), dbeta.astype(x2.dtype)


def _forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, running_mean: np.ndarray,
             running_var: np.ndarray, training: bool, momentum: float, eps: float,
             relu: bool) -> tuple[np.ndarray, BatchNormCache]:
    x = np.ascontiguousarray(x)
    x2 = x.reshape(-1, x.shape[-1])
    gamma = gamma.astype(x.dtype, copy=False)
    beta = beta.astype(x.dtype, copy=False)
    if training:
        if x2.shape[0] < 2:
            raise ValueError("batch norm in training needs more than one value per channel")
        mean, inv_std = _batch_statistics(x2, running_mean, running_var, momentum, eps)
    else:
        mean = running_mean.astype(x.dtype)
        inv_std = (1.0 / np.sqrt(running_var + eps)).astype(x.dtype)
    y = _affine(x2, mean, inv_std, gamma, beta, relu).reshape(x.shape)
    return y, BatchNormCache(x, mean, inv_std, gamma, beta, training, relu)


def _backward_from_cache(dy: np.ndarray,
                         cache: BatchNormCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, mean, inv_std, gamma, beta, training, relu = cache
    c = x.shape[-1]
    dy2 = np.ascontiguousarray(dy, dtype=x.dtype).reshape(-1, c)
    dx, dgamma, dbeta = _backward(dy2, x.reshape(-1, c), mean, inv_std, gamma, beta,
                                  training, relu)
    return dx.reshape(x.shape), dgamma, dbeta


def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                      running_mean: np.ndarray, running_var: np.ndarray, training: bool,
                      momentum: float = 0.1,
                      eps: float = 1e-5) -> tuple[np.ndarray, BatchNormCache]:
    """Normalise each channel of ``x`` (..., C), then scale by ``gamma`` and shift by ``beta``.

    Training uses the batch mean and biased variance, and updates ``running_mean`` and
    ``running_var`` in place with ``momentum`` (the latter with the unbiased variance, as
    PyTorch); inference uses the running statistics. Returns ``y`` and the cache.
    """
    return _forward(x, gamma, beta, running_mean, running_var, training, momentum, eps, False)


def batchnorm_backward(dy: np.ndarray,
                       cache: BatchNormCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients ``(dx, dgamma, dbeta)`` of :func:`batchnorm_forward`."""
    return _backward_from_cache(dy, cache)


def bn_relu_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                    running_mean: np.ndarray, running_var: np.ndarray, training: bool,
                    momentum: float = 0.1,
                    eps: float = 1e-5) -> tuple[np.ndarray, BatchNormCache]:
    """ReLU of :func:`batchnorm_forward` in the same pass over memory."""
    return _forward(x, gamma, beta, running_mean, running_var, training, momentum, eps, True)


def bn_relu_backward(dy: np.ndarray,
                     cache: BatchNormCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients ``(dx, dgamma, dbeta)`` of :func:`bn_relu_forward`."""
    return _backward_from_cache(dy, cache)
