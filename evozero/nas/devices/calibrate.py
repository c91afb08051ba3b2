"""``evozero calibrate``: measure this machine into the ``host`` device profile.

Every step kind (:data:`evozero.nas.devices.cost.STEP_KINDS`) is timed as the executor really
runs it: a small network of a few copies of the step (a chain when the step keeps its
input's shape, else copies side by side on the network input) goes through
:class:`evozero.nas.training.model.Model` in inference mode, so the executor's dispatch and numpy
glue count as they do in a real network; a network holding only the input gives the
per-call overhead, which is subtracted. Shapes follow our networks: 8x8, 4x4, 2x2 images
and length-40/20/10 sequences, 4-64 channels, batch 1 and 64.

A network runs many different kernels in turn, which costs each step a little more than
a loop of one kernel: a handful of random cells of both spaces (the reference networks)
are timed whole, and a scale and an addition per step fitted on them turn the loop
figures into in-network ones. The corrected figures form the lookup table, and a
per-kind model (:data:`evozero.nas.devices.cost.FIT_TERMS`) fitted to them covers shapes not
measured. Peak GEMM throughput and copy bandwidth feed the roofline fallback. The
profile keeps each reference network's time per batch size
(:data:`evozero.nas.devices.cost.REFERENCE_KEY`), against which a run or benchmark re-times them
to measure how far the machine's speed has drifted (:mod:`evozero.nas.devices.drift`).

Measurement conditions: one BLAS thread (the search runs one worker process per core),
:func:`ops.neural.retain_freed_memory`, this thread's CPU time, and every call sampled in interleaved
rounds (:func:`interleaved_median_seconds`) so a busy machine slows all alike.
"""
from __future__ import annotations

import itertools
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

import numba
import numpy as np
import yaml
from threadpoolctl import threadpool_limits

from evozero.config import Nas
from evozero.errors import EvozeroError
from evozero.nas.devices.cost import (
    FIT_TERMS,
    REFERENCE_KEY,
    STEP_KINDS,
    DeviceProfile,
    Step,
    estimate_ms,
    execution_steps,
    fit_features,
    lut_key,
)
from evozero.nas.spaces.network import Architecture, Layer
from evozero.nas.spaces.skeleton import Skeleton, compile_cell
from evozero.nas.spaces.space import CellSpace
from evozero.nas.training.model import Model
from ops import neural

BATCHES = (1, 64)
SPATIAL = ((8, 8), (4, 4), (2, 2), (1, 40), (1, 20), (1, 10))
CHANNELS = (4, 8, 16, 32, 64)
# Copies of the step per timed network: the subtracted per-call overhead shrinks beside
# them, and large steps stay quick.
COPIES = 4
# A timing sample repeats its call to last about this long (clock overhead negligible).
SAMPLE_SECONDS = 2e-4
# Rounds of samples at most: enough that the time budget ends calibration, so its samples
# spread over the whole budget and a passing slow spell of a shared machine weighs less.
MAX_ROUNDS = 500
# Random cells per space timed whole for the in-network correction, and their seed.
REFERENCE_CELLS = 6
REFERENCE_SEED = 20240601


def _window(spatial: tuple[int, int], size: int) -> tuple[int, int]:
    return (1, size) if spatial[0] == 1 else (size, size)


def _out(spatial: tuple[int, int], kernel: tuple[int, int], stride: int,
         pad: tuple[int, int]) -> tuple[int, int]:
    return ((spatial[0] + 2 * pad[0] - kernel[0]) // stride + 1,
            (spatial[1] + 2 * pad[1] - kernel[1]) // stride + 1)


def _spatial_steps(spatial: tuple[int, int]) -> Iterator[Step]:
    """The grid's steps on one input size, most common first."""
    h, w = spatial

    def conv(cin: int, cout: int, size: int, stride: int = 1, kind: str = "conv") -> Step:
        kernel = _window(spatial, size)
        pad = (kernel[0] // 2, kernel[1] // 2)
        return Step(kind, ((h, w, cin),), (*_out(spatial, kernel, stride, pad), cout),
                    kernel, stride, pad)

    def pool(kind: str, c: int, size: int, stride: int) -> Step:
        kernel = _window(spatial, size)
        pad = (kernel[0] // 2, kernel[1] // 2) if stride == 1 else (0, 0)
        return Step(kind, ((h, w, c),), (*_out(spatial, kernel, stride, pad), c),
                    kernel, stride, pad)

    for c in CHANNELS:
        yield conv(c, c, 3)
        yield conv(c, c, 1)
        yield Step("bn_relu", ((h, w, c),), (h, w, c))
        yield Step("bn", ((h, w, c),), (h, w, c))
        yield Step("relu", ((h, w, c),), (h, w, c))
        yield Step("add", ((h, w, c),) * 2, (h, w, c))
        yield pool("maxpool", c, 3, 1)
        yield pool("avgpool", c, 3, 1)
        yield Step("concat", ((h, w, c // 2),) * 2, (h, w, c))
        yield Step("slice", ((h, w, c),), (h, w, c // 2))
        yield Step("gap", ((h, w, c),), (1, 1, c))
        yield Step("zero", ((h, w, c),), (h, w, c))
        yield Step("add", ((h, w, c),) * 3, (h, w, c))
        yield Step("concat", ((h, w, c // 4),) * 4, (h, w, c))
        # Cells change channels: projections, uneven splits, the stem, reductions.
        yield conv(2 * c, c // 2 + 1, 1)
        yield conv(c, c // 2 + 3, 3)
        yield conv(c // 2, 2 * c, 3)
        if min(spatial[0], 2) * spatial[1] >= 4 and c <= 32:
            yield conv(c, 2 * c, 3, stride=2)
            yield pool("maxpool", c, 2, 2)
            yield pool("avgpool", c, 2, 2)
        yield conv(c, c, 3, kind="dwconv")
    yield conv(1, 16, 3)


def calibration_steps() -> list[Step]:
    """Every step of the calibration grid, interleaved across input sizes and kinds so a
    run cut short by its time budget still covers every kind."""
    per_size = [list(_spatial_steps(s)) for s in SPATIAL]
    dense = [Step("dense", ((1, 1, c),), (1, 1, 10)) for c in CHANNELS]
    ordered = [s for group in itertools.zip_longest(*per_size) for s in group if s]
    return dense[:2] + ordered + dense[2:]


# Kinds whose step maps a tensor to one of the same shape: timed as a chain, each copy
# reading the previous one's output, as layers do in a network.
_CHAINABLE = ("conv", "dwconv", "bn", "bn_relu", "relu", "maxpool", "avgpool", "add")


def step_network(step: Step, copies: int = COPIES) -> Architecture:
    """A network of ``copies`` copies of ``step``: a chain when the step keeps its input's
    shape, else every copy reading the network input."""
    chain = step.kind in _CHAINABLE and all(s == step.shape for s in step.in_shapes)
    layers = [Layer("input", (), step.in_shapes[0])]
    for _ in range(copies):
        source = len(layers) - 1 if chain else 0
        if step.kind == "bn_relu":
            layers.append(Layer("bn", (source,), step.shape))
            layers.append(Layer("relu", (len(layers) - 1,), step.shape))
        else:
            layers.append(Layer(step.kind, (source,) * len(step.in_shapes), step.shape,
                                step.kernel, step.stride, step.pad))
    return Architecture(tuple(layers))


def sample_repeats(call: Callable[[], object], sample_seconds: float = SAMPLE_SECONDS) -> int:
    """Calls of ``call`` per timing sample, so a sample lasts about ``sample_seconds``
    (after a warm-up call: compilation, first allocations)."""
    call()
    start = time.thread_time()
    call()
    return max(1, int(sample_seconds / max(time.thread_time() - start, 1e-7)))


def interleaved_median_seconds(calls: Sequence[Callable[[], object]], repeats: Sequence[int],
                               rounds: int, deadline: float = math.inf,
                               clock: Callable[[], float] = time.thread_time) -> list[float]:
    """Median seconds per call of each of ``calls``, sampled in ``rounds`` rounds that each
    take one sample of every call (``repeats`` calls in a row); fewer rounds, but at least
    one, when ``time.perf_counter()`` passes ``deadline``.

    Time is ``clock``; by default this thread's CPU time (page faults included): on an
    idle core it equals the wall time of a single-threaded call, but it leaves out the
    moments other processes hold the core; interleaving spreads what remains (a shared
    core running slower for a while) over every call alike instead of over a few. The
    benchmarks (:mod:`evozero.bench.timing`) pass ``time.perf_counter`` for wall time.
    """
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(rounds):
        if samples[0] and time.perf_counter() > deadline:
            break
        for call, count, times in zip(calls, repeats, samples):
            start = clock()
            for _ in range(count):
                call()
            times.append((clock() - start) / count)
    return [statistics.median(times) for times in samples]


def forward_call(arch: Architecture, batch: int) -> Callable[[], object]:
    """A call running ``arch``'s inference forward pass on a fixed random batch."""
    model = Model(arch, seed=0)
    x = np.random.default_rng(0).standard_normal((batch, *arch.input_shape), dtype=np.float32)
    return lambda: model.forward(x, training=False)


def relative_nnls(rows: Sequence[Sequence[float]] | np.ndarray,
                  targets: Sequence[float]) -> np.ndarray:
    """Non-negative coefficients ``c`` minimising the squared relative error of
    ``rows @ c`` against ``targets`` (exact for a few columns: the best unconstrained
    solution over every subset of columns that comes out non-negative)."""
    # Relative error: a step of 3 us and one of 3 ms matter alike for ranking networks.
    a = np.asarray(rows, dtype=np.float64) / np.asarray(targets, dtype=np.float64)[:, None]
    scale = np.abs(a).max(axis=0)
    scale[scale == 0] = 1.0
    a = a / scale
    ones = np.ones(len(a))
    best, best_error = np.zeros(a.shape[1]), np.inf
    for size in range(1, a.shape[1] + 1):
        for subset in itertools.combinations(range(a.shape[1]), size):
            solution = np.linalg.lstsq(a[:, subset], ones, rcond=None)[0]
            error = float(np.sum((a[:, subset] @ solution - ones) ** 2))
            if (solution >= 0).all() and error < best_error:
                best, best_error = np.zeros(a.shape[1]), error
                best[list(subset)] = solution
    return best / scale


def fit_kind(rows: Sequence[Sequence[float]], ms: Sequence[float]) -> dict[str, float]:
    """:data:`FIT_TERMS` coefficients of one step kind from measured ``ms`` and the
    :func:`~evozero.nas.devices.cost.fit_features` ``rows`` of the measured steps."""
    # In ms per unit of each feature: ms -> us for the intercept, ms -> ns for the others.
    units = np.array([1e3 if term == "intercept_us" else 1e6 for term in FIT_TERMS])
    coefficients = relative_nnls(rows, ms) * units
    return dict(zip(FIT_TERMS, (float(c) for c in coefficients)))


def peak_gemm_gflops() -> float:
    """Single-thread float32 GEMM throughput, GFLOP/s."""
    a = np.random.default_rng(0).standard_normal((512, 512), dtype=np.float32)
    seconds = interleaved_median_seconds([lambda: np.dot(a, a)], [1], rounds=20)[0]
    return 2 * 512 ** 3 / seconds / 1e9


def copy_bandwidth_gbs() -> float:
    """Bytes read plus written per second by a large array copy, GB/s."""
    source = np.ones(8 << 20, dtype=np.float32)
    target = np.empty_like(source)
    seconds = interleaved_median_seconds([lambda: np.copyto(target, source)], [1], rounds=20)[0]
    return 2 * source.nbytes / seconds / 1e9


def machine_description() -> dict[str, object]:
    """CPU model, thread counts and library versions, stored with the profile."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": 1,
            "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "measured": time.strftime("%Y-%m-%d %H:%M:%S")}


def check_output(path: str | os.PathLike) -> None:
    """Refuse a profile path that could not be written (a folder, a folder that cannot be
    made or written to), so that a calibration never measures for nothing."""
    target = Path(path)
    if target.is_dir():
        raise EvozeroError(f"{target}: is a folder; give the path of the profile YAML file "
                           f"to write")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise EvozeroError(f"{target.parent}: cannot make the folder for the profile "
                           f"({error.strerror})") from None
    if not os.access(target.parent, os.W_OK):
        raise EvozeroError(f"{target.parent}: cannot write the profile there (permission "
                           f"denied); give another path")


def write_profile(profile: DeviceProfile, path: str | os.PathLike) -> None:
    """Write ``profile`` as YAML to ``path`` atomically (a temporary file, then renamed)."""
    target = Path(path)
    check_output(target)
    try:
        handle, temporary = tempfile.mkstemp(prefix=".host-", suffix=".yaml",
                                             dir=target.parent)
    except OSError as error:
        raise EvozeroError(f"{target}: cannot write the profile ({error.strerror})") from None
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(temporary, 0o666 & ~umask)     # mkstemp makes it private; a profile is not
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            yaml.safe_dump(profile.to_dict(), stream, sort_keys=False, width=100)
        os.replace(temporary, target)
    except OSError as error:   # a full or read-only disk
        os.unlink(temporary)
        raise EvozeroError(f"{target}: cannot write the profile ({error.strerror})") from None
    except BaseException:
        os.unlink(temporary)
        raise


def reference_networks(per_space: int = REFERENCE_CELLS,
                       seed: int = REFERENCE_SEED) -> list[Architecture]:
    """Random cells of both spaces in the digits skeleton, for the in-network correction
    (a seed of their own keeps them apart from the cells a benchmark draws)."""
    rng = np.random.default_rng(seed)
    return [compile_cell(CellSpace(Nas(space=space)).random(rng), Skeleton(), (8, 8, 1), 10)
            for space in ("nb101", "nb201") for _ in range(per_space)]


def _host_profile(points: Sequence[tuple[Step, int]], step_ms: Sequence[float],
                  call_us: float, gflops: float, bandwidth: float, description: str,
                  machine: dict[str, object]) -> DeviceProfile:
    lut = {lut_key(step, batch): round(ms, 6) for (step, batch), ms in zip(points, step_ms)}
    rows: dict[str, list[tuple[tuple[float, ...], float]]] = {}
    for (step, batch), ms in zip(points, step_ms):
        rows.setdefault(step.kind, []).append((fit_features(step, batch), ms))
    fitted = {kind: {term: round(value, 6) for term, value in
                     fit_kind([r for r, _ in pairs], [m for _, m in pairs]).items()}
              for kind, pairs in rows.items()}
    overhead = statistics.median(terms["intercept_us"] for terms in fitted.values())
    return DeviceProfile(
        name="host", description=description, peak_gflops=round(gflops, 2),
        bandwidth_gbs=round(bandwidth, 2), overhead_us=round(overhead, 3),
        call_overhead_us=round(call_us, 3), fitted=fitted, lut=lut, machine=machine)


def calibrate(path: str | os.PathLike, seconds_budget: float = 45.0,
              out: TextIO | None = None) -> DeviceProfile:
    """Measure this machine (module docstring) for about ``seconds_budget`` seconds,
    write the ``host`` profile to ``path`` and return it."""
    out = out or sys.stdout   # the stream of the moment, not of import time
    check_output(path)
    start = time.perf_counter()
    neural.retain_freed_memory()
    with threadpool_limits(limits=1):
        print("calibrating: compiling kernels", file=out, flush=True)
        steps = calibration_steps()
        gflops, bandwidth = peak_gemm_gflops(), copy_bandwidth_gbs()
        print(f"calibrating: GEMM {gflops:.0f} GFLOP/s, copy {bandwidth:.1f} GB/s",
              file=out, flush=True)
        empty = Architecture((Layer("input", (), (8, 8, 16)),))
        references = [(arch, batch) for arch in reference_networks() for batch in BATCHES]
        calls = [forward_call(arch, batch) for arch, batch in
                 [(empty, b) for b in BATCHES] + references]
        repeats = [sample_repeats(c) for c in calls]
        points: list[tuple[Step, int]] = []
        # Warming up (which compiles kernels) takes a third of the budget at most; the
        # shapes warmed by then are measured, in rounds until the deadline.
        for step in steps:
            if points and time.perf_counter() > start + seconds_budget / 3:
                break
            for batch in BATCHES:
                points.append((step, batch))
                calls.append(forward_call(step_network(step), batch))
                repeats.append(sample_repeats(calls[-1]))
        print(f"calibrating: timing {len(points) // len(BATCHES)} of {len(steps)} shapes "
              f"and {len(references) // len(BATCHES)} networks", file=out, flush=True)
        ms = [1e3 * t for t in interleaved_median_seconds(calls, repeats, MAX_ROUNDS,
                                                      start + seconds_budget)]
    call_ms = dict(zip(BATCHES, ms[:len(BATCHES)]))
    network_ms = ms[len(BATCHES):len(BATCHES) + len(references)]
    raw_ms = [max(total - call_ms[batch], 1e-6) / COPIES
              for (_, batch), total in zip(points, ms[len(BATCHES) + len(references):])]
    measured = len(points) // len(BATCHES)
    description = (f"This machine, calibrated by evozero calibrate on one thread ({measured} "
                   f"of {len(steps)} shapes at batch 1 and 64).")
    # The reference networks' times tell later measurements (evozero.nas.devices.drift) whether
    # the machine still runs at the speed it was calibrated at.
    machine = {**machine_description(), REFERENCE_KEY: {
        batch: [round(t, 6) for (_, b), t in zip(references, network_ms) if b == batch]
        for batch in BATCHES}}
    draft = _host_profile(points, raw_ms, call_ms[1] * 1e3, gflops, bandwidth, description,
                          machine)
    # A network runs different kernels in turn on data its other layers wrote, which
    # costs each step more than a loop of one kernel does: a scale and an addition per
    # step, fitted on the reference networks, turn the loop figures into in-network ones.
    sums, counts, targets = zip(*(
        (estimate_ms(execution_steps(arch), draft, batch) - call_ms[1],
         len(execution_steps(arch)), total - call_ms[batch])
        for (arch, batch), total in zip(references, network_ms)))
    scale, per_step = relative_nnls(np.column_stack([sums, counts]), targets)
    profile = _host_profile(points, [float(m * scale + per_step) for m in raw_ms],
                            call_ms[1] * 1e3, gflops, bandwidth, description, machine)
    write_profile(profile, path)
    missing = [kind for kind in STEP_KINDS if kind not in profile.fitted]
    note = f"; not measured (roofline used): {', '.join(missing)}" if missing else ""
    print(f"calibrated {measured} shapes in {time.perf_counter() - start:.1f} s (in-network "
          f"correction x{scale:.2f} + {per_step * 1e3:.1f} us per step){note}; wrote {path}",
          file=out, flush=True)
    return profile
