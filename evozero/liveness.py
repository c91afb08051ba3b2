"""Dead-code analysis: which instructions can affect a prediction.

Execution is Setup, then (Predict, Learn) per training example and Predict per
validation example, with memory carried throughout, and s1 read after every Predict.
A backward liveness fixpoint over that loop marks the rows that matter; the VM runs
only those. Random ops are defined to draw from the stream in the order of the rows
that survive this analysis, so removing dead rows never changes a fitness.
"""
from __future__ import annotations

import numpy as np

from ops.jit import jit
from ops.kinds import IN1_KIND, IN2_KIND, OUT_KIND, PARTIAL_WRITE

_S, _V, _M = 1, 2, 3


@jit
def _transfer(code, start, stop, live_s, live_v, live_m, keep, in1_kind, in2_kind, out_kind,
              partial):
    # Walks rows backward; live_* hold the live-out set on entry, the live-in set on exit.
    for row in range(stop - 1, start - 1, -1):
        op = code[row, 0]
        kind = out_kind[op]
        o = code[row, 3]
        if kind == 0:
            keep[row] = False
            continue
        if kind == _S:
            needed = live_s[o]
        elif kind == _V:
            needed = live_v[o]
        else:
            needed = live_m[o]
        keep[row] = needed
        if not needed:
            continue
        if not partial[op]:
            if kind == _S:
                live_s[o] = False
            elif kind == _V:
                live_v[o] = False
            else:
                live_m[o] = False
        for slot in range(2):
            k = in1_kind[op] if slot == 0 else in2_kind[op]
            a = code[row, 1 + slot]
            if k == _S:
                live_s[a] = True
            elif k == _V:
                live_v[a] = True
            elif k == _M:
                live_m[a] = True


@jit
def _copy_or(dst_s, dst_v, dst_m, src_s, src_v, src_m):
    changed = False
    for i in range(dst_s.size):
        if src_s[i] and not dst_s[i]:
            dst_s[i] = True
            changed = True
    for i in range(dst_v.size):
        if src_v[i] and not dst_v[i]:
            dst_v[i] = True
            changed = True
    for i in range(dst_m.size):
        if src_m[i] and not dst_m[i]:
            dst_m[i] = True
            changed = True
    return changed


@jit
def live_rows_kernel(code, bounds, num_s, num_v, num_m, in1_kind, in2_kind, out_kind, partial):
    """Boolean mask over rows of ``code``: True where the row can affect a prediction."""
    keep = np.zeros(code.shape[0], dtype=np.bool_)
    # live-in sets of Predict and Learn, grown to a fixpoint
    p_s, p_v, p_m = np.zeros(num_s, np.bool_), np.zeros(num_v, np.bool_), np.zeros(num_m, np.bool_)
    l_s, l_v, l_m = np.zeros(num_s, np.bool_), np.zeros(num_v, np.bool_), np.zeros(num_m, np.bool_)
    changed = True
    while changed:
        # After Predict: s1 is read, and Learn or Predict follows.
        w_s, w_v, w_m = p_s.copy(), p_v.copy(), p_m.copy()
        _copy_or(w_s, w_v, w_m, l_s, l_v, l_m)
        w_s[1] = True
        _transfer(code, bounds[1], bounds[2], w_s, w_v, w_m, keep, in1_kind, in2_kind, out_kind,
                  partial)
        changed = _copy_or(p_s, p_v, p_m, w_s, w_v, w_m)
        # After Learn: Predict follows.
        w_s, w_v, w_m = p_s.copy(), p_v.copy(), p_m.copy()
        _transfer(code, bounds[2], bounds[3], w_s, w_v, w_m, keep, in1_kind, in2_kind, out_kind,
                  partial)
        changed = _copy_or(l_s, l_v, l_m, w_s, w_v, w_m) or changed
    w_s, w_v, w_m = p_s.copy(), p_v.copy(), p_m.copy()
    _transfer(code, bounds[0], bounds[1], w_s, w_v, w_m, keep, in1_kind, in2_kind, out_kind,
              partial)
    return keep


@jit
def compact_kernel(code, constants, bounds, keep):
    """The rows of ``code`` and ``constants`` where ``keep`` is True, and their new bounds."""
    total = 0
    for row in range(code.shape[0]):
        if keep[row]:
            total += 1
    new_code = np.empty((total, 4), dtype=np.int64)
    new_constants = np.empty((total, 3), dtype=np.float64)
    new_bounds = np.zeros(4, dtype=np.int64)
    k = 0
    for component in range(3):
        for row in range(bounds[component], bounds[component + 1]):
            if keep[row]:
                new_code[k] = code[row]
                new_constants[k] = constants[row]
                k += 1
        new_bounds[component + 1] = k
    return new_code, new_constants, new_bounds


def live_rows(code: np.ndarray, bounds: np.ndarray, memory: tuple[int, int, int]) -> np.ndarray:
    """Boolean mask of the rows that can affect a prediction (see module docstring)."""
    num_s, num_v, num_m = memory
    return live_rows_kernel(code, bounds, num_s, num_v, max(num_m, 1), IN1_KIND, IN2_KIND,
                            OUT_KIND, PARTIAL_WRITE)
