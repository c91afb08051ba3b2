"""``evozero bench vm --sizes``: the VM at the feature sizes research uses, F = 4 to 256.

Three workloads, each on 10 tasks of 100 training + 100 validation examples, every
evaluation a full one (no cache), one process, so every figure is per core:

* ``linear``: SGD linear regression (:func:`linear_program`) on linear tasks;
* ``two-layer``: the two-layer ReLU network with backpropagation
  (:func:`neural_net_program`) on nonlinear tasks;
* ``random``: random programs over all 65 ops (setup/predict/learn 8/8/16 rows, memory
  8/8/4), as many as fit a time budget at each size.

For each it prints full evaluations per second, ns per executed task-instruction, ns per
useful flop (a multiply-add counts 2, any other element operation 1), and, for the two
hand-coded programs, a hand-written numba implementation on the same arrays timed in the
same run, and the C++ engine's figures measured on this machine class. Times are the
thread's CPU time, median of interleaved repeats.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from evozero.bench.timing import interleaved_medians
from evozero.bench.vm import run_batch
from evozero.evaluation.tasks import make_tasks
from evozero.evaluation.vm import TaskGroup, group_tasks
from evozero.programs.liveness import live_rows_kernel
from evozero.programs.program import Program
from evozero.programs.randomize import randomize_rows
from evozero.programs.reference import linear_program, neural_net_program
from ops.jit import jit
from ops.kinds import IN1_KIND, IN2_KIND, NUM_OPS, OP_ARRAYS, OUT_KIND, PARTIAL_WRITE
from ops.rng import next_normal, stream_seed
from ops.table import MATRIX, OPS, SCALAR, VECTOR

SIZES = (4, 8, 16, 32, 64, 256)
NUM_TASKS, TRAIN, VALID = 10, 100, 100
LEARNING_RATE = 0.01
MAX_ABS_ERROR = 100.0
LINEAR_MEMORY = (4, 3, 1)
NEURAL_MEMORY = (5, 9, 2)
RANDOM_SIZES = (8, 8, 16)
RANDOM_MEMORY = (8, 8, 4)
# The original C++ engine, full evaluations per second on one core of this machine class,
# same tasks and programs (it is built for F up to 32).
CPP_EVALS_PER_SECOND = {
    "linear": {4: 48_700.0, 16: 36_400.0, 32: 29_000.0},
    "two-layer": {4: 14_100.0, 16: 3_170.0, 32: 4_004.0},
}
_MULTIPLY_ADDS = ("VECTOR_INNER_PRODUCT", "MATRIX_VECTOR_PRODUCT", "MATRIX_MATRIX_PRODUCT",
                  "VECTOR_NORM", "MATRIX_NORM", "MATRIX_COLUMN_NORM", "MATRIX_ROW_NORM")


def useful_flops(n: int) -> np.ndarray:
    """Arithmetic each op does at F = ``n``, indexed by op code."""
    size = {None: 0, SCALAR: 1, VECTOR: n, MATRIX: n * n}
    flops = np.zeros(NUM_OPS)
    for op in OPS:
        elements = max(size[op.in1], size[op.in2], size[op.out])
        if op.name == "MATRIX_MATRIX_PRODUCT":
            elements = n ** 3
        flops[op.code] = elements * (2 if op.name in _MULTIPLY_ADDS else 1)
    flops[0] = 0.0
    return flops


@jit
def _validation_fitness(labels, predictions, max_abs_error):
    """The VM's regression fitness of one task's validation predictions (0 if broken)."""
    total = 0.0
    for k in range(labels.shape[0]):
        error = labels[k] - predictions[k]
        if not abs(error) <= max_abs_error:
            return 0.0
        total += error * error
    return 1.0 - (2.0 / math.pi) * math.atan(math.sqrt(total / labels.shape[0]))


@jit
def linear_reference(x_train, y_train, x_valid, y_valid, learning_rate, max_abs_error, fitness):
    """Hand-written SGD linear regression with the VM's evaluation protocol, per task."""
    num_tasks, n_train, n_features = x_train.shape
    w = np.zeros(n_features)
    predictions = np.zeros(x_valid.shape[1])
    for t in range(num_tasks):
        w[:] = 0.0
        fitness[t] = 0.0
        diverged = False
        for k in range(n_train):
            prediction = 0.0
            for i in range(n_features):
                prediction += x_train[t, k, i] * w[i]
            if not abs(y_train[t, k] - prediction) <= max_abs_error:
                diverged = True
                break
            scale = (y_train[t, k] - prediction) * learning_rate
            for i in range(n_features):
                w[i] += scale * x_train[t, k, i]
        if diverged:
            continue
        for k in range(x_valid.shape[1]):
            prediction = 0.0
            for i in range(n_features):
                prediction += x_valid[t, k, i] * w[i]
            predictions[k] = prediction
        fitness[t] = _validation_fitness(y_valid[t], predictions, max_abs_error)


@jit
def _two_layer_predict(x, w1, b1, w2, b2, hidden):
    n = x.shape[0]
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += w1[i, j] * x[j]
        hidden[i] = s + b1[i]
    prediction = 0.0
    for i in range(n):
        h = hidden[i] if hidden[i] > 0.0 or hidden[i] != hidden[i] else 0.0
        prediction += h * w2[i]
    return prediction + b2


@jit
def two_layer_reference(x_train, y_train, x_valid, y_valid, learning_rate, max_abs_error, seed,
                        fitness):
    """Hand-written two-layer ReLU network with backpropagation, the same initial draws and
    the same evaluation protocol as the VM running :func:`neural_net_program`, per task."""
    num_tasks, n_train, n = x_train.shape
    w1 = np.zeros((n, n))
    b1 = np.zeros(n)
    w2 = np.zeros(n)
    hidden = np.zeros(n)
    predictions = np.zeros(x_valid.shape[1])
    stream = np.zeros(1, dtype=np.uint64)
    for t in range(num_tasks):
        stream[0] = stream_seed(seed, np.uint64(t))
        for i in range(n):
            w2[i] = 0.1 * next_normal(stream, 0)
        for i in range(n):
            for j in range(n):
                w1[i, j] = 0.1 * next_normal(stream, 0)
        b1[:] = 0.0
        b2 = 0.0
        fitness[t] = 0.0
        diverged = False
        for k in range(n_train):
            prediction = _two_layer_predict(x_train[t, k], w1, b1, w2, b2, hidden)
            if not abs(y_train[t, k] - prediction) <= max_abs_error:
                diverged = True
                break
            delta = (y_train[t, k] - prediction) * learning_rate
            b2 += delta
            for i in range(n):
                h = hidden[i] if hidden[i] > 0.0 or hidden[i] != hidden[i] else 0.0
                back = delta * w2[i] * (1.0 if hidden[i] > 0.0 else 0.0)
                w2[i] += delta * h
                b1[i] += back
                for j in range(n):
                    w1[i, j] += back * x_train[t, k, j]
        if diverged:
            continue
        for k in range(x_valid.shape[1]):
            predictions[k] = _two_layer_predict(x_valid[t, k], w1, b1, w2, b2, hidden)
        fitness[t] = _validation_fitness(y_valid[t], predictions, max_abs_error)


@dataclass
class Batch:
    """Programs laid out for :func:`run_batch`, with their results."""

    codes: np.ndarray
    constants: np.ndarray
    bounds: np.ndarray
    memory: tuple[int, int, int]
    fitness: np.ndarray
    steps: np.ndarray

    @property
    def count(self) -> int:
        """Number of programs."""
        return int(self.bounds.shape[0])


def _copies(program: Program, count: int, memory: tuple[int, int, int],
            num_tasks: int) -> Batch:
    length = len(program.code)
    bounds = np.arange(count, dtype=np.int64)[:, None] * length + program.bounds[None, :]
    return Batch(np.tile(program.code, (count, 1)), np.tile(program.constants, (count, 1)),
                 np.ascontiguousarray(bounds), memory, np.zeros((count, num_tasks)),
                 np.zeros((count, 2), dtype=np.int64))


def _random_programs(count: int, seed: int, num_tasks: int) -> Batch:
    length = sum(RANDOM_SIZES)
    codes = np.zeros((count * length, 4), dtype=np.int64)
    constants = np.zeros((count * length, 3))
    allowed = np.arange(1, NUM_OPS, dtype=np.int64)
    state = np.array([seed], dtype=np.uint64)
    randomize_rows(codes, constants, 0, count * length, allowed, state, 0, RANDOM_MEMORY,
                   OP_ARRAYS)
    offsets = np.cumsum((0,) + RANDOM_SIZES)
    bounds = np.arange(count, dtype=np.int64)[:, None] * length + offsets[None, :]
    return Batch(codes, constants, np.ascontiguousarray(bounds), RANDOM_MEMORY,
                 np.zeros((count, num_tasks)), np.zeros((count, 2), dtype=np.int64))


def _subset(batch: Batch, count: int) -> Batch:
    stop = batch.bounds[count - 1, 3]
    return Batch(batch.codes[:stop], batch.constants[:stop], batch.bounds[:count], batch.memory,
                 batch.fitness[:count], batch.steps[:count])


def _evaluator(batch: Batch, group: TaskGroup) -> Callable[[], None]:
    task_ids = group.indices.astype(np.uint64)
    seeds = np.zeros(batch.count, dtype=np.uint64)

    def evaluate() -> None:
        run_batch(batch.codes, batch.constants, batch.bounds, *batch.memory, group.x_train,
                  group.y_train, group.x_valid, group.y_valid, group.classification,
                  MAX_ABS_ERROR, seeds, task_ids, batch.fitness, batch.steps, IN1_KIND,
                  IN2_KIND, OUT_KIND, PARTIAL_WRITE)
    return evaluate


def executed_work(batch: Batch, num_tasks: int, n: int) -> tuple[float, float]:
    """Task-instructions executed and useful flops done by the last evaluation of ``batch``
    (live rows only; every task counted for every lockstep step)."""
    flops_of = useful_flops(n)
    instructions = flops = 0.0
    for p in range(batch.count):
        start = batch.bounds[p, 0]
        code = batch.codes[start:batch.bounds[p, 3]]
        keep = live_rows_kernel(code, batch.bounds[p] - start, *batch.memory, IN1_KIND, IN2_KIND,
                                OUT_KIND, PARTIAL_WRITE)
        train, valid = batch.steps[p]
        for c, runs in enumerate((1, train + valid, train)):
            rows = slice(batch.bounds[p, c] - start, batch.bounds[p, c + 1] - start)
            live = code[rows, 0][keep[rows]]
            instructions += runs * live.size
            flops += runs * flops_of[live].sum()
    return instructions * num_tasks, flops * num_tasks


def _per_task(group: TaskGroup) -> tuple[np.ndarray, ...]:
    """The group's step-major data as per-task arrays (first epoch), for the references."""
    t, n = group.num_tasks, group.n_features
    x_train = group.x_train[0].reshape(-1, t, n).transpose(1, 0, 2)
    x_valid = group.x_valid.reshape(-1, t, n).transpose(1, 0, 2)
    return (np.ascontiguousarray(x_train), np.ascontiguousarray(group.y_train[0].T),
            np.ascontiguousarray(x_valid), np.ascontiguousarray(group.y_valid.T))


def _copies_for(n: int, quick: bool) -> int:
    work = n * n if n > 4 else 4 * n
    return max(2, int((400 if quick else 2000) * 16 / work))


def measure_size(workload: str, n: int, repeats: int, quick: bool, seed: int = 0) -> dict:
    """Figures of one workload at F = ``n`` (see the module docstring)."""
    kind = "linear" if workload == "linear" else "nonlinear"
    group = group_tasks(make_tasks(kind, NUM_TASKS, n, TRAIN, VALID, seed=seed))[0]
    runs: dict[str, Callable[[], object]] = {}
    reference_fitness = np.zeros(group.num_tasks)
    if workload == "random":
        budget = 0.5 if quick else 2.0
        batch = _random_programs(2000, seed + 1, group.num_tasks)
        count, started = 0, time.perf_counter()
        while count < batch.count and time.perf_counter() - started < budget:
            _evaluator(_subset(batch, count + 1), group)()
            count += 1
        batch = _subset(batch, max(count, 1))
    else:
        program = linear_program(LEARNING_RATE) if workload == "linear" \
            else neural_net_program(LEARNING_RATE)
        memory = LINEAR_MEMORY if workload == "linear" else NEURAL_MEMORY
        batch = _copies(program, _copies_for(n, quick), memory, group.num_tasks)
        data = _per_task(group)

        def reference() -> None:
            for _ in range(batch.count):
                if workload == "linear":
                    linear_reference(*data, LEARNING_RATE, MAX_ABS_ERROR, reference_fitness)
                else:
                    two_layer_reference(*data, LEARNING_RATE, MAX_ABS_ERROR, np.uint64(0),
                                        reference_fitness)
        runs["reference"] = reference
    runs["vm"] = _evaluator(batch, group)
    # Single-threaded kernels: the thread's CPU time is their wall time on a quiet machine,
    # and it leaves out the time other processes take the core away.
    times = interleaved_medians(runs, repeats, clock=time.thread_time)
    instructions, flops = executed_work(batch, group.num_tasks, n)
    evals_per_second = batch.count / times["vm"]
    figures: dict[str, object] = {
        "workload": workload, "features": n, "programs": batch.count,
        "evals_per_second": evals_per_second,
        "ns_per_task_instruction": times["vm"] / instructions * 1e9,
        "ns_per_flop": times["vm"] / flops * 1e9 if flops else math.nan}
    if "reference" in runs:
        if not np.allclose(batch.fitness[0], reference_fitness, rtol=1e-9, atol=0.0):
            raise AssertionError(f"the VM's {workload} program disagrees with the hand-written "
                                 f"one at F={n}: {batch.fitness[0]} vs {reference_fitness}")
        figures["reference_evals_per_second"] = batch.count / times["reference"]
        figures["vm_over_reference"] = times["reference"] / times["vm"]
    cpp = CPP_EVALS_PER_SECOND.get(workload, {}).get(n)
    if cpp is not None:
        figures["cpp_evals_per_second"] = cpp
        figures["vm_over_cpp"] = evals_per_second / cpp
    return figures


def run(quick: bool = False, sizes: tuple[int, ...] = SIZES,
        workloads: tuple[str, ...] = ("linear", "two-layer", "random"),
        out: TextIO | None = None) -> list[dict]:
    """Measure every workload at every size and print the table; returns the rows."""
    repeats = 3 if quick else 7
    rows = []
    print(f"VM at research sizes: {NUM_TASKS} tasks of {TRAIN} + {VALID} examples, full "
          f"evaluations, one core, median of {repeats} interleaved repeats", file=out)
    print(f"{'workload':<10}{'F':>5}{'evals/s':>12}{'ns/task-instr':>15}{'ns/flop':>9}"
          f"{'hand-written/s':>16}{'VM/hand':>9}{'C++/s':>9}{'VM/C++':>8}", file=out)
    for workload in workloads:
        for n in sizes:
            row = measure_size(workload, n, repeats, quick)
            rows.append(row)
            hand = row.get("reference_evals_per_second")
            cpp = row.get("cpp_evals_per_second")
            print(f"{workload:<10}{n:>5}{row['evals_per_second']:>12,.0f}"
                  f"{row['ns_per_task_instruction']:>15.2f}{row['ns_per_flop']:>9.3f}"
                  + (f"{hand:>16,.0f}{row['vm_over_reference']:>9.2f}" if hand else f"{'-':>16}{'-':>9}")
                  + (f"{cpp:>9,.0f}{row['vm_over_cpp']:>8.2f}" if cpp else f"{'-':>9}{'-':>8}"),
                  file=out, flush=True)
    return rows
