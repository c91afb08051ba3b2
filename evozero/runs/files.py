"""Files that survive a crash: whole files replaced atomically, JSON lines appended.

Whole files are replaced atomically (temporary file in the same directory, fsync,
``os.replace``), so a reader sees the old or the new version, never a mix. JSON lines are
appended with one ``os.write`` per line; a crash can leave at most a torn last line
without its newline, which readers skip (as optuna's journal reader does) and the next
append cuts off. A write that fails (disk full, read-only file system, a folder gone)
raises :class:`WriteError` naming the file; the files already there are untouched.
Every JSON file and line is strict JSON (:func:`json_text`): NaN and Infinity, which Python
writes by default but JSON has not, become null, so any JSON reader can read a run.
What the files of a run are is :mod:`evozero.runs.rundir`'s business.
"""
from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from evozero.errors import EvozeroError

# mkstemp creates files readable by the owner only; a run directory is meant to be shared
# (docs/design.md), so atomic writes get the mode a plain open() would give. Read once, at
# import, because os.umask can only be read by setting it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK
#: Mode of a new run directory (mkdtemp's 0700 would hide a shared run).
DIRECTORY_MODE = 0o777 & ~_UMASK
# What a failed write means for the user, by errno.
_WRITE_CAUSES = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                 errno.EROFS: "the file system is read-only",
                 errno.EACCES: "permission denied", errno.EPERM: "permission denied",
                 errno.ENOENT: "its folder does not exist",
                 errno.ENOTDIR: "a part of its folder path is a file",
                 errno.EISDIR: "it is a folder; give a file name"}
# Lock files this process holds; a forked worker closes its copies at once, so only the


class WriteError(EvozeroError):
    """A file could not be written (disk full, read-only, missing folder, ...)."""


def write_error(path: str | os.PathLike, error: OSError) -> WriteError:
    """The clear error for ``error`` raised while writing ``path``."""
    detail = error.strerror or str(error)
    cause = _WRITE_CAUSES.get(error.errno or 0)
    if cause is not None and cause != detail.lower():
        detail = f"{cause}: {detail}"
    return WriteError(f"{os.fspath(path)}: cannot write ({detail})")





def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically: readers see the old or the new file."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise write_error(path, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)))
    try:
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                                         suffix=".tmp")
    except OSError as error:
        raise write_error(path, error) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)
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
            raise write_error(path, error) from None
        raise
    fsync_directory(directory)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` by ``text`` (UTF-8) atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_directory(directory: str) -> None:
    """Make a rename inside ``directory`` durable."""
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





def json_text(value: Any, **layout: Any) -> str:
    """``value`` as strict JSON text (RFC 8259): numpy values become plain ones
    (:func:`json_default`) and every NaN or infinite float becomes null, so the text never
    holds NaN or Infinity; ``layout`` goes to :func:`json.dumps` (``indent``,
    ``sort_keys``). A record that must say why a value is missing carries a field for it
    (e.g. ``diverged`` beside a training loss)."""
    return json.dumps(finite_json(value), allow_nan=False, **layout)


def finite_json(value: Any) -> Any:
    """``value`` as plain JSON data, non-finite floats replaced by None (see json_text)."""
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(item) for item in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return finite_json(json_default(value))


def json_default(value: Any) -> Any:
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


def json_line(record: dict) -> bytes:
    """One JSON-lines record: strict JSON text (:func:`json_text`) and a newline."""
    if not isinstance(record, dict):
        raise TypeError(f"a JSON-lines record must be a dict, got {type(record).__name__}")
    # json.dumps never emits a raw newline, so one record is exactly one line.
    return (json_text(record) + "\n").encode("utf-8")


def append_line(path: Path, line: bytes) -> None:
    """Append one line with a single write call, first cutting off a torn last line.

    If the write fails part-way (disk full), the part written is cut off again, so the
    file keeps only whole lines."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as error:
        raise write_error(path, error) from None
    size: int | None = None
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
        raise write_error(path, error) from None
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


def read_json_lines(path: Path) -> list[dict]:
    """All complete records; a last line without a newline is a torn write and skipped."""
    return [record for _, record in numbered_json_lines(path)]


def numbered_json_lines(path: Path) -> list[tuple[int, dict]]:
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


# What a field check calls each kind of JSON value.
_KIND_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "text",
               dict: "a mapping", list: "a list", type(None): "null"}


def check_fields(record: dict, fields: dict[str, Any], where: str) -> None:
    """Raise EvozeroError naming ``where`` and the key unless every key of ``fields`` is in
    ``record`` with a value of its type (or one of its tuple of types; a bool is a number
    only where bool is named), so a reader of a run's files never meets a KeyError."""
    for key, kinds in fields.items():
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        value = record.get(key)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            # A float field takes whole numbers too: it is "a number".
            named = [kind for kind in kinds if not (kind is int and float in kinds)]
            allowed = " or ".join(_KIND_NAMES.get(kind, kind.__name__) for kind in named)
            raise EvozeroError(f"{where}: {key!r} must be {allowed}, got {str(value)[:80]}")
