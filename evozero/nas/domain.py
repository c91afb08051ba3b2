"""Cell search as a :class:`evozero.runs.domain.SearchDomain`: it holds the config's nas
section and hands it to the NAS code (islands, evaluator, results, show, export, plots),
which never reads it from the config itself."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from evozero.config import Config, Nas
from evozero.config.cell_search import SUPERNET_STRATEGIES
from evozero.errors import EvozeroError
from evozero.nas.devices.cost import cost_record
from evozero.nas.devices.drift import settle_run_drift
from evozero.nas.evaluate import evaluator_for
from evozero.nas.reports import results
from evozero.nas.search.island import NasIsland, check_nas_snapshot, warm_up
from evozero.nas.search.lookup import check_table, lookup_for
from evozero.nas.spaces.cells import (
    INPUT,
    NB201_NODES,
    NB201_OPS,
    OUTPUT,
    Nb101Cell,
    Nb201Cell,
)
from evozero.nas.spaces.space import CellSpace
from evozero.nas.supernet.island import (
    SupernetIsland,
    check_supernet_snapshot,
    make_search,
)
from evozero.nas.training.data import record_dataset
from evozero.runs.domain import SearchDomain
from evozero.runs.files import json_text
from evozero.runs.rundir import RunDir


class NasDomain(SearchDomain):
    """Cell search: networks built from cells, trained and scored on a data set."""

    island_class: type[NasIsland] | type[SupernetIsland] = NasIsland
    candidates = "cells"

    def __init__(self, config: Config, nas: Nas) -> None:
        super().__init__(config, nas)
        self.nas = nas
        #: Whether the strategy trains a supernet (its islands are SupernetIslands).
        self.supernet = config.strategy in SUPERNET_STRATEGIES
        if self.supernet:
            self.island_class = SupernetIsland

    def settle(self, say: Callable[[str], None]) -> Config:
        """The config with the machine's latency drift measured
        (:func:`evozero.nas.devices.drift.settle_run_drift`) and a data file's sha256
        recorded (:func:`evozero.nas.training.data.record_dataset`). A table search
        measures nothing: its table holds every network's latency."""
        if self.nas.table is not None:
            return replace(self.config, nas=replace(self.nas, latency_drift="none"))
        return replace(self.config, nas=record_dataset(settle_run_drift(self.nas, say)))

    def check_inputs(self) -> None:
        """Load the data set and the device profiles, or the table of a table search
        (refused when missing, unreadable or built with another recipe)."""
        if self.nas.table is not None:
            check_table(self.config, self.nas)
        if self.supernet:
            # Builds the supernet; proxyless also needs a calibrated profile's latencies.
            make_search(self.config.strategy, self.nas,
                        evaluator_for(self.nas, self.config.seed), 0)
        elif self.nas.table is None:
            evaluator_for(self.nas, self.config.seed)

    def island_memory(self, config: Config, local: bool) -> dict[str, int]:
        """The largest network of the space with its data, or the table of a table
        search, in a local worker (a NAS island's snapshot is small)."""
        if not local:
            return {}
        if self.nas.table is not None and not self.supernet:
            return {"the table": lookup_for(self.nas).nbytes()}
        return _network_memory(config, self.nas, self.supernet)

    def run_memory(self, processes: int) -> dict[str, int]:
        """Nothing besides the islands."""
        return {}

    def check_population(self) -> None:
        """A cell search starts from random cells: nothing to check."""

    def warm_up(self, say: Callable[[str], None]) -> None:
        """Load the data and profiles and compile the layer kernels (a table search
        trains nothing: it loads its table)."""
        if self.nas.table is not None:
            lookup_for(self.nas)
        if self.supernet or self.nas.table is None:
            warm_up(self.nas, self.config.seed)

    def describe(self) -> str:
        """The strategy, the space, the data set, the epochs and the objective."""
        return results.describe(self.config, self.nas)

    def evaluation_line(self, record: dict[str, Any], experiment: int, island: int,
                        seconds: float) -> dict[str, Any]:
        """The network's evaluation record, as :func:`evozero.nas.reports.results.evaluation_line`."""
        return results.evaluation_line(record, experiment, island, seconds)

    def fitness_problem(self, value: Any) -> str | None:
        """A network's fitness is NaN (its training diverged: it ranks lowest) or a finite
        number >= 0 (an objective such as MnasNet's may exceed 1)."""
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not (math.isnan(value) or 0.0 <= value < math.inf):
            return "must be NaN (a diverged network) or a finite number >= 0"
        return None

    def check_candidate(self, text: Any, where: str) -> None:
        """A cell of the run's space."""
        if not isinstance(text, str):
            raise EvozeroError(f"{where}: must be a cell's text, got {str(text)[:60]}")
        try:
            CellSpace(self.nas).parse(text)
        except EvozeroError as error:
            raise EvozeroError(f"{where}: not a cell of this run's space ({self.nas.space}): "
                               f"{error}") from None

    def check_snapshot(self, snapshot: Any, config: Config, where: str) -> None:
        """See :func:`evozero.nas.search.island.check_nas_snapshot` (a supernet island's:
        :func:`evozero.nas.supernet.island.check_supernet_snapshot`)."""
        if self.supernet:
            check_supernet_snapshot(snapshot, config, self.nas, where)
        else:
            check_nas_snapshot(snapshot, config, self.nas, where)

    def final_result(self, rundir: RunDir, state: Any, seconds: float
                     ) -> tuple[dict[str, Any], list[str]]:
        """The best cell by validation, its test accuracy, cost and the Pareto front."""
        result = results.final_result(self.nas, rundir, state, seconds)
        return result, results.final_lines(result)

    def show(self, rundir: RunDir, history: bool, as_json: bool) -> str:
        """The best cell, its accuracy and cost record, totals and key settings (a cell
        search keeps no history beyond evaluations.jsonl)."""
        from evozero.nas.reports.show import format_nas_summary, nas_summary

        summary = nas_summary(rundir, self.config, self.nas)
        if as_json:
            return json_text(summary, indent=2)
        return format_nas_summary(summary, self.nas)

    def export(self, rundir: RunDir, path: str, name: str) -> str:
        """The best network, trained, as a numpy module and its weights file."""
        from evozero.nas.reports.export import export_network
        from evozero.nas.reports.show import trained_model
        from evozero.nas.training.train import accuracy

        model, evaluator, cell = trained_model(rundir, self.nas, self.config.seed)
        data = evaluator.data
        title = (f"Network of the cell {cell} ({self.nas.space}, {self.nas.dataset}); "
                 f"test accuracy {accuracy(model, data.test_x, data.test_y):.4f}.")
        module, weights = export_network(model, self.nas.dataset, data.mean, data.std, path,
                                         title)
        return f"wrote {module} and {weights}"

    def plot(self, runs: Sequence[tuple[str, SearchDomain]], output: str, x: str,
             compare: bool) -> Path:
        """The NAS figure (:mod:`evozero.nas.reports.plots`); every run must be a cell search."""
        from evozero.nas.reports.plots import plot_nas_runs
        from evozero.nas.reports.supernet_plot import plot_supernet_runs

        if self.supernet:
            others = [path for path, domain in runs
                      if not (isinstance(domain, NasDomain) and domain.supernet)]
            if others:
                raise EvozeroError(f"{others[0]}: not a supernet run; plot supernet runs "
                                   f"and other runs separately")
            return plot_supernet_runs([path for path, _ in runs], output)
        nas_runs = []
        for path, domain in runs:
            if not isinstance(domain, NasDomain) or domain.supernet:
                raise EvozeroError(f"{path}: not a NAS run of this kind (a program run, or "
                                   f"a supernet run); plot each kind separately")
            nas_runs.append((path, domain.nas))
        return plot_nas_runs(nas_runs, output)


def _network_memory(config: Config, nas: Nas, supernet: bool) -> dict[str, int]:
    evaluator = evaluator_for(nas, config.seed)
    record = cost_record(evaluator.architecture(largest_cell(nas)), {}, batch=1,
                         train_batch=nas.training.batch_size)
    weights = record["weight_bytes"]
    # Weights, gradients and momentum; activations kept for the backward pass and their
    # gradients; the weights inheritance keeps for every program of the population.
    network = 3 * weights + 2 * record["train_peak_activation_bytes"]
    if nas.weight_inheritance:
        network += config.population_size * weights
    if supernet:     # about every op of the largest cell on each edge, and saved copies
        network *= 2 * len(NB201_OPS)
    data = evaluator.data
    data_bytes = sum(a.nbytes for a in (data.train_x, data.train_y, data.valid_x,
                                        data.valid_y, data.test_x, data.test_y))
    return {"the networks": network + data_bytes}


def largest_cell(nas: Nas) -> Nb101Cell | Nb201Cell:
    """A cell of the section's space whose network is about the largest the search can
    make: every edge the costliest allowed op (NB201), or the longest chain of vertices
    of the costliest allowed op (NB101; in a chain every vertex has all the channels)."""
    if nas.space == "nb201":
        return Nb201Cell(("nor_conv_3x3",) * (NB201_NODES * (NB201_NODES - 1) // 2))
    costliest = next(op for op in ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
                     if op in nas.nb101_ops)
    size = min(nas.max_vertices, nas.max_edges + 1)
    matrix = [[1 if j == i + 1 else 0 for j in range(size)] for i in range(size)]
    ops = [INPUT] + [costliest] * (size - 2) + [OUTPUT]
    return Nb101Cell.make(matrix, ops, max_vertices=nas.max_vertices,
                          max_edges=nas.max_edges, allowed_ops=nas.nb101_ops)
