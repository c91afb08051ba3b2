"""The main process's view of the islands of one experiment, and the migration it brokers.

Migration follows AutoML-Zero's server: an island sends a random part of its population
and receives as many programs sampled uniformly from what the other islands sent. In a
deterministic run, every island stops at the same individual count (a round) and the
migrants of round r are drawn from all islands' round-r emigrants with a generator seeded
by (seed, experiment, r); otherwise an island gets, at once, a sample of the latest
emigrants of the other islands, whatever their round.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evozero.runs.island import FINISHED, RUNNING, IslandSpec
from evozero.runs.messages import IslandResult
from evozero.search.evolution import INDIVIDUALS


@dataclass
class IslandView:
    """What the main process knows of one island and what it owes it."""

    spec: IslandSpec
    worker: int
    snapshot: dict[str, Any] | None = None   # last snapshot (None: start afresh)
    snapshot_events: list = field(default_factory=list)  # unflushed events it covers
    summary: Mapping[str, Any] = field(default_factory=dict)
    status: str = RUNNING
    busy: bool = False                           # a command is in flight
    emigrants: dict[str, Any] | None = None   # the latest ones it sent
    arrivals: dict[str, Any] | None = None    # migrants to send with its next advance
    logged: dict[int, dict[str, Any]] = field(default_factory=dict)  # migrants per round
    buffer: list = field(default_factory=list)   # events held until its round completes
    snapshot_wanted: bool = False
    snapshot_arrivals: dict[str, Any] | None = None  # migrants owed when it was taken
    finish_wanted: bool = False
    result: IslandResult | None = None
    failures: int = 0                            # deaths since its last snapshot
    stale: bool = False                          # stopping, it gave no new snapshot

    @property
    def snapshot_individuals(self) -> int:
        """Individuals its last snapshot had evolved (0 without one)."""
        if self.snapshot is None:
            return 0
        if "arrays" in self.snapshot:   # a program island's search state
            return int(self.snapshot["arrays"]["counters"][INDIVIDUALS])
        return int(self.snapshot["counters"]["individuals"])

    @property
    def snapshot_round(self) -> int:
        """The migration round of its last snapshot (0 without one)."""
        return 0 if self.snapshot is None else int(self.snapshot["meta"]["round"])

    @property
    def done(self) -> bool:
        """True once the island's result is known."""
        return self.result is not None

    @property
    def index(self) -> int:
        """The island's number, from 0."""
        return self.spec.island

    def to_checkpoint(self) -> dict[str, Any]:
        """What a checkpoint keeps of this island."""
        # A finished island is not reopened: its last summary and its events not yet
        # flushed are all there is.
        return {"snapshot": self.snapshot, "result": self.result, "summary": self.summary,
                "events": self.buffer if self.done else self.snapshot_events}


def empty_arrivals() -> dict[str, Any]:
    """No migrants."""
    return {"fitness": np.zeros(0), "keys": []}


def draw_arrivals(count: int, pool: Sequence[dict[str, Any]],
                  rng: np.random.Generator) -> dict[str, Any]:
    """``count`` individuals drawn without replacement from the emigrant sets in ``pool``
    (each field of a set, an array or a list, holds one entry per individual)."""
    sets = [p for p in pool if len(p["fitness"])]
    if not sets or count <= 0:
        return empty_arrivals()
    keys = [p["key"] for p in sets for _ in range(len(p["fitness"]))]
    chosen = np.sort(rng.choice(len(keys), size=min(count, len(keys)), replace=False))
    arrivals: dict[str, Any] = {"keys": [keys[k] for k in chosen]}
    for name in sets[0]:
        if name in ("round", "key"):
            continue
        if isinstance(sets[0][name], np.ndarray):
            arrivals[name] = np.concatenate([p[name] for p in sets])[chosen]
        else:
            joined = [item for p in sets for item in p[name]]
            arrivals[name] = [joined[k] for k in chosen]
    return arrivals


def round_arrivals(views: Sequence[IslandView], seed: int, experiment: int,
                   round_: int) -> dict[int, dict[str, Any]]:
    """Deterministic migrants of one completed round for every island waiting at it."""
    waiting = [(v, v.emigrants) for v in views
               if v.emigrants is not None and v.emigrants["round"] == round_
               and not v.done and v.status not in FINISHED]
    rng = np.random.default_rng([seed, experiment, round_])
    arrivals = {}
    for view, emigrants in waiting:
        pool = [other for v, other in waiting if v is not view]
        arrivals[view.index] = draw_arrivals(len(emigrants["fitness"]), pool, rng)
    return arrivals


def latest_arrivals(view: IslandView, views: Sequence[IslandView], seed: int,
                    experiment: int) -> dict[str, Any]:
    """Migrants for ``view`` from the latest emigrants of every other island."""
    own = view.emigrants
    assert own is not None   # asked for only once ``view`` emigrated
    pool = [v.emigrants for v in views if v is not view and v.emigrants is not None]
    rng = np.random.default_rng([seed, experiment, view.index, own["round"]])
    return draw_arrivals(len(own["fitness"]), pool, rng)
