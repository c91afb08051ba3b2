"""The run directory (docs/design.md): ``runs/<name>/`` with everything a run leaves behind.

::

    config.yaml        resolved config            (atomic replace)
    progress.jsonl     one JSON object per line   (append)
    discoveries.jsonl  one JSON object per line   (append)
    best.txt           best program so far        (atomic replace)
    final.json         selection / final results  (atomic replace)
    checkpoint/        NNNNNN.json + NNNNNN.npz, the newest two kept
    writer.lock        held (flock) by the one process writing the run, with its pid

Only JSON, YAML and ``.npz`` are written, and ``.npz`` files are read with
``allow_pickle=False``: opening someone else's run can never execute code. How files are
written so that a crash never leaves a mix is :mod:`evozero.runs.files`; the checkpoint
files are :mod:`evozero.runs.checkpoint_files`.

A run directory is built complete under a hidden temporary name and renamed into place,
so a reader never sees a half-made one. One process writes a run at a time: it holds an
exclusive ``flock`` on ``writer.lock``, which the kernel releases when the process ends,
however it ends. Corrupt data raises :class:`EvozeroError` naming the file (and line).
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evozero.config import Config, load_config
from evozero.config.cell_search import keys_added_since
from evozero.config.yaml_file import read_yaml
from evozero.errors import EvozeroError
from evozero.runs.checkpoint_files import CheckpointFolder
from evozero.runs.files import (
    DIRECTORY_MODE,
    append_line,
    atomic_write_text,
    fsync_directory,
    json_line,
    json_text,
    numbered_json_lines,
    read_json_lines,
    write_error,
)

__all__ = ["RunDir", "check_run_name", "release_lock", "take_lock"]

# Longest run name in bytes: with a "-NNNNN" suffix or the hidden temporary name it must
# still fit the 255 bytes most file systems allow for one name.
_NAME_BYTES = 200
# main process holds the lock and a killed main process frees it even if a worker lingers.
_HELD_LOCKS: set[int] = set()


def _close_inherited_locks() -> None:
    for fd in _HELD_LOCKS:
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)



def check_run_name(name: str) -> None:
    """EvozeroError unless ``name`` is usable as the name of one run directory."""
    problem = None
    if not isinstance(name, str) or not name or name in (".", ".."):
        problem = "it must be a non-empty name, not '.' or '..'"
    elif any(c in name for c in "/\\"):
        problem = "it contains '/' or '\\'"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        problem = "it contains a control character (newline, tab, NUL, ...)"
    elif len(name.encode("utf-8", "surrogatepass")) > _NAME_BYTES:
        problem = f"it is longer than {_NAME_BYTES} bytes"
    if problem is not None:
        raise EvozeroError(f"invalid run name {name!r} (config key name): {problem}; it "
                           f"must be usable as a directory name (printable characters, no "
                           f"'/' or '\\', not '.' or '..', at most {_NAME_BYTES} bytes)")



def _lock_holder(fd: int) -> str | None:
    """Who holds (or last held) the lock file open as ``fd``, from what it wrote there."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f"pid {int(holder['pid'])} on {holder['host']}, since {holder['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return None




# Reads of a busy lock's file (0.05 s apart) before saying its holder wrote no pid yet.
_PID_WAITS = 40


def take_lock(path: Path, busy: Callable[[str], str]) -> tuple[int | None, str | None]:
    """An exclusive ``flock`` on the lock file ``path``, which then holds this process's
    pid, host and start time: returns its descriptor (None when the file system cannot
    lock) and a note for the user (whose stale lock was taken over, or that locking
    failed; None: nothing to say).

    EvozeroError ``busy(holder)`` if another live process holds it. A lock left by a
    process that died is free (the kernel released it). A forked child closes its copy at
    once, so a killed holder frees the lock even if a child of it lingers.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise write_error(path, error) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        holder = _lock_holder(fd)
        # The holder writes its pid just after it locks: on a busy machine, wait a little
        # for it, so the message can name it.
        for _ in range(_PID_WAITS):
            if holder or error.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                break
            time.sleep(0.05)
            holder = _lock_holder(fd)
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EACCES):
            raise EvozeroError(busy(holder or "its pid is not written yet")) from None
        return None, (f"{path}: cannot lock on this file system ({error.strerror or error});"
                      f" make sure no other process writes here")
    previous = _lock_holder(fd)
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json_text(me) + "\n").encode("utf-8"), 0)
    except OSError as error:
        os.close(fd)
        raise write_error(path, error) from None
    _HELD_LOCKS.add(fd)
    # release_lock empties the file: a holder written there died holding it.
    note = None if previous is None else \
        f"took over the lock of {previous}, which ended without releasing it"
    return fd, note


def release_lock(fd: int | None) -> None:
    """Give up a lock :func:`take_lock` took (None: nothing to give up)."""
    if fd is None:
        return
    _HELD_LOCKS.discard(fd)
    try:
        os.ftruncate(fd, 0)
    except OSError:
        pass   # the lock is freed by close all the same
    os.close(fd)


class RunDir:
    """One run directory. Create a new one with :meth:`create`, open one with :meth:`open`.

    One process writes a run at a time (:meth:`acquire`); any number of readers
    (``evozero show``/``plot`` on a live run) may read at the same time, without the lock.
    """

    CONFIG = "config.yaml"
    PROGRESS = "progress.jsonl"
    DISCOVERIES = "discoveries.jsonl"
    EVALUATIONS = "evaluations.jsonl"
    BEST = "best.txt"
    FINAL = "final.json"
    CHECKPOINTS = "checkpoint"
    LOCK = "writer.lock"
    #: The JSON-lines files, which a checkpoint records the length of.
    RECORDS = (PROGRESS, DISCOVERIES, EVALUATIONS)

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        #: The checkpoints of this run.
        self.checkpoints = CheckpointFolder(self.checkpoint_dir)
        self._lock_fd: int | None = None
        #: What a writer should tell the user about taking the lock: whose stale lock it
        #: took over, or that the file system cannot lock (None: nothing to say).
        self.lock_note: str | None = None

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # --- creating and opening -----------------------------------------------------

    @classmethod
    def create(cls, root: str | os.PathLike, name: str,
               setup: Callable[[RunDir], None] | None = None) -> RunDir:
        """Make a new run directory ``root/name`` (or ``name-2``, ``name-3``, ...), with
        this process as its writer (see :meth:`acquire`).

        ``setup`` fills it (config, first checkpoint) while it still has a hidden
        temporary name; only then is it renamed into place, so no reader ever sees it
        half-made. An existing run is never reused or overwritten: the rename fails on a
        taken name (the lock file makes even a bare new run non-empty, and rename may
        replace only an empty directory), so processes starting at once get different
        directories.
        """
        check_run_name(name)
        root = Path(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
            building = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}.", suffix=".partial"))
        except OSError as error:
            raise EvozeroError(f"{root}: cannot create the runs directory or a run in it "
                               f"({error.strerror or error})") from None
        os.chmod(building, DIRECTORY_MODE)   # mkdtemp's 0700 would hide a shared run
        run = cls(building)
        try:
            run.acquire()
            if setup is not None:
                setup(run)
            run.path = cls._rename_into_place(building, root, name)
            run.checkpoints.path = run.checkpoint_dir
        except BaseException:
            run.release()
            shutil.rmtree(building, ignore_errors=True)
            raise
        return run

    @staticmethod
    def _rename_into_place(building: Path, root: Path, name: str) -> Path:
        for number in range(1, 100_000):
            path = root / (name if number == 1 else f"{name}-{number}")
            if os.path.lexists(path):
                continue
            try:
                # Fails on an existing non-empty directory or a file, so a run that
                # another process renamed here first is never replaced.
                os.rename(building, path)
            except OSError as error:
                if error.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR,
                                   errno.EISDIR):
                    continue
                raise EvozeroError(f"{path}: cannot create the run directory "
                                   f"({error.strerror or error})") from None
            fsync_directory(str(root))
            return path
        raise EvozeroError(f"{root}: too many runs named {name!r}; choose another name")

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunDir:
        """An existing run directory (one with a config.yaml); EvozeroError otherwise."""
        run = cls(path)
        if not run.path.exists():
            raise EvozeroError(f"{run.path}: no such run directory")
        if not run.path.is_dir():
            raise EvozeroError(f"{run.path}: not a run directory (it is a file)")
        if not (run.path / cls.CONFIG).is_file():
            raise EvozeroError(f"{run.path}: not a run directory (no {cls.CONFIG}); a run "
                               f"directory is made by `evozero run`")
        return run

    # --- the one writer ---------------------------------------------------------------

    def acquire(self) -> None:
        """Become the one writer of this run: an exclusive ``flock`` on writer.lock
        (:func:`take_lock`). EvozeroError naming the holder if another live process
        writes the run; :attr:`lock_note` says whose stale lock was taken over, or that
        the file system cannot lock."""
        self._lock_fd, self.lock_note = take_lock(
            self.path / self.LOCK,
            lambda who: f"{self.path}: another process is writing this run ({who}); one "
                        f"`evozero run` or `evozero resume` at a time may write a run "
                        f"directory: wait for it to end or stop it, then resume")

    def release(self) -> None:
        """Stop being the run's writer (a no-op if this object does not hold the lock)."""
        fd, self._lock_fd = self._lock_fd, None
        release_lock(fd)

    # --- whole files ------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        """Path of config.yaml."""
        return self.path / self.CONFIG

    @property
    def checkpoint_dir(self) -> Path:
        """Path of the checkpoint/ directory (it may not exist yet)."""
        return self.path / self.CHECKPOINTS

    def write_config(self, text: str) -> None:
        """Write config.yaml (the resolved config, see evozero.config.dump_config)."""
        atomic_write_text(self.config_path, text)

    def read_config_text(self) -> str:
        """The text of config.yaml."""
        return self._read_text(self.config_path)

    def read_config(self) -> Config:
        """config.yaml loaded and validated as a :class:`evozero.config.Config`; a key it
        lacks because it was written before the key existed takes the value that means
        what the run did (:func:`evozero.config.cell_search.keys_added_since`)."""
        data, _ = read_yaml(os.fspath(self.config_path), "config file")
        added = keys_added_since(data) if isinstance(data, dict) else {}
        return load_config(self.config_path, [f"{key}={json_text(value)}"
                                              for key, value in added.items()])

    def write_best(self, text: str) -> None:
        """Replace best.txt (the best program so far, text form, with its fitness)."""
        atomic_write_text(self.path / self.BEST, text)

    def read_best(self) -> str | None:
        """The text of best.txt, or None before the first one is written."""
        path = self.path / self.BEST
        return self._read_text(path) if path.exists() else None

    def write_final(self, result: dict) -> None:
        """Replace final.json (selection and final evaluation results)."""
        text = json_text(result, indent=2) + "\n"
        atomic_write_text(self.path / self.FINAL, text)

    def read_final(self) -> dict | None:
        """final.json, or None if the run has not finished."""
        path = self.path / self.FINAL
        if not path.exists():
            return None
        try:
            result = json.loads(self._read_text(path))
        except ValueError as error:
            raise EvozeroError(f"{path}: corrupt JSON ({error})") from None
        if not isinstance(result, dict):
            raise EvozeroError(f"{path}: expected a JSON object, got {type(result).__name__}")
        return result

    @staticmethod
    def _read_text(path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise EvozeroError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as error:
            raise EvozeroError(f"{path}: cannot read ({error})") from None

    # --- JSON lines ---------------------------------------------------------------------

    def append_progress(self, record: dict) -> None:
        """Append one progress event (a JSON object) to progress.jsonl."""
        append_line(self.path / self.PROGRESS, json_line(record))

    def append_discovery(self, record: dict) -> None:
        """Append one improvement of the best (a JSON object) to discoveries.jsonl."""
        append_line(self.path / self.DISCOVERIES, json_line(record))

    def append_evaluation(self, record: dict) -> None:
        """Append one evaluated network (a JSON object) to evaluations.jsonl (NAS runs)."""
        append_line(self.path / self.EVALUATIONS, json_line(record))

    def read_evaluations(self) -> list[dict]:
        """Every complete evaluation record, oldest first ([] if there is none yet)."""
        return read_json_lines(self.path / self.EVALUATIONS)

    def read_progress(self) -> list[dict]:
        """Every complete progress record, oldest first ([] if there is none yet)."""
        return read_json_lines(self.path / self.PROGRESS)

    def read_discoveries(self) -> list[dict]:
        """Every complete discovery record, oldest first ([] if there is none yet)."""
        return read_json_lines(self.path / self.DISCOVERIES)

    def discovery_lines(self) -> list[tuple[int, dict]]:
        """Every complete discovery record with its line number, for messages."""
        return numbered_json_lines(self.path / self.DISCOVERIES)

    def record_sizes(self) -> dict[str, int]:
        """Byte length of each JSON-lines file now (0 if missing): a checkpoint keeps them."""
        sizes = {}
        for name in self.RECORDS:
            try:
                sizes[name] = (self.path / name).stat().st_size
            except FileNotFoundError:
                sizes[name] = 0
        return sizes

    def cut_records(self, sizes: Any) -> None:
        """Cut each JSON-lines file back to its length in ``sizes`` (from a checkpoint).

        What lies beyond was written after that checkpoint by a process that then died;
        the resumed run writes it again, so keeping it would make progress.jsonl go back
        in time and repeat discoveries. Only the run's writer may call this.
        """
        if not isinstance(sizes, dict):
            return
        for name in self.RECORDS:
            size = sizes.get(name)
            path = self.path / name
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                continue
            try:
                if path.stat().st_size > size:
                    os.truncate(path, size)   # one system call: readers see before or after
            except FileNotFoundError:
                continue
            except OSError as error:
                raise write_error(path, error) from None

    # --- checkpoints (see evozero.runs.checkpoint_files) ---------------------------------

    def checkpoint_sequences(self) -> list[int]:
        """Sequence numbers of the checkpoints on disk (JSON files), oldest first."""
        return self.checkpoints.sequences()

    def save_checkpoint(self, state: dict[str, Any]) -> int:
        """Write ``state`` as the next checkpoint (:meth:`CheckpointFolder.save`)."""
        return self.checkpoints.save(state)

    def load_checkpoint(self, problems: list[str] | None = None) -> dict[str, Any] | None:
        """The newest valid checkpoint's state, or None (:meth:`CheckpointFolder.load`)."""
        return self.checkpoints.load(problems)
