"""Checks a run's inputs as a whole before anything of the run is created.

:func:`evozero.config.load_config` checks each value on its own. What needs more than the
config's text is checked here, by :func:`check_before_start`, before the run directory
exists (and again before a resume): the task files of ``search_tasks``, ``select_tasks``
and ``final_tasks`` are read and cut to the configured sizes (the final tasks are
otherwise only made after the whole search), the initial population is read and fitted
to the config, NAS data and device profiles are loaded, and the run's memory is
estimated (:func:`estimate_memory`) and compared with what this machine has available.

The estimate adds, for every island, the arrays it allocates (population, FEC cache,
hurdle window, search and select task arrays with their epoch orders and batched copies,
and the VM memories of ``F x F`` matrices for every task), or for a NAS island the
largest network of its space (weights, gradients, momentum, every activation kept for
the backward pass) and the weights kept for inheritance; plus each process's fixed
footprint (Python, numpy and compiled kernels), the whole .npz task file every process
loads, the main process's copy of every island's snapshot and the final tasks it
evaluates on. It is an estimate of the right
order, not an upper bound: what it leaves out (small per-call temporaries) is small.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

from evozero.config import Config, TaskSpec, island_config, island_count
from evozero.errors import EvozeroError
from evozero.search.setup import build_settings
from evozero.resources import available_memory, format_bytes
from evozero.evaluation.tasks import ALL_PAIRS, read_npz_header, task_bytes
from evozero.runs.workers import cores

if TYPE_CHECKING:
    from evozero.nas.cells import Nb101Cell, Nb201Cell

#: Memory of one process once numpy and the kernels are loaded (measured: the main
#: process and one worker of a small run hold about 70 MiB each, proportional set size).
PROCESS_BYTES = 100 * 2**20
_VALUE = 8  # bytes of a float64 or int64


def check_before_start(config: Config, workers: Optional[int] = None) -> None:
    """Refuse, with an :class:`EvozeroError` naming the setting, a run whose files or
    memory needs make it fail later; ``workers`` as for the run (None: as configured)."""
    if config.nas is None:
        for name in _TASK_SECTIONS:
            spec = getattr(config, name)
            if spec.kind == "npz":
                with _section(name):
                    read_npz_header(spec.path)   # what the estimate needs
    else:
        # Imported here, as below: the NAS modules load their own kernels, which program
        # runs and `evozero eval` never need.
        from evozero.nas.evaluate import evaluator_for
        evaluator_for(config)   # reads the data set and the device profiles
    need, parts = estimate_memory(config, _workers(config, workers))
    have = available_memory()
    if need > have:
        largest = max(parts, key=parts.get)
        raise EvozeroError(
            f"the run needs about {format_bytes(need)} of memory but this machine has "
            f"{format_bytes(have)} available; the largest part is {largest} "
            f"({format_bytes(parts[largest])}); lower {_SETTINGS[largest]}")
    if config.nas is None:
        samples = {name: sample_tasks(config, name) for name in _TASK_SECTIONS}
        _check_initial_population(config, samples["search_tasks"])


_TASK_SECTIONS = ("search_tasks", "select_tasks", "final_tasks")


@contextlib.contextmanager
def _section(name: str) -> Iterator[None]:
    """Prefix the message of an error raised inside with the config section ``name``."""
    try:
        yield
    except EvozeroError as error:
        raise EvozeroError(f"{name}: {error}") from None


def sample_tasks(config: Config, name: str) -> list:
    """A few tasks of the task section ``name``, made with its configured sizes, so that a
    bad file or a size the data cannot give is reported now and as configured."""
    spec: TaskSpec = getattr(config, name)
    # Digit tasks cycle through their class pairs, which differ in size: make each once.
    count = min(spec.num_tasks, len(ALL_PAIRS) if spec.kind == "digits" else 1)
    sample = dataclasses.replace(
        spec, num_tasks=count,
        data_seeds=None if spec.data_seeds is None else spec.data_seeds[:count],
        param_seeds=None if spec.param_seeds is None else spec.param_seeds[:count])
    with _section(name):
        return sample.make()


def _check_initial_population(config: Config, tasks: list) -> None:
    # Reads the initial population file and fits every program to the config.
    build_settings(config, tasks, 0)


def _workers(config: Config, workers: Optional[int]) -> int:
    if workers is not None:
        return workers
    if config.workers != "auto":
        return int(config.workers)
    if config.backend == "ray":
        return 1  # the islands live on the cluster; this machine holds the main process
    return cores()


# --- the memory estimate ------------------------------------------------------------------

# What to change when a part is too large.
_SETTINGS = {
    "the populations": "population_size or sizes (the programs' instruction counts)",
    "the FEC caches": "fec.cache_size",
    "the hurdle windows": "hurdles.window",
    "the search tasks": "search_tasks.num_tasks, train, valid, features or epochs",
    "the select tasks": "select_tasks.num_tasks, train, valid, features or epochs",
    "the final tasks": "final_tasks.num_tasks, train, valid, features or epochs",
    "the task files": "the size of the .npz task files (or workers)",
    "the VM memories": "memory.scalars, vectors, matrices or the tasks' features",
    "the networks": "nas.stem_channels, stacks, cells_per_stack or training.batch_size",
    "the processes": "workers",
}


def estimate_memory(config: Config, workers: int) -> tuple[int, dict[str, int]]:
    """Estimated peak bytes of a run of ``config`` on ``workers`` local workers, and the
    parts it is made of (see the module docstring)."""
    islands = island_count(config, workers)
    local = config.backend == "local"
    processes = 1 + min(workers, islands) if local else 1
    parts = {"the processes": processes * PROCESS_BYTES}

    def add(more: dict[str, int]) -> None:
        for part, size in more.items():
            parts[part] = parts.get(part, 0) + size

    for island in range(islands):
        own = island_config(config, island)
        if own.nas is not None:
            if local:
                add(_nas_island(own))
            continue
        snapshot = _program_snapshot(own)
        # The main process keeps every island's last snapshot; the island itself lives in
        # a local worker or on the Ray cluster.
        add(snapshot)
        if local:
            add(snapshot)
            add(_program_island(own))
    if config.nas is None:
        parts["the final tasks"] = _evaluated_tasks(config, config.final_tasks)
        # Every process that makes tasks from a file loads the whole file, one at a time.
        loads = [read_npz_header(spec.path).load_bytes
                 for spec in (config.search_tasks, config.select_tasks, config.final_tasks)
                 if spec.kind == "npz"]
        if loads:
            parts["the task files"] = processes * max(loads)
    return sum(parts.values()), parts


def _features(spec: TaskSpec) -> int:
    if spec.features is not None:
        return spec.features
    return read_npz_header(spec.path).shapes["x"][1]


def vm_memory_bytes(sizes: Sequence[int], features: int, tasks: int) -> int:
    """VM memories of ``tasks`` tasks of ``features`` features evaluated at once, for
    memory ``sizes`` (scalars, vectors, matrices): F values per vector, F x F per matrix."""
    scalars, vectors, matrices = sizes
    per_task = scalars + vectors * features + max(matrices, 1) * features * features
    return _VALUE * tasks * per_task


def _task_arrays(spec: TaskSpec) -> tuple[int, int, int]:
    """Bytes of a task set's arrays, bytes of their batched form (every epoch's examples
    in its order, as the VM reads them) and the number of features."""
    features = _features(spec)
    made = task_bytes(spec.num_tasks, features, spec.train, spec.valid, spec.epochs)
    batched = _VALUE * spec.num_tasks * (spec.epochs * spec.train + spec.valid) * (features + 1)
    return made, batched, features


def _evaluated_tasks(config: Config, spec: TaskSpec) -> int:
    """A task set made and evaluated once: its arrays, their batched form and the VM
    memories."""
    made, batched, features = _task_arrays(spec)
    return made + batched + vm_memory_bytes(config.memory.sizes, features, spec.num_tasks)


def _program_snapshot(config: Config) -> dict[str, int]:
    """The population and FEC cache of one program island (what its snapshot holds)."""
    sizes = config.sizes
    rows = sizes.setup.max + sizes.predict.max + sizes.learn.max
    # Code (4 int64) and constants (3 float64) per row, lengths and fitness per program.
    population = config.population_size * _VALUE * (7 * rows + 4)
    capacity = config.fec.cache_size if config.fec.enabled else 1
    table = 1 << max(2 * capacity - 1, 1).bit_length()
    return {"the populations": population, "the FEC caches": _VALUE * (table + 6 * capacity)}


def _program_island(config: Config) -> dict[str, int]:
    """Everything else a program island allocates in its worker."""
    search = config.search_tasks
    made, batched, features = _task_arrays(search)
    return {
        "the hurdle windows": _VALUE * max(config.hurdles.window, 1),
        # The tasks, their batched form and its split into the first task and the rest.
        "the search tasks": made + 2 * batched,
        "the select tasks": _evaluated_tasks(config, config.select_tasks),
        # Four sets of memories: all tasks, the first, the rest, the fingerprint tasks.
        "the VM memories": vm_memory_bytes(config.memory.sizes, features,
                                           3 * search.num_tasks + 1),
    }


def _nas_island(config: Config) -> dict[str, int]:
    from evozero.nas.cost import cost_record
    from evozero.nas.evaluate import evaluator_for

    evaluator = evaluator_for(config)
    record = cost_record(evaluator.architecture(largest_cell(config)), {}, batch=1,
                         train_batch=config.nas.training.batch_size)
    weights = record["weight_bytes"]
    # Weights, gradients and momentum; activations kept for the backward pass and their
    # gradients; the weights inheritance keeps for every program of the population.
    network = 3 * weights + 2 * record["train_peak_activation_bytes"]
    if config.nas.weight_inheritance:
        network += config.population_size * weights
    data = evaluator.data
    data_bytes = sum(a.nbytes for a in (data.train_x, data.train_y, data.valid_x,
                                        data.valid_y, data.test_x, data.test_y))
    return {"the networks": network + data_bytes}


def largest_cell(config: Config) -> "Nb101Cell | Nb201Cell":
    """A cell of the config's space whose network is about the largest the search can
    make: every edge the costliest allowed op (NB201), or the longest chain of vertices
    of the costliest allowed op (NB101; in a chain every vertex has all the channels)."""
    from evozero.nas.cells import INPUT, NB201_NODES, OUTPUT, Nb101Cell, Nb201Cell

    nas = config.nas
    if nas.space == "nb201":
        return Nb201Cell(("nor_conv_3x3",) * (NB201_NODES * (NB201_NODES - 1) // 2))
    costliest = next(op for op in ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
                     if op in nas.nb101_ops)
    size = min(nas.max_vertices, nas.max_edges + 1)
    matrix = [[1 if j == i + 1 else 0 for j in range(size)] for i in range(size)]
    ops = [INPUT] + [costliest] * (size - 2) + [OUTPUT]
    return Nb101Cell.make(matrix, ops, max_vertices=nas.max_vertices,
                          max_edges=nas.max_edges, allowed_ops=nas.nb101_ops)
