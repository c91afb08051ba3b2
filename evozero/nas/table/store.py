"""The tabular benchmark: its file and its lookups.

A table holds, for every NAS-Bench-201 cell (15,625, ``cell_index``), the training of its
network as one recipe records it. Cells that compile to the same network (the same
``Nb201Cell.hash``) share one row, so each network is trained once. Per row and training
seed it keeps, after every epoch, the training loss, the training accuracy (over the
epoch's batches, as they trained) and the validation accuracy; after the last epoch the
test accuracy; and the CPU seconds the training took. Per row, the parameters, the FLOPs
and the latency estimate of every device profile. Seed 0 is trained for every row,
further seeds for a sample; a seed not trained is NaN.

The file is one ``.npz`` (no pickle: numeric arrays and the metadata as one JSON string),
read with every array's shape, type and range checked, so a corrupt, truncated or edited
file is refused with a message naming it.
"""
from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from evozero.config.cell_search import SHIPPED_TABLES
from evozero.errors import EvozeroError
from evozero.evaluation.npz_files import read_npz_arrays_header
from evozero.nas.spaces.cells import NB201_OPS, Nb201Cell
from evozero.runs.files import atomic_write_bytes, json_text

#: The tables that come with evozero, by name (package data).
SHIPPED = {name: Path(__file__).resolve().parent / "data" / f"{name}.npz"
           for name in SHIPPED_TABLES}
#: The table format this code reads and writes.
TABLE_FORMAT = 1
#: Cells of the NAS-Bench-201 space: five ops on each of six edges.
NB201_CELLS = len(NB201_OPS) ** 6
_EDGES = 6
_PLACES = len(NB201_OPS) ** np.arange(_EDGES - 1, -1, -1)

# name: (dtype kind, trailing shape after the rows: "seeds", "epochs", "profiles")
_ROW_ARRAYS = {
    "train_loss": ("f", ("seeds", "epochs")),
    "train_accuracy": ("f", ("seeds", "epochs")),
    "valid_accuracy": ("f", ("seeds", "epochs")),
    "test_accuracy": ("f", ("seeds",)),
    "seconds": ("f", ("seeds",)),
    "params": ("i", ()),
    "flops": ("i", ()),
    "latency_ms": ("f", ("profiles",)),
    "cell": ("i", ()),
}


def cell_index(cell: Nb201Cell) -> int:
    """The cell's place among the 15,625: its ops (by ``NB201_OPS`` number) read as a
    base-5 number, first edge most significant."""
    return int(sum(NB201_OPS.index(op) * int(p) for op, p in zip(cell.edge_ops, _PLACES)))


def cell_of_index(index: int) -> Nb201Cell:
    """The cell at ``index`` (see :func:`cell_index`)."""
    if not 0 <= index < NB201_CELLS:
        raise EvozeroError(f"cell index {index} is outside 0 .. {NB201_CELLS - 1}")
    return Nb201Cell(tuple(NB201_OPS[(index // int(p)) % len(NB201_OPS)] for p in _PLACES))


def cell_ops(indices: ArrayLike) -> np.ndarray:
    """The op numbers ``(n, 6)`` of cells given by index (vectorised)."""
    indices = np.asarray(indices, dtype=np.int64)
    return (indices[:, None] // _PLACES[None, :]) % len(NB201_OPS)


def ops_index(ops: ArrayLike) -> np.ndarray:
    """The indices of cells given by op numbers ``(n, 6)`` (vectorised)."""
    return np.asarray(ops, dtype=np.int64) @ _PLACES


@dataclass(frozen=True, eq=False)
class Table:
    """A tabular benchmark in memory (see the module docstring). ``row`` maps each of the
    15,625 cells to its network's row; the other arrays are per row."""

    meta: dict[str, Any]
    row: np.ndarray             # int32 (15625,)
    cell: np.ndarray            # int32 (rows,): one cell of each row (the first by index)
    train_loss: np.ndarray      # float32 (rows, seeds, epochs)
    train_accuracy: np.ndarray  # float32 (rows, seeds, epochs)
    valid_accuracy: np.ndarray  # float32 (rows, seeds, epochs)
    test_accuracy: np.ndarray   # float32 (rows, seeds)
    seconds: np.ndarray         # float32 (rows, seeds)
    params: np.ndarray          # int64 (rows,)
    flops: np.ndarray           # int64 (rows,)
    latency_ms: np.ndarray      # float32 (rows, profiles); inf: does not fit the profile

    @property
    def epochs(self) -> int:
        """Epochs of the recipe (the last is the table's final accuracy)."""
        return int(self.valid_accuracy.shape[2])

    @property
    def seeds(self) -> int:
        """Training seeds the table has room for (seed 0 trained for every row)."""
        return int(self.valid_accuracy.shape[1])

    @property
    def profiles(self) -> list[str]:
        """Device profiles of the latency column, in order."""
        return list(self.meta["profiles"])

    def trained(self) -> np.ndarray:
        """Boolean ``(rows, seeds)``: which seeds of each row were trained."""
        return ~np.isnan(self.test_accuracy)

    def rows_of(self, indices: np.ndarray) -> np.ndarray:
        """The rows of cells given by index."""
        return self.row[np.asarray(indices, dtype=np.int64)]

    def record(self, cell: Nb201Cell | str) -> dict[str, Any]:
        """Everything the table holds about ``cell`` (a cell or its string), as plain
        JSON-able values (NaN seeds left out)."""
        if isinstance(cell, str):
            cell = Nb201Cell.parse(cell)
        index = cell_index(cell)
        row = int(self.row[index])
        seeds = []
        for seed in range(self.seeds):
            if np.isnan(self.test_accuracy[row, seed]):
                continue
            seeds.append({
                "seed": seed,
                "train_loss": _floats(self.train_loss[row, seed]),
                "train_accuracy": _floats(self.train_accuracy[row, seed]),
                "valid_accuracy": _floats(self.valid_accuracy[row, seed]),
                "test_accuracy": float(self.test_accuracy[row, seed]),
                "seconds": float(self.seconds[row, seed]),
            })
        return {"cell": str(cell), "index": index, "row": row,
                "same_network_as": str(cell_of_index(int(self.cell[row]))),
                "params": int(self.params[row]), "flops": int(self.flops[row]),
                "latency_ms": {name: float(v) for name, v in
                               zip(self.profiles, self.latency_ms[row])},
                "test_accuracy": float(np.nanmean(self.test_accuracy[row])),
                "seeds": seeds}

    def save(self, path: str | Path) -> None:
        """Write the table to ``path`` (a compressed ``.npz``), atomically."""
        arrays = {name: getattr(self, name) for name in _ROW_ARRAYS}
        arrays["row"] = self.row
        arrays["meta"] = np.array(json_text(dict(self.meta, format=TABLE_FORMAT)))
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        atomic_write_bytes(path, buffer.getvalue())


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in values]


def table_path(name_or_path: str | Path) -> Path:
    """The file of a shipped table's name (:data:`SHIPPED`), or the path given."""
    return SHIPPED.get(str(name_or_path), Path(name_or_path))


def load_table(name_or_path: str | Path) -> Table:
    """The table named (a shipped one) or in the file given, checked whole
    (EvozeroError naming the file otherwise)."""
    path = table_path(name_or_path)
    where = str(path)
    if not path.is_file():
        raise EvozeroError(f"{where}: no table file there (the shipped tables: "
                           f"{', '.join(SHIPPED)}; or build one with `evozero table build`)")
    # The headers first: a damaged or crafted file is refused before anything is
    # decompressed, so it can neither exhaust the memory nor hold objects.
    numeric = ("row", *_ROW_ARRAYS)
    read_npz_arrays_header(where, numeric, [numeric],
                           "the arrays of a table, as `evozero table build` writes them")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise EvozeroError(f"{where}: not a readable table file ({error}); rebuild it "
                           f"with `evozero table build` or restore it") from None
    return table_from_arrays(arrays, where)


def table_from_arrays(arrays: Mapping[str, np.ndarray], where: str) -> Table:
    """A :class:`Table` from the arrays of its file, every shape, type and range checked."""
    missing = sorted({"meta", "row", *_ROW_ARRAYS} - set(arrays))
    if missing:
        raise EvozeroError(f"{where}: not a table file (missing {', '.join(missing)})")
    meta = _meta(arrays["meta"], where)
    row = arrays["row"]
    if row.shape != (NB201_CELLS,) or row.dtype.kind != "i":
        raise EvozeroError(f"{where}: row must be {NB201_CELLS} whole numbers")
    rows = int(arrays["cell"].shape[0]) if arrays["cell"].ndim == 1 else -1
    if rows < 1 or row.min() < 0 or row.max() >= rows:
        raise EvozeroError(f"{where}: row must index the {max(rows, 0)} networks of the table")
    sizes = {"seeds": None, "epochs": None, "profiles": len(meta["profiles"])}
    for name, (kind, trailing) in _ROW_ARRAYS.items():
        array = arrays[name]
        if array.dtype.kind != kind or array.ndim != 1 + len(trailing) \
                or array.shape[0] != rows:
            raise EvozeroError(f"{where}: {name} must be a {'float' if kind == 'f' else 'whole'}"
                               f" array of {rows} rows x {' x '.join(trailing) or 'one value'}")
        for axis, label in zip(array.shape[1:], trailing):
            if sizes[label] is None:
                sizes[label] = axis
            elif sizes[label] != axis:
                raise EvozeroError(f"{where}: {name} has {axis} {label}, other arrays "
                                   f"{sizes[label]}")
    cell = arrays["cell"]
    if cell.min() < 0 or cell.max() >= NB201_CELLS or not np.array_equal(row[cell],
                                                                          np.arange(rows)):
        raise EvozeroError(f"{where}: cell must name, for every row, a cell of that row")
    test = arrays["test_accuracy"]
    trained = ~np.isnan(test)
    if not trained[:, 0].all():
        raise EvozeroError(f"{where}: seed 0 must be trained for every network")
    for name in ("train_accuracy", "valid_accuracy"):
        values = arrays[name]
        if np.isnan(values).any(axis=2).__ne__(~trained).any() or np.any(
                (values[trained] < 0) | (values[trained] > 1)):
            raise EvozeroError(f"{where}: {name} must be in [0, 1] for every trained seed "
                               f"and epoch, NaN for the others")
    if np.any((test[trained] < 0) | (test[trained] > 1)):
        raise EvozeroError(f"{where}: test_accuracy must be in [0, 1]")
    seconds = arrays["seconds"]
    if np.isnan(seconds).__ne__(~trained).any() or np.any(seconds[trained] < 0):
        raise EvozeroError(f"{where}: seconds must be >= 0 for every trained seed")
    latency = arrays["latency_ms"]
    if np.any(arrays["params"] < 0) or np.any(arrays["flops"] < 0) \
            or np.isnan(latency).any() or np.any(latency < 0):
        raise EvozeroError(f"{where}: params, flops and latency_ms must be >= 0 (latency "
                           f"infinite where a network does not fit a profile)")
    return Table(meta=meta, row=row.astype(np.int32), cell=cell.astype(np.int32),
                 train_loss=arrays["train_loss"].astype(np.float32),
                 train_accuracy=arrays["train_accuracy"].astype(np.float32),
                 valid_accuracy=arrays["valid_accuracy"].astype(np.float32),
                 test_accuracy=test.astype(np.float32),
                 seconds=seconds.astype(np.float32),
                 params=arrays["params"].astype(np.int64),
                 flops=arrays["flops"].astype(np.int64),
                 latency_ms=arrays["latency_ms"].astype(np.float32))


def _meta(array: np.ndarray, where: str) -> dict[str, Any]:
    if array.dtype.kind != "U" or array.shape != ():
        raise EvozeroError(f"{where}: meta must be one JSON string")
    try:
        meta = json.loads(str(array))
    except json.JSONDecodeError as error:
        raise EvozeroError(f"{where}: meta is not JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != TABLE_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise EvozeroError(f"{where}: a table of format {found!r}, this evozero reads "
                           f"format {TABLE_FORMAT}")
    for key, kind in (("recipe", dict), ("profiles", list)):
        if not isinstance(meta.get(key), kind):
            raise EvozeroError(f"{where}: meta.{key} must be a {kind.__name__}")
    return meta
