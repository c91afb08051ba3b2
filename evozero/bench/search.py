"""``evozero bench search``: the demo's whole search loop on one core.

Prints individuals per second of the loop (with its cache hit rate and the share of
wall time spent outside the numba kernel), the same figure for raw VM evaluations of
random demo programs timed in the same process, and seconds to solve the demo
(until a candidate passes the selection tasks) over several seeds.
"""
from __future__ import annotations

import io
import statistics
import tempfile
import time

from evozero.bench import vm as vm_bench
from evozero.config import config_from_dict
from evozero.domains import start_run

# The original C++ engine with the demo's exact settings on this 2-core machine class
# (see the performance notes): one core.
REFERENCE_CPP_INDIVIDUALS_PER_SECOND = 53_000.0
REFERENCE_CPP_MEDIAN_SECONDS_TO_SOLVE = 51.0
# The demo loop is also timed on search tasks of these sizes (F = 16 is the paper's size
# for its projected binary tasks).
LOOP_SIZES = (16, 32)


def _demo(seed: int, **overrides: object):
    data = {"name": f"bench-{seed}", "seed": seed, "progress_every": 3600.0,
            "checkpoint_every": 3600.0, "workers": 1}
    data.update(overrides)
    return config_from_dict(data)


def loop_throughput(individuals: int, root: str, features: int = 4) -> dict[str, float]:
    """Individuals/s of one demo experiment that runs ``individuals`` children unsolved,
    on search tasks of ``features`` features."""
    config = _demo(0, budget={"individuals": individuals, "train_steps": None},
                   sufficient_fitness=2.0, max_experiments=1,
                   search_tasks={"kind": "linear", "num_tasks": 10, "features": features,
                                 "train": 100, "valid": 100})
    run = start_run(config, root, out=io.StringIO())
    start = time.perf_counter()
    run.execute()
    seconds = time.perf_counter() - start
    progress = run.rundir.read_progress()[-1]
    hits = progress["structure_hits"] + progress["fingerprint_hits"]
    return {"individuals_per_second": progress["individuals"] / seconds,
            "outside_kernel_share": 1.0 - run.kernel_seconds / seconds,
            "cache_hit_rate": hits / progress["individuals"]}


def seconds_to_solve(seed: int, root: str) -> float:
    """Wall seconds for the demo config with ``seed`` to reach a solved run."""
    run = start_run(_demo(seed), root, out=io.StringIO())
    start = time.perf_counter()
    result = run.execute()
    if not result["solved"]:
        raise AssertionError(f"seed {seed}: the demo ended unsolved")
    return time.perf_counter() - start


def run(quick: bool = False, seeds: int = 5) -> dict[str, float]:
    """Measure, print and return the figures (see the module docstring)."""
    seeds = 2 if quick else seeds
    with tempfile.TemporaryDirectory() as root:
        # Warm-up: compile (or load) every kernel before anything is timed.
        loop_throughput(2_000, root)
        loop = loop_throughput(100_000 if quick else 500_000, root)
        by_size = {features: loop_throughput(30_000 if quick else 150_000, root, features)
                   for features in LOOP_SIZES}
        vm = vm_bench.run(programs=2_000 if quick else 10_000, repeats=3, verbose=False)
        solve = [seconds_to_solve(seed, root) for seed in range(1, seeds + 1)]
    figures = dict(loop)
    figures.update({
        "vm_evals_per_second": vm["evals_per_second"],
        "loop_vs_vm": loop["individuals_per_second"] / vm["evals_per_second"],
        "ratio_vs_cpp_reference": loop["individuals_per_second"]
        / REFERENCE_CPP_INDIVIDUALS_PER_SECOND,
        "median_seconds_to_solve": statistics.median(solve),
        "min_seconds_to_solve": min(solve), "max_seconds_to_solve": max(solve),
        "solve_speedup_vs_cpp": REFERENCE_CPP_MEDIAN_SECONDS_TO_SOLVE / statistics.median(solve)})
    print("Search loop, demo config (10 linear tasks, F=4, P=1000, T=10, FEC on), one core:")
    print(f"  individuals/s                {loop['individuals_per_second']:12,.0f}"
          f"   ({figures['ratio_vs_cpp_reference']:.2f}x the C++ reference's 53,000/s)")
    print(f"  vs raw VM evaluations/s      {figures['loop_vs_vm']:12.2f}x"
          f"   (same process: {vm['evals_per_second']:,.0f} random-program evaluations/s)")
    print(f"  cache hit rate               {100 * loop['cache_hit_rate']:11.1f}%")
    print(f"  time outside the kernel      {100 * loop['outside_kernel_share']:11.1f}%")
    print(f"  seconds to solve, {seeds} seeds    median {figures['median_seconds_to_solve']:.1f}"
          f"  min {figures['min_seconds_to_solve']:.1f}  max {figures['max_seconds_to_solve']:.1f}"
          f"   ({figures['solve_speedup_vs_cpp']:.1f}x faster than the C++ median of 51 s)")
    print("  the same loop at larger F     F   individuals/s   cache hits")
    for features, figures_at in by_size.items():
        figures[f"individuals_per_second_f{features}"] = figures_at["individuals_per_second"]
        print(f"  {'':28}{features:>3}{figures_at['individuals_per_second']:>16,.0f}"
              f"{100 * figures_at['cache_hit_rate']:>12.1f}%")
    return figures
