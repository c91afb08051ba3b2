"""Evaluate a program on other tasks than those it was evolved on (``evozero eval``).

A program comes from a run directory (its best program and the run's memory sizes), a
text file with one program, or the name of a built-in program (``linear``, ``logistic``,
``affine``, ``neural_net``; an existing path of that name wins). Tasks come from a ``.npz``
file (arrays ``x``, ``y``; see :func:`evozero.evaluation.tasks.make_tasks`), or a YAML
file: either a whole experiment config (its ``final_tasks`` are used) or one task spec
(``kind``, ``num_tasks``, ``features``, ...).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from evozero.analysis.show import best_program
from evozero.config import TaskSpec, load_task_spec
from evozero.errors import EvozeroError
from evozero.evaluation.tasks import Task, make_tasks, read_npz_header
from evozero.evaluation.vm import combine_fitness, evaluate
from evozero.programs.liveness import resolve_memory
from evozero.programs.program import Program
from evozero.programs.reference import BUILTIN_PROGRAMS, builtin_program
from evozero.resources import available_memory, format_bytes
from evozero.runs.preflight import vm_memory_bytes
from evozero.runs.rundir import RunDir
from ops.rng import SEED_MAX


def load_program(path: str) -> tuple[Program, tuple[int, int, int] | None]:
    """The program at ``path`` (a run directory or a program file; else the name of a
    built-in program) and the memory it ran with (None: what it needs)."""
    source = Path(path)
    if not source.exists():
        if path.strip().lower() in BUILTIN_PROGRAMS:
            return builtin_program(path), None
        raise EvozeroError(f"{source}: cannot read the program (no such file or run "
                           f"directory), and it names no built-in program (the built-ins "
                           f"are {', '.join(BUILTIN_PROGRAMS)})")
    if source.is_dir():
        run = RunDir.open(source)
        config = run.read_config()
        if config.nas is not None:
            raise EvozeroError(f"{source}: a cell search (its config has a nas section), "
                               f"whose best is a network, not a program; `evozero show "
                               f"{source}` and `evozero export {source}` take it")
        memory = config.memory.sizes
        program = best_program(run, memory)
        if program is None:
            raise EvozeroError(f"{source}: the run has no best program yet (no best.txt)")
        return program, memory
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise EvozeroError(f"{source}: cannot read the program ({error})") from None
    try:
        return Program.parse(text), None
    except EvozeroError as error:
        raise EvozeroError(f"{source}: {error}") from None


def load_tasks(path: str, seed: int | None = None) -> list[Task]:
    """Tasks from a ``.npz`` file or a YAML config / task spec (``seed`` overrides its seed)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                             or not 0 <= seed <= SEED_MAX):
        raise EvozeroError(f"--seed: must be an integer in [0, {SEED_MAX}], got {seed!r}")
    if Path(path).suffix == ".npz":
        train, valid = _npz_split(path)
        return make_tasks("npz", 1, None, train, valid, 0 if seed is None else seed,
                          path=path)
    spec = load_task_spec(path)
    if seed is not None:
        spec = spec.with_seed(seed)
    return made_tasks(spec, path)


def made_tasks(spec: TaskSpec, where: str) -> list[Task]:
    """The tasks of ``spec``; a size the data cannot give (say, more digit examples than
    a pair has) is an EvozeroError naming ``where``, the file and key it came from."""
    try:
        return spec.make()
    except EvozeroError as error:
        raise EvozeroError(f"{where}: {error}") from None


def _npz_split(path: str) -> tuple[int, int]:
    """Train and validation sizes using all of a .npz file: its own split if it has one,
    else 80% / 20% (at least one example each)."""
    shapes = read_npz_header(path).shapes   # checked: x is (n, F) with n >= 1
    rows = shapes["x"][0]
    if "x_valid" in shapes:
        return rows, shapes["x_valid"][0]
    train = max(1, min(rows - 1, round(0.8 * rows)))
    return train, max(1, rows - train)


def check_vm_memory(program: Program, tasks: list[Task],
                    memory: tuple[int, int, int] | None = None) -> None:
    """Raise EvozeroError unless the VM memory of ``program`` on ``tasks`` fits this machine."""
    sizes = resolve_memory(program, memory)
    need = sum(vm_memory_bytes(sizes, task.n_features, 1) for task in tasks)
    have = available_memory()
    if need > have:
        raise EvozeroError(f"evaluating the program needs {format_bytes(need)} of VM memory "
                           f"({sizes[0]} scalars, {sizes[1]} vectors and {sizes[2]} matrices "
                           f"per task, for {len(tasks)} tasks), more than the "
                           f"{format_bytes(have)} available; use fewer tasks or features")


def evaluation_report(program: Program, tasks: list[Task],
                      memory: tuple[int, int, int] | None = None,
                      combine: str = "mean", seed: int = 0) -> dict[str, Any]:
    """Per-task and combined fitness of ``program`` on ``tasks``."""
    check_vm_memory(program, tasks, memory)
    per_task = np.asarray(evaluate(program, tasks, combine=None, memory=memory, seed=seed))
    return {"combine": combine, "fitness": combine_fitness(per_task, combine),
            "tasks": [{"name": task.name, "fitness": float(value)}
                      for task, value in zip(tasks, per_task)]}
