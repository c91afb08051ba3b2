"""A table's own figures: how widely its accuracies spread, its best cell, the noise
between training seeds, and how well an early epoch ranks networks as the last does.
Also the rank correlations they use (Spearman's rho, Kendall's tau-b)."""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from evozero.nas.table.store import Table, cell_of_index

# Rows of the pair matrix Kendall's tau compares at once (memory: this x n signs).
_KENDALL_BLOCK = 512


def ranks(values: ArrayLike) -> np.ndarray:
    """Ranks from 1, tied values sharing the mean of their ranks."""
    array = np.asarray(values, dtype=np.float64)
    order = np.argsort(array, kind="stable")
    sorted_values = array[order]
    # Boundaries of runs of equal values; each run takes the mean of its ranks.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(array)]
    result = np.empty(len(array))
    result[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return result


def spearman(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman's rank correlation (Pearson's on tie-averaged ranks); nan when either
    side is constant."""
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denominator) if denominator > 0 else float("nan")


def kendall(a: ArrayLike, b: ArrayLike) -> float:
    """Kendall's tau-b over every pair (ties in either side counted as tau-b does); nan
    when either side is constant."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    concordance = 0.0
    untied_x = untied_y = 0.0
    for start in range(0, len(x), _KENDALL_BLOCK):
        sx = np.sign(x[start:start + _KENDALL_BLOCK, None] - x[None, :])
        sy = np.sign(y[start:start + _KENDALL_BLOCK, None] - y[None, :])
        concordance += float((sx * sy).sum())
        untied_x += float(np.abs(sx).sum())
        untied_y += float(np.abs(sy).sum())
    denominator = np.sqrt(untied_x * untied_y)
    return concordance / denominator if denominator > 0 else float("nan")


def _spread(values: np.ndarray) -> dict[str, float]:
    quantiles = np.quantile(values, [0.0, 0.1, 0.5, 0.9, 1.0])
    return dict(zip(("min", "p10", "median", "p90", "max"), map(float, quantiles)))


def table_figures(table: Table) -> dict[str, Any]:
    """The table's figures (see the module docstring) as plain JSON-able values. Final
    accuracies are the last epoch's, averaged over the trained seeds of a network."""
    test = np.nanmean(table.test_accuracy, axis=1)
    valid = np.nanmean(table.valid_accuracy[:, :, -1], axis=1)
    by_cell = test[table.row]
    best_valid = int(np.argmax(valid))
    best_test = int(np.argmax(test))
    two = table.trained().all(axis=1)
    first, second = table.test_accuracy[two, 0], table.test_accuracy[two, 1]
    last = table.valid_accuracy[:, 0, -1]
    early = [{"epoch": epoch + 1,
              "spearman": spearman(table.valid_accuracy[:, 0, epoch], last),
              "kendall": kendall(table.valid_accuracy[:, 0, epoch], last)}
             for epoch in range(table.epochs - 1)]
    seconds = table.seconds[table.trained()]
    return {
        "cells": len(table.row), "networks": len(table.cell), "epochs": table.epochs,
        "test_accuracy_over_cells": _spread(by_cell),
        "test_accuracy_over_networks": _spread(test),
        "best_by_validation": {"cell": str(cell_of_index(int(table.cell[best_valid]))),
                               "valid_accuracy": float(valid[best_valid]),
                               "test_accuracy": float(test[best_valid])},
        "best_by_test": {"cell": str(cell_of_index(int(table.cell[best_test]))),
                         "test_accuracy": float(test[best_test])},
        "seed_noise": _seed_noise(first, second),
        "early_epoch_vs_last": early,
        "training_cpu_seconds": {"total": float(seconds.sum()),
                                 "median_per_training": float(np.median(seconds))},
    }


def _seed_noise(first: np.ndarray, second: np.ndarray) -> dict[str, Any]:
    """How two trainings of the same networks differ in test accuracy (NaN figures when
    no network has two)."""
    if not len(first):
        return {"networks_with_two_seeds": 0, "mean_abs_difference": float("nan"),
                "seed_std": float("nan"), "spearman_between_seeds": float("nan")}
    return {"networks_with_two_seeds": len(first),
            "mean_abs_difference": float(np.mean(np.abs(first - second))),
            # The spread of one training about its network's mean: |a - b| / sqrt(2).
            "seed_std": float(np.std(first - second) / np.sqrt(2)),
            "spearman_between_seeds": spearman(first, second)}
