"""``evozero bench scaling``: the demo's search on 1, 2, ... workers and on Ray.

Throughput: the same work (as many islands as this machine has cores, without migration,
so every island's search is independent of timing and every backend and worker count
computes exactly the same search) on 1, 2, ... local workers and on Ray with every core.
Individuals/s is taken between the first progress record in which every island has
reported and the last one in which none has finished, leaving out process and Ray
start-up and the end, when some cores idle. Then the median seconds to solve the demo as
a user runs it (asynchronous migration, wall time from start to solved), on one worker
and on every core.
"""
from __future__ import annotations

import importlib.util
import io
import statistics
import tempfile
import time
from typing import Any

from evozero.config import config_from_dict
from evozero.domains import start_run
from evozero.runs.workers import cores


def _demo(seed: int, **overrides: Any):
    data = {"name": f"scaling-{seed}", "seed": seed, "progress_every": 0.5,
            "checkpoint_every": 3600.0}
    data.update(overrides)
    return config_from_dict(data)


def _unsolvable(workers: int, islands: int, per_island: int, root: str,
                backend: str = "local") -> Any:
    config = _demo(0, workers=workers, islands=islands, backend=backend, migration="none",
                   sufficient_fitness=2.0, max_experiments=1,
                   budget={"individuals": per_island, "train_steps": None})
    run = start_run(config, root, out=io.StringIO())
    run.execute()
    return run


def throughput(workers: int, islands: int, per_island: int, root: str,
               backend: str = "local") -> float:
    """Individuals/s of ``islands`` separate islands of ``per_island`` children each
    on ``workers`` workers (one unsolvable demo experiment)."""
    run = _unsolvable(workers, islands, per_island, root, backend)
    # While every island runs: once one is done, its core idles until the others end.
    records = [r for r in run.rundir.read_progress()
               if all(i["individuals"] > 0 and i["status"] == "running" for i in r["islands"])]
    first, last = records[0], records[-1]
    if last["seconds"] <= first["seconds"]:
        raise AssertionError("the run was too short to measure; raise per_island")
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


def run(quick: bool = False, seeds: int = 10) -> dict[str, float]:
    """Measure, print and return the figures (see the module docstring)."""
    per_island = 300_000 if quick else 1_000_000
    seeds = 2 if quick else seeds
    most = max(cores(), 2)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as root:
        _unsolvable(1, 1, 20_000, root)   # compile or load every kernel before timing
        rates = {n: throughput(n, most, per_island, root) for n in range(1, most + 1)}
        for n, rate in rates.items():
            figures[f"individuals_per_second_{n}"] = rate
            figures[f"speedup_{n}"] = rate / rates[1]
        print(f"Individuals/s, the same {most} demo islands (no migration) of {per_island:,} "
              f"children each ({cores()} cores here):")
        for n, rate in rates.items():
            print(f"  local, {n} worker{'s' if n > 1 else ' '} {rate:12,.0f}   "
                  f"{rate / rates[1]:.2f}x one worker")
        if _has_ray():
            ray_rate = throughput(most, most, per_island, root, backend="ray")
            figures["ray_individuals_per_second"] = ray_rate
            figures["ray_vs_local"] = ray_rate / rates[most]
            print(f"  Ray, {most} workers   {ray_rate:12,.0f}   {ray_rate / rates[most]:.2f}x "
                  f"the local backend")
        else:
            print('  Ray: not installed (pip install "evozero[ray]"), not measured')
        solve = {n: [seconds_to_solve(seed, n, root) for seed in range(1, seeds + 1)]
                 for n in (1, most)}
    for n, times in solve.items():
        figures[f"median_seconds_to_solve_{n}"] = statistics.median(times)
        figures[f"mean_seconds_to_solve_{n}"] = statistics.mean(times)
    ratio = figures["median_seconds_to_solve_1"] / figures[f"median_seconds_to_solve_{most}"]
    figures["solve_speedup"] = ratio
    print(f"Seconds to solve the demo, {seeds} seeds (wall time, start-up included):")
    for n, times in solve.items():
        print(f"  {n} worker{'s' if n > 1 else ' '}  median {statistics.median(times):6.1f} s"
              f"   mean {statistics.mean(times):6.1f} s   (min {min(times):.1f}, "
              f"max {max(times):.1f})")
    print(f"  {most} workers solve {ratio:.2f}x as fast as one (median against median; "
          f"a run solves in its first experiment or takes several, so medians over few "
          f"seeds swing)")
    return figures


if __name__ == "__main__":
    run()
