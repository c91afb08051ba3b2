"""What a NAS run writes and reports: evaluation records, the Pareto front, final.json."""
from __future__ import annotations

import io
import math
import zipfile
import zlib
from typing import Any

import numpy as np

from evozero.config import Config, Nas
from evozero.config.cell_search import SUPERNET_STRATEGIES
from evozero.errors import EvozeroError
from evozero.nas.search.pareto import pareto_front
from evozero.runs.files import atomic_write_bytes
from evozero.runs.rundir import RunDir

# Fields of an island's evaluation record that go to evaluations.jsonl, in this order.
_FIELDS = ("genome", "hash", "cache_hit", "valid_accuracy", "test_accuracy", "fitness",
           "cost", "seed", "seconds", "epochs", "hurdle_stopped", "first_epoch_accuracy",
           "train_steps", "losses", "inherited_layers", "parent")
# Fields of a table search's records beside those: the simulated seconds of this training
# and the island's simulated clock after it.
_TABLE_FIELDS = ("simulated_seconds", "search_clock")
# Fields of a supernet search's records beside those (see evozero.nas.supernet.island).
_SUPERNET_FIELDS = ("phase", "search_seconds", "alphas", "table_valid_accuracy",
                    "table_test_accuracy")
_STRATEGY_NAMES = {"evolution": "regularized evolution", "random": "random search",
                   "reinforce": "REINFORCE", "asha": "ASHA", "bohb": "BOHB", "local": "local search",
                   "predictor": "predictor-guided search",
                   "rsps": "random search with parameter sharing (RSPS)",
                   "spos": "single-path one-shot (SPOS)", "enas": "ENAS",
                   "darts": "DARTS (first order)", "darts2": "DARTS (second order)",
                   "gdas": "GDAS", "proxyless": "ProxylessNAS"}


def describe(config: Config, nas: Nas) -> str:
    """One line saying what the search does (``nas`` the config's nas section)."""
    how = _STRATEGY_NAMES[config.strategy]
    data = nas.dataset
    if data == "mnist1d":
        data += f" ({nas.mnist1d.recipe} recipe, generator seed {nas.mnist1d.seed})"
    if config.strategy in SUPERNET_STRATEGIES:
        few = nas.supernet.few_shot
        shots = "" if few.edge is None else (f", then few-shot: one sub-supernet per op of "
                                             f"edge {few.edge} for {few.epochs} epoch(s)")
        return (f"{how}: a supernet of {nas.space} cells on {data} trained "
                f"{nas.supernet.epochs} epoch(s){shots}; the derived cell retrained for "
                f"{nas.training.epochs} epoch(s)"
                + (f" and looked up in the table {nas.table}" if nas.table else ""))
    if nas.table is not None:
        return (f"{how} over {nas.space} cells on {data}, looked up in the table "
                f"{nas.table} (signal: validation accuracy at epoch "
                f"{nas.lookup.epoch or nas.training.epochs}, {nas.lookup.seed} seed)")
    return (f"{how} over {nas.space} cells on {data}, {nas.training.epochs} epoch(s) "
            f"per network, objective {nas.objective.kind}")


def evaluation_line(record: dict[str, Any], experiment: int, island: int,
                    seconds: float) -> dict[str, Any]:
    """The evaluations.jsonl record of one evaluated network. The file is strict JSON,
    so a NaN or infinite value is written as null: ``diverged`` says whether training
    diverged (an epoch's mean loss not finite, written null in ``losses``), and
    ``first_epoch_accuracy`` is null when it was not measured (no hurdle)."""
    line = {"experiment": experiment, "island": island,
            "island_individual": record["island_individual"],
            "run_seconds": round(seconds, 3)}
    line.update({name: record.get(name) for name in _FIELDS})
    if "search_clock" in record:
        line.update({name: record[name] for name in _TABLE_FIELDS})
    if "phase" in record:
        line.update({name: record[name] for name in _SUPERNET_FIELDS if name in record})
    line["diverged"] = not all(math.isfinite(loss) for loss in record.get("losses") or [])
    return line


def final_result(nas: Nas, rundir: RunDir, state: Any, seconds: float) -> dict[str, Any]:
    """final.json of a finished NAS run of the nas section ``nas`` (``state`` the run's
    :class:`~evozero.runs.state.RunState`): the kept cell with its test accuracy and
    cost, totals, and the Pareto front of everything evaluated."""
    kept = state.kept
    details = dict(kept.get("details", {}))
    save_network(rundir, details.pop("weights", {}))
    if "supernet_weights" in details:
        save_network(rundir, {f"{group}/{name}": arrays for group, weights in
                              details.pop("supernet_weights").items()
                              for name, arrays in weights.items()}, SUPERNET_FILE)
    evaluations = rundir.read_evaluations()
    # A supernet search's records of cells scored with shared weights are not trainings.
    trained = [r for r in evaluations if r.get("phase") in (None, "retrained")]
    table = {}
    if "supernet" in details:
        table = {"supernet": details.pop("supernet"), "table": nas.table,
                 **{k: details[k] for k in ("table_valid_accuracy", "table_test_accuracy")
                    if k in details}}
    elif nas.table is not None:
        table = {"table": nas.table, "simulated_seconds": simulated_seconds(evaluations),
                 "found_at_simulated_seconds": details.get("search_clock")}
    return {**table,
        "space": nas.space, "dataset": nas.dataset, "cell": kept["program"],
        "hash": details.get("hash"), "valid_accuracy": details.get("valid_accuracy"),
        "test_accuracy": details.get("test_accuracy"), "cost": details.get("cost"),
        "search_fitness": kept["search_fitness"], "select_fitness": kept["select_fitness"],
        # A supernet search on a table is judged as NAS-Bench-201 judges one: by its
        # derived cell's table test accuracy (the mean over trained seeds).
        "final_fitness": details.get("table_test_accuracy", details.get("test_accuracy")),
        "solved": state.solved,
        "experiment": kept["experiment"], "experiments": len(state.experiments),
        "individuals": sum(r["individuals"] for r in state.experiments),
        "train_steps": sum(r["train_steps"] for r in state.experiments),
        "evaluations": len(trained),
        "cache_hits": sum(1 for r in trained if r["cache_hit"]),
        "trained": sum(1 for r in trained if not r["cache_hit"]),
        "seconds": seconds, "program": kept["program"], "islands": state.islands,
        "per_experiment": state.experiments,
        "pareto_cost": nas.objective.cost,
        "pareto_front": pareto_front(trained, nas.objective.cost, nas.profile)}


def simulated_seconds(evaluations: list[dict[str, Any]]) -> float:
    """The simulated search time of a table search's evaluation records: each island has
    its own clock, and the search's time is the sum of their last readings."""
    clocks: dict[tuple[int, int], float] = {}
    for record in evaluations:
        where = record["experiment"], record["island"]
        clocks[where] = max(clocks.get(where, 0.0), record["search_clock"])
    return sum(clocks.values())


NETWORK_FILE = "best_network.npz"
#: A supernet search's trained weights: layer names prefixed by their group
#: (``supernet/`` and, with few-shot NAS, ``shot0/`` .. ``shot4/``).
SUPERNET_FILE = "supernet.npz"


def save_network(rundir: RunDir, weights: dict[str, list[np.ndarray]],
                 filename: str = NETWORK_FILE) -> None:
    """Write the kept network's trained weights (array ``NAME/k`` = the k-th array of the
    layer named NAME) into the run directory (as ``filename``)."""
    buffer = io.BytesIO()
    named = {f"{name}/{k}": array for name, arrays in weights.items()
             for k, array in enumerate(arrays)}
    np.savez(buffer, **named)  # type: ignore[arg-type]  # stubs: a key could be allow_pickle
    atomic_write_bytes(rundir.path / filename, buffer.getvalue())


def load_network(rundir: RunDir, filename: str = NETWORK_FILE) -> dict[str, list[np.ndarray]]:
    """The weights :func:`save_network` wrote as ``filename`` ({} when the run kept none);
    EvozeroError naming the file if it is not such weights (damaged, truncated, other
    arrays, objects, not finite)."""
    path = rundir.path / filename
    if not path.exists():
        return {}
    named: dict[tuple[str, int], np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as arrays:
            for key in arrays.files:
                layer, _, number = key.rpartition("/")
                if not layer or not number.isdigit():
                    raise EvozeroError(f"{path}: array {key[:60]!r} is not a layer's "
                                       f"weights (named LAYER/k)")
                named[layer, int(number)] = arrays[key]
    except EvozeroError:
        raise
    except (OSError, ValueError, EOFError, MemoryError, zipfile.BadZipFile,
            zlib.error) as error:
        # ValueError: object arrays (which need pickle) or a damaged .npy header.
        raise EvozeroError(f"{path}: not the trained weights of a network, as a run "
                           f"writes them ({str(error)[:200]})") from None
    weights: dict[str, list[np.ndarray]] = {}
    for (layer, number), array in sorted(named.items()):
        if array.dtype.kind != "f" or not np.all(np.isfinite(array)):
            raise EvozeroError(f"{path}: array {layer}/{number} is not finite floating "
                               f"point weights")
        weights.setdefault(layer, []).append(array)
    return weights


def final_lines(result: dict[str, Any]) -> list[str]:
    """What the run prints when it ends."""
    cost = result["cost"] or {}
    lines = [f"best cell ({result['space']}, by validation): {result['cell']}",
             f"validation accuracy {result['valid_accuracy']:.4f}, held-out test accuracy "
             f"{result['test_accuracy']:.4f}; {cost.get('params', 0):,} params, "
             + (f"{cost['macs']:,} MACs" if "macs" in cost
                else f"{cost.get('flops', 0):,} FLOPs"),
             f"{result['evaluations']:,} networks evaluated ({result['trained']:,} trained, "
             f"{result['cache_hits']:,} cache hits) in {result['seconds']:.1f} s; Pareto "
             f"front of accuracy against {result['pareto_cost']}: "
             f"{len(result['pareto_front'])} networks"]
    if "supernet" in result:
        supernet = result["supernet"]
        line = (f"{supernet['strategy']}: the supernet search took "
                f"{supernet['search_seconds']:,.1f} CPU s; derived cell {result['cell']}")
        if "table_test_accuracy" in result:
            line += (f"; in the table {result['table']}: validation "
                     f"{result['table_valid_accuracy']:.4f}, test "
                     f"{result['table_test_accuracy']:.4f}")
        lines.append(line)
    elif "table" in result:
        lines.append(f"looked up in {result['table']}: {result['simulated_seconds']:,.0f} "
                     f"simulated search seconds; the best cell was found at "
                     f"{result['found_at_simulated_seconds']:,.0f} s (test accuracy: the "
                     f"table's mean over its trained seeds)")
    return lines
