"""The tables of experiments/paper/README.md from the study directories, beside the paper's.

    python experiments/paper/paper_tables.py fig4 STUDIES_DIR      # Fig. 4 (four studies)
    python experiments/paper/paper_tables.py mnist1d STUDY_DIR     # MNIST-1D from scratch

Fig. 4: per task type, the success rates of evolution and random search (as `evozero
show STUDY` counts them: search fitness >= the tuned baseline's), their ratio with its
95 % interval (:func:`evozero.study.stats.success_ratio`), the same counted within
``FLOOR`` of the threshold (the fitness of a converged regressor sits at the float64 floor,
1 - 3e-16, where rounding decides the last unit), and how many random programs one
success cost (or, with none, the bound on the chance per evaluation).

MNIST-1D: held-out accuracy (final tasks) of the evolved programs after tuning (best and
median over seeds), of the tuned baselines, and in how many seeds the tuned evolved
program beats each tuned baseline.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from evozero.study import stats
from evozero.study.summary import read_records, read_study

#: Fig. 4 as the paper gives it (section 4.1): study name, task type, evaluations per
#: experiment, the paper's evolution / random-search success ratio.
FIG4 = (("fig4_linear_learn", "learning only, linear", 10_000, "2.9x"),
         ("fig4_linear_whole", "whole algorithm, linear", 10_000, "5.6x"),
         ("fig4_affine_learn", "learning only, affine", 10_000, "150x"),
         ("fig4_affine_whole", "whole algorithm, affine", 100_000, "23,000x"))
#: Two fitnesses this close count as equal in the "within the floor" columns.
FLOOR = 1e-12


def _ratio_text(estimate: stats.Estimate) -> str:
    if estimate.low is None:
        return "undefined (no success in either arm)"
    if estimate.value is None:
        return f"> {estimate.low:.2g} (random search: none)"
    if estimate.high is None:
        return f"{estimate.value:.3g} [{estimate.low:.2g}, -]"
    return f"{estimate.value:.3g} [{estimate.low:.2g}, {estimate.high:.2g}]"


def _count(records: list[dict], arm: str, floor: float) -> tuple[int, int]:
    runs = [r for r in records if r["arm"] == arm and r["threshold"] is not None]
    hits = sum(r["search_fitness"] is not None and r["search_fitness"] >= r["threshold"] - floor
               for r in runs)
    return hits, len(runs)


def _difficulty(records: list[dict], evaluations: int) -> str:
    hits, runs = _count(records, "random", 0.0)
    programs = runs * evaluations
    if hits:
        return f"1 in {programs / hits:,.0f}"
    return f"none in {programs:,}: < 1 in {1 / stats.zero_success_density_bound(programs):,.0f}"


def fig4(studies_dir: str) -> str:
    """The Fig. 4 table (module docstring) of the four studies under ``studies_dir``."""
    lines = ["| task type | evaluations | seeds per arm | evolution | random search | "
             "ratio [95 %] | within 1e-12: evolution, random, ratio | random programs per "
             "success | paper's ratio |", "|---|---|---|---|---|---|---|---|---|"]
    for name, title, evaluations, paper in FIG4:
        directory = Path(studies_dir) / name
        if not directory.is_dir():
            lines.append(f"| {title} | {evaluations:,} | not run | | | | | | {paper} |")
            continue
        records = read_records(directory, read_study(directory)["arms"])
        cells = []
        for floor in (0.0, FLOOR):
            (k_e, n_e), (k_r, n_r) = _count(records, "evolution", floor), \
                _count(records, "random", floor)
            cells.append((k_e, n_e, k_r, n_r, _ratio_text(stats.success_ratio(k_e, n_e, k_r,
                                                                               n_r))))
        (k_e, n_e, k_r, n_r, ratio), (f_e, _, f_r, _, floor_ratio) = cells
        lines.append(f"| {title} | {evaluations:,} | {min(n_e, n_r)} | {k_e}/{n_e} | "
                     f"{k_r}/{n_r} | {ratio} | {f_e}, {f_r}, {floor_ratio} | "
                     f"{_difficulty(records, evaluations)} | {paper} |")
    return "\n".join(lines)


def mnist1d(study_dir: str) -> str:
    """The MNIST-1D table (module docstring) of the study in ``study_dir``."""
    records = read_records(study_dir, read_study(study_dir)["arms"])
    evolved = {r["seed"]: r["tuned_final"] for r in records if r["tuned_final"] is not None}
    rows: list[tuple[str, Any, Any, str]] = [
        ("evolved from no-ops, tuned", max(evolved.values(), default=None),
         statistics.median(evolved.values()) if evolved else None, "")]
    for name, title in (("logistic", "logistic regression, tuned"),
                        ("neural_net", "two-layer network, tuned")):
        scores = {r["seed"]: r["baselines"][name] for r in records
                  if r["baselines"].get(name) is not None}
        beaten = sum(evolved[s] > scores[s] for s in scores if s in evolved)
        rows.append((title, max(scores.values(), default=None),
                     statistics.median(scores.values()) if scores else None,
                     f"{beaten} of {len(set(scores) & set(evolved))}"))
    lines = ["| held-out pairs (final tasks) | best | median | seeds where evolved beats it |",
             "|---|---|---|---|"]
    for title, best, median, beaten in rows:
        best_text = "-" if best is None else f"{best:.4f}"
        median_text = "-" if median is None else f"{median:.4f}"
        lines.append(f"| {title} | {best_text} | {median_text} | {beaten} |")
    return "\n".join(lines)


def main() -> None:
    """Print the table the command line asks for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", choices=("fig4", "mnist1d"))
    parser.add_argument("directory", help="fig4: the folder holding the four study "
                                          "directories; mnist1d: the study directory")
    args = parser.parse_args()
    print(fig4(args.directory) if args.table == "fig4" else mnist1d(args.directory))


if __name__ == "__main__":
    main()
