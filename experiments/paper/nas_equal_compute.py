"""The accuracy each arm of a NAS study had reached at equal training compute, paired by
seed: a Markdown table (and, with --json, the numbers).

    python experiments/paper/nas_equal_compute.py STUDY_DIR [--fractions 0.25,0.5,1]

Marks are fractions of the smallest total training steps any run of the study spent, so
every run has reached each mark. At each mark, per arm: the mean validation and test
accuracy of the best network (by validation) found within that many steps
(:func:`evozero.nas.at_compute.best_at_train_steps`); for the study's compared pair, the
paired difference of the test accuracy with its 95 % t interval and wins/ties/losses
(:func:`evozero.study.stats.paired_difference`, as `evozero show STUDY`).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from evozero.nas.at_compute import best_at_train_steps
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
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args(argv)
    table = equal_compute(args.study, [float(f) for f in args.fractions.split(",")])
    print(json.dumps(table, indent=2) if args.json else markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
