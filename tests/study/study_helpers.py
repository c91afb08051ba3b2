"""Small studies for the study tests: a tiny experiment config and study files."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: A demo-space experiment that runs in well under a second.
TINY_CONFIG = {
    "population_size": 50, "tournament_size": 5,
    "search_tasks": {"num_tasks": 3, "train": 20, "valid": 20},
    "select_tasks": {"num_tasks": 5, "train": 50, "valid": 20, "seed": 1000},
    "final_tasks": {"num_tasks": 5, "train": 50, "valid": 20, "seed": 2000},
    "budget": {"individuals": 3000, "train_steps": None},
    "max_experiments": 1, "progress_every": 3600.0, "checkpoint_every": 3600.0}


def write_study(folder: Path, config: dict[str, Any] | None = None, **study: Any) -> Path:
    """A study file in ``folder`` with two arms (evolution, random) of a tiny config;
    ``study`` replaces its keys, ``config`` the config's."""
    (folder / "tiny.yaml").write_text(yaml.safe_dump({**TINY_CONFIG, **(config or {})}))
    data: dict[str, Any] = {
        "name": "tiny", "seeds": 2, "workers": 1,
        "arms": {"evolution": {"config": "tiny.yaml"},
                 "random": {"config": "tiny.yaml", "set": {"strategy": "random"}}}}
    data.update(study)
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
