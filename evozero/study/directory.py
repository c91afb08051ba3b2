"""The study directory (README, "Studies")::

    study.yaml          the resolved study and every arm's resolved config
    binding.json        what the study is bound to, and its hash (evozero.study.binding)
    runs.jsonl          one strict-JSON line per finished run (append)
    summary.json        the statistics (evozero.study.summary)
    runs/ARM/seed-N/    the run directories (ordinary runs)
    baselines/          tuned baselines, per seed, shared by the arms
    study.lock          held (flock) by the one process running the study

A directory is a study when it holds study.yaml and runs.jsonl. runs.jsonl is appended
one whole line at a time after a run's directory is complete; a torn last line (a crash
mid-append) is ignored on reading and cut off by the next append.
"""
from __future__ import annotations

import os
from pathlib import Path

from evozero.errors import EvozeroError
from evozero.runs.files import append_line, atomic_write_text, json_line, read_json_lines
from evozero.runs.rundir import release_lock, take_lock
from evozero.study.binding import write_binding
from evozero.study.spec import Study, read_resolved_study, resolved_study_text
from evozero.study.summary import RUNS_FILE, STUDY_FILE, is_study, read_records

LOCK_FILE = "study.lock"
RUNS_FOLDER = "runs"


class StudyDir:
    """One study directory: make it with :meth:`create`, open it with :meth:`open`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None
        #: What to tell the user about the lock (a stale one taken over), or None.
        self.lock_note: str | None = None

    @classmethod
    def create(cls, path: str | os.PathLike, study: Study) -> StudyDir:
        """Make the study directory ``path`` for ``study`` and become its writer.
        EvozeroError if ``path`` holds anything but an empty folder: the same study
        (continue it with `evozero resume`), another study, or other files."""
        directory = cls(path)
        if directory.path.exists() and not directory.path.is_dir():
            raise EvozeroError(f"{directory.path}: is a file; give --out a folder")
        if is_study(directory.path):
            if _same_study(directory.path / STUDY_FILE, study):
                raise EvozeroError(f"{directory.path}: holds this study already; continue "
                                   f"it with `evozero resume {directory.path}`")
            raise EvozeroError(f"{directory.path}: holds another study; give this one "
                               f"another directory with --out")
        if directory.path.is_dir() and any(directory.path.iterdir()):
            raise EvozeroError(f"{directory.path}: the folder is not empty and is not a "
                               f"study; give the study a new directory with --out")
        try:
            directory.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise EvozeroError(f"{directory.path}: cannot create the study directory "
                               f"({error.strerror or error})") from None
        directory.acquire()
        # study.yaml and its binding first: the directory becomes a study with
        # runs.jsonl, once complete.
        atomic_write_text(directory.path / STUDY_FILE, resolved_study_text(study))
        write_binding(directory.path, study)
        atomic_write_text(directory.path / RUNS_FILE, "")
        return directory

    @classmethod
    def open(cls, path: str | os.PathLike) -> StudyDir:
        """An existing study directory; EvozeroError otherwise."""
        directory = cls(path)
        if not directory.path.is_dir():
            raise EvozeroError(f"{directory.path}: no such study directory")
        if not is_study(directory.path):
            raise EvozeroError(f"{directory.path}: not a study directory (a study holds "
                               f"{STUDY_FILE} and {RUNS_FILE}; `evozero study FILE` makes one)")
        return directory

    def acquire(self) -> None:
        """Become the one process running this study (a ``flock`` on study.lock)."""
        self._lock_fd, self.lock_note = take_lock(
            self.path / LOCK_FILE,
            lambda who: f"{self.path}: another process is running this study ({who}); one "
                        f"`evozero study` or `evozero resume` at a time may run a study: "
                        f"wait for it to end or stop it, then resume")

    def release(self) -> None:
        """Stop being the study's writer (a no-op if this object does not hold it)."""
        fd, self._lock_fd = self._lock_fd, None
        release_lock(fd)

    def study(self) -> Study:
        """The study of study.yaml (:func:`evozero.study.spec.read_resolved_study`)."""
        return read_resolved_study(self.path / STUDY_FILE)

    def records(self, study: Study) -> list[dict]:
        """Every recorded run, oldest first; EvozeroError naming the line of one that is
        not JSON, not a run of ``study`` or recorded twice (a torn last line is skipped)."""
        read_records(self.path, study.arm_names)
        return read_json_lines(self.path / RUNS_FILE)

    def append(self, record: dict) -> None:
        """Record one finished run (one line, appended whole)."""
        append_line(self.path / RUNS_FILE, json_line(record))

    def run_path(self, arm: str, seed: int) -> Path:
        """The run directory of ``arm`` and ``seed``, relative to the study directory."""
        return Path(RUNS_FOLDER) / arm / f"seed-{seed}"


def _same_study(path: Path, study: Study) -> bool:
    """Whether the study.yaml at ``path`` is ``study`` (its workers aside)."""
    try:
        existing = read_resolved_study(path)
    except EvozeroError:
        return False
    fields = ("name", "seeds", "backend", "address", "success", "tune", "arms", "compare",
              "configs")
    return all(getattr(existing, f) == getattr(study, f) for f in fields)
