"""The two search domains and the one place that picks between them.

:func:`domain_for` is the only code that picks by a config's ``nas`` section: with one,
a run searches network cells (:class:`evozero.nas.domain.NasDomain`, handed the
section); without, it evolves programs (:class:`ProgramDomain`). Both implement
:class:`evozero.runs.domain.SearchDomain`, whose docstring gives their lifecycle.
:func:`start_run` and :func:`resume_run` are a run's entry points: they pick the domain
(and settle a new run's config through its domain: a cell search first measures the
machine's latency drift, which the run keeps).
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from evozero.config import Config
from evozero.errors import EvozeroError, InternalError
from evozero.nas.domain import NasDomain
from evozero.programs.program import Program
from evozero.runs import preflight
from evozero.runs.domain import SearchDomain
from evozero.runs.files import json_text
from evozero.runs.flow import Run, create_run, reopen_run
from evozero.runs.island import ProgramIsland, check_program_snapshot, warm_up
from evozero.runs.rundir import RunDir, atomic_write_text
from evozero.search.evolution import evolve
from evozero.search.seeds import FINAL, evaluate_on
from ops.jit import is_cached


class ProgramDomain(SearchDomain):
    """Program search: regularized evolution of AutoML-Zero programs on tasks."""

    island_class = ProgramIsland
    candidates = "programs"

    def settle(self, say: Callable[[str], None]) -> Config:
        """A program search leaves nothing to measure: the config as it is."""
        return self.config

    def check_inputs(self) -> None:
        """Read the header of every .npz task file."""
        preflight.check_task_files(self.config)

    def island_memory(self, config: Config, local: bool) -> dict[str, int]:
        """See :func:`evozero.runs.preflight.program_island_memory`."""
        return preflight.program_island_memory(config, local)

    def run_memory(self, processes: int) -> dict[str, int]:
        """See :func:`evozero.runs.preflight.program_run_memory`."""
        return preflight.program_run_memory(self.config, processes)

    def check_population(self) -> None:
        """See :func:`evozero.runs.preflight.check_initial_population`."""
        preflight.check_initial_population(self.config)

    def warm_up(self, say: Callable[[str], None]) -> None:
        """Compile or load the search kernels; says so when they compile."""
        if is_cached(evolve):
            warm_up(self.config)
            return
        started = time.monotonic()
        say("compiling the search kernels (once per installation, about a minute)")
        warm_up(self.config)
        say(f"compiled in {time.monotonic() - started:.0f} s")

    def describe(self) -> str:
        """The search tasks evolved on."""
        tasks = self.config.search_tasks
        return f"evolving on {tasks.num_tasks} {tasks.kind} tasks"

    def evaluation_line(self, record: dict[str, Any], experiment: int, island: int,
                        seconds: float) -> dict[str, Any]:
        """Program islands report discoveries, never evaluation records."""
        raise InternalError("a program island reported an evaluation record")

    def check_candidate(self, text: Any, where: str) -> None:
        """A program within the config's memory."""
        from evozero.analysis.show import run_program

        if not isinstance(text, str):
            raise EvozeroError(f"{where}: must be a program's text, got {str(text)[:60]}")
        run_program(text, where, self.config.memory.sizes)

    def check_snapshot(self, snapshot: Any, config: Config, where: str) -> None:
        """See :func:`evozero.runs.island.check_program_snapshot`."""
        check_program_snapshot(snapshot, config, where)

    def final_result(self, rundir: RunDir, state: Any, seconds: float
                     ) -> tuple[dict[str, Any], list[str]]:
        """The kept program evaluated on the unseen ``final_tasks``."""
        config, kept = self.config, state.kept
        program = Program.parse(kept["program"])
        final = evaluate_on(config, program, config.final_tasks.make(), FINAL,
                            state.experiment)
        result = {
            "search_fitness": kept["search_fitness"], "select_fitness": kept["select_fitness"],
            "final_fitness": final, "solved": state.solved,
            "experiment": kept["experiment"], "experiments": len(state.experiments),
            "individuals": sum(r["individuals"] for r in state.experiments),
            "train_steps": sum(r["train_steps"] for r in state.experiments),
            "seconds": seconds, "program": kept["program"],
            "islands": state.islands, "per_experiment": state.experiments}
        lines = [f"final fitness on {config.final_tasks.num_tasks} unseen tasks: "
                 f"{final:.6f}  (search {kept['search_fitness']:.6f}, select "
                 f"{kept['select_fitness']:.6f}, "
                 f"{'solved' if state.solved else 'not solved'})",
                 kept["program"].rstrip()]
        return result, lines

    def show(self, rundir: RunDir, history: bool, as_json: bool) -> str:
        """The run's summary, or its history of discoveries."""
        from evozero.analysis.show import format_history, format_summary, run_summary
        from evozero.analysis.show import history as run_history

        if history:
            events = run_history(rundir)
            return json_text(events, indent=2) if as_json else format_history(events)
        summary = run_summary(rundir)
        return json_text(summary, indent=2) if as_json else format_summary(summary)

    def export(self, rundir: RunDir, path: str, name: str) -> str:
        """The run's best program as a Python module."""
        from evozero.analysis.export import export_python
        from evozero.analysis.show import best_program

        # The same check as `evozero show`: a best.txt show rejects exports nothing.
        program = best_program(rundir, self.config.memory.sizes)
        if program is None:
            raise EvozeroError(f"{rundir.path}: the run has no best program yet (no "
                               f"{RunDir.BEST})")
        atomic_write_text(path, export_python(program, name=name))
        return f"wrote {path}"

    def plot(self, runs: Sequence[tuple[str, SearchDomain]], output: str, x: str,
             compare: bool) -> Path:
        """Fitness against ``x`` (:func:`evozero.analysis.plots.plot_runs`)."""
        from evozero.analysis.plots import plot_runs

        return plot_runs([path for path, _ in runs], output, x=x, compare=compare)


def domain_for(config: Config) -> SearchDomain:
    """The search domain of ``config``: cell search when it has a nas section."""
    nas = config.nas
    return ProgramDomain(config) if nas is None else NasDomain(config, nas)


def start_run(config: Config, out_root: str = "runs", out: TextIO | None = None,
              name: str | None = None, source: str | None = None) -> Run:
    """Create the run directory for ``config`` (config.yaml written; named ``name``,
    default the config's name) and return the run (``source``, the config's file, is named
    by a refusal), with the config its domain settles
    (:meth:`~evozero.runs.domain.SearchDomain.settle`: a cell search measures the
    machine's latency drift first), which config.yaml keeps."""
    stream = out if out is not None else sys.stdout
    config = domain_for(config).settle(lambda text: print(text, file=stream, flush=True))
    return create_run(domain_for(config), out_root, out, name, source)


def resume_run(path: str, out: TextIO | None = None, workers: int | None = None) -> Run:
    """Reopen the run directory ``path`` to continue it from its newest valid checkpoint,
    on ``workers`` workers (None: as its config says; the islands stay as they were)."""
    return reopen_run(path, domain_for, out, workers)
