"""Synthetic study directories (study.yaml and runs.jsonl as a study writes them), so the
study statistics, show and plot are tested without running a study."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

# Final fitness by seed; efforts to success (individuals) of the runs that succeeded.
EVOLUTION_FINAL = [0.9, 0.8, 0.7, 0.6, 0.5]
EVOLUTION_EFFORT = {0: 100, 1: 300, 2: 200, 4: 400}
RANDOM_FINAL = [0.8, 0.8, 0.7, 0.7, 0.4]
RANDOM_EFFORT = {1: 1000}
BASELINE = 0.65


def effort_record(individuals: float) -> dict:
    """A to_success record: train steps and seconds in proportion to individuals."""
    return {"individuals": individuals, "train_steps": individuals * 10,
            "seconds": individuals / 100}


def hand_records() -> list[dict]:
    """5 seeds; evolution succeeds 4 times, random search once; seed 4 of evolution was
    tuned to 0.66 on the final tasks; a logistic baseline at 0.65 on every seed."""
    records = []
    for arm, finals, efforts in (("evolution", EVOLUTION_FINAL, EVOLUTION_EFFORT),
                                 ("random", RANDOM_FINAL, RANDOM_EFFORT)):
        for seed, final in enumerate(finals):
            records.append(run_record(
                arm, seed, success=seed in efforts, final_fitness=final,
                search_fitness=final + 0.05,
                to_success=effort_record(efforts[seed]) if seed in efforts else None,
                tuned={"fitness": 0.7, "final_fitness": 0.66, "program": "..."}
                if (arm, seed) == ("evolution", 4) else None,
                baselines={"logistic": {"fitness": 0.6, "final_fitness": BASELINE}}))
    return records


def run_record(arm: str, seed: int, **fields: Any) -> dict:
    """One runs.jsonl record of ``arm`` and ``seed``; ``fields`` replace the defaults (a
    finished program run without success, tuning or baselines)."""
    record: dict[str, Any] = {
        "arm": arm, "seed": seed, "run": f"runs/{arm}/seed-{seed}", "domain": "programs",
        "solved": False, "success": False, "threshold": None,
        "search_fitness": 0.5, "select_fitness": 0.5, "final_fitness": 0.5,
        "individuals": 10_000, "train_steps": 1e6, "seconds": 2.0, "to_success": None,
        "program": f"def Setup():\n  s1 = {seed}\ndef Predict():\ndef Learn():",
        "tuned": None, "baselines": None}
    record.update(fields)
    return record


def write_study(directory: Path, records: Sequence[dict], arms: Sequence[str] = ("evolution",
                "random"), seeds: int | list[int] = 5, compare: list[str] | None = None,
                success: Any = "solved", name: str = "synthetic", torn: str = "") -> Path:
    """A study directory holding ``records`` (and ``torn``, a last line cut short)."""
    directory.mkdir(parents=True, exist_ok=True)
    study = {"name": name, "seeds": seeds, "workers": 1, "backend": "local",
             "success": success, "tune": None,
             "arms": {arm: {"config": str(directory / "a.yaml"), "set": {"strategy": arm}}
                      for arm in arms},
             "compare": compare if compare is not None else list(arms[:2]),
             "resolved_configs": {arm: {"name": arm, "seed": 0} for arm in arms}}
    (directory / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    lines = "".join(json.dumps(record) + "\n" for record in records)
    (directory / "runs.jsonl").write_text(lines + torn)
    return directory


def random_study(directory: Path, seeds: int = 20, seed: int = 0, nas: bool = False) -> Path:
    """A plausible finished study: evolution succeeds more often and sooner than random
    search (programs), or is slightly more accurate (``nas``: no success criterion met)."""
    rng = np.random.default_rng(seed)
    records = []
    for arm, rate, scale, level in (("evolution", 0.7, 5e3, 0.93), ("random", 0.2, 4e4, 0.9)):
        for s in range(seeds):
            final = float(np.clip(level + rng.normal(0, 0.02) + 0.003 * (s % 3), 0, 1))
            success = not nas and bool(rng.random() < rate)
            effort = float(rng.lognormal(np.log(scale), 0.6))
            records.append(run_record(
                arm, s, domain="cells" if nas else "programs", success=success,
                solved=success, search_fitness=final + 0.01, select_fitness=final + 0.005,
                final_fitness=final, individuals=100_000,
                to_success={"individuals": round(effort), "train_steps": effort * 300,
                            "seconds": effort / 2000} if success else None,
                baselines=None if nas else {"logistic": {"fitness": 0.91,
                                                         "final_fitness": 0.915}}))
    return write_study(directory, records, seeds=seeds, name="nas" if nas else "fig4")
