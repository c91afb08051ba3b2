"""The neural layers of :mod:`ops.neural`: forward passes against plain-numpy references,
backward passes against central finite differences (float64), fused layers against their
compositions, and the optimiser, schedule, loss and initialiser against hand formulas.

A gradient check differentiates the scalar ``sum(y * g)`` for a random upstream gradient
``g``. Inputs stay away from the kinks of ReLU and max pooling, so a finite-difference
step never crosses one.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ops.neural import (
    add_backward,
    add_forward,
    batchnorm_backward,
    batchnorm_forward,
    bn_relu_backward,
    bn_relu_forward,
    concat_backward,
    concat_forward,
    conv_backward,
    conv_forward,
    dense_backward,
    dense_forward,
    depthwise_backward,
    depthwise_forward,
    gap_backward,
    gap_forward,
    he_normal,
    learning_rate,
    pool_backward,
    pool_forward,
    relu_backward,
    relu_forward,
    sgd_step,
    slice_backward,
    slice_forward,
    softmax_cross_entropy,
)
from ops.neural import conv as conv_module
from ops.neural.runs import copy_run

pytestmark = pytest.mark.nas

FAST = settings(max_examples=25)
STEP = 1e-6
GRADIENT_TOLERANCE = 1e-4


# --- helpers ---------------------------------------------------------------------------

def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """|a - b| / (|a| + |b|) in the 2-norm over the whole array.

    The denominator is floored at 1e-4: a gradient that nearly vanishes (batch norm of
    two values per channel) is then held to an absolute 1e-8, above the ~1e-10 rounding
    noise of a finite difference.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-4))


def numeric_gradient(loss, arrays: list, which: int) -> np.ndarray:
    """Central differences of ``loss(*arrays)`` with respect to ``arrays[which]``."""
    target = arrays[which]
    grad = np.zeros_like(target)
    flat, flat_grad = target.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + STEP
        up = loss(*arrays)
        flat[i] = saved - STEP
        down = loss(*arrays)
        flat[i] = saved
        flat_grad[i] = (up - down) / (2 * STEP)
    return grad


def check_gradients(forward, backward, arrays: list, rng: np.random.Generator) -> None:
    """``backward(g)`` (one gradient per array) matches finite differences of sum(y * g)."""
    g = rng.standard_normal(np.shape(forward(*arrays)))
    analytic = backward(g)
    for which, grad in enumerate(analytic):
        numeric = numeric_gradient(lambda *a: float(np.sum(forward(*a) * g)), arrays, which)
        assert grad.shape == arrays[which].shape
        assert relative_error(grad, numeric) < GRADIENT_TOLERANCE, which


def away_from_zero(rng: np.random.Generator, shape) -> np.ndarray:
    """Normal values pushed at least 0.1 away from 0 (off ReLU's kink)."""
    values = rng.standard_normal(shape)
    return values + 0.1 * np.sign(values)


def distinct_values(rng: np.random.Generator, shape) -> np.ndarray:
    """Values at least 0.01 apart, so no max-pooling window has a near tie."""
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01 - 1.0


def output_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Outputs of a window sliding over ``size`` padded pixels."""
    return (size + 2 * pad - kernel) // stride + 1


# --- strategies ------------------------------------------------------------------------

@st.composite
def windows(draw, kernels=((1, 1), (3, 3), (2, 2), (1, 3), (1, 2), (3, 1)), max_pad=None):
    """An NHWC input shape and a window (kh, kw, stride, pad_h, pad_w) with outputs.

    Half of the examples are 1-D: H = 1 with windows of height 1.
    """
    one_d = draw(st.booleans())
    kh, kw = draw(st.sampled_from([k for k in kernels if k[0] == 1] if one_d else kernels))
    stride = draw(st.sampled_from((1, 2)))
    pad_limit = (lambda k: k // 2) if max_pad is None else max_pad
    pad_h = draw(st.integers(0, pad_limit(kh)))
    pad_w = draw(st.integers(0, pad_limit(kw)))
    n = draw(st.integers(1, 3))
    h = 1 if one_d else draw(st.integers(1, 6))
    w = draw(st.integers(1, 6))
    c = draw(st.integers(1, 5))
    assume(h + 2 * pad_h >= kh and w + 2 * pad_w >= kw)
    return (n, h, w, c), (kh, kw, stride, pad_h, pad_w)


SEEDS = st.integers(0, 2**32 - 1)
CONV_WINDOWS = windows(max_pad=lambda k: k - 1)
POOL_WINDOWS = windows(kernels=((3, 3), (2, 2), (1, 3), (1, 2)))


# --- references ------------------------------------------------------------------------

def conv_reference(x, w, stride, pad_h, pad_w):
    kh, kw, _, cout = w.shape
    n, h, wd, _ = x.shape
    ho, wo = output_size(h, kh, stride, pad_h), output_size(wd, kw, stride, pad_w)
    padded = np.pad(x, ((0, 0), (pad_h, pad_h), (pad_w, pad_w), (0, 0)))
    y = np.zeros((n, ho, wo, cout))
    for i in range(kh):
        for j in range(kw):
            rows = slice(i, i + stride * (ho - 1) + 1, stride)
            columns = slice(j, j + stride * (wo - 1) + 1, stride)
            patch = padded[:, rows, columns]
            y += np.einsum("nhwc,cd->nhwd", patch, w[i, j])
    return y


def depthwise_reference(x, w, stride, pad_h, pad_w):
    return conv_reference(x, np.einsum("ijc,cd->ijcd", w, np.eye(x.shape[3])), stride, pad_h, pad_w)


def pool_reference(x, kind, kh, kw, stride, pad_h, pad_w):
    n, h, w, c = x.shape
    ho, wo = output_size(h, kh, stride, pad_h), output_size(w, kw, stride, pad_w)
    y = np.zeros((n, ho, wo, c))
    for oh in range(ho):
        for ow in range(wo):
            h0, w0 = oh * stride - pad_h, ow * stride - pad_w
            window = x[:, max(h0, 0):h0 + kh, max(w0, 0):w0 + kw]
            y[:, oh, ow] = window.max(axis=(1, 2)) if kind == "max" else window.mean(axis=(1, 2))
    return y


def batchnorm_reference(x, gamma, beta, mean, var, eps=1e-5):
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


# --- convolutions ----------------------------------------------------------------------

@FAST
@given(geometry=CONV_WINDOWS, cout=st.integers(1, 5), seed=SEEDS)
def test_conv_forward_matches_the_padded_window_sum(geometry, cout, seed):
    shape, (kh, kw, stride, pad_h, pad_w) = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((kh, kw, shape[3], cout))
    y, _ = conv_forward(x, w, stride, pad_h, pad_w)
    reference = conv_reference(x, w, stride, pad_h, pad_w)
    np.testing.assert_allclose(y, reference, rtol=1e-10, atol=1e-12)
    y32, _ = conv_forward(x.astype(np.float32), w.astype(np.float32), stride, pad_h, pad_w)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y, rtol=1e-4, atol=1e-4)


@FAST
@given(geometry=CONV_WINDOWS, cout=st.integers(1, 5), seed=SEEDS)
def test_conv_backward_matches_finite_differences(geometry, cout, seed):
    shape, (kh, kw, stride, pad_h, pad_w) = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((kh, kw, shape[3], cout))
    cache = []

    def forward(x, w):
        y, c = conv_forward(x, w, stride, pad_h, pad_w)
        cache[:] = [c]
        return y

    check_gradients(forward, lambda g: conv_backward(g, cache[0]), [x, w], rng)


@FAST
@given(size=st.integers(1, 64), start=st.integers(0, 63), target=st.integers(0, 63),
       length=st.integers(0, 64), dtype=st.sampled_from((np.float32, np.float64)), seed=SEEDS)
def test_copy_run_copies_exactly_the_run(size, start, target, length, dtype, seed):
    rng = np.random.default_rng(seed)
    source = rng.standard_normal(start + length + size).astype(dtype)
    destination = rng.standard_normal(target + length + size).astype(dtype)
    expected = destination.copy()
    expected[target:target + length] = source[start:start + length]
    copy_run(destination, np.uint64(target), source, np.uint64(start), length)
    np.testing.assert_array_equal(destination, expected)


def test_first_convolution_skips_the_input_gradient():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 5, 5, 3)), rng.standard_normal((3, 3, 3, 4))
    y, cache = conv_forward(x, w, 1, 1, 1)
    dy = rng.standard_normal(y.shape)
    dx, dw = conv_backward(dy, cache, input_gradient=False)
    assert dx is None
    np.testing.assert_array_equal(dw, conv_backward(dy, cache)[1])


@FAST
@given(geometry=CONV_WINDOWS, seed=SEEDS)
def test_depthwise_forward_matches_the_padded_window_sum(geometry, seed):
    shape, (kh, kw, stride, pad_h, pad_w) = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((kh, kw, shape[3]))
    y, _ = depthwise_forward(x, w, stride, pad_h, pad_w)
    np.testing.assert_allclose(y, depthwise_reference(x, w, stride, pad_h, pad_w), rtol=1e-10,
                               atol=1e-12)


@FAST
@given(geometry=CONV_WINDOWS, seed=SEEDS)
def test_depthwise_backward_matches_finite_differences(geometry, seed):
    shape, (kh, kw, stride, pad_h, pad_w) = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((kh, kw, shape[3]))
    cache = []

    def forward(x, w):
        y, c = depthwise_forward(x, w, stride, pad_h, pad_w)
        cache[:] = [c]
        return y

    check_gradients(forward, lambda g: depthwise_backward(g, cache[0]), [x, w], rng)


def test_pointwise_conv_is_a_matrix_product_of_the_pixels():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    w = rng.standard_normal((1, 1, 5, 7)).astype(np.float32)
    y, cache = conv_forward(x, w, 1, 0, 0)
    np.testing.assert_allclose(y, x @ w[0, 0], rtol=1e-6)
    assert cache.cols is None  # no im2col copy: the input is the matrix


@pytest.mark.parametrize("kernel, stride, cout", [(3, 1, 3), (3, 1, 6), (3, 2, 3), (1, 1, 3)])
@pytest.mark.parametrize("keep", [True, False])
def test_conv_in_many_im2col_blocks_equals_one_block(monkeypatch, kernel, stride, cout, keep):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 5, 6, 4))
    w = rng.standard_normal((kernel, kernel, 4, cout))
    pad = kernel // 2
    dy = rng.standard_normal((3, output_size(5, kernel, stride, pad),
                              output_size(6, kernel, stride, pad), cout))
    y, cache = conv_forward(x, w, stride, pad, pad)
    dx, dw = conv_backward(dy, cache)
    # Blocks of three im2col rows, kept for the backward pass or rebuilt there.
    monkeypatch.setattr(conv_module, "_BLOCK_BYTES", 3 * kernel * kernel * 4 * 8)
    monkeypatch.setattr(conv_module, "_KEEP_BYTES", 1 << 30 if keep else 0)
    y_blocked, cache_blocked = conv_forward(x, w, stride, pad, pad)
    dx_blocked, dw_blocked = conv_backward(dy, cache_blocked)
    if kernel > 1:
        assert (cache_blocked.cols is not None) == keep
        assert not keep or len(cache_blocked.cols) > 1
    np.testing.assert_allclose(y_blocked, y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx_blocked, dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw_blocked, dw, rtol=1e-12, atol=1e-12)


# --- pooling ---------------------------------------------------------------------------

@FAST
@given(geometry=POOL_WINDOWS, kind=st.sampled_from(("max", "avg")), seed=SEEDS)
def test_pool_forward_matches_the_window_reference(geometry, kind, seed):
    shape, window = geometry
    x = np.random.default_rng(seed).standard_normal(shape)
    y, _ = pool_forward(x, kind, *window)
    np.testing.assert_allclose(y, pool_reference(x, kind, *window), rtol=1e-12, atol=1e-12)
    y32, _ = pool_forward(x.astype(np.float32), kind, *window)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y, rtol=1e-6, atol=1e-6)


@FAST
@given(geometry=POOL_WINDOWS, kind=st.sampled_from(("max", "avg")), seed=SEEDS)
def test_pool_backward_matches_finite_differences(geometry, kind, seed):
    shape, window = geometry
    rng = np.random.default_rng(seed)
    x = distinct_values(rng, shape)
    cache = []

    def forward(x):
        y, c = pool_forward(x, kind, *window)
        cache[:] = [c]
        return y

    check_gradients(forward, lambda g: [pool_backward(g, cache[0])], [x], rng)


def test_avg_pool_divides_by_the_real_pixels_only():
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    y, _ = pool_forward(x, "avg", 3, 3, 1, 1, 1)
    assert y[0, 0, 0, 0] == pytest.approx((1 + 2 + 4 + 5) / 4)  # corner: 4 real pixels
    assert y[0, 0, 1, 0] == pytest.approx((1 + 2 + 3 + 4 + 5 + 6) / 6)  # edge: 6
    assert y[0, 1, 1, 0] == pytest.approx(5.0)  # centre: all 9
    ones, _ = pool_forward(np.ones((2, 4, 4, 3)), "avg", 3, 3, 1, 1, 1)
    np.testing.assert_array_equal(ones, 1.0)


def test_max_pool_ignores_padding_and_sends_the_gradient_to_the_first_maximum():
    x = -np.ones((1, 2, 2, 1))  # all negative: zero padding would win if it counted
    y, cache = pool_forward(x, "max", 3, 3, 1, 1, 1)
    np.testing.assert_array_equal(y, -1.0)
    dx = pool_backward(np.ones_like(y), cache)
    # Every window holds all four equal pixels: the first one, in row-major order, wins.
    np.testing.assert_array_equal(dx[0, :, :, 0], [[4.0, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize("kind, window", [("min", (2, 2, 2, 0, 0)), ("max", (2, 2, 2, 2, 0))])
def test_pool_rejects_unknown_kinds_and_oversized_padding(kind, window):
    with pytest.raises(ValueError):
        pool_forward(np.zeros((1, 4, 4, 1)), kind, *window)


# --- batch norm and ReLU ---------------------------------------------------------------

@st.composite
def feature_maps(draw):
    n, h, w, c = (draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 6)),
                  draw(st.integers(1, 5)))
    assume(n * h * w >= 2)
    return n, h, w, c


def _bn_arrays(rng, shape):
    c = shape[-1]
    x = rng.standard_normal(shape) * 2.0 + 0.5
    gamma = rng.uniform(0.5, 1.5, c)
    beta = rng.standard_normal(c)
    running_mean, running_var = rng.standard_normal(c), rng.uniform(0.5, 2.0, c)
    return x, gamma, beta, running_mean, running_var


@FAST
@given(shape=feature_maps(), training=st.booleans(), seed=SEEDS)
def test_batchnorm_forward_normalises_with_batch_or_running_statistics(shape, training, seed):
    rng = np.random.default_rng(seed)
    x, gamma, beta, running_mean, running_var = _bn_arrays(rng, shape)
    old_mean, old_var = running_mean.copy(), running_var.copy()
    y, _ = batchnorm_forward(x, gamma, beta, running_mean, running_var, training, momentum=0.2)
    if training:
        mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
        m = x.size // shape[-1]
        np.testing.assert_allclose(y, batchnorm_reference(x, gamma, beta, mean, var), rtol=1e-9,
                                   atol=1e-9)
        np.testing.assert_allclose(running_mean, 0.8 * old_mean + 0.2 * mean, rtol=1e-12)
        np.testing.assert_allclose(running_var, 0.8 * old_var + 0.2 * var * m / (m - 1), rtol=1e-9)
    else:
        np.testing.assert_allclose(y, batchnorm_reference(x, gamma, beta, old_mean, old_var),
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(running_mean, old_mean)
        np.testing.assert_array_equal(running_var, old_var)


@FAST
@given(shape=feature_maps(), training=st.booleans(), seed=SEEDS)
def test_batchnorm_backward_matches_finite_differences(shape, training, seed):
    rng = np.random.default_rng(seed)
    x, gamma, beta, running_mean, running_var = _bn_arrays(rng, shape)
    cache = []

    def forward(x, gamma, beta):
        # Copies: finite differences must not move the running statistics.
        y, c = batchnorm_forward(x, gamma, beta, running_mean.copy(), running_var.copy(), training)
        cache[:] = [c]
        return y

    check_gradients(forward, lambda g: batchnorm_backward(g, cache[0]), [x, gamma, beta], rng)


@FAST
@given(shape=feature_maps(), training=st.booleans(), seed=SEEDS)
def test_bn_relu_backward_matches_finite_differences(shape, training, seed):
    rng = np.random.default_rng(seed)
    x, gamma, beta, running_mean, running_var = _bn_arrays(rng, shape)
    y, _ = batchnorm_forward(x, gamma, beta, running_mean.copy(), running_var.copy(), training)
    assume(np.min(np.abs(y)) > 1e-4)  # no step may cross the ReLU's kink
    cache = []

    def forward(x, gamma, beta):
        y, c = bn_relu_forward(x, gamma, beta, running_mean.copy(), running_var.copy(), training)
        cache[:] = [c]
        return y

    check_gradients(forward, lambda g: bn_relu_backward(g, cache[0]), [x, gamma, beta], rng)


@FAST
@given(shape=feature_maps(), training=st.booleans(),
       dtype=st.sampled_from((np.float32, np.float64)), seed=SEEDS)
def test_bn_relu_equals_batchnorm_then_relu(shape, training, dtype, seed):
    rng = np.random.default_rng(seed)
    x, gamma, beta, running_mean, running_var = (a.astype(dtype) for a in _bn_arrays(rng, shape))
    stats_fused = [running_mean.copy(), running_var.copy()]
    stats_plain = [running_mean.copy(), running_var.copy()]
    y_fused, cache_fused = bn_relu_forward(x, gamma, beta, *stats_fused, training)
    z, cache_bn = batchnorm_forward(x, gamma, beta, *stats_plain, training)
    y_plain, cache_relu = relu_forward(z)
    assert y_fused.dtype == dtype
    np.testing.assert_array_equal(y_fused, y_plain)
    np.testing.assert_array_equal(stats_fused, stats_plain)
    g = rng.standard_normal(shape).astype(dtype)
    fused = bn_relu_backward(g, cache_fused)
    plain = batchnorm_backward(relu_backward(g, cache_relu), cache_bn)
    for a, b in zip(fused, plain):
        np.testing.assert_array_equal(a, b)


def test_batchnorm_statistics_of_float32_inputs_survive_a_large_mean():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((64, 8, 8, 4)) * 0.01 + 1000.0).astype(np.float32)
    ones, zeros = np.ones(4, np.float32), np.zeros(4, np.float32)
    running_mean, running_var = zeros.copy(), zeros.copy()
    batchnorm_forward(x, ones, zeros, running_mean, running_var, True, momentum=1.0)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(running_mean, x64.mean(axis=(0, 1, 2)), rtol=1e-7)
    np.testing.assert_allclose(running_var, x64.var(axis=(0, 1, 2), ddof=1), rtol=1e-5)


def test_batchnorm_in_training_needs_two_values_per_channel():
    ones = np.ones(3)
    with pytest.raises(ValueError):
        batchnorm_forward(np.zeros((1, 1, 1, 3)), ones, ones, ones.copy(), ones.copy(), True)


@FAST
@given(shape=feature_maps(), seed=SEEDS)
def test_relu_forward_and_backward(shape, seed):
    rng = np.random.default_rng(seed)
    x = away_from_zero(rng, shape)
    y, cache = relu_forward(x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    check_gradients(lambda x: relu_forward(x)[0], lambda g: [relu_backward(g, cache)], [x], rng)


# --- float32, the production precision ---------------------------------------------------

def _float32_cases():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 6, 5, 8))
    gamma, beta = rng.uniform(0.5, 1.5, 8), rng.standard_normal(8)
    return {
        "conv3x3": (lambda x, w: conv_forward(x, w, 1, 1, 1), conv_backward,
                    [x, rng.standard_normal((3, 3, 8, 4))]),
        "conv3x3 widening": (lambda x, w: conv_forward(x, w, 1, 1, 1), conv_backward,
                             [x, rng.standard_normal((3, 3, 8, 16))]),
        "conv stride 2": (lambda x, w: conv_forward(x, w, 2, 1, 0), conv_backward,
                          [x, rng.standard_normal((3, 2, 8, 4))]),
        "conv1x1": (lambda x, w: conv_forward(x, w, 1, 0, 0), conv_backward,
                    [x, rng.standard_normal((1, 1, 8, 4))]),
        "depthwise": (lambda x, w: depthwise_forward(x, w, 1, 1, 1), depthwise_backward,
                      [x, rng.standard_normal((3, 3, 8))]),
        "max pool": (lambda x: pool_forward(x, "max", 3, 3, 1, 1, 1),
                     lambda g, c: [pool_backward(g, c)], [x]),
        "avg pool": (lambda x: pool_forward(x, "avg", 2, 2, 2, 0, 0),
                     lambda g, c: [pool_backward(g, c)], [x]),
        "batch norm": (lambda x, gamma, beta: batchnorm_forward(
            x, gamma, beta, np.zeros(8, x.dtype), np.ones(8, x.dtype), True),
                       batchnorm_backward, [x, gamma, beta]),
        "global average": (gap_forward, lambda g, c: [gap_backward(g, c)], [x]),
    }


@pytest.mark.parametrize("case", list(_float32_cases()))
def test_float32_layers_agree_with_float64(case):
    forward, backward, arrays = _float32_cases()[case]
    y64, cache64 = forward(*arrays)
    y32, cache32 = forward(*(a.astype(np.float32) for a in arrays))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-4)
    g = np.random.default_rng(8).standard_normal(y64.shape)
    for grad32, grad64 in zip(backward(g.astype(np.float32), cache32), backward(g, cache64)):
        assert grad32.dtype == np.float32
        assert relative_error(grad32, grad64) < 1e-5


# --- dense, shapes, loss -----------------------------------------------------------------

@FAST
@given(n=st.integers(1, 4), cin=st.integers(1, 5), cout=st.integers(1, 5), seed=SEEDS)
def test_dense_forward_and_backward(n, cin, cout, seed):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((n, cin)), rng.standard_normal((cin, cout))
    b = rng.standard_normal(cout)
    y, cache = dense_forward(x, w, b)
    np.testing.assert_allclose(y, x @ w + b, rtol=1e-12)
    check_gradients(lambda x, w, b: dense_forward(x, w, b)[0], lambda g: dense_backward(g, cache),
                    [x, w, b], rng)


@FAST
@given(shape=feature_maps(), seed=SEEDS)
def test_global_average_pooling(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    y, cache = gap_forward(x)
    np.testing.assert_allclose(y, x.mean(axis=(1, 2)), rtol=1e-12)
    check_gradients(lambda x: gap_forward(x)[0], lambda g: [gap_backward(g, cache)], [x], rng)


@FAST
@given(shape=feature_maps(), extra=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=SEEDS)
def test_concat_and_slice_move_channels_and_their_gradients(shape, extra, seed):
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal(shape[:3] + (c,)) for c in (shape[3], *extra)]
    y, cache = concat_forward(xs)
    np.testing.assert_array_equal(y, np.concatenate(xs, axis=3))
    dxs = concat_backward(y * 2.0, cache)
    for x, dx in zip(xs, dxs):
        np.testing.assert_array_equal(dx, x * 2.0)
        assert dx.flags.c_contiguous
    kept = shape[3]
    part, cache = slice_forward(y, kept)
    np.testing.assert_array_equal(part, xs[0])
    assert part.flags.c_contiguous
    dy = slice_backward(part, cache)
    assert dy.shape == y.shape
    np.testing.assert_array_equal(dy[..., :kept], xs[0])
    np.testing.assert_array_equal(dy[..., kept:], 0.0)


def test_add_sums_its_inputs_and_passes_the_gradient_to_each():
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((2, 3, 3, 4)) for _ in range(3)]
    np.testing.assert_allclose(add_forward(xs), xs[0] + xs[1] + xs[2], rtol=1e-12)
    single = add_forward(xs[:1])
    np.testing.assert_array_equal(single, xs[0])
    assert not np.shares_memory(single, xs[0])
    dy = rng.standard_normal((2, 3, 3, 4))
    grads = add_backward(dy, 3)
    assert len(grads) == 3 and all(g is dy for g in grads)


@FAST
@given(n=st.integers(1, 6), k=st.integers(2, 6), scale=st.sampled_from((1.0, 1e3)), seed=SEEDS)
def test_softmax_cross_entropy_matches_the_direct_formula(n, k, scale, seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, k)) * scale
    labels = rng.integers(0, k, n)
    loss, dlogits = softmax_cross_entropy(logits, labels)
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    assert math.isfinite(loss)
    assert loss == pytest.approx(-np.mean(log_probabilities[np.arange(n), labels]), rel=1e-12)
    np.testing.assert_allclose(dlogits, (probabilities - np.eye(k)[labels]) / n, atol=1e-12)
    if scale == 1.0:
        check_gradients(lambda z: np.array(softmax_cross_entropy(z, labels)[0]),
                        lambda g: [dlogits * g], [logits], rng)


def test_softmax_cross_entropy_of_a_uniform_prediction_is_log_k():
    loss, _ = softmax_cross_entropy(np.zeros((3, 10)), np.array([0, 4, 9]))
    assert loss == pytest.approx(math.log(10))


# --- optimiser, schedule, initialisation ---------------------------------------------

@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_step_follows_pytorch_with_momentum_and_weight_decay(nesterov):
    lr, momentum, decay = 0.1, 0.9, 0.01
    param = np.array([1.0, -2.0, 0.5])
    velocity = np.zeros(3)
    expected_param, expected_velocity = param.copy(), velocity.copy()
    for grad in (np.array([0.5, 0.25, -1.0]), np.array([-0.5, 1.0, 2.0])):
        g = grad + decay * expected_param
        expected_velocity = momentum * expected_velocity + g
        expected_param = expected_param - lr * (g + momentum * expected_velocity if nesterov
                                                else expected_velocity)
        sgd_step(param, grad, velocity, lr, momentum, decay, nesterov)
        np.testing.assert_allclose(param, expected_param, rtol=1e-14)
        np.testing.assert_allclose(velocity, expected_velocity, rtol=1e-14)


def test_sgd_step_updates_float32_parameters_in_place():
    param = np.ones((2, 2), np.float32)
    velocity = np.zeros_like(param)
    sgd_step(param, np.full((2, 2), 2.0, np.float32), velocity, 0.5, 0.0, 0.0)
    np.testing.assert_array_equal(param, 0.0)
    np.testing.assert_array_equal(velocity, 2.0)
    with pytest.raises(ValueError):
        sgd_step(np.ones((2, 4))[:, ::2], np.ones((2, 2)), np.zeros((2, 2)), 0.1, 0.9, 0.0)
    with pytest.raises(ValueError):
        sgd_step(np.ones(4), np.ones(3), np.zeros(4), 0.1, 0.9, 0.0)


def test_cosine_schedule_runs_from_base_to_zero_through_half():
    assert learning_rate(0, 100, 0.2, "cosine") == pytest.approx(0.2)
    assert learning_rate(50, 100, 0.2, "cosine") == pytest.approx(0.1)
    assert learning_rate(100, 100, 0.2, "cosine") == pytest.approx(0.0, abs=1e-15)
    assert learning_rate(25, 100, 0.2, "cosine") == pytest.approx(0.1 * (1 + math.cos(math.pi / 4)))
    assert learning_rate(37, 100, 0.2, "constant") == 0.2
    with pytest.raises(ValueError):
        learning_rate(0, 100, 0.2, "linear")


def test_he_normal_is_float32_with_the_kaiming_spread():
    a = he_normal(np.random.default_rng(3), (3, 3, 16, 64), 144)
    b = he_normal(np.random.default_rng(3), (3, 3, 16, 64), 144)
    assert a.dtype == np.float32 and a.shape == (3, 3, 16, 64)
    np.testing.assert_array_equal(a, b)
    assert a.std() == pytest.approx(math.sqrt(2 / 144), rel=0.05)
    assert abs(a.mean()) < 0.01
