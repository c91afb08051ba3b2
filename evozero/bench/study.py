"""``evozero bench study``: many short runs as one study against one process per run.

A study keeps long-lived workers that load the kernels once and take one whole run at a
time; scripting seeds by hand starts a process, imports numba's cached kernels and spawns
a worker per run. Both sides do the same runs (the demo's ops on small tasks, a few
thousand individuals each, one worker) as a user would, through the command line in
fresh processes; wall time, interleaved, median of the repeats.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from evozero.bench.timing import interleaved_medians
from evozero.errors import EvozeroError, InternalError

_RUN_CONFIG = """\
population_size: 50
tournament_size: 5
search_tasks: {num_tasks: 3, train: 20, valid: 20}
select_tasks: {num_tasks: 5, train: 50, valid: 20, seed: 1000}
final_tasks: {num_tasks: 5, train: 50, valid: 20, seed: 2000}
budget: {individuals: 3000, train_steps: null}
max_experiments: 1
workers: 1
"""


def _evozero(*args: str, cwd: Path) -> None:
    """``evozero ARGS`` in a process of its own; its failure is this command's, with its
    message (bad input or too little memory: exit 2; stopped: 130; a fault: the rest)."""
    done = subprocess.run([sys.executable, "-m", "evozero", *args], cwd=cwd,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode == 0:
        return
    if done.returncode == 130:
        raise KeyboardInterrupt
    last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
    failure = f"`evozero {' '.join(args)}` failed with exit code {done.returncode}: {last}"
    raise (EvozeroError if done.returncode == 2 else InternalError)(failure)


def run(quick: bool = False) -> dict[str, float]:
    """Measure, print and return the figures (see the module docstring)."""
    runs = 4 if quick else 8
    repeats = 1 if quick else 3
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root)
        (folder / "run.yaml").write_text(_RUN_CONFIG)
        (folder / "study.yaml").write_text(
            f"seeds: {runs}\nworkers: 1\narms:\n  evolution: {{config: run.yaml}}\n")
        attempt = iter(range(1_000_000))

        def as_study() -> None:
            _evozero("study", "study.yaml", "--out", f"study-{next(attempt)}", cwd=folder)

        def as_processes() -> None:
            out = f"runs-{next(attempt)}"
            for seed in range(runs):
                _evozero("run", "run.yaml", "--seed", str(seed), "--out", out, cwd=folder)

        seconds = interleaved_medians({"study": as_study, "processes": as_processes},
                                      repeats)
    ratio = seconds["processes"] / seconds["study"]
    print(f"{runs} runs of 3,000 individuals on one worker, wall time (median of {repeats}, "
          f"interleaved; start-up included):")
    print(f"  one study (`evozero study`)          {seconds['study']:7.1f} s")
    print(f"  one process per run (`evozero run`)  {seconds['processes']:7.1f} s")
    print(f"  the study is {ratio:.2f}x as fast")
    return {"study_seconds": seconds["study"], "processes_seconds": seconds["processes"],
            "speedup": ratio}


if __name__ == "__main__":
    run()
