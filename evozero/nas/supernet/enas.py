"""ENAS on the NAS-Bench-201 supernet, as NAS-Bench-201's reference runs it.

Each weight step trains the cell the controller (:mod:`evozero.nas.supernet.controller`)
samples. After each epoch the controller takes ``enas.steps`` Adam steps, each on
``enas.samples`` cells it samples, rewarded by their accuracy with the shared weights on one
validation batch each (plus the entropy bonus) against the reference's baseline. At the
end the controller samples ``candidates`` cells, each scored on the whole validation split,
and the best is the derived cell. After each epoch the run reports the controller's
likeliest cell and the op probabilities along it (as ``alphas``, for the plots).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from evozero.config import Nas
from evozero.errors import EvozeroError
from evozero.nas.supernet.controller import Controller, EnasBaseline, enas_gradients
from evozero.nas.supernet.network import menu_of
from evozero.nas.supernet.search import SupernetSearch
from evozero.nas.table.store import ops_index
from evozero.nas.training.data import Dataset
from evozero.runs import stopflag


class Enas(SupernetSearch):
    """ENAS (see the module docstring)."""

    def __init__(self, nas: Nas, data: Dataset, seed: int) -> None:
        super().__init__(nas, data, seed)
        settings = self.settings.enas
        self.controller = Controller(settings.hidden, self.sampler)
        self.baseline = EnasBaseline(settings.baseline_decay)

    def step(self, x: np.ndarray, y: np.ndarray, lr: float, shot: int | None
             ) -> tuple[float, float]:
        """A weight step on a cell the controller samples."""
        ops, _, _ = self.controller.sample(self.sampler)
        return self.train_on(menu_of(ops), x, y, lr)

    def after_epoch(self) -> None:
        """The controller's steps (module docstring)."""
        settings = self.settings.enas
        for _ in range(settings.steps):
            stopflag.check()
            cells, _, _ = self.controller.sample_batch(self.sampler, settings.samples)
            accuracies = np.array([self.score(ops, *self.valid_batch()) for ops in cells])
            grads = enas_gradients(self.controller, self.baseline, cells, accuracies,
                                   settings.entropy_weight)
            self.controller.adam_update(grads, settings.learning_rate)
        self.baseline.end_epoch()

    def epoch_cell(self) -> np.ndarray:
        """The controller's likeliest cell."""
        return self.controller.argmax_path()

    def epoch_record(self) -> dict[str, Any]:
        """The op probabilities of each edge along the likeliest cell."""
        probabilities = self.controller.edge_probabilities(self.controller.argmax_path())
        return {"alphas": probabilities.round(6).tolist()}

    def derive(self) -> np.ndarray:
        """The best of ``candidates`` cells the controller samples."""
        cells, _, _ = self.controller.sample_batch(self.sampler, self.settings.candidates)
        return self.best_of(np.unique(ops_index(cells)))

    def method_state(self) -> dict[str, Any]:
        """The controller (with its Adam state) and the baseline."""
        return {"controller": self.controller.state(), "baseline": self.baseline.state()}

    def restore_method(self, state: Any, where: str) -> None:
        """See :meth:`SupernetSearch.restore_method`."""
        if not isinstance(state, dict) or set(state) != {"controller", "baseline"}:
            raise EvozeroError(f"{where}: must hold the controller and the baseline")
        self.controller.restore(state["controller"], f"{where}: controller")
        self.baseline.restore(state["baseline"], f"{where}: baseline")
