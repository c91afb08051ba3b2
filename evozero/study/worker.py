"""A study worker: takes one (arm, seed) at a time and carries its run to a record.

A :class:`StudyHost` is what each of the study's long-lived workers serves with (a
process of the local backend, or a Ray actor: :mod:`evozero.runs.workers`,
:mod:`evozero.runs.ray_backend`). A job is a run: the host creates its directory
(``runs/ARM/seed-N``), or resumes it from its checkpoint, or, when it finished but was not
recorded, only reads it; the run's islands live in the worker's own process
(:class:`evozero.runs.inline.InlineBackend`), so the kernels load once per worker, not
once per run. The run's console output goes to its ``console.log``. The reply carries the
run's record (:mod:`evozero.study.records`).

On SIGINT or SIGTERM the run writes its checkpoint and the reply is ``interrupted``.
"""
from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path
from typing import Any, TextIO, cast

from evozero.domains import domain_for, resume_run, start_run
from evozero.errors import EvozeroError
from evozero.runs.flow import Interrupted, Run
from evozero.runs.rundir import RunDir
from evozero.runs.workers import job_error_reply
from evozero.study.baselines import threshold, tuned_and_baselines
from evozero.study.binding import check_run_config, study_hash
from evozero.study.directory import StudyDir
from evozero.study.records import run_record
from evozero.study.spec import Baseline, Study

CONSOLE_FILE = "console.log"


class RunLog(io.TextIOBase):
    """A run's console, written to ``console.log`` in its directory; what is written
    before the directory exists (it is built under another name) is kept until then."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._early: list[str] = []

    def writable(self) -> bool:
        """It is written to."""
        return True

    def isatty(self) -> bool:
        """Never a terminal: each message is a line of its own."""
        return False

    def write(self, text: str) -> int:
        """Append ``text`` to console.log (or keep it until the folder exists)."""
        self._early.append(text)
        if self.folder.is_dir():
            with open(self.folder / CONSOLE_FILE, "a", encoding="utf-8") as handle:
                handle.write("".join(self._early))
            self._early = []
        return len(text)


class StudyHost:
    """The jobs of one study worker (see the module docstring)."""

    def __init__(self, directory: str, study: Study) -> None:
        self.directory = StudyDir(directory)
        self.study = study
        self.study_sha256 = study_hash(study)
        # Once per worker, before any run: a run's seconds are its search, not the load
        # (or first compile) of the kernels.
        for config in study.configs.values():
            domain_for(config).warm_up(lambda text: None)

    def handle_safely(self, job: dict[str, Any]) -> dict[str, Any]:
        """Carry out ``job`` ({"arm", "seed"}); the reply is ``done`` with the record,
        ``interrupted``, or ``error`` (``user`` False for a fault of evozero's own)."""
        arm, seed = job["arm"], job["seed"]
        reply: dict[str, Any] = {"arm": arm, "seed": seed}
        try:
            return {**reply, "kind": "done", "record": self.run(arm, seed)}
        except Interrupted:
            return {**reply, "kind": "interrupted"}
        except Exception as error:   # reported to the main process, which stops the study
            return job_error_reply(reply, error)

    def run(self, arm: str, seed: int) -> dict[str, Any]:
        """Carry the run of ``arm`` and ``seed`` to its end; returns its record."""
        relative = self.directory.run_path(arm, seed)
        path = self.directory.path / relative
        log = cast(TextIO, RunLog(path))   # a text stream to whatever writes to it
        if (path / RunDir.CONFIG).is_file():
            # Edited on its own (and perhaps resumed), it is no longer a run of the arm.
            check_run_config(RunDir(path).read_config(), self.study.run_config(arm, seed),
                             path / RunDir.CONFIG, arm)
        finished = path.is_dir() and RunDir(path).read_final() is not None
        if not finished:
            run = self._open(path, self.study, arm, seed, log)
            run.inline = True
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                try:
                    run.execute()
                except Interrupted as stop:
                    print(f"stopped by {stop}; checkpoint written", flush=True)
                    raise
        study, config = self.study, self.study.run_config(arm, seed)
        folder = self.directory.path
        baseline_fitness = threshold(folder, study, config, seed) \
            if isinstance(study.success, Baseline) else None
        record = run_record(study, arm, seed, str(relative), RunDir.open(path),
                            baseline_fitness)
        record["study_sha256"] = self.study_sha256
        if study.tune is not None and record["program"] is not None:
            record["tuned"], record["baselines"] = tuned_and_baselines(
                folder, study, config, seed, record["program"])
        return record

    @staticmethod
    def _open(path: Path, study: Study, arm: str, seed: int, log: TextIO) -> Run:
        """The run at ``path``: resumed from its checkpoint, or created (anew, when what
        is there holds nothing worth keeping)."""
        if path.is_dir():
            if (path / RunDir.CONFIG).is_file() and RunDir(path).load_checkpoint() is not None:
                return resume_run(str(path), out=log)
            print(f"{path}: no valid checkpoint; the run starts over", file=log)
            shutil.rmtree(path)
        # A run being created when the study was killed leaves a hidden partial folder.
        for partial in path.parent.glob(f".{path.name}.*.partial"):
            shutil.rmtree(partial, ignore_errors=True)
        run = start_run(study.run_config(arm, seed), str(path.parent), out=log, name=path.name)
        if run.rundir.path != path:
            run.rundir.release()
            raise EvozeroError(f"{path}: another process created this run at the same time")
        return run
