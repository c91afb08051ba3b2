"""``evozero cost``: the cost record of one cell's network, without training it.

The cell is a NAS-Bench-201 string (``|nor_conv_3x3~0|+...``) or a NAS-Bench-101 cell, as
the one line of JSON runs write (``{"matrix": [[...]], "ops": [...]}``) or as a matrix and
a comma-separated op list. Unless told otherwise the network is the benchmark's own, so
the counts can be set beside its tables: NAS-Bench-201's TinyNetwork (32x32x3 inputs, C =
16, N = 5 cells per stage, 10 classes) and NAS-Bench-101's CIFAR-10 network (32x32x3,
stem 128, 3 stacks of 3 cells, 10 classes).

The report holds the cost record (:func:`evozero.nas.devices.cost.cost_record`) and
``benchmark_flops``, the FLOPs as NAS-Bench-201 counts them (:func:`nb201_flops`).
Latencies a profile cannot run (peak memory over its limit) are ``null`` in JSON, with
``feasible`` saying why.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from evozero.config import Nas
from evozero.config.schema import check_setting
from evozero.errors import EvozeroError
from evozero.nas.devices.cost import cost_record, load_profiles, nb201_flops
from evozero.nas.reports.show import cost_lines
from evozero.nas.spaces.cells import Nb101Cell, Nb201Cell
from evozero.nas.spaces.network import Shape
from evozero.nas.spaces.skeleton import Skeleton, compile_cell
from evozero.nas.spaces.space import CellSpace
from evozero.runs.files import json_text


@dataclass(frozen=True)
class Network:
    """The network around the cell: input shape, classes and skeleton."""

    input_shape: Shape
    classes: int
    stem_channels: int
    stacks: int
    cells_per_stack: int


#: Each benchmark's own network (CIFAR-10 scale).
BENCHMARK_NETWORKS = {
    "nb201": Network((32, 32, 3), 10, stem_channels=16, stacks=3, cells_per_stack=5),
    "nb101": Network((32, 32, 3), 10, stem_channels=128, stacks=3, cells_per_stack=3),
}


def network_for(cell: Nb101Cell | Nb201Cell, input_shape: Shape | None = None,
                classes: int | None = None, stem_channels: int | None = None,
                stacks: int | None = None, cells_per_stack: int | None = None) -> Network:
    """The network of ``cell``'s benchmark with the numbers given (not None) instead of
    its own; the skeleton's numbers must be ones a run's ``nas`` section accepts."""
    own = BENCHMARK_NETWORKS[_space(cell)]
    for name, value, option in (("stem_channels", stem_channels, "--stem"),
                                ("stacks", stacks, "--stacks"),
                                ("cells_per_stack", cells_per_stack, "--cells-per-stack")):
        if value is not None:
            check_setting(Nas, name, value, f"evozero cost {option}")
    return Network(input_shape or own.input_shape, classes or own.classes,
                   stem_channels or own.stem_channels, stacks or own.stacks,
                   cells_per_stack or own.cells_per_stack)


def _space(cell: Nb101Cell | Nb201Cell) -> str:
    return "nb101" if isinstance(cell, Nb101Cell) else "nb201"


def parse_input_shape(text: str) -> Shape:
    """``HxWxC`` (e.g. ``32x32x3``; ``1x40x1`` for length-40 sequences) as a shape."""
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"must be HxWxC with three whole numbers >= 1 (e.g. 32x32x3 or "
                         f"1x40x1), got {text!r}")
    height, width, channels = (int(p) for p in parts)
    return height, width, channels


def parse_cell(text: str | None, matrix: str | None, ops: str | None) -> Nb101Cell | Nb201Cell:
    """The cell given as ``text`` (a NAS-Bench-201 string or a NAS-Bench-101 JSON line) or
    as a NAS-Bench-101 ``matrix`` (JSON) and comma-separated ``ops``."""
    if (matrix is None) != (ops is None):
        raise EvozeroError("--matrix and --ops go together: give both (a NAS-Bench-101 cell) "
                           "or neither")
    if matrix is not None and ops is not None:
        if text is not None:
            raise EvozeroError(f"give the cell once: either {text!r} or --matrix/--ops")
        try:
            rows = json.loads(matrix)
        except (json.JSONDecodeError, RecursionError) as error:
            raise EvozeroError(f"--matrix {matrix[:60]!r}: not JSON "
                               f"({str(error) or 'nested too deeply'}); write it as "
                               f"[[0,1,...],...]") from None
        text = json.dumps({"matrix": rows, "ops": [op.strip() for op in ops.split(",")]})
    if text is None:
        raise EvozeroError("give a cell: a NAS-Bench-201 string '|op~0|+|op~0|op~1|+...|', a "
                           "NAS-Bench-101 JSON line '{\"matrix\": [[...]], \"ops\": [...]}', or "
                           "--matrix and --ops")
    stripped = text.strip()
    if stripped.startswith("|"):
        return CellSpace(Nas(space="nb201")).parse(stripped)
    if stripped.startswith("{"):
        return CellSpace(Nas(space="nb101")).parse(stripped)
    raise EvozeroError(f"{text[:60]!r}: a cell is a NAS-Bench-201 string starting with '|' "
                       f"(e.g. '|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|') or a "
                       f"NAS-Bench-101 JSON object starting with '{{'")


def cost_report(cell: Nb101Cell | Nb201Cell, network: Network, batch: int = 1,
                train_batch: int | None = None, profiles_file: str | None = None,
                profile_names: tuple[str, ...] = ()) -> dict[str, Any]:
    """The cost record of ``cell`` in ``network`` (strict JSON values: infinite latencies
    are None), with the network described and ``benchmark_flops`` added."""
    space = _space(cell)
    profiles = load_profiles(profiles_file)
    unknown = [name for name in profile_names if name not in profiles]
    if unknown:
        raise EvozeroError(f"unknown device profile {unknown[0]!r}; known: "
                           f"{', '.join(sorted(profiles))}")
    if profile_names:
        profiles = {name: profiles[name] for name in profile_names}
    skeleton = Skeleton(network.stem_channels, network.stacks, network.cells_per_stack)
    arch = compile_cell(cell, skeleton, network.input_shape, network.classes)
    record = cost_record(arch, profiles, batch=batch, train_batch=train_batch)
    record["benchmark_flops"] = nb201_flops(arch)
    for key in ("latency_ms", "latency_ms_train_batch"):
        if key in record:
            record[key] = {name: ms if math.isfinite(ms) else None
                           for name, ms in record[key].items()}
    return {"cell": str(cell) if space == "nb201" else CellSpace(Nas(space="nb101")).text(cell),
            "space": space, "input_shape": list(network.input_shape),
            "classes": network.classes, "stem_channels": network.stem_channels,
            "stacks": network.stacks, "cells_per_stack": network.cells_per_stack,
            "cost": record}


def format_report(report: dict[str, Any]) -> str:
    """The report as text: the network, then one quantity per line."""
    cost = report["cost"]
    shape = "x".join(str(d) for d in report["input_shape"])
    lines = [f"cell ({report['space']}): {report['cell']}",
             f"network: {shape} inputs, stem {report['stem_channels']} channels, "
             f"{report['stacks']} stacks x {report['cells_per_stack']} cells, "
             f"{report['classes']} classes; batch {cost['batch']}"
             + (f", training batch {cost['train_batch']}" if cost["train_batch"] else "")]
    counts = cost_lines(dict(cost, latency_ms={}))
    after_flops = next(k for k, line in enumerate(counts) if line.split()[0] == "flops") + 1
    counts.insert(after_flops, f"  {'benchmark_flops':<28}{cost['benchmark_flops']:>14,}  "
                               f"({cost['benchmark_flops'] / 1e6:.5f} M, NAS-Bench-201's count)")
    lines += counts
    lines += cost_lines({"latency_ms": {name: ms for name, ms in cost["latency_ms"].items()
                                        if ms is not None}})
    for name, ms in sorted(cost.get("latency_ms_train_batch", {}).items()):
        if ms is not None:
            lines.append(f"  {'latency_ms_train[' + name + ']':<28}{ms:>14.4f}")
    for name, fits in sorted(cost["feasible"].items()):
        if not fits:
            lines.append(f"  latency_ms[{name}]: does not fit (peak activation memory over "
                         f"the profile's limit)")
    return "\n".join(lines)


def report_json(report: dict[str, Any]) -> str:
    """The report as strict JSON (no NaN or Infinity)."""
    return json_text(report, indent=2)
