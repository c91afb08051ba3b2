"""``evozero table``: build, verify, query and describe a table."""
from __future__ import annotations

import sys
from typing import Any

from evozero.config import Config, Nas
from evozero.errors import EvozeroError
from evozero.nas.spaces.cells import Nb201Cell
from evozero.nas.table.build import build_table, verify_table
from evozero.nas.table.figures import table_figures
from evozero.nas.table.store import Table, load_table
from evozero.runs.files import json_text


def build_command(directory: str, config: Config, nas: Nas, workers: int,
                  second_seeds: int, backend: str, address: str | None) -> int:
    """Build (or continue building) the table of ``config``'s recipe in ``directory``."""
    if nas.space != "nb201":
        raise EvozeroError(f"nas.space: {nas.space}; a table covers the nb201 space")
    make_backend = None
    if backend == "ray":
        from evozero.runs.ray_backend import RayBackend

        def make_backend(count: int, host: Any) -> Any:
            return RayBackend(count, address, host)
    target = build_table(directory, config, nas, workers, second_seeds, make_backend)
    print(describe(load_table(target)))
    return 0


def verify_command(table: Table, nas: Nas, cells: int, seed: int) -> int:
    """Retrain ``cells`` cells of ``table``; 0 when all agree bit for bit, else 1."""
    problems = verify_table(table, nas, cells, seed, lambda text: print(text, flush=True))
    if problems:
        print(f"{len(problems)} of {cells} cells differ from the table", file=sys.stderr)
        return 1
    print(f"all {cells} cells agree with the table bit for bit")
    return 0


def query_text(table: Table, cell_text: str, as_json: bool) -> str:
    """A cell's record in the table, as text or JSON."""
    record = table.record(Nb201Cell.parse(cell_text))
    if as_json:
        return json_text(record, indent=2)
    lines = [record["cell"],
             f"  network row {record['row']} (the same network as "
             f"{record['same_network_as']})",
             f"  test accuracy {record['test_accuracy']:.4f} (mean of {len(record['seeds'])} "
             f"seed(s))",
             f"  params {record['params']:,}  FLOPs {record['flops']:,}  latency "
             + ", ".join(f"{name} {ms:.3f} ms" for name, ms in record["latency_ms"].items())]
    for seed in record["seeds"]:
        valid = " ".join(f"{v:.3f}" for v in seed["valid_accuracy"])
        lines.append(f"  seed {seed['seed']}: valid by epoch {valid}; test "
                     f"{seed['test_accuracy']:.4f}; {seed['seconds']:.2f} CPU s")
    return "\n".join(lines)


def describe(table: Table, as_json: bool = False) -> str:
    """The table's figures (:func:`evozero.nas.table.figures.table_figures`)."""
    figures = table_figures(table)
    if as_json:
        return json_text(figures, indent=2)
    cells, networks = figures["test_accuracy_over_cells"], figures["test_accuracy_over_networks"]
    noise, best = figures["seed_noise"], figures["best_by_validation"]
    seconds = figures["training_cpu_seconds"]
    lines = [f"{figures['cells']:,} cells, {figures['networks']:,} distinct networks, "
             f"{figures['epochs']} epochs; recipe {table.meta['recipe']}",
             "test accuracy over cells:    " + _spread(cells),
             "test accuracy over networks: " + _spread(networks),
             f"best by validation: {best['cell']} valid {best['valid_accuracy']:.4f} test "
             f"{best['test_accuracy']:.4f}",
             f"best by test: {figures['best_by_test']['cell']} "
             f"{figures['best_by_test']['test_accuracy']:.4f}",
             f"seed noise ({noise['networks_with_two_seeds']:,} networks with two seeds): "
             f"mean |difference| {noise['mean_abs_difference']:.4f}, std of one training "
             f"{noise['seed_std']:.4f}, Spearman between seeds "
             f"{noise['spearman_between_seeds']:.3f}",
             "validation accuracy at epoch e against the last epoch (seed 0, all networks):"]
    lines += [f"  epoch {row['epoch']}: Spearman {row['spearman']:.3f}  Kendall "
              f"{row['kendall']:.3f}" for row in figures["early_epoch_vs_last"]]
    lines.append(f"training: {seconds['total'] / 3600:.2f} CPU hours in all, median "
                 f"{seconds['median_per_training']:.2f} CPU s per training")
    return "\n".join(lines)


def _spread(spread: dict[str, float]) -> str:
    return "  ".join(f"{name} {value:.4f}" for name, value in spread.items())
