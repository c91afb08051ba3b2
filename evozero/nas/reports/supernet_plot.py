"""Plots of supernet runs (``evozero plot`` on their run directories).

Six panels, one per edge of the cell, show the architecture parameters' history:
softmax(alphas) of each op after every epoch (RSPS and SPOS have none: their panels say
so). Beside them, the supernet's training loss per epoch, and the table's test
accuracy of the cell the parameters derive after each epoch (with a table). Several runs
overlay their loss and derived-cell curves; the edge panels are the first run's.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evozero.analysis.figure import new_figure, save_figure, series_color
from evozero.errors import EvozeroError
from evozero.nas.spaces.cells import NB201_EDGES, NB201_OPS
from evozero.runs.rundir import RunDir


def _history(path: str | Path) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    rundir = RunDir.open(path)
    config = rundir.read_config()
    final = rundir.read_final()
    if final is not None and "supernet" in final:
        history = final["supernet"]["history"]
    else:
        state = rundir.load_checkpoint()
        islands = state.get("islands") if state else None
        if not islands:
            raise EvozeroError(f"{path}: no supernet epoch finished yet")
        history = islands["islands"][0]["snapshot"]["search"]["history"]
    epochs = [h for h in history if "epoch" in h]
    if not epochs:
        raise EvozeroError(f"{path}: no supernet epoch finished yet")
    derived = [r for r in rundir.read_evaluations() if r.get("phase") == "epoch"]
    return f"{config.name} ({config.strategy}, seed {config.seed})", epochs, derived


def plot_supernet_runs(paths: Sequence[str | Path], output: str | Path) -> Path:
    """Draw the supernet figure (module docstring) for the run directories ``paths``."""
    runs = [_history(path) for path in paths]
    figure = new_figure((13.0, 6.2), left=0.05, right=0.985, bottom=0.09, top=0.9,
                        wspace=0.28, hspace=0.42)
    _, first_epochs, _ = runs[0]
    for edge, (source, target) in enumerate(NB201_EDGES):
        axes = figure.add_subplot(2, 4, edge + 1 + edge // 3)
        axes.set_title(f"edge {source} -> {target}", fontsize=10)
        alphas = [h["alphas"] for h in first_epochs if "alphas" in h]
        if alphas:
            probabilities = np.array(alphas)[:, edge, :]
            x = [h["epoch"] for h in first_epochs if "alphas" in h]
            for op, name in enumerate(NB201_OPS):
                axes.plot(x, probabilities[:, op], color=series_color(op), label=name,
                          linewidth=1.4)
            axes.set_ylim(0, max(0.35, float(probabilities.max()) * 1.05))
        else:
            axes.text(0.5, 0.5, "no architecture\nparameters", ha="center", va="center",
                      transform=axes.transAxes, fontsize=9, color="0.4")
        axes.set_xlabel("epoch", fontsize=8)
        axes.tick_params(labelsize=8)
        axes.grid(True, alpha=0.3, linewidth=0.6)
        if edge == 0 and alphas:
            axes.set_ylabel("softmax(alpha)", fontsize=9)
            axes.legend(fontsize=7, framealpha=0.9)
    loss = figure.add_subplot(2, 4, 4)
    derived = figure.add_subplot(2, 4, 8)
    for index, (label, epochs, records) in enumerate(runs):
        color = series_color(index)
        loss.plot([h["epoch"] for h in epochs], [h["train_loss"] for h in epochs],
                  color=color, label=label, linewidth=1.3)
        if records:
            key = "table_test_accuracy" if "table_test_accuracy" in records[0] \
                else "valid_accuracy"
            derived.plot([r["epochs"] for r in records], [r[key] for r in records],
                         color=color, label=label, linewidth=1.3, marker=".")
            derived.set_ylabel("table test accuracy" if key != "valid_accuracy"
                               else "shared-weight validation accuracy", fontsize=9)
    loss.set_title("supernet training loss", fontsize=10)
    derived.set_title("the derived cell after each epoch", fontsize=10)
    for axes in (loss, derived):
        axes.set_xlabel("epoch", fontsize=8)
        axes.tick_params(labelsize=8)
        axes.grid(True, alpha=0.3, linewidth=0.6)
    loss.legend(fontsize=7, framealpha=0.9)
    if not any(records for _, _, records in runs):
        derived.text(0.5, 0.5, "derived only at the end", ha="center", va="center",
                     transform=derived.transAxes, fontsize=9, color="0.4")
    return save_figure(figure, output)
