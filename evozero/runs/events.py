"""The islands' reports written into the run directory once each, in a fixed order:
discoveries (a new best of an island) into discoveries.jsonl and a cell search's
evaluation records into evaluations.jsonl.

A restarted island reports again what it did after its last snapshot; what is already
written is recognised and skipped. In deterministic runs the flow holds each island's
events until a migration round completes and then flushes them ordered by individual
and island (:func:`ordered`), so the files do not depend on which worker answered first.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from evozero.runs.migration import IslandView
from evozero.runs.rundir import RunDir

if TYPE_CHECKING:
    from evozero.runs.domain import SearchDomain


def ordered(views: Sequence[IslandView]) -> list[dict[str, Any]]:
    """Every event the islands hold, by island individual and then island; the islands'
    buffers are emptied."""
    events = [e for v in views for e in v.buffer]
    for view in views:
        view.buffer = []
    return sorted(events, key=lambda e: (e["island_individual"], e["island"]))


class EventLog:
    """What of the islands' reports is written already, and the writing of the rest."""

    def __init__(self, rundir: RunDir, domain: SearchDomain, say: Callable[[str], None],
                 keep: Callable[[str, float, float], None]) -> None:
        self.rundir = rundir
        self.domain = domain
        self.say = say
        self.keep = keep                  # offers a checked candidate to the run
        self.experiment_best = -float("inf")
        self._discoveries: set[tuple[int, int, int]] = set()
        self._evaluations: set[tuple] = set()

    def recall(self) -> None:
        """Learn what the run directory holds already (after a resume cut it back)."""
        for record in self.rundir.read_discoveries():
            self._discoveries.add((record["experiment"] - 1, record.get("island", 1) - 1,
                                   record.get("island_individual", record["individual"])))
        for record in self.rundir.read_evaluations():
            self._evaluations.add((record["experiment"], record["island"],
                                   record["island_individual"], record["hash"]))

    def start_experiment(self, experiment: int) -> None:
        """Begin (or continue) ``experiment`` (from 0): its best so far is on disk."""
        self.experiment_best = max(
            (r["fitness"] for r in self.rundir.read_discoveries()
             if r["experiment"] == experiment + 1), default=-float("inf"))

    def discovery(self, event: Mapping[str, Any], experiment: int, views: Sequence[IslandView],
                  deterministic: bool, seconds: float) -> None:
        """Take one island's discovery of ``experiment`` (from 0): a checked candidate
        is offered to the run; a new best of the experiment is written."""
        key = (experiment, event["island"], event["island_individual"])
        if key in self._discoveries:
            return
        self._discoveries.add(key)
        island = event["island"]
        if event["select_fitness"] is not None:
            self.say(f"  candidate with search fitness {event['fitness']:.6f} on island "
                     f"{island + 1}: select fitness {event['select_fitness']:.6f}")
            self.keep(event["candidate"], event["fitness"], event["select_fitness"])
        if event["fitness"] <= self.experiment_best:
            return
        self.experiment_best = event["fitness"]
        count = len(views)
        if deterministic:
            # Islands run in lockstep rounds, so the run's count is the island's x islands.
            individuals = event["island_individual"] * count
            train_steps = event["island_train_steps"] * count
        else:
            others = [v.summary for v in views if v.index != island and v.summary]
            individuals = event["island_individual"] + sum(s["individuals"] for s in others)
            train_steps = event["island_train_steps"] + sum(s["train_steps"] for s in others)
        self.rundir.append_discovery({
            "experiment": experiment + 1, "island": island + 1,
            "island_individual": event["island_individual"], "individual": individuals,
            "seconds": round(seconds, 3), "train_steps": train_steps,
            "fitness": event["fitness"], "program": event["candidate"],
            # A table search's island clock of simulated seconds at the discovery.
            **({"search_clock": event["search_clock"]} if "search_clock" in event else {})})

    def evaluation(self, record: dict[str, Any], experiment: int, island: int,
                   seconds: float) -> None:
        """Write one evaluation record of island ``island`` (from 0) in ``experiment``
        (from 0), unless it is written already."""
        key = (experiment + 1, island + 1, record["island_individual"], record["hash"])
        if key in self._evaluations:
            return
        self._evaluations.add(key)
        self.rundir.append_evaluation(self.domain.evaluation_line(
            record, experiment + 1, island + 1, seconds))
