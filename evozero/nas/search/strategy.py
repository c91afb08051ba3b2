"""The ask/tell interface of the cell-search strategies beside evolution and random
(``strategy: reinforce | asha | local``), over NAS-Bench-201 cells given by their index
among the 15,625 (``evozero.nas.table.store.cell_index``).

The island asks a strategy for the next cell and the epochs to train it for, evaluates it
(real training or a table lookup) and tells the strategy its fitness. A strategy's whole
state is plain data (:meth:`CellStrategy.state`), kept in the island's snapshot, so a
reopened island continues exactly; its random draws come from the island's generator.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from evozero.config import Nas
from evozero.errors import EvozeroError
from evozero.nas.table.store import NB201_CELLS


class CellStrategy(ABC):
    """One strategy's search over NAS-Bench-201 cells (see the module docstring).
    ``epochs`` is the recipe's training (the most a cell is trained), ``signal_epoch`` the
    epoch whose validation accuracy a single-fidelity strategy optimises."""

    #: Whether a result at more epochs outranks any at fewer (a multi-fidelity strategy's
    #: best is the best of its highest rung reached).
    multi_fidelity = False

    def __init__(self, nas: Nas, epochs: int, signal_epoch: int) -> None:
        self.nas = nas
        self.epochs = epochs
        self.signal_epoch = signal_epoch

    @abstractmethod
    def ask(self, rng: np.random.Generator) -> tuple[int, int]:
        """The next cell's index and the epochs to train it for."""

    def exhausted(self) -> bool:
        """Whether the strategy has nothing left to ask (the island's budget is then
        spent)."""
        return False

    @abstractmethod
    def tell(self, index: int, epochs: int, fitness: float) -> None:
        """The fitness of cell ``index`` trained for ``epochs`` (NaN: training failed)."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """The whole state as plain data (lists, numbers, float arrays)."""

    @abstractmethod
    def restore(self, state: Any, where: str) -> None:
        """Take ``state`` (from :meth:`state`), checked: EvozeroError naming ``where``
        when it is not one this strategy wrote."""


def check_fields(state: Any, fields: dict[str, type], where: str) -> None:
    """Raise EvozeroError unless ``state`` is a mapping with exactly ``fields``, each of
    its type."""
    if not isinstance(state, dict) or set(state) != set(fields) or not all(
            isinstance(state[name], kind) for name, kind in fields.items()):
        raise EvozeroError(f"{where}: strategy state must have "
                           f"{', '.join(f'{n} ({k.__name__})' for n, k in fields.items())}")


def check_indices(values: Any, where: str) -> list[int]:
    """``values`` as cell indices (whole numbers in 0 .. 15,624), else EvozeroError."""
    if not isinstance(values, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < NB201_CELLS
            for v in values):
        raise EvozeroError(f"{where}: must be a list of cell indices (0 .. {NB201_CELLS - 1})")
    return values
