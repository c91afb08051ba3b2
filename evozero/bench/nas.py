"""``evozero bench nas``: the neural-op layer's figures.

1. Training speed: images/s of compiled cell networks, on 8x8 digits and at the NAS
   papers' scale (32x32x3 random inputs, NAS-Bench-201's and NAS-Bench-101's three
   stages), against their PyTorch twins (same layers, same weights, SGD with momentum and
   weight decay), one thread each with BLAS on one thread, training steps interleaved,
   median CPU time per step; the ratio is ours / torch. The PyTorch column appears only
   when torch is installed. "merging" is the speed-up, in the same run, of the network's
   layer merging (sibling convolutions, duplicate ReLUs) over running every layer alone.
2. Search throughput: trained networks per minute of ``nas_digits_nb201.yaml`` (4 epochs
   on digits) with one island per core.
3. Cost-model fidelity: estimated against measured latency (:mod:`evozero.bench.nas_latency`).
4. Regularized evolution against random search: paired seeds at an equal budget, the
   held-out test accuracy of each run's incumbent (chosen on validation); wins, mean gap
   and a 95 % bootstrap interval. The runs of one process share one evaluation cache:
   a cell's training is a function of the cell and the seed, so this changes no result.
5. The number of unique NAS-Bench-101 cells (must be 423,624).
6. Supernet training: images/s of a DARTS (first order) and an RSPS step of the MNIST-1D
   supernet against the same supernet in PyTorch, one thread each, steps interleaved
   (:mod:`evozero.bench.nas_supernet`); the PyTorch column appears only when torch is
   installed.
"""
from __future__ import annotations

import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from threadpoolctl import threadpool_limits

from evozero.bench.nas_supernet import supernet_speed
from evozero.bench.nas_torch import import_torch, torch_twin
from evozero.config import config_from_dict, config_to_dict, load_config
from evozero.domains import domain_for, start_run
from evozero.errors import EvozeroError
from evozero.nas.devices.calibrate import calibrate, interleaved_median_seconds
from evozero.nas.search.island import NasIsland
from evozero.nas.spaces.cells import Nb101Cell, Nb201Cell
from evozero.nas.spaces.nb101_count import count_unique_nb101
from evozero.nas.spaces.skeleton import Skeleton, compile_cell
from evozero.nas.training.data import load_dataset
from evozero.nas.training.model import Model
from evozero.runs.island import FINISHED
from evozero.runs.workers import cores
from ops import neural

EXPERIMENTS = Path(__file__).resolve().parent.parent.parent / "experiments"
_NB201 = Nb201Cell.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|"
                         "nor_conv_3x3~1|nor_conv_1x1~2|")
_NB101 = Nb101Cell.make([[0, 1, 1, 0, 0, 0, 1], [0, 0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 1, 0, 0],
                         [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1],
                         [0] * 7],
                        ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3",
                         "conv3x3-bn-relu", "conv3x3-bn-relu", "output"])


# -- 1. training speed --------------------------------------------------------------------

@dataclass(frozen=True)
class SpeedCase:
    """One training-speed row: a cell in a skeleton, on digits or on random inputs."""

    cell: str                       # "nb201" or "nb101"
    skeleton: Skeleton
    input_shape: tuple[int, int, int] | None   # None: the digits data set (8x8x1)
    batch: int

    @property
    def label(self) -> str:
        """What the row trains, as the table prints it."""
        size = "digits 8x8" if self.input_shape is None else \
            "x".join(str(d) for d in self.input_shape)
        skeleton = self.skeleton
        shape = (f"C={skeleton.stem_channels}, {skeleton.stacks} stages of "
                 f"{skeleton.cells_per_stack}")
        return f"{self.cell} {shape}, {size}, batch {self.batch}"


_CELLS: dict[str, Nb101Cell | Nb201Cell] = {"nb201": _NB201, "nb101": _NB101}
# The digits rows of the search's own scale, and the NAS papers' scale on CIFAR-sized
# random inputs: NAS-Bench-201's three stages (1 cell each, and 5 as in the benchmark),
# NAS-Bench-101's three stacks (of 1 cell).
DIGITS_CASES = tuple(SpeedCase(cell, Skeleton(16, 2, 1), None, batch)
                     for cell in ("nb201", "nb101") for batch in (64, 256))
PAPER_CASES = (SpeedCase("nb201", Skeleton(16, 3, 1), (32, 32, 3), 64),
               SpeedCase("nb201", Skeleton(16, 3, 5), (32, 32, 3), 64),
               SpeedCase("nb201", Skeleton(16, 3, 1), (32, 32, 3), 256),
               SpeedCase("nb101", Skeleton(16, 3, 1), (32, 32, 3), 64))


def _our_step(model: Model, x: np.ndarray, y: np.ndarray, velocities: list) -> None:
    logits = model.forward(x, training=True)
    _, dlogits = neural.softmax_cross_entropy(logits, y)
    model.backward(dlogits)
    for param, grad, velocity, decay in zip(model.parameters(), model.gradients(), velocities,
                                            model.decayed()):
        neural.sgd_step(param, grad, velocity, 0.05, 0.9, 5e-4 if decay else 0.0)


def _batch(case: SpeedCase) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int], int]:
    if case.input_shape is None:
        data = load_dataset("digits")
        return (data.train_x[:case.batch], data.train_y[:case.batch], data.input_shape,
                data.classes)
    rng = np.random.default_rng(0)
    classes = 10
    return (rng.standard_normal((case.batch, *case.input_shape), dtype=np.float32),
            rng.integers(0, classes, case.batch), case.input_shape, classes)


def _torch_step(torch: Any, model: Model, x: np.ndarray, y: np.ndarray) -> Callable[[], None]:
    twin = torch_twin(model)
    optimizer = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    ty = torch.from_numpy(y)

    def step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(twin(tx), ty).backward()
        optimizer.step()

    return step


def training_speed(cases: Sequence[SpeedCase], repeats: int,
                   torch: Any = None) -> list[dict[str, Any]]:
    """Training images/s of ours, its speed-up over the same network without layer merging
    (``merging``), and the PyTorch twin's speed (same weights) when ``torch`` is the
    imported module, steps interleaved, for each case; call it with BLAS limited to one
    thread."""
    if torch is not None:
        torch.set_num_threads(1)
    neural.retain_freed_memory()
    results = []
    for case in cases:
        x, y, input_shape, classes = _batch(case)
        arch = compile_cell(_CELLS[case.cell], case.skeleton, input_shape, classes)
        model, unmerged = Model(arch, seed=0), Model(arch, seed=0, merge=False)
        velocities = [np.zeros_like(p) for p in model.parameters()]
        unmerged_velocities = [np.zeros_like(p) for p in unmerged.parameters()]
        steps: dict[str, Callable[[], object]] = {
            "ours": lambda: _our_step(model, x, y, velocities),
            "unmerged": lambda: _our_step(unmerged, x, y, unmerged_velocities)}
        if torch is not None:
            steps["torch"] = _torch_step(torch, model, x, y)
        for step in steps.values():    # compile or load kernels, warm the allocators
            step()
        # CPU time of the process: on a shared machine it leaves out the moments another
        # process holds the core, and it counts any helper thread a library starts.
        seconds = dict(zip(steps, interleaved_median_seconds(
            list(steps.values()), [1] * len(steps), repeats, clock=time.process_time)))
        row = {"case": case.label, "ours": case.batch / seconds["ours"],
               "merging": seconds["unmerged"] / seconds["ours"]}
        if torch is not None:
            row.update(torch=case.batch / seconds["torch"],
                       ratio=seconds["torch"] / seconds["ours"])
        results.append(row)
    return results


def _optional_torch() -> Any:
    try:
        return import_torch()
    except EvozeroError:
        return None


# -- 2. search throughput ---------------------------------------------------------------

def evaluations_per_minute(per_island: int, root: str) -> dict[str, Any]:
    """Trained networks per minute of nas_digits_nb201.yaml on every core."""
    config = load_config(EXPERIMENTS / "nas_digits_nb201.yaml",
                         [f"budget.individuals={per_island}", "name=bench-nas"])
    run = start_run(config, root, out=io.StringIO())
    run.execute()
    records = run.rundir.read_evaluations()
    trained = [r for r in records if not r["cache_hit"]]
    times = sorted(r["run_seconds"] for r in records)
    # From the first finished network to the last: start-up (data, kernels) left out.
    span = times[-1] - times[0]
    counted = len([r for r in trained if r["run_seconds"] > times[0]])
    return {"workers": cores(), "networks": len(records), "trained": len(trained),
            "per_minute": 60.0 * counted / span if span > 0 else float("nan"),
            "median_seconds": statistics.median(r["seconds"] for r in trained)}


# -- 4. evolution against random search ----------------------------------------------

_SHARED_CACHE: dict[str, dict[str, Any]] = {}


def _search(task: tuple[dict, str, int, int]) -> float:
    """Test accuracy of the incumbent of one search (runs in a pool worker)."""
    data, strategy, seed, budget = task
    config = config_from_dict(dict(data, strategy=strategy, seed=seed))
    with threadpool_limits(1):
        island = NasIsland(domain_for(config).island_spec(0, 0, individuals=budget,
                                                          train_steps=-1))
        island.cache = _SHARED_CACHE
        while island.meta["status"] not in FINISHED:
            island.advance(3600.0)
    return float(island.meta["best"]["test_accuracy"])


def evolution_against_random(seeds: int, budget: int) -> dict[str, Any]:
    """Paired seeds of regularized evolution and random search at ``budget`` networks."""
    import multiprocess
    config = load_config(EXPERIMENTS / "nas_digits_nb201.yaml")
    data = config_to_dict(config)
    tasks = [(data, strategy, seed, budget) for seed in range(seeds)
             for strategy in ("evolution", "random")]
    with multiprocess.get_context("fork").Pool(cores()) as pool:
        scores = pool.map(_search, tasks, chunksize=1)
    evolution, random = np.array(scores[0::2]), np.array(scores[1::2])
    gaps = evolution - random
    rng = np.random.default_rng(0)
    means = rng.choice(gaps, size=(10_000, len(gaps))).mean(axis=1)
    return {"seeds": seeds, "budget": budget, "evolution": evolution.tolist(),
            "random": random.tolist(), "wins": int((gaps > 0).sum()),
            "ties": int((gaps == 0).sum()), "mean_gap": float(gaps.mean()),
            "interval": (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))}


# -- the report -------------------------------------------------------------------------

def _speed_line(row: dict[str, Any]) -> str:
    """A training-speed row: ours, and the PyTorch twin's when it was measured."""
    line = f"   {row['case']:<48} ours {row['ours']:>7,.0f} img/s"
    if "torch" in row:
        line += f"   torch {row['torch']:>7,.0f} img/s   ours/torch {row['ratio']:.2f}x"
    return line


def run(quick: bool = False, out: TextIO | None = None) -> dict[str, Any]:
    """Measure and print every figure (``quick``: smaller workloads, rougher figures)."""
    out = out or sys.stdout   # the stream of the moment, not of import time
    results: dict[str, Any] = {}
    say = lambda text: print(text, file=out, flush=True)  # noqa: E731

    torch = _optional_torch()
    say("1. training images/s of compiled cell networks" + (
        " against their PyTorch twins (same weights), one thread each, steps interleaved"
        if torch is not None else
        ", one thread (torch is not installed: no PyTorch column; pip install torch==2.13.0 "
        "for it)"))
    with threadpool_limits(1):
        speed = training_speed(DIGITS_CASES[::2] if quick else DIGITS_CASES,
                               15 if quick else 40, torch)
        speed += training_speed(PAPER_CASES, 3 if quick else 10, torch)
    results["training"] = speed
    for row in speed:
        say(_speed_line(row) + f"   (merging {row['merging']:.2f}x)")

    with tempfile.TemporaryDirectory() as root:
        throughput = evaluations_per_minute(20 if quick else 60, root)
    results["throughput"] = throughput
    say(f"2. NAS evaluations per minute (nas_digits_nb201.yaml, 4 epochs, "
        f"{throughput['workers']} workers): {throughput['per_minute']:.0f} trained networks/min "
        f"({throughput['trained']} trained of {throughput['networks']}; median "
        f"{throughput['median_seconds']:.2f} s per network)")

    from evozero.bench.nas_latency import run as latency
    say("3. estimated against measured latency, after calibrating this machine, before and "
        "after the drift correction a run makes")
    with tempfile.TemporaryDirectory() as root:
        profile = calibrate(str(Path(root) / "host.yaml"), out=io.StringIO())
    results["latency"] = latency(cells=30 if quick else 100, profile=profile, out=out)

    seeds, budget = (4, 30) if quick else (10, 100)
    started = time.monotonic()
    duel = evolution_against_random(seeds, budget)
    results["evolution_vs_random"] = duel
    low, high = duel["interval"]
    say(f"4. regularized evolution vs random search, {seeds} paired seeds x {budget} networks "
        f"(nas_digits_nb201.yaml), test accuracy of the incumbent: evolution wins "
        f"{duel['wins']}/{seeds} ({duel['ties']} ties), mean gap {100 * duel['mean_gap']:+.2f} "
        f"points, 95% bootstrap interval [{100 * low:+.2f}, {100 * high:+.2f}] "
        f"({time.monotonic() - started:.0f} s)")

    started = time.monotonic()
    count = count_unique_nb101()
    results["nb101_unique"] = count["total"]
    say(f"5. unique NAS-Bench-101 cells (7 vertices, 9 edges, 3 ops): {count['total']:,} "
        f"({'matches' if count['total'] == 423_624 else 'DIFFERS FROM'} 423,624; "
        f"{time.monotonic() - started:.1f} s)")

    say("6. supernet training step images/s (experiments/nas_supernet/supernet_search.yaml's "
        "MNIST-1D supernet)" + (" against the same supernet in PyTorch (same weights and "
                                "alphas), one thread each, steps interleaved"
                                if torch is not None else ", one thread (no PyTorch column)"))
    with threadpool_limits(1):
        supernet = supernet_speed(20 if quick else 100, torch)
    results["supernet_training"] = supernet
    for row in supernet:
        say(_speed_line(row) + (f"   (cell {row['cell']})" if "cell" in row else ""))
    return results
