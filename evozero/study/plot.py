"""``evozero plot STUDY``: a study's results as one PNG.

Top row (when any run succeeded): the success rate of each arm with its Wilson 95 %
interval, and each arm's effort to success (one point per successful run, log scale) with
the median and its bootstrap interval. Bottom row (always): the final fitness of every run
per arm, the runs of one seed joined across the compared pair, and the paired differences
of the compared pair with their mean and t interval. The figures and intervals are the
summary's (:mod:`evozero.study.summary`); the drawing style is :mod:`evozero.analysis.figure`'s.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from evozero.analysis.figure import new_figure, save_figure, series_color
from evozero.errors import EvozeroError
from evozero.study.show import EFFORT_NAMES, fitness_names
from evozero.study.summary import read_records, read_study, summary_of

#: Horizontal spread of the points of one arm (a fraction of the distance between arms).
JITTER = 0.12


def plot_study(study_dir: str | Path, output: str | Path,
               effort: str = "individuals") -> Path:
    """Draw the study in ``study_dir`` into ``output``; ``effort``: which effort to success
    to show (individuals, train_steps or seconds). Returns the path written; EvozeroError
    for a directory that is not a study or a study without a finished run."""
    if effort not in EFFORT_NAMES:
        raise EvozeroError(f"unknown effort {effort!r}; allowed: {', '.join(EFFORT_NAMES)}")
    study = read_study(study_dir)
    records = read_records(study_dir, study["arms"])
    if not records:
        raise EvozeroError(f"{study_dir}: no run of the study has finished yet; plot it once "
                           f"runs are recorded in runs.jsonl")
    summary = summary_of(study, records)
    arms = study["arms"]
    by_arm = {arm: [r for r in records if r["arm"] == arm] for arm in arms}
    succeeded = any(a["successes"] for a in summary["arms"].values())
    rows = 2 if succeeded else 1
    figure = new_figure((11.0, 4.2 * rows), left=0.07, right=0.98, bottom=0.1 / rows,
                        top=1 - 0.17 / rows, wspace=0.25, hspace=0.4)
    names = fitness_names(summary["domain"])
    panel = 1
    if succeeded:
        _success_rates(figure.add_subplot(rows, 2, 1), summary["arms"])
        _efforts(figure.add_subplot(rows, 2, 2), by_arm, summary["arms"], effort)
        panel = 3
    _fitnesses(figure.add_subplot(rows, 2, panel), by_arm, summary["compare"], names["final"])
    _differences(figure.add_subplot(rows, 2, panel + 1), by_arm, summary["compare"],
                 names["final"])
    figure.suptitle(f"{summary['study']}: {summary['finished_runs']} of "
                    f"{summary['planned_runs']} runs finished", fontsize=12)
    return save_figure(figure, output)


def _style(axes: Any, arms: list[str], title: str, ylabel: str) -> None:
    axes.set_xticks(range(len(arms)), arms)
    axes.set_xlim(-0.6, len(arms) - 0.4)
    axes.set_title(title, fontsize=10)
    axes.set_ylabel(ylabel)
    axes.grid(True, axis="y", alpha=0.3, linewidth=0.6)


def _jitter(count: int, seed: int) -> np.ndarray:
    """Fixed horizontal offsets, so the same study gives the same picture."""
    return np.random.default_rng(seed).uniform(-JITTER, JITTER, count)


def _success_rates(axes: Any, arms: dict[str, dict]) -> None:
    for index, arm in enumerate(arms.values()):
        rate = arm["success_rate"]
        if rate["value"] is None:
            continue
        color = series_color(index)
        axes.errorbar([index], [rate["value"]],
                      yerr=[[rate["value"] - rate["low"]], [rate["high"] - rate["value"]]],
                      fmt="o", color=color, capsize=6, markersize=7, linewidth=1.6)
        note = f"{arm['successes']}/{arm['judged']}"
        if arm["density_bound"] is not None:
            note += f"\n≤ {arm['density_bound']:.1e}\nper evaluation"
        axes.annotate(note, (index, rate["high"]), xytext=(0, 5), textcoords="offset points",
                      ha="center", va="bottom", fontsize=8)
    axes.set_ylim(-0.03, 1.2)
    axes.set_yticks(np.linspace(0, 1, 6))
    _style(axes, list(arms), "success rate (95 % Wilson interval)", "runs that succeeded")


def _efforts(axes: Any, by_arm: dict[str, list[dict]], arms: dict[str, dict],
             effort: str) -> None:
    positive = True
    for index, name in enumerate(arms):
        values = np.array([r["to_success"][effort] for r in by_arm[name] if r["success"]
                           and r["to_success"][effort] is not None])
        color = series_color(index)
        if not values.size:
            axes.annotate("no success", (index, 0.5), xycoords=("data", "axes fraction"),
                          ha="center", fontsize=9, color="0.4")
            continue
        positive &= bool((values > 0).all())
        axes.plot(index + _jitter(values.size, index), values, "o", color=color, alpha=0.55,
                  markersize=5, markeredgewidth=0)
        median = arms[name]["to_success"][effort]
        if median["low"] is not None:
            axes.errorbar([index + 0.3], [median["value"]],
                          yerr=[[median["value"] - median["low"]],
                                [median["high"] - median["value"]]],
                          fmt="_", color="black", capsize=5, markersize=14, linewidth=1.4)
        axes.hlines(median["value"], index - 0.25, index + 0.25, color="black", linewidth=1.6)
    if positive:
        axes.set_yscale("log")
    _style(axes, list(arms), f"{EFFORT_NAMES[effort]} to success: runs, median "
                             f"(bootstrap 95 %)", EFFORT_NAMES[effort])


def _fitnesses(axes: Any, by_arm: dict[str, list[dict]], compare: dict | None,
               name: str) -> None:
    arms = list(by_arm)
    positions: dict[tuple[str, int], tuple[float, float]] = {}
    for index, arm in enumerate(arms):
        runs = [r for r in by_arm[arm] if r["final_fitness"] is not None]
        if not runs:
            continue
        xs = index + _jitter(len(runs), index)
        values = np.array([r["final_fitness"] for r in runs])
        axes.plot(xs, values, "o", color=series_color(index), alpha=0.65, markersize=5,
                  markeredgewidth=0, zorder=3)
        axes.hlines(values.mean(), index - 0.25, index + 0.25, color="black", linewidth=1.6,
                    zorder=4)
        positions.update({(arm, r["seed"]): (x, r["final_fitness"]) for r, x in zip(runs, xs)})
    if compare is not None:
        first, second = compare["arms"]
        for arm, seed in list(positions):
            if arm == first and (second, seed) in positions:
                (x0, y0), (x1, y1) = positions[(first, seed)], positions[(second, seed)]
                axes.plot([x0, x1], [y0, y1], color="0.6", linewidth=0.6, alpha=0.6,
                          zorder=2)
    _style(axes, arms, "each run (lines join the compared arms' runs of a seed); bar: mean",
           f"fitness, {name}")


def _differences(axes: Any, by_arm: dict[str, list[dict]], compare: dict | None,
                 name: str) -> None:
    if compare is None or not compare["final_fitness"]["n"]:
        axes.set_axis_off()
        axes.set_title("paired differences: no seed finished in both compared arms",
                       fontsize=10)
        return
    first, second = compare["arms"]
    paired = compare["final_fitness"]
    a = {r["seed"]: r["final_fitness"] for r in by_arm[first]}
    b = {r["seed"]: r["final_fitness"] for r in by_arm[second]}
    differences = np.array([a[s] - b[s] for s in sorted(set(a) & set(b))
                            if a[s] is not None and b[s] is not None])
    axes.axhline(0.0, color="0.4", linewidth=0.9, linestyle="--")
    axes.plot(_jitter(differences.size, 7), differences, "o", color=series_color(0),
              alpha=0.65, markersize=5, markeredgewidth=0)
    if paired["low"] is not None:
        axes.errorbar([0.3], [paired["mean"]],
                      yerr=[[paired["mean"] - paired["low"]], [paired["high"] - paired["mean"]]],
                      fmt="o", color="black", capsize=6, markersize=6, linewidth=1.6)
    axes.hlines(paired["mean"], -0.25, 0.25, color="black", linewidth=1.6)
    axes.set_xticks([0], [f"{first} − {second}"])
    axes.set_xlim(-0.8, 0.8)
    axes.set_title(f"paired difference per seed, mean (t 95 %): {paired['wins']} wins, "
                   f"{paired['ties']} ties, {paired['losses']} losses", fontsize=10)
    axes.set_ylabel(f"{first} − {second}, {name}")
    axes.grid(True, axis="y", alpha=0.3, linewidth=0.6)
