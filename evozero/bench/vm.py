"""``evozero bench vm``: full evaluations per second on the demo's sizes, and the
interpreter's overhead against a hand-written numba SGD on the same arrays.

Workload: 10 linear tasks, F = 4, 100 training + 100 validation examples; random
programs of setup 10 / predict 2 / learn 8 instructions over the demo's six ops,
memory 4/3/1. One process, so every figure is per core. :func:`run_batch` evaluates a
whole array of such programs in one numba call.
"""
from __future__ import annotations

import math

import numpy as np

from evozero.bench.timing import interleaved_medians
from evozero.evaluation.tasks import make_tasks
from evozero.evaluation.vm import group_tasks, reads_features, run_group, tape_rows
from evozero.programs.liveness import compact_kernel, live_rows_kernel
from evozero.programs.randomize import randomize_rows
from evozero.programs.reference import linear_program
from ops.jit import jit
from ops.kinds import IN1_KIND, IN2_KIND, OP_ARRAYS, OUT_KIND, PARTIAL_WRITE
from ops.table import OPS_BY_NAME

DEMO_OPS = ("SCALAR_CONST_SET", "VECTOR_INNER_PRODUCT", "SCALAR_DIFF", "SCALAR_PRODUCT",
            "SCALAR_VECTOR_PRODUCT", "VECTOR_SUM")
DEMO_SIZES = (10, 2, 8)
DEMO_MEMORY = (4, 3, 1)
# The original C++ engine measured on this 2-core machine class at these sizes
# (see the performance notes): full evaluations per second on one core.
REFERENCE_CPP_EVALS_PER_SECOND = 43_000.0


@jit
def run_batch(codes, constants, bounds, num_s, num_v, num_m, x_train, y_train, x_valid, y_valid,
              classification, max_abs_error, seeds, task_ids, fitness, steps, in1_kind, in2_kind,
              out_kind, partial):
    """Evaluate many programs on one task group: dead code stripped, then :func:`run_group`.

    Program p occupies rows ``bounds[p, 0]..bounds[p, 3]-1`` of ``codes``/``constants``
    with its components starting at ``bounds[p, 0:3]``; ``fitness[p, t]`` receives its
    fitness on task t, evaluated with random seed ``seeds[p]``, and ``steps[p]`` the
    lockstep training and validation steps it ran.
    """
    num_tasks = y_train.shape[2]
    n = x_train.shape[2] // num_tasks
    scalars = np.zeros((num_s, num_tasks))
    vectors = np.zeros((num_v, num_tasks * n))
    matrices = np.zeros((max(num_m, 1), num_tasks * n * n))
    streams = np.zeros(num_tasks, dtype=np.uint64)
    scratch = np.zeros(n * n)
    longest = 0
    for p in range(bounds.shape[0]):
        longest = max(longest, bounds[p, 3] - bounds[p, 0])
    tape = np.zeros((tape_rows(longest), 5), dtype=np.int64)
    no_record = np.zeros((num_tasks, 0))
    for p in range(bounds.shape[0]):
        start, stop = bounds[p, 0], bounds[p, 3]
        local_bounds = bounds[p] - start
        code = codes[start:stop]
        keep = live_rows_kernel(code, local_bounds, num_s, num_v, max(num_m, 1), in1_kind,
                                in2_kind, out_kind, partial)
        live_code, live_constants, live_bounds = compact_kernel(code, constants[start:stop],
                                                                local_bounds, keep)
        steps[p, 0], steps[p, 1] = run_group(
            live_code, live_constants, live_bounds, scalars, vectors, matrices, streams, scratch,
            tape, x_train, y_train, x_valid, y_valid, classification,
            reads_features(live_code, live_code.shape[0], in1_kind, in2_kind), max_abs_error,
            seeds[p], task_ids,
            fitness[p], no_record)


@jit
def sgd_reference(x_train, y_train, x_valid, y_valid, learning_rate, fitness):
    """Hand-written SGD linear regression with the VM's fitness rule, per task."""
    num_tasks, n_train, n_features = x_train.shape
    w = np.zeros(n_features)
    for t in range(num_tasks):
        w[:] = 0.0
        for k in range(n_train):
            prediction = 0.0
            for i in range(n_features):
                prediction += x_train[t, k, i] * w[i]
            scale = (y_train[t, k] - prediction) * learning_rate
            for i in range(n_features):
                w[i] += scale * x_train[t, k, i]
        total = 0.0
        for k in range(x_valid.shape[1]):
            prediction = 0.0
            for i in range(n_features):
                prediction += x_valid[t, k, i] * w[i]
            total += (y_valid[t, k] - prediction) ** 2
        fitness[t] = 1.0 - (2.0 / math.pi) * math.atan(math.sqrt(total / x_valid.shape[1]))


def random_demo_programs(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` random demo-space programs, concatenated, with their row bounds."""
    length = sum(DEMO_SIZES)
    codes = np.zeros((count * length, 4), dtype=np.int64)
    constants = np.zeros((count * length, 3))
    allowed = np.array([OPS_BY_NAME[name].code for name in DEMO_OPS], dtype=np.int64)
    state = np.array([seed], dtype=np.uint64)
    randomize_rows(codes, constants, 0, count * length, allowed, state, 0, tuple(DEMO_MEMORY),
                   OP_ARRAYS)
    starts = np.arange(count, dtype=np.int64) * length
    offsets = np.cumsum((0,) + DEMO_SIZES)
    bounds = starts[:, None] + offsets[None, :]
    return codes, constants, np.ascontiguousarray(bounds, dtype=np.int64)


def _executed_instructions(codes, bounds, steps, num_tasks) -> float:
    total = 0.0
    for p in range(bounds.shape[0]):
        start = bounds[p, 0]
        keep = live_rows_kernel(codes[start:bounds[p, 3]], bounds[p] - start, *DEMO_MEMORY,
                                IN1_KIND, IN2_KIND, OUT_KIND, PARTIAL_WRITE)
        setup, predict, learn = (int(keep[bounds[p, c] - start:bounds[p, c + 1] - start].sum())
                                 for c in range(3))
        train, valid = steps[p]
        total += num_tasks * (setup + (train + valid) * predict + train * learn)
    return total


def run(programs: int = 20_000, repeats: int = 7, seed: int = 0,
        verbose: bool = True) -> dict[str, float]:
    """Measure and return the figures (see module docstring); print them if ``verbose``."""
    tasks = make_tasks("linear", 10, 4, 100, 100, seed=seed)
    group = group_tasks(tasks)[0]
    task_ids = group.indices.astype(np.uint64)
    codes, constants, bounds = random_demo_programs(programs, seed + 1)
    fitness = np.zeros((programs, group.num_tasks))
    steps = np.zeros((programs, 2), dtype=np.int64)
    seeds = np.zeros(programs, dtype=np.uint64)

    def vm_random() -> None:
        run_batch(codes, constants, bounds, *DEMO_MEMORY, group.x_train, group.y_train,
                  group.x_valid, group.y_valid, False, 100.0, seeds, task_ids, fitness, steps,
                  IN1_KIND, IN2_KIND, OUT_KIND, PARTIAL_WRITE)

    linear = linear_program(0.01)
    copies = 2000
    lin_codes = np.tile(linear.code, (copies, 1))
    lin_constants = np.tile(linear.constants, (copies, 1))
    lin_bounds = np.arange(copies, dtype=np.int64)[:, None] * len(linear.code) + linear.bounds
    lin_fitness = np.zeros((copies, group.num_tasks))
    lin_steps = np.zeros((copies, 2), dtype=np.int64)

    def vm_linear() -> None:
        run_batch(lin_codes, lin_constants, lin_bounds, *DEMO_MEMORY, group.x_train,
                  group.y_train, group.x_valid, group.y_valid, False, 100.0, seeds[:copies],
                  task_ids, lin_fitness, lin_steps, IN1_KIND, IN2_KIND, OUT_KIND, PARTIAL_WRITE)

    x_train = np.stack([t.x_train for t in tasks])
    y_train = np.stack([t.y_train for t in tasks])
    x_valid = np.stack([t.x_valid for t in tasks])
    y_valid = np.stack([t.y_valid for t in tasks])
    ref_fitness = np.zeros(len(tasks))

    def reference_linear() -> None:
        for _ in range(copies):
            sgd_reference(x_train, y_train, x_valid, y_valid, 0.01, ref_fitness)

    times = interleaved_medians({"random": vm_random, "linear": vm_linear,
                                 "reference": reference_linear}, repeats)
    if not np.allclose(lin_fitness[0], ref_fitness, rtol=1e-9):
        raise AssertionError("the VM's linear regressor disagrees with the hand-written SGD")
    executed = _executed_instructions(codes, bounds, steps, group.num_tasks)
    evals_per_second = programs / times["random"]
    figures = {
        "evals_per_second": evals_per_second,
        "microseconds_per_eval": 1e6 / evals_per_second,
        "ns_per_executed_instruction": times["random"] / executed * 1e9,
        "executed_instructions_per_eval": executed / programs,
        "ratio_vs_cpp_reference": evals_per_second / REFERENCE_CPP_EVALS_PER_SECOND,
        "linear_overhead_ratio": times["linear"] / times["reference"],
        "mean_fitness": float(fitness.mean()),
    }
    if not verbose:
        return figures
    print(f"VM, demo sizes (10 linear tasks, F=4, 100+100 examples, setup/predict/learn "
          f"{DEMO_SIZES}), {programs} random programs, median of {repeats}, one core:")
    print(f"  full evaluations/s           {evals_per_second:12,.0f}"
          f"   ({figures['microseconds_per_eval']:.2f} us each)")
    print(f"  vs C++ reference (43,000/s)  {figures['ratio_vs_cpp_reference']:12.2f}x")
    print(f"  executed instructions/eval   {figures['executed_instructions_per_eval']:12,.0f}"
          f"   (task-instructions after dead-code removal)")
    print(f"  ns per executed instruction  {figures['ns_per_executed_instruction']:12.2f}")
    print(f"  linear regressor: VM / hand-written numba SGD = "
          f"{figures['linear_overhead_ratio']:.2f}  (interpreter overhead)")
    return figures
