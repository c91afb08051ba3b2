"""One candidate's evaluation: compile, cost record, constraints, brief training, objective.

Everything that does not change during a search (data, device profiles, skeleton, training
settings) is built once per process, nas section and seed (:func:`evaluator_for`).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from evozero.config import Nas
from evozero.errors import EvozeroError
from evozero.nas.devices.cost import cost_record, load_profiles
from evozero.nas.devices.drift import recorded_drift
from evozero.nas.spaces.cells import Nb101Cell, Nb201Cell
from evozero.nas.spaces.network import Architecture
from evozero.nas.spaces.skeleton import Skeleton, compile_cell
from evozero.nas.training.data import Dataset, load_dataset
from evozero.nas.training.model import Model
from evozero.nas.training.train import TrainResult, TrainSettings, train


class Evaluator:
    """Evaluates cells for one nas section and run seed (see the module docstring)."""

    def __init__(self, nas: Nas, seed: int) -> None:
        self.nas = nas
        self.seed = seed
        self.data: Dataset = load_dataset(nas.dataset, nas.data_seed, mnist1d=nas.mnist1d,
                                           sha256=nas.dataset_sha256)
        self.skeleton = Skeleton(nas.stem_channels, nas.stacks, nas.cells_per_stack)
        self.profiles = load_profiles(nas.profiles_file, recorded_drift(nas))
        if nas.profile not in self.profiles:
            raise EvozeroError(f"nas.profile: no device profile named {nas.profile!r}; "
                               f"known: {', '.join(sorted(self.profiles))}")
        self.training = TrainSettings(**{name: getattr(nas.training, name)
                                         for name in TrainSettings.__dataclass_fields__})

    def architecture(self, cell: Nb101Cell | Nb201Cell) -> Architecture:
        """The network of ``cell`` for this config's data."""
        return compile_cell(cell, self.skeleton, self.data.input_shape, self.data.classes)

    def cost(self, arch: Architecture) -> dict[str, Any]:
        """The cost record of ``arch`` for every known device profile."""
        return cost_record(arch, self.profiles, batch=1, train_batch=self.nas.training.batch_size)

    def cost_value(self, cost: dict[str, Any], name: str) -> float:
        """One cost of a record: ``latency_ms`` on the config's profile, or a count."""
        if name == "latency_ms":
            return float(cost["latency_ms"][self.nas.profile])
        return float(cost[name])

    def violation(self, cost: dict[str, Any]) -> str | None:
        """Why a network breaks a constraint, or None."""
        caps = self.nas.constraints
        for name, cap in (("params", caps.max_params), ("macs", caps.max_macs),
                          ("latency_ms", caps.max_latency_ms),
                          ("peak_activation_bytes", caps.max_peak_activation_bytes)):
            if cap is not None and self.cost_value(cost, name) > cap:
                return f"{name} {self.cost_value(cost, name):g} > {cap:g}"
        return None

    def train_seed(self, cell_hash: str) -> int:
        """The training seed of a cell: the same on every island, so the cache holds."""
        return int(np.random.SeedSequence([self.seed, int(cell_hash[:15], 16)])
                   .generate_state(1)[0])

    def train(self, arch: Architecture, seed: int,
              hurdle: Callable[[float], bool] | None = None,
              inherit: dict[str, list[np.ndarray]] | None = None,
              record_epochs: bool = False, epochs: int | None = None
              ) -> tuple[TrainResult, Model, int]:
        """Train ``arch`` (starting from ``inherit``'s weights where layers match) for
        the recipe, or for ``epochs`` with the recipe's other settings; returns the
        result, the trained model and how many layers inherited.
        ``record_epochs``: record every epoch's accuracies (see :func:`train`)."""
        model = Model(arch, seed)
        inherited = model.inherit(inherit) if inherit else 0
        settings = self.training if epochs is None else replace(self.training, epochs=epochs)
        return (train(model, self.data, settings, seed, hurdle, record_epochs), model,
                inherited)

    def fitness(self, valid_accuracy: float, cost: dict[str, Any]) -> float:
        """The objective: accuracy, or MnasNet's reward (Pareto runs rank by accuracy
        and select on the front)."""
        objective = self.nas.objective
        if not objective.kind.startswith("mnasnet") or math.isnan(valid_accuracy):
            return valid_accuracy
        assert objective.target is not None   # the config requires it for mnasnet kinds
        ratio = self.cost_value(cost, objective.cost) / objective.target
        if objective.kind == "mnasnet_soft":
            exponent = objective.exponent
        else:
            exponent = 0.0 if ratio <= 1.0 else -1.0
        return valid_accuracy * ratio ** exponent


_EVALUATORS: dict[str, Evaluator] = {}


def evaluator_for(nas: Nas, seed: int) -> Evaluator:
    """The evaluator of the nas section ``nas`` in a run of ``seed``, built once per
    process."""
    key = repr((nas, seed))
    if key not in _EVALUATORS:
        _EVALUATORS[key] = Evaluator(nas, seed)
    return _EVALUATORS[key]
