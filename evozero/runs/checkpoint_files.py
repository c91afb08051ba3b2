"""The checkpoint folder of a run: each checkpoint is ``NNNNNN.npz`` (its arrays) and
``NNNNNN.json`` (everything else, the npz's sha256 and the names of its arrays).

The JSON file is strict JSON: a NaN or infinite float of the state is stored as
``{"__float__": "nan"}`` (or ``"inf"``, ``"-inf"``) and comes back as that float; older
checkpoints that wrote NaN and Infinity literally are still read.

The JSON file is written after its ``.npz`` and holds the npz's sha256, so the JSON is the
commit mark: a checkpoint without one does not exist. ``.npz`` files are read with
``allow_pickle=False``. A corrupt newest checkpoint is *not* an error while an older one is
valid: :meth:`CheckpointFolder.load` falls back to it and reports the problem as a
:class:`CheckpointWarning` (or appends it to a list the caller passes in). What goes into
a checkpoint is the run flow's business (:mod:`evozero.runs.checkpointing`).
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import re
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from evozero.errors import EvozeroError
from evozero.runs.files import (
    atomic_write_bytes,
    atomic_write_text,
    json_default,
    json_text,
    write_error,
)

#: Format tag in every checkpoint JSON file; a different tag is treated as corrupt.
CHECKPOINT_FILE_FORMAT = "evozero.checkpoint/1"
#: How many checkpoints CheckpointFolder.save keeps (the newest and one to fall back to).
KEEP_CHECKPOINTS = 2
# Placeholder for an array inside the JSON part of a checkpoint.
_ARRAY_REF = "__ndarray__"
# Placeholder for a NaN or infinite float (strict JSON has none), e.g. {"__float__": "-inf"}.
_FLOAT_REF = "__float__"
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_CHECKPOINT_NAME = re.compile(r"^(\d+)\.json$")


class CheckpointWarning(UserWarning):
    """A checkpoint could not be loaded and an older one was used instead."""


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
        if set(value) in ({_ARRAY_REF}, {_FLOAT_REF}):
            raise TypeError(f"checkpoint value {where}: the key {next(iter(value))!r} is "
                            f"reserved")
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"checkpoint value {where}: keys must be strings, got {key!r}")
            result[key] = _split_arrays(item, f"{where}.{key}", arrays)
        return result
    if isinstance(value, (list, tuple)):
        return [_split_arrays(item, f"{where}[{i}]", arrays) for i, item in enumerate(value)]
    if isinstance(value, np.generic):
        value = json_default(value)
    if isinstance(value, float) and not math.isfinite(value):
        return {_FLOAT_REF: "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"checkpoint value {where}: cannot store {type(value).__name__}; use "
                    f"arrays, numbers, strings, None, lists or dicts")


def _join_arrays(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, dict):
        if set(value) == {_ARRAY_REF}:
            return arrays[value[_ARRAY_REF]]
        if set(value) == {_FLOAT_REF}:
            return _NONFINITE[value[_FLOAT_REF]]
        return {key: _join_arrays(item, arrays) for key, item in value.items()}
    if isinstance(value, list):
        return [_join_arrays(item, arrays) for item in value]
    return value



class CheckpointFolder:
    """The checkpoint folder at ``path`` (created by the first :meth:`save`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # The checkpoint this object last saved or loaded: known to be good, so pruning
        # keeps it even when a newer-numbered file on disk is corrupt.
        self._last_good: int | None = None

    def sequences(self) -> list[int]:
        """Sequence numbers of the checkpoints on disk (JSON files), oldest first."""
        if not self.path.is_dir():
            return []
        numbers = (_CHECKPOINT_NAME.match(entry.name) for entry in self.path.iterdir())
        # Only names save_checkpoint writes: "1.json" would be looked up as 000001.json.
        return sorted(int(match.group(1)) for match in numbers
                      if match and match.group(0) == f"{int(match.group(1)):06d}.json")

    def save(self, state: dict[str, Any]) -> int:
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
        np.savez(buffer, **arrays)  # type: ignore[arg-type]  # stubs: a key could be allow_pickle
        npz = buffer.getvalue()
        try:
            self.path.mkdir(exist_ok=True)
        except OSError as error:
            raise write_error(self.path, error) from None
        existing = self.sequences()
        number = existing[-1] + 1 if existing else 1
        stem = f"{number:06d}"
        atomic_write_bytes(self.path / f"{stem}.npz", npz)
        meta = {"format": CHECKPOINT_FILE_FORMAT, "sequence": number, "npz": f"{stem}.npz",
                "sha256": hashlib.sha256(npz).hexdigest(), "arrays": sorted(arrays),
                "state": body}
        # Written last: the JSON (with the npz's hash) is what makes the checkpoint exist.
        atomic_write_text(self.path / f"{stem}.json", json_text(meta) + "\n")
        previous = [self._last_good] if self._last_good is not None else existing
        self._prune(keep={number, *previous[-(KEEP_CHECKPOINTS - 1):]})
        self._last_good = number
        return number

    def _prune(self, keep: set[int]) -> None:
        for entry in self.path.iterdir():
            match = re.match(r"^(\d+)\.(json|npz)$", entry.name)
            stale_temp = entry.name.startswith(".") and entry.name.endswith(".tmp")
            if (match and int(match.group(1)) not in keep) or stale_temp:
                try:
                    entry.unlink()
                except FileNotFoundError:
                    pass

    def load(self, problems: list[str] | None = None) -> dict[str, Any] | None:
        """The newest valid checkpoint's state, or None if the run has no checkpoint.

        A corrupt newer checkpoint (bad JSON, missing or truncated npz, hash mismatch) is
        skipped for the next older one; each skipped checkpoint is reported as a
        :class:`CheckpointWarning`, or appended to ``problems`` instead when a list is
        given. If checkpoints exist but none is valid, EvozeroError lists the problems.
        """
        found: list[str] = []
        for number in reversed(self.sequences()):
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
            raise EvozeroError("no usable checkpoint in " + str(self.path) + ": "
                               + "; ".join(found))
        return None

    def _load_one(self, number: int) -> dict[str, Any]:
        stem = f"{number:06d}"
        json_path = self.path / f"{stem}.json"
        try:
            meta = json.loads(json_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise _CorruptCheckpoint(f"{json_path}: unreadable ({error})") from None
        if (not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FILE_FORMAT
                or not isinstance(meta.get("state"), dict)
                or not isinstance(meta.get("arrays"), list)
                or not all(isinstance(name, str) for name in meta["arrays"])
                or not isinstance(meta.get("sha256"), str)):
            raise _CorruptCheckpoint(f"{json_path}: not an {CHECKPOINT_FILE_FORMAT} checkpoint")
        npz_path = self.path / f"{stem}.npz"
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
            raise _CorruptCheckpoint(f"{json_path}: refers to an unknown array or float ({error})") \
                from None


class _CorruptCheckpoint(Exception):
    """One checkpoint cannot be loaded (internal: load_checkpoint falls back)."""
