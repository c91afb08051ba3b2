"""Running a study: every (arm, seed) not yet in runs.jsonl, whole runs on long-lived
workers.

The main process only plans and records: it hands each idle worker the next run (seed 0
of every arm, then seed 1, ..., so a study stopped early has paired results), appends
each finished run's record to runs.jsonl, and shows the progress
(:mod:`evozero.study.progress`). Workers are those of a run's backends
(:mod:`evozero.runs.workers` processes, or :mod:`evozero.runs.ray_backend` actors)
serving a :class:`evozero.study.worker.StudyHost`: one run per worker at a time, in the
worker's own process.

A worker that dies is restarted and its run resumed from its checkpoint. Ctrl-C (or
SIGTERM, SIGHUP) has every running run write its checkpoint and stops the study with
:class:`evozero.runs.flow.Interrupted`; `evozero resume STUDY` continues it: runs already
recorded are kept, a run finished but not recorded is recorded from its directory, a run
with a checkpoint resumes from it, and anything else starts over. One process runs a
study at a time (study.lock).
"""
from __future__ import annotations

import functools
import signal
import sys
import time
from collections import deque
from typing import Any, TextIO

from evozero.errors import EvozeroError, InternalError
from evozero.runs.flow import STOP_SIGNALS, Interrupted, resolve_workers
from evozero.runs.workers import LocalBackend
from evozero.study.directory import StudyDir
from evozero.study.progress import StudyProgress
from evozero.study.spec import Study
from evozero.study.summary import write_summary
from evozero.study.worker import StudyHost

# Deaths of one run's worker before the study gives up on it.
_MAX_FAILURES = 3
# Seconds a stopping study waits for its running runs' checkpoints (a run stops within
# 10 s); busy workers are then ended and their runs keep their last checkpoints.
_STOP_SECONDS = 20.0
# Seconds between the stop signals a stopping study repeats (a worker still setting its
# run up when the first came has no handler for it yet).
_SIGNAL_AGAIN = 1.0


def study_workers(study: Study, workers: int | None) -> int:
    """Workers the study runs on: ``workers`` if given, else the study's (``auto``: this
    machine's cores, or the Ray cluster's CPUs)."""
    if workers is not None:
        return workers
    return resolve_workers(study.workers, study.backend, study.address)


class StudyRunner:
    """One execution of a study in its directory (see the module docstring)."""

    def __init__(self, directory: StudyDir, study: Study, workers: int | None = None,
                 out: TextIO | None = None) -> None:
        self.directory = directory
        self.study = study
        self.workers = workers
        self.out = out if out is not None else sys.stdout
        self.records: list[dict[str, Any]] = []
        self._stop_signal: int | None = None

    def execute(self) -> list[dict[str, Any]]:
        """Run every run not recorded yet, then write summary.json; returns every record.
        Raises Interrupted after a stop request (the runs' checkpoints written)."""
        previous = {signum: signal.signal(signum, self._on_signal) for signum in STOP_SIGNALS}
        try:
            self.records = self.directory.records(self.study)
            recorded = {(r["arm"], r["seed"]) for r in self.records}
            pending = deque(pair for pair in self.study.pairs() if pair not in recorded)
            if pending:
                self._run(pending)
            write_summary(str(self.directory.path))
            return self.records
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.directory.release()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop_signal = signum

    def _run(self, pending: deque[tuple[str, int]]) -> None:
        study = self.study
        count = max(1, min(study_workers(study, self.workers), len(pending)))
        planned = len(study.pairs())
        progress = StudyProgress(self.out, study.arm_names, planned, count)
        where = "Ray actors" if study.backend == "ray" else "worker processes"
        progress.say(f"study {study.name}: {len(study.arms)} arms x {len(study.seeds)} seeds "
                     f"= {planned} runs, {planned - len(pending)} recorded; {len(pending)} "
                     f"to run on {count} {where} (each run's output: runs/ARM/seed-N/"
                     f"console.log)")
        if self.directory.lock_note is not None:
            progress.say(f"note: {self.directory.lock_note}")
        make_host = functools.partial(StudyHost, str(self.directory.path.resolve()), study)
        backend = self._backend(count, make_host)
        jobs: dict[int, tuple[str, int]] = {}      # worker -> the run it works on
        failures: dict[tuple[str, int], int] = {}
        stop_by: float | None = None
        signalled = 0.0
        try:
            while pending or jobs:
                if self._stop_signal is None:
                    for worker in range(count):
                        if worker not in jobs and pending:
                            jobs[worker] = pending.popleft()
                            arm, seed = jobs[worker]
                            backend.send(worker, {"arm": arm, "seed": seed})
                elif stop_by is None:
                    stop_by = time.monotonic() + _STOP_SECONDS
                    progress.say(f"stopping: {len(jobs)} running run(s) write their "
                                 f"checkpoints")
                if stop_by is not None:
                    if not jobs or time.monotonic() >= stop_by:
                        break
                    if time.monotonic() - signalled >= _SIGNAL_AGAIN:
                        backend.interrupt(signal.SIGINT)
                        signalled = time.monotonic()
                for worker, reply in backend.receive(0.2):
                    job = jobs.pop(worker, None)
                    if job is None:
                        continue
                    if reply is None:
                        self._died(backend, worker, job, failures, pending, progress,
                                   stopping=stop_by is not None)
                    elif reply["kind"] == "done":
                        self._record(reply["record"], progress)
                    elif reply["kind"] == "error":
                        self._failed(reply, progress)
                    elif stop_by is None:   # its worker alone was stopped: run it again
                        pending.appendleft(job)
                progress.show(self.records, len(jobs))
        finally:
            backend.close()
            progress.close()
        if self._stop_signal is not None:
            write_summary(str(self.directory.path))
            raise Interrupted(signal.Signals(self._stop_signal).name)

    def _backend(self, count: int, make_host: Any) -> Any:
        if self.study.backend == "ray":
            from evozero.runs.ray_backend import RayBackend
            return RayBackend(count, self.study.address, make_host)
        return LocalBackend(count, make_host)

    def _record(self, record: dict[str, Any], progress: StudyProgress) -> None:
        if any((r["arm"], r["seed"]) == (record["arm"], record["seed"]) for r in self.records):
            return   # a run is recorded once
        self.directory.append(record)
        self.records.append(record)
        progress.finished(record)

    def _died(self, backend: Any, worker: int, job: tuple[str, int],
              failures: dict[tuple[str, int], int], pending: deque[tuple[str, int]],
              progress: StudyProgress, stopping: bool) -> None:
        how = backend.death(worker)
        arm, seed = job
        if stopping:
            progress.say(f"worker {worker + 1} {how}; {arm} seed {seed} keeps its last "
                         f"checkpoint")
            return
        backend.restart(worker)
        failures[job] = failures.get(job, 0) + 1
        if failures[job] > _MAX_FAILURES:
            raise EvozeroError(
                f"{arm} seed {seed}: its worker died {failures[job]} times (last: {how}); "
                f"the study stops here (continue it with `evozero resume "
                f"{self.directory.path}` once the cause is fixed)")
        progress.say(f"worker {worker + 1} {how}; {arm} seed {seed} resumes from its "
                     f"checkpoint")
        pending.appendleft(job)

    def _failed(self, reply: dict[str, Any], progress: StudyProgress) -> None:
        run = self.directory.path / self.directory.run_path(reply["arm"], reply["seed"])
        message = (f"{reply['arm']} seed {reply['seed']} ({run}) failed: {reply['error']}; "
                   f"the study stops here (the other runs keep their checkpoints; continue "
                   f"with `evozero resume {self.directory.path}` once the cause is fixed)")
        if reply["user"]:
            raise EvozeroError(message)
        progress.say(reply["traceback"].rstrip())
        raise InternalError(f"{message}; this is a fault in evozero (traceback above)")
