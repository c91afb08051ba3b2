"""``evozero bench scaling``: the demo's search on 1, 2, ... workers and on Ray.

Prints individuals/s of the whole run (every island together) for one worker and for each
worker count up to the machine's cores, the ratio against one worker, the Ray backend's
throughput against the local backend with the same workers, and the median seconds to
solve the demo with one worker and with every core. Throughput is taken between the
first progress record in which every island has reported and the last one, so process
and Ray start-up are left out; solve times are wall time from start to solved.
"""
from __future__ import annotations

import importlib.util
import io
import statistics
import tempfile
import time
from typing import Any

from evozero.config import config_from_dict
from evozero.experiment import start_run
from evozero.workers import cores


def _demo(seed: int, **overrides: Any):
    data = {"name": f"scaling-{seed}", "seed": seed, "progress_every": 0.5,
            "checkpoint_every": 3600.0}
    data.update(overrides)
    return config_from_dict(data)


def _unsolvable(workers: int, per_worker: int, root: str, backend: str = "local") -> Any:
    config = _demo(0, workers=workers, backend=backend, sufficient_fitness=2.0,
                   max_experiments=1,
                   budget={"individuals": per_worker * workers, "train_steps": None})
    run = start_run(config, root, out=io.StringIO())
    run.execute()
    return run


def throughput(workers: int, per_worker: int, root: str, backend: str = "local") -> float:
    """Individuals/s of one unsolvable demo experiment of ``per_worker`` children per island."""
    run = _unsolvable(workers, per_worker, root, backend)
    records = [r for r in run.rundir.read_progress()
               if all(i["individuals"] > 0 for i in r["islands"])]
    first, last = records[0], records[-1]
    if last["seconds"] <= first["seconds"]:
        raise AssertionError("the run was too short to measure; raise per_worker")
    return (last["individuals"] - first["individuals"]) / (last["seconds"] - first["seconds"])


def seconds_to_solve(seed: int, workers: int, root: str) -> float:
    """Wall seconds for the demo with ``seed`` on ``workers`` workers to be solved."""
    run = start_run(_demo(seed, workers=workers, progress_every=3600.0), root,
                    out=io.StringIO())
    start = time.perf_counter()
    result = run.execute()
    if not result["solved"]:
        raise AssertionError(f"seed {seed}: the demo ended unsolved")
    return time.perf_counter() - start


def _has_ray() -> bool:
    return importlib.util.find_spec("ray") is not None


def run(quick: bool = False, seeds: int = 5) -> dict[str, float]:
    """Measure, print and return the figures (see the module docstring)."""
    per_worker = 300_000 if quick else 1_500_000
    seeds = 2 if quick else seeds
    most = max(cores(), 2)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as root:
        _unsolvable(1, 20_000, root)   # compile or load every kernel before timing
        rates = {n: throughput(n, per_worker, root) for n in range(1, most + 1)}
        for n, rate in rates.items():
            figures[f"individuals_per_second_{n}"] = rate
            figures[f"speedup_{n}"] = rate / rates[1]
        print(f"Whole-run individuals/s, demo config, {per_worker:,} children per island, "
              f"local backend ({cores()} cores here):")
        for n, rate in rates.items():
            print(f"  {n} worker{'s' if n > 1 else ' '}  {rate:12,.0f}   "
                  f"{rate / rates[1]:.2f}x one worker")
        if _has_ray():
            ray_rate = throughput(most, per_worker, root, backend="ray")
            figures["ray_individuals_per_second"] = ray_rate
            figures["ray_vs_local"] = ray_rate / rates[most]
            print(f"  Ray, {most} workers {ray_rate:10,.0f}   {ray_rate / rates[most]:.2f}x "
                  f"the local backend (goal >= 0.9)")
        else:
            print('  Ray: not installed (pip install "evozero[ray]"), not measured')
        solve = {n: [seconds_to_solve(seed, n, root) for seed in range(1, seeds + 1)]
                 for n in (1, most)}
    for n, times in solve.items():
        figures[f"median_seconds_to_solve_{n}"] = statistics.median(times)
    ratio = figures["median_seconds_to_solve_1"] / figures[f"median_seconds_to_solve_{most}"]
    figures["solve_speedup"] = ratio
    print(f"Seconds to solve the demo, {seeds} seeds (wall time, start-up included):")
    for n, times in solve.items():
        print(f"  {n} worker{'s' if n > 1 else ' '}  median {statistics.median(times):6.1f} s"
              f"   (min {min(times):.1f}, max {max(times):.1f})")
    print(f"  {most} workers solve {ratio:.2f}x as fast as one (median against median)")
    return figures


if __name__ == "__main__":
    run()
