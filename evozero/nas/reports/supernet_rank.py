"""Is a supernet telling the truth? ``evozero supernet rank RUN ...`` scores cells with a
supernet run's shared weights and sets the ranking beside the table's.

The cells are one per distinct network of the table (isomorphic cells would inflate the
agreement), all of them or a uniform sample; each is scored as the run's search scores
it (accuracy on the validation split, with its few-shot sub-supernet when the run split
one). Against the table's validation accuracy at its last epoch (the mean over trained
seeds) it reports Kendall's tau and Spearman's rho with 95 % bootstrap intervals, both on
every sampled cell and on the table's top 20 % of them, the share of the table's top 5 %
and 10 % that the supernet also puts there, the regret of the supernet's best cell, and
the same correlations of the cheapest baseline (the parameter count). A few-shot run
gets a second row: its one-shot weights, before the split.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from evozero.config import Config, Nas
from evozero.config.cell_search import SUPERNET_STRATEGIES
from evozero.errors import EvozeroError
from evozero.nas.evaluate import evaluator_for
from evozero.nas.reports.results import SUPERNET_FILE, load_network
from evozero.nas.search.lookup import check_table
from evozero.nas.supernet.island import check_supernet_meta, make_search
from evozero.nas.supernet.search import SupernetSearch
from evozero.nas.table.figures import kendall, spearman
from evozero.nas.table.store import Table, load_table
from evozero.runs.files import json_text
from evozero.runs.rundir import RunDir

_BOOTSTRAP = 1000


#: A supernet run to rank: its directory, config and the config's nas section (None for a
#: program search), as the caller's search domain gives it.
RankedRun = tuple[str, Config, Nas | None]


def run_supernet(path: str, config: Config, nas: Nas | None) -> tuple[SupernetSearch, str]:
    """The search of the supernet run at ``path`` (``nas`` its config's nas section)
    with its trained weights: a finished run's ``supernet.npz``, else its newest
    checkpoint's first island; and how it was found."""
    rundir = RunDir.open(Path(path))
    if config.strategy not in SUPERNET_STRATEGIES or nas is None:
        raise EvozeroError(f"{path}: a {config.strategy} run has no supernet (strategies "
                           f"with one: {', '.join(SUPERNET_STRATEGIES)})")
    search = make_search(config.strategy, nas, evaluator_for(nas, config.seed), 0)
    where = str(rundir.path / SUPERNET_FILE)
    stored = load_network(rundir, SUPERNET_FILE)
    if stored:
        groups: dict[str, dict[str, list[np.ndarray]]] = {}
        for key, arrays in stored.items():
            group, _, name = key.partition("/")
            groups.setdefault(group, {})[name] = arrays
        search.use_groups(groups, one_shot=False, where=where)
        return search, "supernet.npz"
    state = rundir.load_checkpoint()
    if state is None or not state.get("islands"):
        raise EvozeroError(f"{path}: no trained supernet yet (no supernet.npz and no "
                           f"checkpoint of its islands)")
    snapshot = state["islands"]["islands"][0]["snapshot"]
    where = f"{rundir.path}: checkpoint: island 1"
    check_supernet_meta(snapshot, where)
    search.restore(snapshot["search"], f"{where}: search")
    return search, f"checkpoint after {search.epoch} epoch(s)"


def sample_cells(table: Table, count: int | None, seed: int) -> np.ndarray:
    """One cell index per distinct network of ``table``: all, or ``count`` of them drawn
    uniformly with ``seed``."""
    _, firsts = np.unique(table.row, return_index=True)
    if count is None or count >= len(firsts):
        return np.sort(firsts)
    return np.sort(np.random.default_rng(seed).choice(firsts, size=count, replace=False))


def _interval(statistic: Any, a: np.ndarray, b: np.ndarray, rng: np.random.Generator
              ) -> list[float]:
    values = []
    for _ in range(_BOOTSTRAP):
        chosen = rng.integers(0, len(a), len(a))
        value = statistic(a[chosen], b[chosen])
        if not math.isnan(value):
            values.append(value)
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] \
        if values else [math.nan, math.nan]


def agreement(scores: np.ndarray, truth: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Tau and rho of ``scores`` against ``truth`` with bootstrap intervals, on all and on
    the truth's top 20 %; top-5 % and top-10 % precision; the regret of the best score."""
    rng = np.random.default_rng(seed)
    top = truth >= np.percentile(truth, 80)
    result: dict[str, Any] = {"cells": int(len(scores))}
    for label, chosen in (("all", slice(None)), ("top20", top)):
        a, b = scores[chosen], truth[chosen]
        result[label] = {"kendall": kendall(a, b), "spearman": spearman(a, b),
                         "kendall_95": _interval(kendall, a, b, rng),
                         "spearman_95": _interval(spearman, a, b, rng)}
    for share in (5, 10):
        size = max(int(round(len(truth) * share / 100)), 1)
        best_truth = set(np.argsort(-truth, kind="stable")[:size].tolist())
        best_scores = set(np.argsort(-scores, kind="stable")[:size].tolist())
        result[f"top{share}_precision"] = len(best_truth & best_scores) / size
    result["regret"] = float(truth.max() - truth[int(np.argmax(scores))])
    return result


def rank_runs(runs: list[RankedRun], cells: int | None, seed: int, table_name: str | None
              ) -> list[dict[str, Any]]:
    """One row per run (a few-shot run also a row of its one-shot weights) and one of
    the parameter-count baseline on the same cells."""
    rows: list[dict[str, Any]] = []
    baseline_done = False
    for path, config, nas in runs:
        search, source = run_supernet(path, config, nas)
        assert nas is not None   # run_supernet refuses a run without one
        name = table_name or nas.table
        if name is None:
            raise EvozeroError(f"{path}: the run names no table; give --table (a table "
                               f"of this run's recipe)")
        check_table(config, nas if table_name is None else replace(nas, table=name))
        table = load_table(name)
        chosen = sample_cells(table, cells, seed)
        truth = np.nanmean(table.valid_accuracy[table.row[chosen], :, -1], axis=1)
        kinds = [("few-shot" if search.shots else "one-shot", False)]
        if search.shots:
            kinds.append(("one-shot (before the split)", True))
        groups = search.weight_groups()
        for label, one_shot in kinds:
            search.use_groups(groups, one_shot, path)
            scores = search.scores(chosen)
            rows.append({"run": path, "strategy": config.strategy, "weights": label,
                         "source": source, "table": name, **agreement(scores, truth, seed)})
        if not baseline_done:
            params = table.params[table.row[chosen]].astype(np.float64)
            rows.append({"run": "-", "strategy": "parameter count", "weights": "-",
                         "source": "-", "table": name, **agreement(params, truth, seed)})
            baseline_done = True
    return rows


def rank_text(rows: list[dict[str, Any]], as_json: bool) -> str:
    """The rows as a table (or JSON)."""
    if as_json:
        return json_text(rows, indent=2)
    lines = [f"{'run':<40} {'strategy':<16} {'weights':<28} {'tau [95%]':<24} "
             f"{'rho':>6} {'tau top20%':>10} {'P@5%':>6} {'P@10%':>6} {'regret':>7}"]
    for row in rows:
        every, top = row["all"], row["top20"]
        low, high = every["kendall_95"]
        lines.append(f"{row['run'][-40:]:<40} {row['strategy']:<16} {row['weights']:<28} "
                     f"{every['kendall']:+.3f} [{low:+.3f}, {high:+.3f}]   "
                     f"{every['spearman']:+6.3f} {top['kendall']:+10.3f} "
                     f"{row['top5_precision']:6.2f} {row['top10_precision']:6.2f} "
                     f"{row['regret']:7.4f}")
    lines.append(f"{rows[0]['cells']:,} cells (one per distinct network) against the table "
                 f"{rows[0]['table']}'s validation accuracy at its last epoch")
    return "\n".join(lines)
