"""Checks a run's inputs as a whole before anything of the run is created.

:func:`evozero.config.load_config` checks each value on its own. What needs more than the
config's text is checked here, by :func:`check_before_start`, before the run directory
exists (and again before a resume), through the run's search domain
(:class:`evozero.runs.domain.SearchDomain`): its inputs are read, the run's memory is
estimated (:func:`estimate_memory`) and compared with what this machine has available,
and then what the run starts from is checked.

For program search this module gives the domain its parts: the task files of
``search_tasks``, ``select_tasks`` and ``final_tasks`` are read and cut to the configured
sizes (the final tasks are otherwise only made after the whole search), the initial
population is read and fitted to the config, and the memory estimate adds, for every
island, the arrays it allocates (population, FEC cache, hurdle window, search and select
task arrays with their epoch orders and batched copies, and the VM memories of ``F x F``
matrices for every task), the whole .npz task file every process loads and the final
tasks the main process evaluates on. Every run adds each process's fixed footprint
(Python, numpy and compiled kernels). It is an estimate of the right order, not an upper
bound: what it leaves out (small per-call temporaries) is small.
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from evozero.config import Config, TaskSpec, island_config, island_count
from evozero.errors import EvozeroError
from evozero.evaluation.tasks import ALL_PAIRS, read_npz_header, task_bytes
from evozero.resources import available_memory, format_bytes
from evozero.runs.workers import cores
from evozero.search.settings import build_settings

if TYPE_CHECKING:
    from evozero.runs.domain import SearchDomain

#: Memory of one process once numpy and the kernels are loaded (measured: the main
#: process and one worker of a small run hold about 70 MiB each, proportional set size).
PROCESS_BYTES = 100 * 2**20
_VALUE = 8  # bytes of a float64 or int64


def check_before_start(domain: SearchDomain, workers: int | None = None,
                       source: str | None = None) -> None:
    """Refuse, with an :class:`EvozeroError` naming the setting (after ``source``, the
    config file, when given), a run whose files or memory needs make it fail later;
    ``workers`` as for the run (None: as configured)."""
    try:
        _check_before_start(domain, workers)
    except EvozeroError as error:
        if source is None:
            raise
        raise EvozeroError(f"{source}: {error}") from None


def _check_before_start(domain: SearchDomain, workers: int | None) -> None:
    config = domain.config
    domain.check_inputs()
    need, parts = estimate_memory(domain, _workers(config, workers))
    have = available_memory()
    if need > have:
        largest = max(parts, key=lambda part: parts[part])
        raise EvozeroError(
            f"the run needs about {format_bytes(need)} of memory but this machine has "
            f"{format_bytes(have)} available; the largest part is {largest} "
            f"({format_bytes(parts[largest])}); lower {_SETTINGS[largest]}")
    domain.check_population()


def check_task_files(config: Config) -> None:
    """Read the header of every .npz task file the config names (what the estimate
    needs), reporting a bad one under its section."""
    for name in _TASK_SECTIONS:
        spec = getattr(config, name)
        if spec.kind == "npz":
            with _section(name):
                read_npz_header(spec.path)


def check_initial_population(config: Config) -> None:
    """Make a few tasks of every section as configured and fit the initial population
    (if any) to the config."""
    samples = {name: sample_tasks(config, name) for name in _TASK_SECTIONS}
    # Reads the initial population file and fits every program to the config.
    build_settings(config, samples["search_tasks"], 0)


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


def _workers(config: Config, workers: int | None) -> int:
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


def estimate_memory(domain: SearchDomain, workers: int) -> tuple[int, dict[str, int]]:
    """Estimated peak bytes of a run of the domain's config on ``workers`` local workers,
    and the parts it is made of (see the module docstring)."""
    config = domain.config
    islands = island_count(config, workers)
    local = config.backend == "local"
    processes = 1 + min(workers, islands) if local else 1
    parts = {"the processes": processes * PROCESS_BYTES}

    def add(more: dict[str, int]) -> None:
        for part, size in more.items():
            parts[part] = parts.get(part, 0) + size

    for island in range(islands):
        add(domain.island_memory(island_config(config, island), local))
    add(domain.run_memory(processes))
    return sum(parts.values()), parts


def program_island_memory(config: Config, local: bool) -> dict[str, int]:
    """Bytes of one program island of ``config`` (its own config), by part."""
    parts = _program_snapshot(config)
    # The main process keeps every island's last snapshot; the island itself lives in
    # a local worker or on the Ray cluster.
    if local:
        parts = {part: 2 * size for part, size in parts.items()}
        parts.update(_program_island(config))
    return parts


def program_run_memory(config: Config, processes: int) -> dict[str, int]:
    """Bytes a program run needs once: its final tasks and the task files its
    ``processes`` processes load."""
    parts = {"the final tasks": _evaluated_tasks(config, config.final_tasks)}
    # Every process that makes tasks from a file loads the whole file, one at a time.
    loads = [read_npz_header(_task_file(spec)).load_bytes
             for spec in (config.search_tasks, config.select_tasks, config.final_tasks)
             if spec.kind == "npz"]
    if loads:
        parts["the task files"] = processes * max(loads)
    return parts


def _features(spec: TaskSpec) -> int:
    if spec.features is not None:
        return spec.features
    return read_npz_header(_task_file(spec)).shapes["x"][1]


def _task_file(spec: TaskSpec) -> str:
    """The file of npz tasks (the config requires their path)."""
    assert spec.path is not None, "npz tasks without a path passed the config check"
    return spec.path


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
