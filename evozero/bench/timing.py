"""Shared timing helpers for the benchmarks: medians of repeated runs (the interleaved
sampling loop is :func:`evozero.nas.devices.calibrate.interleaved_median_seconds`, which the
latency calibration uses as well)."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from evozero.nas.devices.calibrate import interleaved_median_seconds


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``run`` (after one untimed warm-up call)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(runs: dict[str, Callable[[], object]], repeats: int,
                        clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Median time of each named run on ``clock`` (wall time by default), the runs
    interleaved so load noise hits all alike."""
    for run in runs.values():
        run()
    seconds = interleaved_median_seconds(list(runs.values()), [1] * len(runs), repeats,
                                         clock=clock)
    return dict(zip(runs, seconds))
