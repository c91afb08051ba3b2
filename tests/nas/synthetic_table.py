"""A synthetic NAS-Bench-201 table for tests: every cell's accuracy rises with a per-edge
score of its ops, so one cell is best by construction, and with the epochs (the ranking
is the same at every epoch)."""
from __future__ import annotations

import json
from typing import Any

import numpy as np
from helpers import nas_config

from evozero.config import Config
from evozero.nas.table.recipe import table_recipe
from evozero.nas.table.store import (
    NB201_CELLS,
    TABLE_FORMAT,
    Table,
    cell_ops,
    table_from_arrays,
)

EPOCHS = 9
#: Per edge, the score of each op; each edge's best op is unique, so is the best cell.
SCORES = np.array([[0.0, 0.3, 1.0, 0.6, 0.2],
                   [0.4, 0.0, 0.5, 1.0, 0.1],
                   [1.0, 0.2, 0.0, 0.3, 0.6],
                   [0.1, 1.0, 0.4, 0.0, 0.5],
                   [0.3, 0.5, 0.0, 0.8, 1.0],
                   [0.6, 0.0, 1.0, 0.2, 0.4]])
BEST_INDEX = int(np.argmax(SCORES, axis=1) @ (5 ** np.arange(5, -1, -1)))


def table_config(path: Any = None, **changes: Any) -> Config:
    """A tiny cell-search config that looks its networks up in the table at ``path``."""
    nas = {"training": {"epochs": EPOCHS}, **changes.pop("nas", {})}
    if path is not None:
        nas["table"] = str(path)
    data = {"budget": {"individuals": 200, "train_steps": None}, "population_size": 20,
            "tournament_size": 5, **changes}
    return nas_config(nas=nas, **data)


def final_accuracy() -> np.ndarray:
    """Every cell's final accuracy: 0.2 + 0.7 x (its score sum / 6)."""
    ops = cell_ops(np.arange(NB201_CELLS))
    return 0.2 + 0.7 * SCORES[np.arange(6), ops].sum(axis=1) / 6


def synthetic_table(config: Config, seeds: int = 2) -> Table:
    """The table of :func:`final_accuracy` for ``config``'s recipe: seed 0 of every cell
    and seed 1 of every third, the validation accuracy rising over the epochs (with a
    seed's small wobble, never changing the best cell), 1 s of training per score point."""
    final = final_accuracy()
    rng = np.random.default_rng(0)
    ramp = (np.arange(1, EPOCHS + 1) / EPOCHS) ** 0.5
    valid = np.full((NB201_CELLS, seeds, EPOCHS), np.nan, dtype=np.float32)
    test = np.full((NB201_CELLS, seeds), np.nan, dtype=np.float32)
    seconds = np.full((NB201_CELLS, seeds), np.nan, dtype=np.float32)
    for seed in range(seeds):
        rows = np.arange(NB201_CELLS) if seed == 0 else np.arange(0, NB201_CELLS, 3)
        wobble = 0.0 if seed == 0 else rng.uniform(-0.002, 0.002, size=(len(rows), 1))
        valid[rows, seed] = final[rows, None] * ramp[None] + wobble
        test[rows, seed] = final[rows] - 0.01
        seconds[rows, seed] = 10.0 + 5.0 * final[rows]
    recipe = table_recipe(config)
    meta = {"format": TABLE_FORMAT, "recipe": recipe, "profiles": ["mobile-cpu"]}
    arrays = {"meta": np.array(json.dumps(meta)),
              "row": np.arange(NB201_CELLS), "cell": np.arange(NB201_CELLS),
              "train_loss": np.where(np.isnan(valid), np.nan, 1.0 - valid),
              "train_accuracy": valid, "valid_accuracy": valid, "test_accuracy": test,
              "seconds": seconds, "params": np.full(NB201_CELLS, 1000),
              "flops": np.full(NB201_CELLS, 5000),
              "latency_ms": np.ones((NB201_CELLS, 1), dtype=np.float32)}
    return table_from_arrays(arrays, "synthetic table")
