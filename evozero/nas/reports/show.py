"""What ``evozero show`` and ``evozero export`` tell about a NAS run: the best cell as
adjacency and ops (and its NAS-Bench-201 string), its accuracy and cost record, the
search's totals and discoveries, and its trained network. The key settings and the
wording shared with program runs come from :mod:`evozero.analysis.show`."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from evozero.analysis.show import key_settings, settings_line, unfinished
from evozero.config import Config, Nas
from evozero.errors import EvozeroError
from evozero.nas.devices.drift import describe_drift, recorded_drift
from evozero.nas.evaluate import Evaluator, evaluator_for
from evozero.nas.reports.results import load_network, simulated_seconds
from evozero.nas.spaces.cells import NB201_NODES, Nb101Cell, Nb201Cell
from evozero.nas.spaces.skeleton import compile_cell
from evozero.nas.spaces.space import CellSpace
from evozero.nas.training.model import Model
from evozero.runs.files import check_fields
from evozero.runs.rundir import RunDir


def cell_lines(cell: Nb101Cell | Nb201Cell) -> list[str]:
    """The cell as an adjacency matrix with one op per vertex (NAS-Bench-201 cells: one
    op per edge, and their string)."""
    if isinstance(cell, Nb201Cell):
        edge_ops = iter(cell.edge_ops)
        lines = [f"  node {j} = " + " + ".join(f"{next(edge_ops)}(node {i})" for i in range(j))
                 for j in range(1, NB201_NODES)]
        return [f"  {cell}"] + lines
    matrix, ops = cell.pruned()
    lines = ["  " + " ".join(str(v) for v in range(len(ops))) + "   op"]
    lines += ["  " + " ".join(str(int(x)) for x in row) + f"   {op}"
              for row, op in zip(matrix, ops)]
    dropped = len(cell.ops) - len(ops)
    if dropped:
        lines.append(f"  ({dropped} vertex(es) of the genome are off every input-output path)")
    return lines


# The fields of final.json and of an evaluation record that show reads, with their types.
_ACCURACY = (int, float, type(None))   # null: not measured, or NaN in strict JSON
_FINAL_FIELDS = {"cell": str, "hash": str, "valid_accuracy": _ACCURACY,
                 "test_accuracy": _ACCURACY, "cost": (dict, type(None)),
                 "seconds": (int, float), "pareto_front": list}
_EVALUATION_FIELDS = {"genome": str, "hash": str, "fitness": _ACCURACY, "cache_hit": bool,
                      "valid_accuracy": _ACCURACY, "test_accuracy": _ACCURACY,
                      "cost": (dict, type(None)), "run_seconds": (int, float)}


def nas_summary(rundir: RunDir, config: Config, nas: Nas) -> dict[str, Any]:
    """The run's best cell, its accuracy and cost record, totals and key settings
    (``nas`` the config's nas section)."""
    final = rundir.read_final()
    if final is not None:
        check_fields(final, _FINAL_FIELDS, str(rundir.path / RunDir.FINAL))
    evaluations = rundir.read_evaluations()
    for number, record in enumerate(evaluations, start=1):
        check_fields(record, _EVALUATION_FIELDS,
                     f"{rundir.path / RunDir.EVALUATIONS}: record {number}")
    # A supernet search's records of cells scored with shared weights are not trainings.
    scored = [r for r in evaluations if r.get("phase") not in (None, "retrained")]
    evaluations = [r for r in evaluations if r.get("phase") in (None, "retrained")]
    best = None
    if final is not None:
        best = {key: final[key] for key in ("cell", "hash", "valid_accuracy", "test_accuracy",
                                            "cost")}
    elif evaluations:
        # A NaN fitness is null in the strict JSON file (or NaN in an older one).
        top = max(evaluations, key=lambda r: (r["fitness"] if r["fitness"] is not None
                                              and r["fitness"] == r["fitness"] else -1.0))
        best = {"cell": top["genome"], "hash": top["hash"], "cost": top["cost"],
                "valid_accuracy": top["valid_accuracy"], "test_accuracy": top["test_accuracy"]}
    return {"run": str(rundir.path), "name": config.name, "finished": final is not None,
            "space": nas.space, "dataset": nas.dataset,
            "objective": nas.objective.kind, "profile": nas.profile,
            "latency_drift": recorded_drift(nas),
            "evaluations": len(evaluations),
            "trained": sum(1 for r in evaluations if not r["cache_hit"]),
            "cache_hits": sum(1 for r in evaluations if r["cache_hit"]),
            "seconds": final["seconds"] if final else
            max((r["run_seconds"] for r in evaluations), default=0.0),
            "settings": key_settings(config, programs=False),
            "best": best, "pareto_front": final["pareto_front"] if final else None,
            **({"table": nas.table, "simulated_seconds": simulated_seconds(evaluations)}
               if nas.table is not None and not scored else {}),
            **({"supernet": _supernet_summary(scored, final)} if scored else {})}


def _supernet_summary(scored: list[dict[str, Any]], final: dict[str, Any] | None
                      ) -> dict[str, Any]:
    """Where a supernet search is: its last scored cell (after an epoch, or derived)."""
    last = scored[-1]
    summary = {"phase": last["phase"], "cell": last["genome"],
               "shared_weight_accuracy": last["valid_accuracy"],
               "search_seconds": last["search_seconds"],
               "epochs_reported": sum(1 for r in scored if r["phase"] == "epoch")}
    summary.update({k: last[k] for k in ("table_valid_accuracy", "table_test_accuracy")
                    if k in last})
    if final is not None:
        summary["strategy"] = final["supernet"]["strategy"]
        summary["search_seconds"] = final["supernet"]["search_seconds"]
    return summary


def format_nas_summary(summary: dict[str, Any], nas: Nas) -> str:
    """The human-readable form of :func:`nas_summary`."""
    state = "finished" if summary["finished"] else unfinished(summary["run"])
    lines = [f"run {summary['run']}",
             f"  {state}; {summary['space']} cells on {summary['dataset']}, objective "
             f"{summary['objective']}; {summary['evaluations']:,} networks evaluated "
             f"({summary['trained']:,} trained, {summary['cache_hits']:,} cache hits), "
             f"{summary['seconds']:.1f} s",
             settings_line(summary["settings"])]
    if "supernet" in summary:
        supernet = summary["supernet"]
        what = "derived" if supernet["phase"] == "derived" else "derived after the last epoch"
        line = (f"  supernet search: {supernet['search_seconds']:,.1f} CPU s; cell {what} "
                f"{supernet['cell']}, {supernet['shared_weight_accuracy']:.4f} with the shared "
                f"weights")
        if "table_test_accuracy" in supernet:
            line += (f"; in the table: validation {supernet['table_valid_accuracy']:.4f}, "
                     f"test {supernet['table_test_accuracy']:.4f}")
        lines.append(line)
    if "table" in summary:
        lines.append(f"  looked up in the table {summary['table']}: "
                     f"{summary['simulated_seconds']:,.0f} simulated search seconds; test "
                     f"accuracy is the table's mean over its trained seeds")
    best = summary["best"]
    if best is None:
        lines.append("  no network trained yet" if "supernet" in summary
                     else "  no network evaluated yet")
        return "\n".join(lines)
    lines += ["", f"best cell (by validation accuracy; hash {best['hash']}):"]
    lines += cell_lines(CellSpace(nas).parse(best["cell"]))
    lines += ["", f"validation accuracy {best['valid_accuracy']:.4f}   held-out test accuracy "
                  f"{best['test_accuracy']:.4f}", "cost record (per example, inference):"]
    lines += cost_lines(best["cost"])
    if summary["latency_drift"]:
        lines.append(f"  (host latency scaled by the drift measured at the run's start: "
                     f"{describe_drift(summary['latency_drift'])})")
    front = summary["pareto_front"]
    if front:
        cost = nas.objective.cost
        lines += ["", f"Pareto front, validation accuracy against {cost}:"]
        lines += [f"  {f[cost]:>12.4g}  {f['valid_accuracy']:.4f}  {f['genome']}" for f in front]
    return "\n".join(lines)


def cost_lines(cost: dict[str, Any]) -> list[str]:
    """A cost record, one quantity per line."""
    lines = [f"  {name:<28}{cost[name]:>14,}" for name in (
        "params", "weight_bytes", "macs", "flops", "train_macs", "activation_bytes",
        "peak_activation_bytes", "train_peak_activation_bytes") if name in cost]
    for profile, ms in sorted(cost.get("latency_ms", {}).items()):
        lines.append(f"  {'latency_ms[' + profile + ']':<28}{ms:>14.4f}")
    return lines


def best_cell(rundir: RunDir, nas: Nas, text: str) -> Nb101Cell | Nb201Cell:
    """The cell of the run's best.txt (its ``text``); EvozeroError naming the file when
    it is not a cell of the run's space."""
    try:
        return CellSpace(nas).parse(text)
    except EvozeroError as error:
        raise EvozeroError(f"{rundir.path / RunDir.BEST}: not a cell of this run's space "
                           f"({nas.space}): {error}") from None


def trained_model(rundir: RunDir, nas: Nas, seed: int) -> tuple[Model, Evaluator, str]:
    """The best network of a run of the nas section ``nas`` and ``seed``, with its trained
    weights (trained again from its recorded seed when the run kept none), its evaluator
    and its cell text."""
    text = rundir.read_best()
    if text is None:
        raise EvozeroError(f"{rundir.path}: the run has no best cell yet (no best.txt)")
    evaluator = evaluator_for(nas, seed)
    cell = best_cell(rundir, nas, text)
    arch = evaluator.architecture(cell)
    weights = load_network(rundir)
    if weights:
        # Runs of earlier versions compiled NAS-Bench-201 cells without unreached edges.
        earlier = replace(evaluator.skeleton, unreached_edges=False)
        for candidate in (arch, compile_cell(cell, earlier, arch.input_shape, arch.classes)):
            model = Model(candidate, seed=0)
            if model.inherit(weights) == len(model.named_state()):
                return model, evaluator, text
        raise EvozeroError(f"{rundir.path}: best_network.npz does not match the best cell")
    _, model, _ = evaluator.train(arch, evaluator.train_seed(cell.hash()))
    return model, evaluator, text
