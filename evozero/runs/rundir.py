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
``allow_pickle=False``: opening someone else's run can never execute code.

Crash safety: whole files are replaced atomically (temporary file in the same directory,
fsync, ``os.replace``), so a reader sees the old or the new version, never a mix. JSON
lines are appended with one ``os.write`` per line; a crash can leave at most a torn last
line without its newline, which readers skip (as optuna's journal reader does) and the
next append cuts off. A checkpoint's JSON file is written after its ``.npz`` and holds the
npz's sha256, so the JSON is the commit mark: a checkpoint without one does not exist.

A run directory is built complete under a hidden temporary name and renamed into place,
so a reader never sees a half-made one. One process writes a run at a time: it holds an
exclusive ``flock`` on ``writer.lock``, which the kernel releases when the process ends,
however it ends. A write that fails (disk full, read-only file system, a folder gone)
raises :class:`WriteError` naming the file; the files already there are untouched.

Corrupt data raises :class:`EvozeroError` naming the file (and line). A corrupt newest
checkpoint is *not* an error while an older one is valid: :meth:`RunDir.load_checkpoint`
falls back to it and reports the problem as a :class:`CheckpointWarning` (or appends it
to a list the caller passes in).
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import socket
import tempfile
import time
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from evozero.config import Config, load_config
from evozero.errors import EvozeroError

__all__ = ["CheckpointWarning", "RunDir", "WriteError", "atomic_write_bytes",
           "atomic_write_text", "check_run_name"]

#: Format tag in every checkpoint JSON file; a different tag is treated as corrupt.
CHECKPOINT_FORMAT = "evozero.checkpoint/1"
#: How many checkpoints save_checkpoint keeps (the newest and one to fall back to).
KEEP_CHECKPOINTS = 2
# Placeholder for an array inside the JSON part of a checkpoint.
_ARRAY_REF = "__ndarray__"
_CHECKPOINT_NAME = re.compile(r"^(\d+)\.json$")
# mkstemp creates files readable by the owner only; a run directory is meant to be shared
# (docs/design.md), so atomic writes get the mode a plain open() would give. Read once, at
# import, because os.umask can only be read by setting it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
# Longest run name in bytes: with a "-NNNNN" suffix or the hidden temporary name it must
# still fit the 255 bytes most file systems allow for one name.
_NAME_BYTES = 200
# What a failed write means for the user, by errno.
_WRITE_CAUSES = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                 errno.EROFS: "the file system is read-only",
                 errno.EACCES: "permission denied", errno.EPERM: "permission denied",
                 errno.ENOENT: "its folder does not exist",
                 errno.ENOTDIR: "a part of its folder path is a file",
                 errno.EISDIR: "it is a folder; give a file name"}
# Lock files this process holds; a forked worker closes its copies at once, so only the
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


class CheckpointWarning(UserWarning):
    """A checkpoint could not be loaded and an older one was used instead."""


class WriteError(EvozeroError):
    """A file could not be written (disk full, read-only, missing folder, ...)."""


def _write_error(path: str | os.PathLike, error: OSError) -> WriteError:
    """The clear error for ``error`` raised while writing ``path``."""
    detail = error.strerror or str(error)
    cause = _WRITE_CAUSES.get(error.errno or 0)
    if cause is not None and cause != detail.lower():
        detail = f"{cause}: {detail}"
    return WriteError(f"{os.fspath(path)}: cannot write ({detail})")


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


# --- atomic whole-file writes --------------------------------------------------------


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically: readers see the old or the new file."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise _write_error(path, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)))
    try:
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                                         suffix=".tmp")
    except OSError as error:
        raise _write_error(path, error) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), _FILE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise _write_error(path, error) from None
        raise
    _fsync_directory(directory)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` by ``text`` (UTF-8) atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _lock_holder(fd: int) -> str | None:
    """Who holds (or last held) the lock file open as ``fd``, from what it wrote there."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f"pid {int(holder['pid'])} on {holder['host']}, since {holder['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- JSON helpers ----------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    """numpy scalars and small arrays in progress records become plain JSON values."""
    if isinstance(value, np.str_):
        return str(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as JSON")


def _json_line(record: dict) -> bytes:
    if not isinstance(record, dict):
        raise TypeError(f"a JSON-lines record must be a dict, got {type(record).__name__}")
    # json.dumps never emits a raw newline, so one record is exactly one line.
    return (json.dumps(record, default=_json_default) + "\n").encode("utf-8")


def _append_line(path: Path, line: bytes) -> None:
    """Append one line with a single write call, first cutting off a torn last line.

    If the write fails part-way (disk full), the part written is cut off again, so the
    file keeps only whole lines."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as error:
        raise _write_error(path, error) from None
    size: Optional[int] = None
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            # A crash left half a line; appending after it would corrupt a middle line.
            size = _last_newline_end(fd, size)
            os.ftruncate(fd, size)
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view):]
    except OSError as error:
        if size is not None:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
        raise _write_error(path, error) from None
    finally:
        os.close(fd)


def _last_newline_end(fd: int, size: int) -> int:
    """Offset just after the last newline in the file (0 if there is none)."""
    block = 65536
    end = size
    while end > 0:
        start = max(0, end - block)
        chunk = os.pread(fd, end - start, start)
        index = chunk.rfind(b"\n")
        if index >= 0:
            return start + index + 1
        end = start
    return 0


def _read_json_lines(path: Path) -> list[dict]:
    """All complete records; a last line without a newline is a torn write and skipped."""
    return [record for _, record in _numbered_json_lines(path)]


def _numbered_json_lines(path: Path) -> list[tuple[int, dict]]:
    """(line number, record) of every complete record (see _read_json_lines)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as error:
        raise EvozeroError(f"{path}: cannot read ({error})") from None
    lines = data.split(b"\n")
    records = []
    for number, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError) as error:
            raise EvozeroError(f"{path}:{number}: corrupt line in the middle of the file "
                               f"({error}); every line must be one JSON object") from None
        if not isinstance(record, dict):
            raise EvozeroError(f"{path}:{number}: expected a JSON object, got "
                               f"{type(record).__name__}")
        records.append((number, record))
    return records


# --- checkpoint encoding: arrays to .npz, the rest to JSON -------------------------------


def _split_arrays(value: Any, where: str, arrays: dict[str, np.ndarray]) -> Any:
    """``value`` as JSON data, each ndarray replaced by {"__ndarray__": name} in ``arrays``."""
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError(f"checkpoint value {where}: object arrays need pickle; "
                            f"store numbers or strings instead")
        name = f"a{len(arrays)}"
        arrays[name] = value
        return {_ARRAY_REF: name}
    if isinstance(value, dict):
        if set(value) == {_ARRAY_REF}:
            raise TypeError(f"checkpoint value {where}: the key {_ARRAY_REF!r} is reserved")
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"checkpoint value {where}: keys must be strings, got {key!r}")
            result[key] = _split_arrays(item, f"{where}.{key}", arrays)
        return result
    if isinstance(value, (list, tuple)):
        return [_split_arrays(item, f"{where}[{i}]", arrays) for i, item in enumerate(value)]
    if isinstance(value, np.generic):
        return _json_default(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"checkpoint value {where}: cannot store {type(value).__name__}; use "
                    f"arrays, numbers, strings, None, lists or dicts")


def _join_arrays(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, dict):
        if set(value) == {_ARRAY_REF}:
            return arrays[value[_ARRAY_REF]]
        return {key: _join_arrays(item, arrays) for key, item in value.items()}
    if isinstance(value, list):
        return [_join_arrays(item, arrays) for item in value]
    return value


# --- the run directory -------------------------------------------------------------------


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
        # The checkpoint this object last saved or loaded: known to be good, so pruning
        # keeps it even when a newer-numbered file on disk is corrupt.
        self._last_good: int | None = None
        self._lock_fd: int | None = None
        #: What a writer should tell the user about taking the lock: whose stale lock it
        #: took over, or that the file system cannot lock (None: nothing to say).
        self.lock_note: str | None = None

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # --- creating and opening -----------------------------------------------------

    @classmethod
    def create(cls, root: str | os.PathLike, name: str,
               setup: Optional[Callable[[RunDir], None]] = None) -> RunDir:
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
        os.chmod(building, 0o777 & ~_UMASK)   # mkdtemp's 0700 would hide a shared run
        run = cls(building)
        try:
            run.acquire()
            if setup is not None:
                setup(run)
            run.path = cls._rename_into_place(building, root, name)
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
            _fsync_directory(str(root))
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
        """Become the one writer of this run: an exclusive ``flock`` on writer.lock, which
        then holds this process's pid, host and start time.

        EvozeroError naming the holder if another live process writes the run. A lock left
        by a process that died is free (the kernel released it); :attr:`lock_note` then
        says whose it was. Also a note, not an error, if the file system cannot lock.
        """
        path = self.path / self.LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise _write_error(path, error) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = _lock_holder(fd)
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EACCES):
                who = holder or "its pid is not written yet"
                raise EvozeroError(
                    f"{self.path}: another process is writing this run ({who}); one "
                    f"`evozero run` or `evozero resume` at a time may write a run "
                    f"directory: wait for it to end or stop it, then resume") from None
            self.lock_note = (f"{path}: cannot lock the run directory on this file system "
                              f"({error.strerror or error}); make sure no other process "
                              f"writes it")
            return
        previous = _lock_holder(fd)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(me) + "\n").encode("utf-8"), 0)
        except OSError as error:
            os.close(fd)
            raise _write_error(path, error) from None
        self._lock_fd = fd
        _HELD_LOCKS.add(fd)
        if previous is not None:   # release() empties the file: its holder died
            self.lock_note = f"took over the lock of {previous}, which ended without " \
                             f"releasing it"

    def release(self) -> None:
        """Stop being the run's writer (a no-op if this object does not hold the lock)."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        _HELD_LOCKS.discard(fd)
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass   # the lock is freed by close all the same
        os.close(fd)

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
        """config.yaml loaded and validated as a :class:`evozero.config.Config`."""
        return load_config(self.config_path)

    def write_best(self, text: str) -> None:
        """Replace best.txt (the best program so far, text form, with its fitness)."""
        atomic_write_text(self.path / self.BEST, text)

    def read_best(self) -> str | None:
        """The text of best.txt, or None before the first one is written."""
        path = self.path / self.BEST
        return self._read_text(path) if path.exists() else None

    def write_final(self, result: dict) -> None:
        """Replace final.json (selection and final evaluation results)."""
        text = json.dumps(result, default=_json_default, indent=2) + "\n"
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
        _append_line(self.path / self.PROGRESS, _json_line(record))

    def append_discovery(self, record: dict) -> None:
        """Append one improvement of the best (a JSON object) to discoveries.jsonl."""
        _append_line(self.path / self.DISCOVERIES, _json_line(record))

    def append_evaluation(self, record: dict) -> None:
        """Append one evaluated network (a JSON object) to evaluations.jsonl (NAS runs)."""
        _append_line(self.path / self.EVALUATIONS, _json_line(record))

    def read_evaluations(self) -> list[dict]:
        """Every complete evaluation record, oldest first ([] if there is none yet)."""
        return _read_json_lines(self.path / self.EVALUATIONS)

    def read_progress(self) -> list[dict]:
        """Every complete progress record, oldest first ([] if there is none yet)."""
        return _read_json_lines(self.path / self.PROGRESS)

    def read_discoveries(self) -> list[dict]:
        """Every complete discovery record, oldest first ([] if there is none yet)."""
        return _read_json_lines(self.path / self.DISCOVERIES)

    def discovery_lines(self) -> list[tuple[int, dict]]:
        """Every complete discovery record with its line number, for messages."""
        return _numbered_json_lines(self.path / self.DISCOVERIES)

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
                raise _write_error(path, error) from None

    # --- checkpoints ----------------------------------------------------------------------

    def checkpoint_sequences(self) -> list[int]:
        """Sequence numbers of the checkpoints on disk (JSON files), oldest first."""
        if not self.checkpoint_dir.is_dir():
            return []
        numbers = (_CHECKPOINT_NAME.match(entry.name) for entry in self.checkpoint_dir.iterdir())
        # Only names save_checkpoint writes: "1.json" would be looked up as 000001.json.
        return sorted(int(match.group(1)) for match in numbers
                      if match and match.group(0) == f"{int(match.group(1)):06d}.json")

    def save_checkpoint(self, state: dict[str, Any]) -> int:
        """Write ``state`` as checkpoint N+1 and delete all but two; returns N+1.

        The two kept are the new one and the one this object saved or loaded before it
        (normally N, but the checkpoint resumed from if N turned out to be corrupt).

        ``state`` may nest dicts (string keys) and lists of numpy arrays (any non-object
        dtype; they come back with dtype and shape), Python or numpy scalars (they come
        back as Python scalars), strings and None; tuples come back as lists.
        """
        if not isinstance(state, dict):
            raise TypeError(f"a checkpoint state must be a dict, got {type(state).__name__}")
        arrays: dict[str, np.ndarray] = {}
        body = _split_arrays(state, "state", arrays)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        npz = buffer.getvalue()
        try:
            self.checkpoint_dir.mkdir(exist_ok=True)
        except OSError as error:
            raise _write_error(self.checkpoint_dir, error) from None
        existing = self.checkpoint_sequences()
        number = existing[-1] + 1 if existing else 1
        stem = f"{number:06d}"
        atomic_write_bytes(self.checkpoint_dir / f"{stem}.npz", npz)
        meta = {"format": CHECKPOINT_FORMAT, "sequence": number, "npz": f"{stem}.npz",
                "sha256": hashlib.sha256(npz).hexdigest(), "arrays": sorted(arrays),
                "state": body}
        # Written last: the JSON (with the npz's hash) is what makes the checkpoint exist.
        atomic_write_text(self.checkpoint_dir / f"{stem}.json",
                          json.dumps(meta, allow_nan=True) + "\n")
        previous = [self._last_good] if self._last_good is not None else existing
        self._prune_checkpoints(keep={number, *previous[-(KEEP_CHECKPOINTS - 1):]})
        self._last_good = number
        return number

    def _prune_checkpoints(self, keep: set[int]) -> None:
        for entry in self.checkpoint_dir.iterdir():
            match = re.match(r"^(\d+)\.(json|npz)$", entry.name)
            stale_temp = entry.name.startswith(".") and entry.name.endswith(".tmp")
            if (match and int(match.group(1)) not in keep) or stale_temp:
                try:
                    entry.unlink()
                except FileNotFoundError:
                    pass

    def load_checkpoint(self, problems: list[str] | None = None) -> dict[str, Any] | None:
        """The newest valid checkpoint's state, or None if the run has no checkpoint.

        A corrupt newer checkpoint (bad JSON, missing or truncated npz, hash mismatch) is
        skipped for the next older one; each skipped checkpoint is reported as a
        :class:`CheckpointWarning`, or appended to ``problems`` instead when a list is
        given. If checkpoints exist but none is valid, EvozeroError lists the problems.
        """
        found: list[str] = []
        for number in reversed(self.checkpoint_sequences()):
            try:
                state = self._load_one(number)
            except _CorruptCheckpoint as error:
                found.append(str(error))
                continue
            for problem in found:
                message = f"{problem}; using checkpoint {number:06d} instead"
                if problems is not None:
                    problems.append(message)
                else:
                    warnings.warn(message, CheckpointWarning, stacklevel=2)
            self._last_good = number
            return state
        if found:
            raise EvozeroError("no usable checkpoint in " + str(self.checkpoint_dir) + ": "
                               + "; ".join(found))
        return None

    def _load_one(self, number: int) -> dict[str, Any]:
        stem = f"{number:06d}"
        json_path = self.checkpoint_dir / f"{stem}.json"
        try:
            meta = json.loads(json_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise _CorruptCheckpoint(f"{json_path}: unreadable ({error})") from None
        if (not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT
                or not isinstance(meta.get("state"), dict)
                or not isinstance(meta.get("arrays"), list)
                or not all(isinstance(name, str) for name in meta["arrays"])
                or not isinstance(meta.get("sha256"), str)):
            raise _CorruptCheckpoint(f"{json_path}: not an {CHECKPOINT_FORMAT} checkpoint")
        npz_path = self.checkpoint_dir / f"{stem}.npz"
        try:
            npz = npz_path.read_bytes()
        except OSError as error:
            raise _CorruptCheckpoint(f"{npz_path}: missing or unreadable ({error})") from None
        if hashlib.sha256(npz).hexdigest() != meta["sha256"]:
            raise _CorruptCheckpoint(f"{npz_path}: contents do not match the sha256 in "
                                     f"{json_path.name} (truncated or modified)")
        try:
            # allow_pickle=False: a checkpoint must never be able to run code.
            with np.load(io.BytesIO(npz), allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
            # BadZipFile and zlib.error are what a truncated or damaged zip raises.
            raise _CorruptCheckpoint(f"{npz_path}: unreadable .npz ({error})") from None
        missing = sorted(set(meta["arrays"]) - set(arrays))
        if missing:
            raise _CorruptCheckpoint(f"{npz_path}: missing arrays {', '.join(missing)}")
        try:
            return _join_arrays(meta["state"], arrays)
        except (KeyError, TypeError) as error:
            raise _CorruptCheckpoint(f"{json_path}: refers to an unknown array ({error})") \
                from None


class _CorruptCheckpoint(Exception):
    """One checkpoint cannot be loaded (internal: load_checkpoint falls back)."""
