"""Where a run is in its flow: :class:`RunState`, saved in every checkpoint.

The flow (:mod:`evozero.runs.flow`) updates it as experiments end; the checkpoint
(:mod:`evozero.runs.checkpointing`) stores it under ``driver`` as plain JSON, in the
:data:`RUN_STATE_FORMAT` a resume checks.
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: The format of a run's checkpoint record (the state, the islands and the config).
RUN_STATE_FORMAT = "evozero.run/2"


@dataclass
class RunState:
    """Where the run is in its flow (JSON-able; saved in every checkpoint)."""

    experiment: int = 0
    seconds: float = 0.0                  # wall time spent before this process
    experiment_started: float = 0.0       # run seconds when the current experiment began
    islands: int = 0                      # islands per experiment, fixed at the start
    experiments: list = field(default_factory=list)
    kept: dict | None = None           # best candidate over experiments, by select fitness
    solved: bool = False
