"""Helpers shared by several test modules."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evozero.config import Config, config_from_dict
from evozero.domains import start_run
from evozero.programs.program import Program
from evozero.programs.randomize import randomize_rows
from evozero.runs.events import EventLog
from evozero.runs.flow import Run
from ops.kinds import OP_ARRAYS
from ops.table import OPS

REPO = Path(__file__).resolve().parent.parent
ALL_OPS = np.arange(len(OPS), dtype=np.int64)


def random_program(seed: int, sizes: Sequence[int], allowed: np.ndarray = ALL_OPS,
                   memory: Sequence[int] = (5, 4, 2)) -> Program:
    """A random program of ``sizes`` instructions over the ``allowed`` op codes."""
    total = sum(sizes)
    code = np.zeros((total, 4), dtype=np.int64)
    constants = np.zeros((total, 3))
    state = np.array([seed], dtype=np.uint64)
    randomize_rows(code, constants, 0, total, allowed, state, 0, tuple(memory), OP_ARRAYS)
    return Program(code, constants, tuple(sizes))


def small_config(**overrides: Any) -> Config:
    """A fast demo-space experiment on one island: few small tasks, small population."""
    data = {"name": "small", "seed": 3, "population_size": 50, "tournament_size": 5,
            "search_tasks": {"num_tasks": 3, "train": 20, "valid": 20},
            "select_tasks": {"num_tasks": 5, "train": 50, "valid": 20, "seed": 1000},
            "final_tasks": {"num_tasks": 5, "train": 50, "valid": 20, "seed": 2000},
            "budget": {"individuals": 3000, "train_steps": None},
            "max_experiments": 1, "progress_every": 3600.0, "checkpoint_every": 3600.0,
            "workers": 1}
    data.update(overrides)
    return config_from_dict(data)


def run_quietly(config: Config, root: Any) -> tuple[Run, dict]:
    """Start ``config`` under ``root`` and run it to its end without printing."""
    run = start_run(config, str(root), out=open(os.devnull, "w"))
    return run, run.execute()


def stop_after_evaluations(run: Run, count: int, monkeypatch: Any) -> None:
    """Make ``run`` stop as on SIGINT (a checkpoint, then Interrupted) once ``count``
    evaluation records are written (NAS runs)."""
    write = EventLog.evaluation

    def written(log: EventLog, record: dict, *args: Any) -> None:
        write(log, record, *args)
        if len(log._evaluations) == count:
            run._stop_signal = signal.SIGINT

    monkeypatch.setattr(EventLog, "evaluation", written)


def child_pids(pid: int) -> list[int]:
    """The child processes of ``pid`` (from /proc; any of its threads may have forked them)."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(p) for p in (task / "children").read_text().split()]
    return children


def is_running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def cli(*args: str, code: str = "", env: dict[str, str] | None = None,
        **popen: Any) -> subprocess.Popen:
    """``evozero ARGS`` in a process of its own, run from this checkout, its output piped as
    text; ``code`` runs first in that process (e.g. a planted fault), ``env`` adds variables
    and ``popen`` goes to :class:`subprocess.Popen` (e.g. ``start_new_session``)."""
    environment = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    # A child inherits an ignored or blocked SIGINT that an earlier test or library left
    # on this process (an ignored signal survives exec); a user's shell starts evozero with
    # Python's own Ctrl-C handling, so the child restores it first.
    script = (f"import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
              f"signal.pthread_sigmask(signal.SIG_SETMASK, [])\n"
              f"{code}\nimport sys\nfrom evozero.cli import main\nsys.exit(main({list(args)!r}))")
    return subprocess.Popen([sys.executable, "-c", script], env=environment, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def nas_data(**changes: Any) -> dict:
    """A tiny, fast NAS experiment: 4-channel networks, one epoch, a few networks."""
    data = {"name": "nas", "seed": 1, "population_size": 4, "tournament_size": 2,
            "budget": {"individuals": 10, "train_steps": None}, "max_experiments": 1,
            "sufficient_fitness": None, "progress_every": 3600.0, "checkpoint_every": 3600.0,
            "workers": 1,
            "nas": {"space": "nb201", "dataset": "digits", "stem_channels": 4, "stacks": 1,
                    "profile": "mobile-cpu", "training": {"epochs": 1}}}
    for key, value in changes.items():
        if key == "nas":
            data["nas"] = {**data["nas"], **value}
        else:
            data[key] = value
    return data


def nas_config(**changes: Any) -> Config:
    """:func:`nas_data` as a validated :class:`Config`."""
    return config_from_dict(nas_data(**changes))
