"""The numba interpreter: runs a range of instructions on the memories of many tasks.

Memory is address-major so one decoded instruction runs over every task in one loop.
The kernel works on flat views: ``scalars[address, task]``,
``vectors[address, task * F + i]`` and ``matrices[address, task * F * F + i * F + j]``,
so element-wise ops are single contiguous loops. ``streams[task]`` is the random state
of each task. An instruction is a row ``(op, in1, in2, out)`` of ``code`` with
constants ``constants[row, 0:3]``; the semantics are those of :mod:`ops.table`.
Inputs and outputs of different kinds live in different arrays, so only same-kind
products and transposes need a scratch copy to allow aliasing.
"""
from __future__ import annotations

import math

import numpy as np

from ops.codes import (
    EPOCH_END,
    HALT,
    MATRIX_ABS,
    MATRIX_COLUMN_NORM,
    MATRIX_CONST_SET,
    MATRIX_DIFF,
    MATRIX_DIVISION,
    MATRIX_GAUSSIAN_SET,
    MATRIX_HEAVYSIDE,
    MATRIX_MATRIX_PRODUCT,
    MATRIX_MAX,
    MATRIX_MEAN,
    MATRIX_MIN,
    MATRIX_NORM,
    MATRIX_PRODUCT,
    MATRIX_RECIPROCAL,
    MATRIX_ROW_MEAN,
    MATRIX_ROW_NORM,
    MATRIX_ROW_ST_DEV,
    MATRIX_ST_DEV,
    MATRIX_SUM,
    MATRIX_TRANSPOSE,
    MATRIX_UNIFORM_SET,
    MATRIX_VECTOR_PRODUCT,
    NO_OP,
    SCALAR_ABS,
    SCALAR_ARCCOS,
    SCALAR_ARCSIN,
    SCALAR_ARCTAN,
    SCALAR_BROADCAST,
    SCALAR_CONST_SET,
    SCALAR_COS,
    SCALAR_DIFF,
    SCALAR_DIVISION,
    SCALAR_EXP,
    SCALAR_GAUSSIAN_SET,
    SCALAR_HEAVYSIDE,
    SCALAR_LOG,
    SCALAR_MATRIX_PRODUCT,
    SCALAR_MAX,
    SCALAR_MIN,
    SCALAR_PRODUCT,
    SCALAR_RECIPROCAL,
    SCALAR_SIN,
    SCALAR_SUM,
    SCALAR_TAN,
    SCALAR_UNIFORM_SET,
    SCALAR_VECTOR_PRODUCT,
    TRAIN_BEGIN,
    TRAIN_END,
    TRAIN_PREDICTED,
    VALID_BEGIN,
    VALID_END,
    VECTOR_ABS,
    VECTOR_COLUMN_BROADCAST,
    VECTOR_CONST_SET,
    VECTOR_DIFF,
    VECTOR_DIVISION,
    VECTOR_GAUSSIAN_SET,
    VECTOR_HEAVYSIDE,
    VECTOR_INNER_PRODUCT,
    VECTOR_MAX,
    VECTOR_MEAN,
    VECTOR_MIN,
    VECTOR_NORM,
    VECTOR_OUTER_PRODUCT,
    VECTOR_PRODUCT,
    VECTOR_RECIPROCAL,
    VECTOR_ROW_BROADCAST,
    VECTOR_ST_DEV,
    VECTOR_SUM,
    VECTOR_UNIFORM_SET,
)
from ops.jit import jit
from ops.rng import next_normal, next_uniform


@jit
def _nan_min(a, b):
    if a != a or b != b:
        return np.nan
    return a if a < b else b


@jit
def _nan_max(a, b):
    if a != a or b != b:
        return np.nan
    return a if a > b else b


@jit
def _step(x):
    return 1.0 if x > 0.0 else 0.0


@jit
def _index(fraction, n):
    # Clip before converting: a huge fraction must not overflow int64.
    position = np.floor(n * fraction)
    if position >= n:
        return n - 1
    if position >= 0.0:
        return int(position)
    return 0  # negative or NaN


@jit
def _uniform(streams, t, lo, hi):
    low = min(lo, hi)
    return low + (max(lo, hi) - low) * next_uniform(streams, t)


@jit
def _gaussian(streams, t, mean, std):
    return mean + abs(std) * next_normal(streams, t)


@jit
def _matrix_vector(m, v, out, n):
    """``out[:n] = m @ v`` for a row-major n x n ``m``, each row's sum in element order,
    four rows at a time: four independent sums keep the adder busy where one sum would wait
    on each addition."""
    i = 0
    while i + 4 <= n:
        s0 = s1 = s2 = s3 = 0.0
        r0, r1, r2, r3 = i * n, (i + 1) * n, (i + 2) * n, (i + 3) * n
        for j in range(n):
            x = v[j]
            s0 += m[r0 + j] * x
            s1 += m[r1 + j] * x
            s2 += m[r2 + j] * x
            s3 += m[r3 + j] * x
        out[i], out[i + 1], out[i + 2], out[i + 3] = s0, s1, s2, s3
        i += 4
    while i < n:
        s = 0.0
        for j in range(n):
            s += m[i * n + j] * v[j]
        out[i] = s
        i += 1


@jit
def _matrix_matrix(a, b, out, n):
    """``out[:n*n] = a @ b`` for row-major n x n matrices. Each entry is summed over k in
    order from 0.0, as a dot product would; running k outside j lets the inner loop walk
    rows of ``b`` and ``out`` contiguously."""
    for i in range(n):
        row = i * n
        for j in range(n):
            out[row + j] = 0.0
        for k in range(n):
            x = a[row + k]
            col = k * n
            for j in range(n):
                out[row + j] += x * b[col + j]


@jit
def run_instructions(code, constants, start, stop, scalars, vectors, matrices, streams):
    """Execute rows ``start..stop-1`` of ``code`` on memories shaped ``scalars[a, t]``,
    ``vectors[a, t, i]``, ``matrices[a, t, i, j]`` (C-contiguous)."""
    num_tasks = scalars.shape[1]
    n = vectors.shape[2]
    tape = np.zeros((stop - start + 1, 5), dtype=np.int64)
    for k in range(stop - start):
        tape[k, :4] = code[start + k]
        tape[k, 4] = start + k
    tape[stop - start, 0] = HALT
    empty = np.zeros((1, 1, num_tasks * n))
    run_tape(tape, constants, scalars, vectors.reshape(vectors.shape[0], num_tasks * n),
             matrices.reshape(matrices.shape[0], num_tasks * n * n), streams, n,
             np.empty(n * n), empty, np.zeros((1, 1, num_tasks)), empty[0],
             np.zeros((1, num_tasks)), False, False, 0.0, np.zeros(num_tasks),
             np.zeros((num_tasks, 0)), 0)


@jit
def run_tape(tape, constants, scalars, vectors, matrices, streams, n, scratch, x_train,
             y_train, x_valid, y_valid, classification, load_features, max_abs_error, fitness,
             record, first):
    """Run a tape on flat memories (module docstring) with F = ``n``; ``scratch`` holds at
    least F * F doubles, so the loop allocates nothing.

    A tape row is ``(op, in1, in2, out, constants row)``; rows with control codes run the
    evaluation protocol over the step-major data ``x_train[epoch, step, t * F + i]``,
    ``y_train[epoch, step, t]``, ``x_valid[step, t * F + i]``, ``y_valid[step, t]``:
    ``fitness[t]`` receives each task's best validation fitness over epochs and
    ``record[t, k]`` (if it has columns) the k-th prediction read. The memories hold a
    block of consecutive tasks: memory task t is data task ``first + t`` (the data,
    ``fitness`` and ``record`` are indexed by data task). Returns the lockstep training and
    validation steps run. One loop with one dispatch for instructions and protocol alike
    keeps the per-example overhead to a jump.

    A task stops training at its first prediction off by more than ``max_abs_error``
    (or NaN), and the block stops when all its tasks have; validation stops once every
    task still training has a broken validation error, unless predictions are recorded.
    """
    num_tasks = scalars.shape[1]
    tn = num_tasks * n
    tnn = tn * n
    nn = n * n
    epochs, n_train = x_train.shape[0], x_train.shape[1]
    n_valid = x_valid.shape[0]
    first_feature = first * n
    alive = np.ones(num_tasks, dtype=np.bool_)
    score = np.zeros(num_tasks)
    broken = np.zeros(num_tasks, dtype=np.bool_)
    n_alive = num_tasks
    n_broken = 0
    record_size = record.shape[1]
    recorded = 0
    train_steps = 0
    valid_steps = 0
    epoch = 0
    step = 0
    pc = 0
    while True:
        op = tape[pc, 0]
        a = tape[pc, 1]
        b = tape[pc, 2]
        o = tape[pc, 3]
        row = tape[pc, 4]
        pc += 1
        if op == NO_OP:
            pass
        # --- scalar arithmetic and functions
        elif op == SCALAR_SUM:
            for t in range(num_tasks):
                x = scalars[a, t]
                y = scalars[b, t]
                scalars[o, t] = x + y
        elif op == SCALAR_DIFF:
            for t in range(num_tasks):
                x = scalars[a, t]
                y = scalars[b, t]
                scalars[o, t] = x - y
        elif op == SCALAR_PRODUCT:
            for t in range(num_tasks):
                x = scalars[a, t]
                y = scalars[b, t]
                scalars[o, t] = x * y
        elif op == SCALAR_DIVISION:
            for t in range(num_tasks):
                x = scalars[a, t]
                y = scalars[b, t]
                scalars[o, t] = x / y
        elif op == SCALAR_ABS:
            for t in range(num_tasks):
                x = scalars[a, t]
                scalars[o, t] = abs(x)
        elif op == SCALAR_RECIPROCAL:
            for t in range(num_tasks):
                x = scalars[a, t]
                scalars[o, t] = 1.0 / x
        elif op == SCALAR_SIN:
            for t in range(num_tasks):
                x = scalars[a, t]
                scalars[o, t] = math.sin(x)
        elif op == SCALAR_COS:
            for t in range(num_tasks):
                x = scalars[a, t]
                scalars[o, t] = math.cos(x)
        elif op == SCALAR_TAN:
            for t in range(num_tasks):
                x = scalars[a, t]
                scalars[o, t] = math.tan(x)
        elif op == SCALAR_ARCSIN:
            for t in range(num_tasks):
                x = scalars[a, t]
                scalars[o, t] = np.arcsin(x)
        elif op == SCALAR_ARCCOS:
            for t in range(num_tasks):
                x = scalars[a, t]
                scalars[o, t] = np.arccos(x)
        elif op == SCALAR_ARCTAN:
            for t in range(num_tasks):
                x = scalars[a, t]
                scalars[o, t] = math.atan(x)
        elif op == SCALAR_EXP:
            for t in range(num_tasks):
                x = scalars[a, t]
                scalars[o, t] = np.exp(x)
        elif op == SCALAR_LOG:
            for t in range(num_tasks):
                x = scalars[a, t]
                scalars[o, t] = np.log(x)
        # --- step function of each kind
        elif op == SCALAR_HEAVYSIDE:
            for t in range(num_tasks):
                x = scalars[a, t]
                scalars[o, t] = _step(x)
        elif op == VECTOR_HEAVYSIDE:
            for k in range(tn):
                x = vectors[a, k]
                vectors[o, k] = _step(x)
        elif op == MATRIX_HEAVYSIDE:
            for k in range(tnn):
                x = matrices[a, k]
                matrices[o, k] = _step(x)
        # --- vector ops
        elif op == SCALAR_VECTOR_PRODUCT:
            for t in range(num_tasks):
                s = scalars[a, t]
                for k in range(t * n, t * n + n):
                    vectors[o, k] = s * vectors[b, k]
        elif op == SCALAR_BROADCAST:
            for t in range(num_tasks):
                s = scalars[a, t]
                for k in range(t * n, t * n + n):
                    vectors[o, k] = s
        elif op == VECTOR_RECIPROCAL:
            for k in range(tn):
                x = vectors[a, k]
                vectors[o, k] = 1.0 / x
        elif op == VECTOR_NORM:
            for t in range(num_tasks):
                s = 0.0
                for k in range(t * n, t * n + n):
                    s += vectors[a, k] * vectors[a, k]
                scalars[o, t] = math.sqrt(s)
        elif op == VECTOR_ABS:
            for k in range(tn):
                x = vectors[a, k]
                vectors[o, k] = abs(x)
        elif op == VECTOR_SUM:
            for k in range(tn):
                x = vectors[a, k]
                y = vectors[b, k]
                vectors[o, k] = x + y
        elif op == VECTOR_DIFF:
            for k in range(tn):
                x = vectors[a, k]
                y = vectors[b, k]
                vectors[o, k] = x - y
        elif op == VECTOR_PRODUCT:
            for k in range(tn):
                x = vectors[a, k]
                y = vectors[b, k]
                vectors[o, k] = x * y
        elif op == VECTOR_DIVISION:
            for k in range(tn):
                x = vectors[a, k]
                y = vectors[b, k]
                vectors[o, k] = x / y
        elif op == VECTOR_INNER_PRODUCT:
            # Four tasks side by side: four independent sums keep the adder busy where one
            # sum would wait on each addition, and each task's sum keeps its order. Written
            # out here: a call per instruction costs more than the sums at small F.
            t = 0
            while t + 4 <= num_tasks:
                s0 = s1 = s2 = s3 = 0.0
                k0, k1, k2, k3 = t * n, (t + 1) * n, (t + 2) * n, (t + 3) * n
                for i in range(n):
                    s0 += vectors[a, k0 + i] * vectors[b, k0 + i]
                    s1 += vectors[a, k1 + i] * vectors[b, k1 + i]
                    s2 += vectors[a, k2 + i] * vectors[b, k2 + i]
                    s3 += vectors[a, k3 + i] * vectors[b, k3 + i]
                scalars[o, t] = s0
                scalars[o, t + 1] = s1
                scalars[o, t + 2] = s2
                scalars[o, t + 3] = s3
                t += 4
            while t < num_tasks:
                s = 0.0
                for k in range(t * n, t * n + n):
                    s += vectors[a, k] * vectors[b, k]
                scalars[o, t] = s
                t += 1
        elif op == VECTOR_OUTER_PRODUCT:
            for t in range(num_tasks):
                for i in range(n):
                    x = vectors[a, t * n + i]
                    base = t * nn + i * n
                    for j in range(n):
                        matrices[o, base + j] = x * vectors[b, t * n + j]
        # --- matrix ops
        elif op == SCALAR_MATRIX_PRODUCT:
            for t in range(num_tasks):
                s = scalars[a, t]
                for k in range(t * nn, t * nn + nn):
                    matrices[o, k] = s * matrices[b, k]
        elif op == MATRIX_RECIPROCAL:
            for k in range(tnn):
                x = matrices[a, k]
                matrices[o, k] = 1.0 / x
        elif op == MATRIX_VECTOR_PRODUCT:
            for t in range(num_tasks):
                _matrix_vector(matrices[a, t * nn:t * nn + nn], vectors[b, t * n:t * n + n],
                               scratch, n)
                for i in range(n):
                    vectors[o, t * n + i] = scratch[i]
        elif op == VECTOR_COLUMN_BROADCAST:
            for t in range(num_tasks):
                for i in range(n):
                    x = vectors[a, t * n + i]
                    for j in range(n):
                        matrices[o, t * nn + i * n + j] = x
        elif op == VECTOR_ROW_BROADCAST:
            for t in range(num_tasks):
                for i in range(n):
                    for j in range(n):
                        matrices[o, t * nn + i * n + j] = vectors[a, t * n + j]
        elif op == MATRIX_NORM:
            for t in range(num_tasks):
                s = 0.0
                for k in range(t * nn, t * nn + nn):
                    s += matrices[a, k] * matrices[a, k]
                scalars[o, t] = math.sqrt(s)
        elif op == MATRIX_COLUMN_NORM:
            for t in range(num_tasks):
                # Row by row, so each column's sum keeps its order and the loop runs along
                # memory.
                for j in range(n):
                    scratch[j] = 0.0
                for i in range(n):
                    base = t * nn + i * n
                    for j in range(n):
                        x = matrices[a, base + j]
                        scratch[j] += x * x
                for j in range(n):
                    vectors[o, t * n + j] = math.sqrt(scratch[j])
        elif op == MATRIX_ROW_NORM:
            for t in range(num_tasks):
                for i in range(n):
                    s = 0.0
                    for j in range(n):
                        x = matrices[a, t * nn + i * n + j]
                        s += x * x
                    vectors[o, t * n + i] = math.sqrt(s)
        elif op == MATRIX_TRANSPOSE:
            for t in range(num_tasks):
                for i in range(n):
                    for j in range(n):
                        scratch[i * n + j] = matrices[a, t * nn + j * n + i]
                for k in range(nn):
                    matrices[o, t * nn + k] = scratch[k]
        elif op == MATRIX_ABS:
            for k in range(tnn):
                x = matrices[a, k]
                matrices[o, k] = abs(x)
        elif op == MATRIX_SUM:
            for k in range(tnn):
                x = matrices[a, k]
                y = matrices[b, k]
                matrices[o, k] = x + y
        elif op == MATRIX_DIFF:
            for k in range(tnn):
                x = matrices[a, k]
                y = matrices[b, k]
                matrices[o, k] = x - y
        elif op == MATRIX_PRODUCT:
            for k in range(tnn):
                x = matrices[a, k]
                y = matrices[b, k]
                matrices[o, k] = x * y
        elif op == MATRIX_DIVISION:
            for k in range(tnn):
                x = matrices[a, k]
                y = matrices[b, k]
                matrices[o, k] = x / y
        elif op == MATRIX_MATRIX_PRODUCT:
            for t in range(num_tasks):
                _matrix_matrix(matrices[a, t * nn:t * nn + nn], matrices[b, t * nn:t * nn + nn],
                               scratch, n)
                for k in range(nn):
                    matrices[o, t * nn + k] = scratch[k]
        # --- element-wise minimum and maximum
        elif op == SCALAR_MIN:
            for t in range(num_tasks):
                x = scalars[a, t]
                y = scalars[b, t]
                scalars[o, t] = _nan_min(x, y)
        elif op == VECTOR_MIN:
            for k in range(tn):
                x = vectors[a, k]
                y = vectors[b, k]
                vectors[o, k] = _nan_min(x, y)
        elif op == MATRIX_MIN:
            for k in range(tnn):
                x = matrices[a, k]
                y = matrices[b, k]
                matrices[o, k] = _nan_min(x, y)
        elif op == SCALAR_MAX:
            for t in range(num_tasks):
                x = scalars[a, t]
                y = scalars[b, t]
                scalars[o, t] = _nan_max(x, y)
        elif op == VECTOR_MAX:
            for k in range(tn):
                x = vectors[a, k]
                y = vectors[b, k]
                vectors[o, k] = _nan_max(x, y)
        elif op == MATRIX_MAX:
            for k in range(tnn):
                x = matrices[a, k]
                y = matrices[b, k]
                matrices[o, k] = _nan_max(x, y)
        # --- means and standard deviations
        elif op == VECTOR_MEAN:
            for t in range(num_tasks):
                s = 0.0
                for k in range(t * n, t * n + n):
                    s += vectors[a, k]
                scalars[o, t] = s / n
        elif op == MATRIX_MEAN:
            for t in range(num_tasks):
                s = 0.0
                for k in range(t * nn, t * nn + nn):
                    s += matrices[a, k]
                scalars[o, t] = s / nn
        elif op == MATRIX_ROW_MEAN:
            for t in range(num_tasks):
                for i in range(n):
                    s = 0.0
                    for j in range(n):
                        s += matrices[a, t * nn + i * n + j]
                    vectors[o, t * n + i] = s / n
        elif op == MATRIX_ROW_ST_DEV:
            for t in range(num_tasks):
                for i in range(n):
                    base = t * nn + i * n
                    x0 = matrices[a, base]
                    s = 0.0
                    for j in range(n):
                        s += matrices[a, base + j] - x0
                    mean = s / n
                    s = 0.0
                    for j in range(n):
                        d = (matrices[a, base + j] - x0) - mean
                        s += d * d
                    vectors[o, t * n + i] = math.sqrt(s / n)
        elif op == VECTOR_ST_DEV:
            for t in range(num_tasks):
                x0 = vectors[a, t * n]
                s = 0.0
                for k in range(t * n, t * n + n):
                    s += vectors[a, k] - x0
                mean = s / n
                s = 0.0
                for k in range(t * n, t * n + n):
                    d = (vectors[a, k] - x0) - mean
                    s += d * d
                scalars[o, t] = math.sqrt(s / n)
        elif op == MATRIX_ST_DEV:
            for t in range(num_tasks):
                x0 = matrices[a, t * nn]
                s = 0.0
                for k in range(t * nn, t * nn + nn):
                    s += matrices[a, k] - x0
                mean = s / nn
                s = 0.0
                for k in range(t * nn, t * nn + nn):
                    d = (matrices[a, k] - x0) - mean
                    s += d * d
                scalars[o, t] = math.sqrt(s / nn)
        # --- constants and random draws
        elif op == SCALAR_CONST_SET:
            c = constants[row, 0]
            for t in range(num_tasks):
                scalars[o, t] = c
        elif op == VECTOR_CONST_SET:
            i = _index(constants[row, 0], n)
            c = constants[row, 1]
            for t in range(num_tasks):
                vectors[o, t * n + i] = c
        elif op == MATRIX_CONST_SET:
            i = _index(constants[row, 0], n)
            j = _index(constants[row, 1], n)
            c = constants[row, 2]
            for t in range(num_tasks):
                matrices[o, t * nn + i * n + j] = c
        elif op == SCALAR_UNIFORM_SET:
            for t in range(num_tasks):
                scalars[o, t] = _uniform(streams, t, constants[row, 0], constants[row, 1])
        elif op == VECTOR_UNIFORM_SET:
            for t in range(num_tasks):
                for k in range(t * n, t * n + n):
                    vectors[o, k] = _uniform(streams, t, constants[row, 0], constants[row, 1])
        elif op == MATRIX_UNIFORM_SET:
            for t in range(num_tasks):
                for k in range(t * nn, t * nn + nn):
                    matrices[o, k] = _uniform(streams, t, constants[row, 0], constants[row, 1])
        elif op == SCALAR_GAUSSIAN_SET:
            for t in range(num_tasks):
                scalars[o, t] = _gaussian(streams, t, constants[row, 0], constants[row, 1])
        elif op == VECTOR_GAUSSIAN_SET:
            for t in range(num_tasks):
                for k in range(t * n, t * n + n):
                    vectors[o, k] = _gaussian(streams, t, constants[row, 0], constants[row, 1])
        elif op == MATRIX_GAUSSIAN_SET:
            for t in range(num_tasks):
                for k in range(t * nn, t * nn + nn):
                    matrices[o, k] = _gaussian(streams, t, constants[row, 0], constants[row, 1])
        # --- control codes (ops.codes): the evaluation protocol
        elif op == TRAIN_BEGIN:
            if load_features and first_feature == 0:
                for k in range(tn):
                    vectors[0, k] = x_train[epoch, step, k]
            elif load_features:
                for k in range(tn):
                    vectors[0, k] = x_train[epoch, step, first_feature + k]
            for t in range(num_tasks):
                scalars[0, t] = 0.0
        elif op == TRAIN_PREDICTED:
            for t in range(num_tasks):
                label = y_train[epoch, step, first + t]
                prediction = scalars[1, t]
                if classification:
                    prediction = 1.0 / (1.0 + math.exp(-prediction))
                    scalars[1, t] = prediction
                if recorded < record_size:
                    record[first + t, recorded] = prediction
                if not abs(label - prediction) <= max_abs_error and alive[t]:
                    alive[t] = False
                    n_alive -= 1
                scalars[0, t] = label
            recorded += 1
            train_steps += 1
            if n_alive == 0:
                return train_steps, valid_steps
        elif op == TRAIN_END:
            step += 1
            if step < n_train:
                pc = a
            else:
                step = 0
                score[:] = 0.0
                broken[:] = False
                n_broken = 0
        elif op == VALID_BEGIN:
            if load_features and first_feature == 0:
                for k in range(tn):
                    vectors[0, k] = x_valid[step, k]
            elif load_features:
                for k in range(tn):
                    vectors[0, k] = x_valid[step, first_feature + k]
            for t in range(num_tasks):
                scalars[0, t] = 0.0
        elif op == VALID_END:
            for t in range(num_tasks):
                prediction = scalars[1, t]
                label = y_valid[step, first + t]
                if recorded < record_size:
                    record[first + t, recorded] = prediction
                if broken[t]:
                    continue
                if classification:
                    if prediction != prediction:
                        broken[t] = True
                    elif (prediction > 0.0) == (label > 0.5):
                        score[t] += 1.0
                else:
                    error = label - prediction
                    if abs(error) <= max_abs_error:
                        score[t] += error * error
                    else:
                        broken[t] = True
                if broken[t] and alive[t]:
                    n_broken += 1
            recorded += 1
            valid_steps += 1
            step += 1
            # The rest of the epoch cannot change a fitness once every live task is broken.
            if step < n_valid and (n_broken < n_alive or record_size > 0):
                pc = a
            else:
                step = 0
        elif op == EPOCH_END:
            for t in range(num_tasks):
                if not alive[t]:
                    continue
                if broken[t]:
                    fitness[first + t] = 0.0
                    alive[t] = False
                    n_alive -= 1
                    continue
                if classification:
                    value = score[t] / n_valid
                else:
                    value = 1.0 - (2.0 / math.pi) * math.atan(math.sqrt(score[t] / n_valid))
                if value > fitness[first + t]:
                    fitness[first + t] = value
            epoch += 1
            if epoch == epochs or n_alive == 0:
                return train_steps, valid_steps
            pc = a
        elif op == HALT:
            return train_steps, valid_steps
