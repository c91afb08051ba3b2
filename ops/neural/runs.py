"""Loops over runs of consecutive elements of flat arrays: the inner loops of the kernels.

In NHWC the pixels of one image row that a window tap visits form one run of memory
(stride 1) or runs of C elements (larger strides), so a kernel is a few loops over taps
around these helpers. Offsets are unsigned on purpose: an index the compiler cannot
prove non-negative gets a wrap-around check on every access, which stops vectorisation;
views taken per pixel instead would pay a reference count each.
"""
from __future__ import annotations

import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ops.jit import jit


@jit
def window(o, stride, pad, kernel, size):
    """Pixels ``[first, stop)`` of output ``o``'s window that lie inside ``size`` pixels."""
    start = o * stride - pad
    first = max(start, 0)
    return first, max(min(start + kernel, size), first)


@jit
def tap_outputs(size, tap, stride, pad, out_size):
    """Outputs ``[lo, hi)`` whose window tap ``tap`` (0-based) lands inside ``size`` pixels."""
    lo = max(0, -((tap - pad) // stride))  # ceil((pad - tap) / stride)
    hi = min(out_size, (size - 1 + pad - tap) // stride + 1)
    return lo, max(hi, lo)


@jit
def tap_runs(lo, hi, stride, channels):
    """``(count, length)`` of the runs covering outputs ``[lo, hi)`` along a row: one run of
    consecutive pixels at stride 1, else one run of ``channels`` elements per output."""
    if stride == 1:
        return min(hi - lo, 1), (hi - lo) * channels
    return hi - lo, channels


@intrinsic
def _memcpy(typingctx, dst, d0, src, s0, length):
    # LLVM's memcpy: the C library's copy, several times faster than a compiled loop on
    # the runs of a few dozen elements that im2col copies (a loop's vector body and
    # remainder cost more than the copy there).
    if not (isinstance(dst, types.Array) and isinstance(src, types.Array)
            and dst.dtype == src.dtype):
        return None
    signature = types.void(dst, d0, src, s0, length)

    def codegen(context, builder, sig, args):
        target = context.make_array(sig.args[0])(context, builder, args[0])
        source = context.make_array(sig.args[2])(context, builder, args[2])
        count = context.cast(builder, args[4], sig.args[4], types.intp)
        itemsize = context.get_abi_sizeof(context.get_data_type(sig.args[0].dtype))
        cgutils.raw_memcpy(builder, cgutils.gep(builder, target.data, args[1]),
                           cgutils.gep(builder, source.data, args[3]), count, itemsize)
        return context.get_dummy_value()

    return signature, codegen


@jit
def copy_run(dst, d0, src, s0, length):
    """``dst[d0 + k] = src[s0 + k]`` for k < length (contiguous arrays of one dtype, the
    runs inside them, not overlapping)."""
    if length > 0:
        _memcpy(dst, d0, src, s0, length)


@jit
def zero_run(dst, d0, length):
    """``dst[d0 + k] = 0`` for k < length."""
    for k in range(np.uint64(length)):
        dst[d0 + k] = 0


@jit
def add_run(dst, d0, src, s0, length):
    """``dst[d0 + k] += src[s0 + k]`` for k < length."""
    for k in range(np.uint64(length)):
        dst[d0 + k] += src[s0 + k]


@jit
def multiply_add_run(dst, d0, a, a0, b, b0, length):
    """``dst[d0 + k] += a[a0 + k] * b[b0 + k]`` for k < length."""
    for k in range(np.uint64(length)):
        dst[d0 + k] += a[a0 + k] * b[b0 + k]


@jit
def max_run(best, where, d0, src, s0, length):
    """Running maximum ``best[d0 + k]`` over ``src[s0 + k]``, with ``where`` the index into
    ``src`` of the first maximum (a negative ``where`` means no value seen yet)."""
    first = np.int32(s0)  # 32-bit index arithmetic vectorises with the 32-bit floats
    for k in range(np.uint64(length)):
        v = src[s0 + k]
        cur = best[d0 + k]
        idx = where[d0 + k]
        # Arithmetic on the comparison instead of a branch keeps the loop vectorisable;
        # strictly greater keeps the first of equal maxima, as PyTorch.
        better = np.int32((v > cur) | (idx < 0))
        best[d0 + k] = np.maximum(cur, v)
        where[d0 + k] = idx + (first + np.int32(k) - idx) * better
