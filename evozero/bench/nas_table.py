"""``evozero bench nas --table TABLE``: simulated networks per second of each cell-search
strategy against a table, one island in this process, with its evaluation records made
and encoded as evaluations.jsonl lines (the main process's share of a run), CPU time.

The config is the table's own recipe (so it is accepted) with the table, random seeds
per query, and the default settings of every strategy.
"""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from evozero.config import config_from_dict
from evozero.config.cell_search import CELL_STRATEGIES
from evozero.domains import domain_for
from evozero.nas.reports.results import evaluation_line
from evozero.nas.search.lookup import lookup_for
from evozero.nas.table.store import load_table
from evozero.runs.files import json_line
from evozero.runs.island import FINISHED


def networks_per_second(table: str, strategy: str, networks: int) -> dict[str, Any]:
    """One island of ``strategy`` searching ``table`` for ``networks`` networks."""
    recipe = load_table(table).meta["recipe"]
    config = config_from_dict({
        "seed": 0, "strategy": strategy, "population_size": 50, "tournament_size": 10,
        "budget": {"individuals": networks, "train_steps": None}, "workers": 1,
        "sufficient_fitness": None, "max_experiments": 1, "nas": {**recipe, "table": table,
                                            "objective": {"cost": "params"}}})
    domain = domain_for(config)
    domain.check_inputs()
    spec = domain.island_spec(0, 0, networks, -1)
    lookup_for(spec.section)                        # loaded before the clock starts
    island = spec.island_class(spec, None)
    started = time.process_time()
    lines = 0
    while island.meta["status"] not in FINISHED:
        reply = island.advance(3600.0)
        for record in reply["evaluations"]:
            lines += len(json_line(evaluation_line(record, 1, 1, 0.0)))
    seconds = time.process_time() - started
    return {"strategy": strategy, "networks": networks, "cpu_seconds": seconds,
            "per_second": networks / seconds, "bytes_per_record": lines / networks,
            "cache_hits": island.counters["structure_hits"]}


def run(table: str, quick: bool = False, out: TextIO | None = None) -> list[dict[str, Any]]:
    """Measure and print every strategy's rate against ``table``."""
    out = out or sys.stdout
    networks = 5_000 if quick else 50_000
    print(f"networks per CPU second against {table}, one island, records encoded "
          f"({networks:,} networks each)", file=out, flush=True)
    rows = []
    for strategy in ("random", "evolution", *CELL_STRATEGIES):
        row = networks_per_second(table, strategy, networks)
        rows.append(row)
        print(f"   {strategy:<10} {row['per_second']:>9,.0f} networks/s   "
              f"({row['cache_hits']:,} cache hits)", file=out, flush=True)
    return rows
