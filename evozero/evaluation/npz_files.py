"""Reading a user's .npz data file safely, for program-search tasks and for the data of a
cell search alike: the archive's directory and the arrays' headers are checked before
anything is decompressed, and arrays are loaded without pickle, so a data file can
neither exhaust the memory nor run code.
"""
from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from evozero.errors import EvozeroError
from evozero.resources import available_memory, format_bytes

# What a readable .npz file is, for the errors that say it is not.
_ARCHIVE = "a zip archive of .npy arrays, as numpy.savez writes"


class NpzHeader(NamedTuple):
    """What a data file holds, from its headers: each array's shape, and the bytes that
    loading the arrays takes (as stored plus their float64 copies)."""

    shapes: dict[str, tuple[int, ...]]
    load_bytes: int


def read_npz_arrays_header(path: str, names: Sequence[str], pairs: Sequence[tuple[str, ...]],
                           needs: str) -> NpzHeader:
    """The :class:`NpzHeader` of the arrays ``names`` in the .npz file ``path``, read from
    the archive's directory and the arrays' headers only. The first pair of ``pairs`` is
    required, every other pair optional but given whole; ``needs`` says what the file
    must hold, for the error about a missing array. Checks that the file is a zip of .npy
    arrays, that each array is real-valued numbers (not objects, text or complex) and is
    as large as its header says, and that loading them fits in memory."""
    if not os.path.isfile(path):
        raise EvozeroError(f"{path}: no such .npz file")
    if os.path.getsize(path) == 0:
        raise EvozeroError(f"{path}: not a readable .npz file: it is empty (expected "
                           f"{_ARCHIVE})")
    shapes: dict[str, tuple[int, ...]] = {}
    need = 0
    try:
        if not zipfile.is_zipfile(path):
            raise EvozeroError(f"{path}: not a readable .npz file: not {_ARCHIVE} (or a "
                               f"truncated one)")
        with zipfile.ZipFile(path) as archive:
            members = {info.filename[:-4]: info for info in archive.infolist()
                       if info.filename.endswith(".npy")}
            missing = [key for key in pairs[0] if key not in members]
            if missing:
                raise EvozeroError(f"{path}: missing array(s) {', '.join(missing)}; the file "
                                   f"needs {needs}; found "
                                   f"{', '.join(sorted(members)) or 'nothing'}")
            for first, second in pairs[1:]:
                if (first in members) != (second in members):
                    raise EvozeroError(f"{path}: {first} and {second} must be given together")
            for key in names:
                if key not in members:
                    continue
                with archive.open(members[key]) as member:
                    shape, dtype = _npy_header(member)
                _check_dtype(path, key, dtype)
                values = math.prod(shape)
                if values * dtype.itemsize > members[key].file_size:
                    raise EvozeroError(
                        f"{path}: array {key} declares shape {shape} ({dtype}) but the archive "
                        f"holds only {members[key].file_size} bytes of it; the file is "
                        f"truncated or corrupt")
                shapes[key] = shape
                # The array as stored plus its float64 copy.
                need += values * (dtype.itemsize + 8)
    except EvozeroError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
            ValueError, NotImplementedError) as error:
        raise EvozeroError(f"{path}: not a readable .npz file ({error})") from None
    have = available_memory()
    if need > have:
        raise EvozeroError(f"{path}: its arrays decompress to {format_bytes(need)} as float64 "
                           f"data, more than the {format_bytes(have)} of memory available")
    return NpzHeader(shapes, need)


def load_npz_arrays(path: str, header: NpzHeader) -> dict[str, np.ndarray]:
    """The arrays ``header`` names, as float64, each checked to hold finite values only."""
    try:
        # allow_pickle=False: a data file must never be able to run code.
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key].astype(np.float64) for key in header.shapes}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as error:
        raise EvozeroError(f"{path}: not a readable .npz file ({error})") from None
    for key, array in arrays.items():
        if not np.all(np.isfinite(array)):
            raise EvozeroError(f"{path}: {key} contains NaN or infinite values")
    return arrays


def _npy_header(member: Any) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(member)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
    shape, _, dtype = read(member)
    return tuple(int(n) for n in shape), dtype


def _check_dtype(path: str, key: str, dtype: np.dtype) -> None:
    if np.issubdtype(dtype, np.complexfloating):
        raise EvozeroError(f"{path}: {key} holds complex numbers (dtype {dtype}); the data "
                           f"must be real numbers (store the real part, or real and "
                           f"imaginary parts as separate features)")
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise EvozeroError(f"{path}: {key} must be numeric, got dtype {dtype}")
