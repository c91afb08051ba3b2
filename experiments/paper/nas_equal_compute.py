"""The accuracy each arm of a NAS study had reached at equal training compute, paired by
seed: a Markdown table (and, with --json, the numbers).

    python experiments/paper/nas_equal_compute.py STUDY_DIR [--fractions 0.25,0.5,1]
        [--from-scratch]

Marks are fractions of the smallest total training steps any run of the study spent, so
every run has reached each mark. At each mark, per arm: the mean validation and test
accuracy of the best network (by validation) found within that many steps
(:func:`evozero.nas.reports.at_compute.best_at_train_steps`); for the study's compared pair, the
paired difference of the test accuracy with its 95 % t interval and wins/ties/losses
(:func:`evozero.study.stats.paired_difference`, as `evozero show STUDY`). With
--from-scratch, a second table: each arm's best cells trained afresh
(:func:`evozero.nas.reports.at_compute.best_from_scratch`, one network per run), beside the
accuracy the runs recorded for them.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from evozero.domains import domain_for
from evozero.nas.reports.at_compute import best_at_train_steps, best_from_scratch
from evozero.runs.rundir import RunDir
from evozero.study import stats
from evozero.study.summary import read_records, read_study


def equal_compute(study_dir: str, fractions: list[float]) -> dict[str, Any]:
    """The table's numbers for the study in ``study_dir`` (module docstring)."""
    study = read_study(study_dir)
    records = read_records(study_dir, study["arms"])
    totals = [r["train_steps"] for r in records if r["train_steps"]]
    if not totals:
        raise SystemExit(f"{study_dir}: no finished run with training steps yet")
    steps = min(totals)
    marks = [round(fraction * steps) for fraction in fractions]
    best: dict[str, dict[int, list[dict | None]]] = {arm: {} for arm in study["arms"]}
    for record in records:
        best[record["arm"]][record["seed"]] = best_at_train_steps(
            Path(study_dir) / record["run"], marks)
    rows = []
    for index, mark in enumerate(marks):
        row: dict[str, Any] = {"train_steps": mark, "arms": {}}
        for arm, runs in best.items():
            found = [r[index] for r in runs.values() if r[index] is not None]
            row["arms"][arm] = {key: sum(f[key] for f in found) / len(found) if found else None
                                for key in ("valid_accuracy", "test_accuracy", "networks")}
        if study["compare"] is not None:
            first, second = (
                {seed: (r[index] or {}).get("test_accuracy") for seed, r in best[arm].items()}
                for arm in study["compare"])
            row["test_gap"] = dataclasses.asdict(stats.paired_difference(first, second))
        rows.append(row)
    return {"study": study["name"], "compare": study["compare"], "rows": rows}


def from_scratch(study_dir: str) -> dict[str, Any]:
    """Per arm, the mean validation and test accuracy of its runs' best cells as recorded
    and trained afresh, and for the compared pair the paired test difference afresh."""
    study = read_study(study_dir)
    fresh: dict[str, dict[int, dict[str, float]]] = {arm: {} for arm in study["arms"]}
    recorded: dict[str, dict[int, dict[str, float]]] = {arm: {} for arm in study["arms"]}
    for record in read_records(study_dir, study["arms"]):
        rundir = RunDir.open(Path(study_dir) / record["run"])
        fresh[record["arm"]][record["seed"]] = best_from_scratch(
            rundir, domain_for(rundir.read_config()))
        recorded[record["arm"]][record["seed"]] = {
            "valid_accuracy": record["search_fitness"], "test_accuracy": record["final_fitness"]}
    table: dict[str, Any] = {"arms": {}}
    for arm in study["arms"]:
        table["arms"][arm] = {
            f"{kind}_{key}": sum(r[key] for r in runs[arm].values()) / len(runs[arm])
            for kind, runs in (("recorded", recorded), ("fresh", fresh))
            for key in ("valid_accuracy", "test_accuracy")} | {"runs": len(fresh[arm])}
    if study["compare"] is not None:
        first, second = ({seed: r["test_accuracy"] for seed, r in fresh[arm].items()}
                         for arm in study["compare"])
        table["test_gap"] = dataclasses.asdict(stats.paired_difference(first, second))
    return table


def from_scratch_markdown(table: dict[str, Any]) -> str:
    """The :func:`from_scratch` table as Markdown: one row per arm."""
    lines = ["| arm (runs) | best cells as recorded: valid / test | trained afresh: valid / "
             "test |", "|---|---|---|"]
    for arm, row in table["arms"].items():
        lines.append(f"| {arm} ({row['runs']}) | {row['recorded_valid_accuracy']:.3f} / "
                     f"{row['recorded_test_accuracy']:.3f} | {row['fresh_valid_accuracy']:.3f}"
                     f" / {row['fresh_test_accuracy']:.3f} |")
    gap = table.get("test_gap")
    if gap and gap["mean"] is not None:
        interval = "" if gap["low"] is None else \
            f" [{100 * gap['low']:+.1f}, {100 * gap['high']:+.1f}]"
        lines.append(f"\nTrained afresh, test gap: {100 * gap['mean']:+.1f} points{interval} "
                     f"({gap['wins']}/{gap['ties']}/{gap['losses']} wins/ties/losses).")
    return "\n".join(lines)


def markdown(table: dict[str, Any]) -> str:
    """The table as Markdown: one row per mark."""
    arms = list(table["rows"][0]["arms"])
    head = "| training steps (networks) | " + " | ".join(
        f"{arm}: valid / test" for arm in arms) + " |"
    if table["compare"]:
        head += f" test gap {table['compare'][0]} - {table['compare'][1]} (95 % CI) | W/T/L |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in table["rows"]:
        networks = row["arms"][arms[0]]["networks"]
        cells = [f"{row['train_steps']:,} ({networks:.0f})" if networks else
                 f"{row['train_steps']:,}"]
        for arm in arms:
            found = row["arms"][arm]
            cells.append("—" if found["valid_accuracy"] is None else
                         f"{found['valid_accuracy']:.3f} / {found['test_accuracy']:.3f}")
        if "test_gap" in row:
            gap = row["test_gap"]
            interval = "" if gap["low"] is None else \
                f" [{100 * gap['low']:+.1f}, {100 * gap['high']:+.1f}]"
            cells.append("—" if gap["mean"] is None else
                         f"{100 * gap['mean']:+.1f} points{interval}")
            cells.append(f"{gap['wins']}/{gap['ties']}/{gap['losses']}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Print the table for the study named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study")
    parser.add_argument("--fractions", default="0.25,0.5,0.75,1",
                        help="marks, as fractions of the smallest run's training steps")
    parser.add_argument("--from-scratch", action="store_true",
                        help="also train each run's best cell afresh (one network per run)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args(argv)
    table = equal_compute(args.study, [float(f) for f in args.fractions.split(",")])
    fresh = from_scratch(args.study) if args.from_scratch else None
    if args.json:
        print(json.dumps({"equal_compute": table, "from_scratch": fresh}, indent=2))
    else:
        print(markdown(table))
        if fresh is not None:
            print("\n" + from_scratch_markdown(fresh))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
