"""The cost-model part of ``evozero bench nas``: how well the host profile's estimated
latency matches the measured latency of real networks.

For random valid cells of each space (NAS-Bench-101: 7 vertices, at most 9 edges, drawn
uniformly among valid genomes; NAS-Bench-201: uniform over its 15,625 cells), compiled
in the digits skeleton (8x8x1 input, 10 classes), the inference time of
:class:`~evozero.nas.training.model.Model` is measured at batch 1 and at the training batch, in
the conditions calibration measures in (one BLAS thread, the steady allocator, thread
CPU time): the median of repeated samples after a warm-up, the cells interleaved, in two
passes. Per space and batch the table gives:

- ``rho est``: Spearman's rho of the estimate against the measurement (the mean of the
  two passes); ``rho MACs``: the same for MACs alone, the baseline to beat;
- ``+-20%``: the share of cells estimated within 20 % of their measurement, and
  ``est/meas`` the median ratio, before and after the drift correction: at the start the
  calibration's reference networks are re-timed as a run re-times them
  (:func:`evozero.nas.devices.drift.measure_drift`), and ``drift`` (their time now over their time
  at calibration; 1 when the machine runs as fast as it did then) scales the estimates;
- ``during``: the drift measured again on the reference networks interleaved with the
  cells; far from ``drift`` (by more than 15 %), the machine's speed changed after the
  start, which a correction measured once cannot follow (the verdict says so);
- ``retest``: rho between the two passes, which must reach 0.95 for the comparison to
  mean anything ("machine too noisy" otherwise).

Goals: rho >= 0.90 at batch 1 and >= 0.85 at the training batch, and >= 80 % of the
cells within +-20 % after the drift correction.
"""
from __future__ import annotations

import math
import sys
from dataclasses import replace
from typing import Any, TextIO

import numpy as np
from threadpoolctl import threadpool_limits

from evozero.config import Nas
from evozero.nas.devices.calibrate import (
    forward_call,
    interleaved_median_seconds,
    reference_networks,
    sample_repeats,
)
from evozero.nas.devices.cost import (
    REFERENCE_KEY,
    DeviceProfile,
    cost_record,
    drift_factor,
    estimate_ms,
    execution_steps,
    load_profiles,
)
from evozero.nas.devices.drift import describe_drift, drift_from_timings, measure_drift
from evozero.nas.spaces.skeleton import Skeleton, compile_cell
from evozero.nas.spaces.space import CellSpace
from evozero.nas.table.figures import spearman
from ops import neural

SPACES = ("nb101", "nb201")
INPUT_SHAPE = (8, 8, 1)
CLASSES = 10
RETEST_GATE = 0.95
GOALS = {"rho_batch_1": 0.90, "rho_train_batch": 0.85, "within_20": 0.80}
# The machine's speed changed during the benchmark when the drift measured alongside the
# cells is this far from the one measured at the start.
DRIFT_CHANGE = 0.15


def _within_20(estimated: np.ndarray, measured: np.ndarray) -> float:
    return float(np.mean(np.abs(estimated / measured - 1) <= 0.2))


def _summary(raw: np.ndarray, corrected: np.ndarray, first: np.ndarray, second: np.ndarray,
             macs: np.ndarray, drift: float, drift_during: float) -> dict[str, float]:
    measured = (first + second) / 2
    return {"cells": len(measured), "rho": spearman(corrected, measured),
            "rho_macs": spearman(macs, measured),
            "within_20": _within_20(raw, measured),
            "median_ratio": float(np.median(raw / measured)), "drift": drift,
            "drift_during": drift_during,
            "within_20_corrected": _within_20(corrected, measured),
            "median_ratio_corrected": float(np.median(corrected / measured)),
            "retest_rho": spearman(first, second),
            "median_measured_ms": float(np.median(measured))}


def run(cells: int = 100, train_batch: int = 64, rounds: int = 15, seed: int = 0,
        profile: DeviceProfile | None = None,
        out: TextIO | None = None) -> dict[str, dict[int, dict[str, float]]]:
    """Measure and compare (module docstring) ``cells`` cells per space; each pass takes
    ``rounds`` samples of every cell; ``profile`` defaults to the calibrated host profile.
    Prints the table to ``out`` and returns ``{space: {batch: figures}}``, the figures
    being ``cells``, ``rho``, ``rho_macs``, ``within_20`` and ``median_ratio`` (before
    the drift correction), ``drift`` and ``drift_during`` (nan when the profile has no
    reference timings at that batch size), ``within_20_corrected``,
    ``median_ratio_corrected``, ``retest_rho`` and ``median_measured_ms``.
    """
    out = out or sys.stdout   # the stream of the moment, not of import time
    profile = replace(profile or load_profiles()["host"], drift={})
    print(f"profile: {profile.name} ({profile.description.strip()})", file=out)
    drift = measure_drift(profile)
    if drift is None:
        print("drift: not measured (the profile has no reference timings); estimates "
              "uncorrected", file=out)
    else:
        print(f"drift: {describe_drift(drift.factors)} ({drift.networks} reference networks "
              f"re-timed in {drift.seconds:.1f} s before the cells)", file=out)
    corrected = replace(profile, drift=drift.factors) if drift else profile
    calibrated = profile.machine.get(REFERENCE_KEY, {})
    references = reference_networks() if calibrated else []
    rng = np.random.default_rng(seed)
    results: dict[str, dict[int, dict[str, float]]] = {}
    neural.retain_freed_memory()
    with threadpool_limits(limits=1):
        for space_name in SPACES:
            space = CellSpace(Nas(space=space_name))
            archs = [compile_cell(space.random(rng), Skeleton(), INPUT_SHAPE, CLASSES)
                     for _ in range(cells)]
            macs = np.array([cost_record(a, {})["macs"] for a in archs], dtype=float)
            results[space_name] = {}
            for batch in (1, train_batch):
                calls = [forward_call(arch, batch) for arch in archs + references]
                repeats = [sample_repeats(call) for call in calls]
                first, second = (1e3 * np.array(interleaved_median_seconds(calls, repeats,
                                                                           rounds))
                                 for _ in range(2))
                raw, scaled = (np.array([estimate_ms(execution_steps(a), p, batch)
                                         for a in archs]) for p in (profile, corrected))
                factor = drift_factor(corrected, batch) if drift else math.nan
                now = list((first[cells:] + second[cells:]) / 2)
                during = drift_from_timings({batch: calibrated[batch]}, {batch: now},
                                            profile.name)[batch] \
                    if batch in calibrated else math.nan
                results[space_name][batch] = _summary(raw, scaled, first[:cells],
                                                      second[:cells], macs, factor, during)
    _print_table(results, out)
    return results


def verdict(figures: dict[str, float], batch: int) -> str:
    """What one row of figures says about the goals (module docstring)."""
    goal = GOALS["rho_batch_1"] if batch == 1 else GOALS["rho_train_batch"]
    if figures["retest_rho"] < RETEST_GATE:
        return "machine too noisy"
    if figures["rho"] >= goal and figures["within_20_corrected"] >= GOALS["within_20"]:
        text = "meets goals"
    else:
        text = f"below goals (rho >= {goal}, +-20% >= {GOALS['within_20']:.0%})"
    if abs(figures["drift_during"] / figures["drift"] - 1) > DRIFT_CHANGE:
        text += "; the machine's speed changed after the start"
    return text


def _print_table(results: dict[str, dict[int, dict[str, Any]]], out: TextIO) -> None:
    print(f"{'':37}{'before correction':>17}  {'':6}{'after correction':>17}", file=out)
    print(f"{'space':6} {'batch':>5} {'cells':>5} {'rho est':>8} {'rho MACs':>8}  "
          f"{'+-20%':>8} {'est/meas':>8}  {'drift':>6}  {'+-20%':>8} {'est/meas':>8}  "
          f"{'during':>6} {'retest':>7} {'meas ms':>8}  verdict", file=out)
    for space, by_batch in results.items():
        for batch, r in by_batch.items():
            print(f"{space:6} {batch:5d} {r['cells']:5d} {r['rho']:8.3f} {r['rho_macs']:8.3f}  "
                  f"{r['within_20']:8.0%} {r['median_ratio']:8.2f}  {r['drift']:6.3f}  "
                  f"{r['within_20_corrected']:8.0%} {r['median_ratio_corrected']:8.2f}  "
                  f"{r['drift_during']:6.3f} {r['retest_rho']:7.3f} "
                  f"{r['median_measured_ms']:8.3f}  "
                  f"{verdict(r, batch)}", file=out)
