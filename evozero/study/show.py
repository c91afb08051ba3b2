"""``evozero show STUDY``: the summary of a study as a table, one column per arm, then the
comparison of the compared pair and the best program of the best run.

It reads the study as it is (:func:`evozero.study.summary.summarize`), so it works while
the study runs, and writes nothing.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from evozero.analysis.show import run_program
from evozero.errors import EvozeroError
from evozero.programs.simplify import simplify
from evozero.runs.files import json_text
from evozero.runs.rundir import RunDir
from evozero.study.summary import summarize

#: How each fitness of a run is named, by domain (a cell's fitnesses are accuracies).
FITNESS_NAMES = {
    "programs": {"search": "search tasks", "select": "select tasks",
                 "final": "final tasks (held out)", "tuned_final": "tuned, final tasks"},
    "cells": {"search": "validation accuracy", "select": "select accuracy",
              "final": "test accuracy", "tuned_final": "tuned, test accuracy"},
}
EFFORT_NAMES = {"individuals": "individuals", "train_steps": "train steps",
                "seconds": "seconds"}
_MISSING = "–"


def show_study(study_dir: str | Path, as_json: bool = False) -> str:
    """The text ``evozero show STUDY`` prints; ``as_json``: the summary as JSON."""
    summary = summarize(study_dir)
    if as_json:
        return json_text(summary, indent=2)
    lines = [f"study {summary['study']} ({Path(study_dir)}): {summary['finished_runs']} of "
             f"{summary['planned_runs']} runs finished; {len(summary['arms'])} arms x "
             f"{summary['seeds']} seeds; success: {_success_text(summary['success'])}"]
    if not summary["finished_runs"]:
        lines.append("no run has finished yet; the figures appear as runs finish")
        return "\n".join(lines)
    names = fitness_names(summary["domain"])
    lines += ["", *_table(["", *summary["arms"]], _arm_rows(summary["arms"], names))]
    if summary["compare"] is not None:
        lines += ["", *_comparison(summary["compare"], names)]
    lines += ["", *_best_run(summary["best_run"], Path(study_dir), summary["domain"]), "",
              *_methods(summary["methods"])]
    return "\n".join(lines)


def fitness_names(domain: str | None) -> dict[str, str]:
    """What each fitness of a run of ``domain`` is called (programs' names by default)."""
    return FITNESS_NAMES.get(domain or "programs", FITNESS_NAMES["programs"])


def _arm_rows(arms: dict[str, dict], names: dict[str, str]) -> list[list[str]]:
    columns = list(arms.values())
    rows = [["runs finished", *(f"{a['runs']} of {a['seeds']}" for a in columns)],
            ["success rate [95 % Wilson]", *(_rate(a) for a in columns)]]
    if any(a["successes"] for a in columns):
        rows.append(["median to success [95 % bootstrap]:", *("" for _ in columns)])
        for key, name in EFFORT_NAMES.items():
            rows.append([f"  {name}", *(_median(a["to_success"][key], key) for a in columns)])
    rows.append(["mean fitness ± standard error:", *("" for _ in columns)])
    for key, name in names.items():
        if any(a["fitness"][key] for a in columns):
            rows.append([f"  {name}", *(_mean(a["fitness"][key]) for a in columns)])
    baselines = sorted({name for a in columns for name in a["baselines"]})
    if baselines:
        rows.append(["seeds beating a baseline (held out):", *("" for _ in columns)])
    for name in baselines:
        rows.append([f"  {name} (mean {_baseline_mean(columns, name)})",
                     *(_beats(a["baselines"].get(name)) for a in columns)])
    if any(a["density_bound"] is not None for a in columns):
        rows.append(["no success: chance per evaluation ≤",
                     *(_density(a) for a in columns)])
    return rows


def _comparison(compare: dict, names: dict[str, str]) -> list[str]:
    first, second = compare["arms"]
    lines = [f"{first} against {second}, paired by seed:"]
    rows = [["ratio of success rates [95 %]", _ratio(compare["success_ratio"], first, second)]]
    for key, name in (("final_fitness", names["final"]), ("search_fitness", names["search"]),
                      ("tuned_final", names["tuned_final"])):
        if compare[key]["n"]:
            rows.append([f"difference, {name} [95 % t]", _paired(compare[key])])
    return lines + _table(None, [[f"  {label}", text] for label, text in rows])


def _best_run(best: dict | None, study_dir: Path, domain: str | None) -> list[str]:
    if best is None:
        return ["best run: none has a fitness yet"]
    fitness = fitness_names(domain)[best["ranked_by"].removesuffix("_fitness")]
    verdict = {True: ", succeeded", False: ", did not succeed", None: ""}[best["success"]]
    lines = [f"best run: {best['arm']} seed {best['seed']} ({best['run'] or 'no directory'}), "
             f"fitness on {fitness} {best['fitness']:.4f}{verdict}"]
    simplified = _simplified(best, study_dir) if domain == "programs" else None
    if simplified is not None:
        lines.append("its program, simplified (dead code removed):")
        lines += ["  " + line for line in simplified.splitlines()]
    elif best["program"]:
        lines += ["  " + line for line in best["program"].splitlines()]
    if best["run"]:
        lines.append(f"(evozero show {study_dir / best['run']} shows that run in full)")
    return lines


def _simplified(best: dict, study_dir: Path) -> str | None:
    """The best run's program simplified for the memory of its run's config; None if the
    run directory or the program cannot be read (the raw program is shown instead)."""
    if not best["run"] or not best["program"]:
        return None
    try:
        rundir = RunDir.open(study_dir / best["run"])
        memory = rundir.read_config().memory.sizes
        program = run_program(best["program"], str(study_dir / "runs.jsonl"), memory)
    except EvozeroError:
        return None
    return str(simplify(program, memory))


def _methods(methods: dict[str, str]) -> list[str]:
    lines = ["methods:"]
    for key, label in (("success_rate", "success rate"), ("median", "medians"),
                       ("mean", "means"), ("success_ratio", "ratio"),
                       ("paired", "differences"), ("density_bound", "no success")):
        lines += textwrap.wrap(f"{label}: {methods[key]}", 92, initial_indent="  ",
                               subsequent_indent="    ")
    return lines


# --- cells ----------------------------------------------------------------------------------


def _table(header: list[str] | None, rows: list[list[str]]) -> list[str]:
    """Rows as left-aligned columns two spaces apart (the header, if any, first)."""
    body = ([header] if header else []) + rows
    widths = [max(len(row[i]) for row in body) for i in range(len(body[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in body]


def _success_text(success: Any) -> str:
    if isinstance(success, dict):
        return ", ".join(f"{key} {value}" for key, value in success.items())
    return str(success)


def _rate(arm: dict) -> str:
    rate = arm["success_rate"]
    if rate["value"] is None:
        return _MISSING
    return (f"{rate['value']:.3f} ({arm['successes']}/{arm['judged']}) "
            f"[{rate['low']:.3f}, {rate['high']:.3f}]")


def _effort(value: float, key: str) -> str:
    if key == "seconds":
        return f"{value:.3g} s"
    return f"{value:.3g}" if value >= 1e6 else f"{value:,.0f}"


def _median(estimate: dict, key: str) -> str:
    if estimate["value"] is None:
        return _MISSING
    text = _effort(estimate["value"], key)
    if estimate["low"] is not None:
        text += f" [{_effort(estimate['low'], key)}, {_effort(estimate['high'], key)}]"
    return text + f" (n={estimate['n']})"


def _mean(mean: dict | None) -> str:
    if not mean or mean["mean"] is None:
        return _MISSING
    spread = f" ± {mean['se']:.4f}" if mean["se"] is not None else ""
    return f"{mean['mean']:.4f}{spread} (n={mean['n']})"


def _baseline_mean(arms: list[dict], name: str) -> str:
    # Every arm sees the same baseline per seed; the first arm that has it says its level.
    for arm in arms:
        if name in arm["baselines"]:
            mean = arm["baselines"][name]["final_fitness"]["mean"]
            return _MISSING if mean is None else f"{mean:.4f}"
    return _MISSING


def _beats(baseline: dict | None) -> str:
    if baseline is None or not baseline["versus"]["n"]:
        return _MISSING
    versus = baseline["versus"]
    return f"{versus['wins']} of {versus['n']} ({versus['ties']} ties)"


def _density(arm: dict) -> str:
    if arm["density_bound"] is None:
        return _MISSING
    return f"{arm['density_bound']:.2g} (0 in {_effort(arm['evaluations'], 'individuals')})"


def _ratio(ratio: dict, first: str, second: str) -> str:
    if ratio["low"] is None:
        return "undefined (no success in either arm, or an arm without runs)"
    if ratio["value"] is None:
        return f"≥ {ratio['low']:.3g} ({second} never succeeded: one-sided, Wilson bounds)"
    if ratio["value"] == 0:
        return f"0, ≤ {ratio['high']:.3g} ({first} never succeeded: one-sided, Wilson bounds)"
    return f"{ratio['value']:.3g} [{ratio['low']:.3g}, {ratio['high']:.3g}]"


def _paired(paired: dict) -> str:
    text = f"{paired['mean']:+.4f}"
    if paired["low"] is not None:
        text += f" [{paired['low']:+.4f}, {paired['high']:+.4f}]"
    return (text + f" over {paired['n']} seeds: {paired['wins']} wins, {paired['ties']} ties, "
            f"{paired['losses']} losses")
