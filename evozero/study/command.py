"""The entry points of a study: ``evozero study FILE`` and ``evozero resume STUDY`` (the
command line's handlers) and :func:`run_study` (the Python API)."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, TextIO

from evozero.domains import domain_for
from evozero.errors import EvozeroError
from evozero.runs.files import atomic_write_text
from evozero.runs.flow import Interrupted
from evozero.runs.preflight import check_before_start
from evozero.study.binding import check_binding
from evozero.study.directory import StudyDir
from evozero.study.runner import StudyRunner
from evozero.study.spec import Study, load_study
from evozero.study.summary import RUNS_FILE

#: Folder a study's directory is made in when no --out is given.
DEFAULT_ROOT = "studies"
EXIT_INTERRUPTED = 130


def start_study(path: str, out: str | None = None, workers: int | None = None,
                stream: TextIO | None = None) -> StudyRunner:
    """Check the study file ``path`` and make its directory (``out``, default
    ``studies/NAME``); returns the study ready to execute."""
    stream = stream if stream is not None else sys.stdout
    study = _settle(load_study(path), stream)
    _check_arms(study)
    directory = StudyDir.create(out if out is not None else Path(DEFAULT_ROOT) / study.name,
                                study)
    print(f"study directory: {directory.path}", file=stream, flush=True)
    return StudyRunner(directory, study, workers, stream)


def resume_study(path: str, workers: int | None = None, stream: TextIO | None = None
                 ) -> StudyRunner:
    """Reopen the study directory ``path`` to run what it has not recorded yet."""
    stream = stream if stream is not None else sys.stdout
    directory = StudyDir.open(path)
    directory.acquire()
    try:
        study = directory.study()
        check_binding(directory.path, study, lambda text: print(text, file=stream))
        runs = directory.path / RUNS_FILE
        if not runs.exists():
            print(f"note: {runs} was missing; the finished runs are recorded again from "
                  f"their run directories", file=stream)
            atomic_write_text(runs, "")
    except BaseException:
        directory.release()
        raise
    return StudyRunner(directory, study, workers, stream)


def _check_arms(study: Study) -> None:
    """Each arm's runs pass the checks a run passes before it starts (task files and
    sizes, the initial population, memory), so a study that cannot run is refused before
    its directory is made, naming the study file and the arm, not by its first run."""
    for name, config in study.configs.items():
        try:
            check_before_start(domain_for(config), workers=1)
        except EvozeroError as error:
            raise EvozeroError(f"{study.path}: arms.{name}: its runs cannot start: "
                               f"{error}") from None


def _settle(study: Study, stream: TextIO) -> Study:
    """Each arm's config settled once by its domain (a cell search measures the machine's
    latency drift), so every run of the arm (and every resume) uses the same values (see
    docs/design.md)."""
    def say(text: str) -> None:
        print(text, file=stream, flush=True)

    configs = {name: domain_for(config).settle(say) for name, config in study.configs.items()}
    return dataclasses.replace(study, configs=configs)


def run_study(path: str, out: str | None = None, workers: int | None = None,
              stream: TextIO | None = None) -> list[dict[str, Any]]:
    """Run the study file ``path`` into the directory ``out`` (default ``studies/NAME``)
    on ``workers`` workers (default: the file's) and return its run records (the lines
    of runs.jsonl). Progress goes to ``stream`` (default stdout)."""
    return start_study(path, out, workers, stream).execute()


def study_command(args: argparse.Namespace) -> int:
    """``evozero study FILE [--out DIR] [--workers N]``."""
    return _execute(start_study(args.study, args.out, args.workers))


def resume_command(args: argparse.Namespace) -> int:
    """``evozero resume STUDY [--workers N]``."""
    return _execute(resume_study(args.run, args.workers))


def _execute(runner: StudyRunner) -> int:
    path = runner.directory.path
    try:
        records = runner.execute()
    except Interrupted as stop:
        print(f"\nstopped by {stop}; the running runs wrote their checkpoints. Continue "
              f"with: evozero resume {path}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"study directory: {path} ({len(records)} runs recorded); see `evozero show "
          f"{path}`")
    return 0
