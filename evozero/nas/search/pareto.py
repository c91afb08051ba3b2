"""Pareto dominance between networks (higher validation accuracy, lower cost): the test
the NAS island's selection uses and the front a NAS run reports."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def dominated(point: tuple[float, float], others: list[tuple[float, float]]) -> bool:
    """Whether (accuracy, cost) ``point`` is beaten by one of ``others`` (no worse in
    both, better in one)."""
    return any(a >= point[0] and c <= point[1] and (a > point[0] or c < point[1])
               for a, c in others)


def pareto_front(records: Sequence[dict[str, Any]], cost: str, profile: str
                 ) -> list[dict[str, Any]]:
    """The non-dominated networks (higher validation accuracy, lower ``cost``) among
    ``records``, one per cell hash, cheapest first."""
    unique: dict[str, dict[str, Any]] = {}
    for record in records:
        if record["valid_accuracy"] is not None and not math.isnan(record["valid_accuracy"]):
            unique.setdefault(record["hash"], record)
    points = {h: (r["valid_accuracy"], cost_of(r["cost"], cost, profile))
              for h, r in unique.items()}
    everything = list(points.values())
    front = [{"genome": unique[h]["genome"], "hash": h, "valid_accuracy": p[0],
              "test_accuracy": unique[h]["test_accuracy"], cost: p[1]}
             for h, p in points.items() if not dominated(p, everything)]
    return sorted(front, key=lambda f: (f[cost], -f["valid_accuracy"]))


def cost_of(record: dict[str, Any], name: str, profile: str) -> float:
    """One cost from a cost record (``latency_ms`` on ``profile``)."""
    return float(record["latency_ms"][profile] if name == "latency_ms" else record[name])
