"""The supernet methods' table, beside NAS-Bench-201's and regularized evolution's.

    python experiments/nas_supernet/compare.py studies/nas_supernet_methods \
        [--multi-trial studies/nas_table_strategies] [--rank-seeds 3 --rank-cells 500]

For every arm of a study of ``methods.study.yaml``: the derived cells' table test accuracy
(mean over seeds with its 95 % t interval, and the standard deviation), the same cells
retrained from scratch, the search's CPU seconds, how many derived cells reach 80 %, and
how parameter-free they are (the share of edges that are none, skip or average pooling).
With ``--multi-trial`` (a study of ``../nas_table/strategies.study.yaml``): the simulated
CPU seconds regularized evolution's mean curve takes to reach each arm's mean accuracy.
With ``--rank-seeds K``: ``evozero supernet rank`` on the first K seeds of each arm
(``--rank-cells`` distinct networks each), averaged per arm, written to
``results/rank.json`` beside this script and read from there on the next call.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from evozero.domains import domain_for
from evozero.nas.reports.supernet_rank import rank_runs
from evozero.nas.spaces.cells import Nb201Cell
from evozero.runs.files import json_text
from evozero.runs.rundir import RunDir

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "nas_table"))
from anytime import curves, interval  # noqa: E402

HERE = Path(__file__).resolve().parent
FREE = {"none", "skip_connect", "avg_pool_3x3"}
# NAS-Bench-201's rows, searched on CIFAR-10 (test accuracy, mean +- std over runs):
# ../shared/reference/nas-strategies.md, section 1.1.
PAPER = {"rsps": "84.07 +- 3.61", "darts": "54.30 +- 0.00 (DARTS-V1)",
         "darts2": "54.30 +- 0.00 (DARTS-V2)", "gdas": "93.61 +- 0.09",
         "enas": "53.89 +- 0.58", "spos": "not in the table (SETN: 87.64 +- 0.00)",
         "proxyless": "not in the table", "rsps_few_shot": "not in the table"}


def arm_rows(study: Path) -> dict[str, list[dict]]:
    """Each arm's finished runs' final.json records, by seed."""
    arms: dict[str, list[dict]] = {}
    for final in sorted(study.glob("runs/*/seed-*/final.json"),
                        key=lambda p: (p.parent.parent.name, int(p.parent.name[5:]))):
        arms.setdefault(final.parent.parent.name, []).append(json.loads(final.read_text()))
    return arms


def summary(arms: dict[str, list[dict]]) -> list[dict]:
    """One row per arm (module docstring)."""
    rows = []
    for arm, finals in arms.items():
        table = np.array([f["final_fitness"] for f in finals])
        retrained = np.array([f["test_accuracy"] for f in finals])
        seconds = np.array([f["supernet"]["search_seconds"] for f in finals])
        cells = [Nb201Cell.parse(f["cell"]) for f in finals]
        free = np.mean([sum(op in FREE for op in c.edge_ops) / 6 for c in cells])
        mean, half = interval(table)
        common, count = Counter(str(c) for c in cells).most_common(1)[0]
        rows.append({"arm": arm, "runs": len(finals), "table_test": mean, "half": half,
                     "std": float(table.std(ddof=1)) if len(table) > 1 else float("nan"),
                     "retrained_test": float(retrained.mean()),
                     "search_seconds": float(np.median(seconds)),
                     "at_least_80": int((table >= 0.80).sum()), "free_edges": float(free),
                     "most_common": common, "most_common_count": count})
    return sorted(rows, key=lambda r: -r["table_test"])


def evolution_seconds(multi_trial: Path, targets: dict[str, float]) -> dict[str, float]:
    """Simulated seconds until regularized evolution's mean test accuracy reaches each
    target (NaN: not within its 50 s)."""
    grid = np.linspace(0.0, 50.0, 501)
    rows = curves(multi_trial, "nb201-mnist1d", grid)["evolution"]
    means = np.array([interval(rows[:, k])[0] for k in range(len(grid))])
    return {arm: float(grid[np.argmax(means >= target)]) if (means >= target).any()
            else float("nan") for arm, target in targets.items()}


def rank_table(study: Path, seeds: int, cells: int) -> dict[str, dict]:
    """Per arm, the mean over its first ``seeds`` runs of the rank agreement rows."""
    cache = HERE / "results" / "rank.json"
    stored = json.loads(cache.read_text()) if cache.exists() else {}
    key = f"{seeds} seeds, {cells} cells"
    if key not in stored:
        rows = []
        for arm in sorted(p.name for p in (study / "runs").iterdir()):
            paths = [str(study / "runs" / arm / f"seed-{s}") for s in range(seeds)
                     if (study / "runs" / arm / f"seed-{s}" / "final.json").exists()]
            runs = []
            for path in paths:
                config = RunDir.open(path).read_config()
                runs.append((path, config, domain_for(config).section))
            for row in rank_runs(runs, cells, 0, None):
                rows.append(dict(row, arm=arm))
        stored[key] = rows
        cache.parent.mkdir(exist_ok=True)
        cache.write_text(json_text(stored, indent=1) + "\n")
    grouped: dict[str, list[dict]] = {}
    for row in stored[key]:
        label = row["arm"] if row["strategy"] != "parameter count" else "parameter count"
        if row["weights"].startswith("one-shot (before"):
            label += " (one-shot weights)"
        grouped.setdefault(label, []).append(row)
    return {label: {"runs": len(rows),
                    "kendall": float(np.mean([r["all"]["kendall"] for r in rows])),
                    "spearman": float(np.mean([r["all"]["spearman"] for r in rows])),
                    "kendall_top20": float(np.mean([r["top20"]["kendall"] for r in rows])),
                    "top5": float(np.mean([r["top5_precision"] for r in rows])),
                    "top10": float(np.mean([r["top10_precision"] for r in rows])),
                    "regret": float(np.mean([r["regret"] for r in rows]))}
            for label, rows in grouped.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--multi-trial", type=Path, default=None)
    parser.add_argument("--rank-seeds", type=int, default=0)
    parser.add_argument("--rank-cells", type=int, default=500)
    args = parser.parse_args()
    rows = summary(arm_rows(args.study))
    evolution = (evolution_seconds(args.multi_trial, {r["arm"]: r["table_test"] for r in rows})
                 if args.multi_trial else {})
    print("| method | runs | table test accuracy, mean [95 %] | std | retrained test | "
          "derived >= 80 % | parameter-free edges | search CPU s (median) | "
          "regularized evolution to the same mean (simulated CPU s) | NAS-Bench-201, C10 test |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        re_seconds = evolution.get(r["arm"], float("nan"))
        print(f"| {r['arm']} | {r['runs']} | {100 * r['table_test']:.2f} "
              f"[{100 * (r['table_test'] - r['half']):.2f}, "
              f"{100 * (r['table_test'] + r['half']):.2f}] | {100 * r['std']:.2f} | "
              f"{100 * r['retrained_test']:.2f} | {r['at_least_80']}/{r['runs']} | "
              f"{100 * r['free_edges']:.0f} % | {r['search_seconds']:.0f} | "
              f"{re_seconds:.1f} | {PAPER.get(r['arm'], '')} |")
    print("\nmost common derived cell per arm:")
    for r in rows:
        print(f"  {r['arm']:<14} {r['most_common_count']}/{r['runs']}  {r['most_common']}")
    if args.rank_seeds:
        print(f"\nrank agreement with the table ({args.rank_cells} distinct networks per run, "
              f"mean over the first {args.rank_seeds} seeds):")
        print("| supernet | runs | Kendall tau | Spearman rho | tau on the top 20 % | "
              "P@5 % | P@10 % | regret |")
        print("|---|---|---|---|---|---|---|---|")
        for label, r in sorted(rank_table(args.study, args.rank_seeds,
                                          args.rank_cells).items(),
                               key=lambda item: -item[1]["kendall"]):
            print(f"| {label} | {r['runs']} | {r['kendall']:+.3f} | {r['spearman']:+.3f} | "
                  f"{r['kendall_top20']:+.3f} | {r['top5']:.2f} | {r['top10']:.2f} | "
                  f"{100 * r['regret']:.2f} |")


if __name__ == "__main__":
    main()
