"""Plots of NAS runs (``evozero plot`` on NAS run directories), on the figure helpers of
:mod:`evozero.analysis.figure` like the program plots.

Left: the best validation accuracy so far against networks evaluated; several runs of
one config become a median line with a band (interquartile with 4+ runs, min-max
otherwise), and runs of different configs (for
example evolution against random search) one line each with a legend. Right: every
evaluated network as a dot of validation accuracy against the run's cost (its objective's
``cost``, latency on its device profile by default), with each config's Pareto front as a
step line.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evozero.analysis.figure import draw_median_band, new_figure, save_figure, series_color
from evozero.config import Nas
from evozero.errors import EvozeroError
from evozero.nas.search.pareto import cost_of, pareto_front
from evozero.runs.rundir import RunDir

_COST_LABELS = {"latency_ms": "estimated latency (ms, {profile})", "macs": "MACs",
                "params": "parameters", "peak_activation_bytes": "peak activation bytes"}


def _load(path: str | Path, nas: Nas) -> dict[str, Any]:
    rundir = RunDir.open(path)
    config = rundir.read_config()
    records = [r for r in rundir.read_evaluations()
               if r.get("valid_accuracy") is not None]
    if not records:
        raise EvozeroError(f"{path}: no evaluated network yet (evaluations.jsonl is empty)")
    accuracy = np.array([r["valid_accuracy"] for r in records], dtype=float)
    return {"name": config.name, "records": records, "nas": nas,
            "best": np.fmax.accumulate(np.nan_to_num(accuracy, nan=0.0))}


def plot_nas_runs(runs: Sequence[tuple[str | Path, Nas]], output: str | Path) -> Path:
    """Draw the NAS figure (module docstring) for ``runs``, each a run directory with its
    config's nas section; returns the path written."""
    data = [_load(run, nas) for run, nas in runs]
    nas = data[0]["nas"]
    cost, profile = nas.objective.cost, nas.profile
    if any((d["nas"].objective.cost, d["nas"].profile) != (cost, profile) for d in data):
        raise EvozeroError("the runs rank cost differently (nas.objective.cost or "
                           "nas.profile differ); plot them separately")
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in data:
        groups.setdefault(run["name"], []).append(run)
    figure = new_figure((11.0, 4.6), left=0.07, right=0.985, bottom=0.13, top=0.9, wspace=0.22)
    curve, front = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    for index, (name, members) in enumerate(groups.items()):
        color = series_color(index)
        _draw_curve(curve, members, color, name)
        _draw_front(front, members, color, name, cost, profile)
    curve.set_xlabel("networks evaluated")
    curve.set_ylabel("best validation accuracy so far")
    curve.set_title("search progress", fontsize=11)
    front.set_xlabel(_COST_LABELS[cost].format(profile=profile))
    front.set_ylabel("validation accuracy")
    front.set_title("every network, and the Pareto front", fontsize=11)
    if cost != "latency_ms":
        front.set_xscale("log")
    for axes in (curve, front):
        axes.grid(True, alpha=0.3, linewidth=0.6)
        axes.legend(loc="lower right", fontsize=8, framealpha=0.9)
    return save_figure(figure, output)


def _draw_curve(axes: Any, runs: list[dict[str, Any]], color: str, label: str) -> None:
    length = max(len(r["best"]) for r in runs)
    # A finished run keeps its best for the evaluations the longer runs still made.
    padded = np.array([np.concatenate([r["best"], np.full(length - len(r["best"]), r["best"][-1])])
                       for r in runs])
    draw_median_band(axes, np.arange(1, length + 1), padded, color, label)


def _draw_front(axes: Any, runs: list[dict[str, Any]], color: str, name: str, cost: str,
                profile: str) -> None:
    records = [r for run in runs for r in run["records"]]
    axes.scatter([cost_of(r["cost"], cost, profile) for r in records],
                 [r["valid_accuracy"] for r in records], s=9, color=color, alpha=0.25,
                 linewidths=0)
    points = pareto_front(records, cost, profile)
    axes.step([p[cost] for p in points], [p["valid_accuracy"] for p in points], where="post",
              color=color, linewidth=1.6, marker="o", markersize=4,
              label=f"{name}: front of {len(points)}")
