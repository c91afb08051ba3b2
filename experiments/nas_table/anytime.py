"""Accuracy against simulated search time, per strategy, for a study of table searches.

    python experiments/nas_table/anytime.py studies/nas_table_strategies [-o anytime.png]

For every run of the study (``runs/ARM/seed-N``), the best cell so far by the search
signal is followed along the run's simulated clock (its discoveries); its test accuracy
is the table's (the mean over its trained seeds). Per arm the script prints, at a few
times and at the end, the mean over seeds with a 95 % t interval, and draws the mean
curve with its interval band.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from evozero.nas.spaces.cells import Nb201Cell  # noqa: E402
from evozero.nas.table.store import cell_index, load_table  # noqa: E402
from evozero.runs.files import read_json_lines  # noqa: E402
from evozero.study.stats import mean_se, t_quantile  # noqa: E402

MARKS = (5.0, 10.0, 25.0, 50.0)


def curves(study: Path, table_name: str, grid: np.ndarray) -> dict[str, np.ndarray]:
    """Per arm, ``(runs, len(grid))`` test accuracies of each run's best cell so far."""
    table = load_table(table_name)
    test = np.nanmean(table.test_accuracy, axis=1)
    found: dict[str, list[np.ndarray]] = {}
    for run in sorted((study / "runs").glob("*/seed-*")):
        if not (run / "final.json").exists():
            continue   # under way: not a whole run yet
        events = read_json_lines(run / "discoveries.jsonl")
        clock = np.array([e["search_clock"] for e in events])
        accuracy = np.array([test[table.row[cell_index(Nb201Cell.parse(e["program"]))]]
                             for e in events])
        # Before its first network a run has found nothing: NaN, left out of the mean.
        at = np.searchsorted(clock, grid, side="right") - 1
        found.setdefault(run.parent.name, []).append(
            np.where(at >= 0, accuracy[np.maximum(at, 0)], np.nan))
    return {arm: np.array(rows) for arm, rows in found.items()}


def interval(values: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its 95 % t interval."""
    estimate = mean_se(values[np.isfinite(values)].tolist())
    if estimate.se is None:
        return float("nan"), float("nan")
    return estimate.mean, t_quantile(0.975, estimate.n - 1) * estimate.se


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("-o", "--output", default="anytime.png")
    parser.add_argument("--seconds", type=float, default=50.0)
    parser.add_argument("--table", default="nb201-mnist1d", help="the runs' table")
    args = parser.parse_args()
    grid = np.linspace(0.0, args.seconds, 201)
    arms = curves(args.study, args.table, grid)
    marks = [int(np.searchsorted(grid, m)) for m in MARKS if m <= args.seconds]
    print("test accuracy of the best cell so far (mean [95 % interval] over seeds), by "
          "simulated seconds")
    print(f"{'arm':<10} {'runs':>4} " + " ".join(f"{grid[k]:>16.0f}s" for k in marks))
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for arm, rows in sorted(arms.items(), key=lambda item: -np.nanmean(item[1][:, -1])):
        cells = [interval(rows[:, k]) for k in marks]
        print(f"{arm:<10} {len(rows):>4} " + " ".join(
            f"{100 * mean:6.2f} [{100 * (mean - half):5.2f}, {100 * (mean + half):5.2f}]"
            for mean, half in cells))
        means = np.array([interval(rows[:, k])[0] for k in range(len(grid))])
        halves = np.array([interval(rows[:, k])[1] for k in range(len(grid))])
        axes.plot(grid, 100 * means, label=f"{arm} ({len(rows)} runs)")
        axes.fill_between(grid, 100 * (means - halves), 100 * (means + halves), alpha=0.2)
    axes.set_xlabel("simulated search seconds (the table's recorded CPU seconds)")
    axes.set_ylabel("test accuracy of the best cell so far (%)")
    axes.set_title("Multi-trial strategies on evozero's NB-201 MNIST-1D table")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
