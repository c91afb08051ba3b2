"""``evozero tune``: a program's constants tuned on some tasks, then tested on held-out ones.

The program is a run directory (its best program), a program file or a built-in name;
tasks come as ``evozero eval`` takes them. For an experiment config, tuning uses its
``select_tasks`` and, unless other held-out tasks are given, testing its ``final_tasks``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from evozero.analysis.transfer import check_vm_memory, load_program, load_tasks, made_tasks
from evozero.analysis.tuning import tune
from evozero.config import load_config
from evozero.config.yaml_file import read_yaml
from evozero.evaluation.tasks import Task
from evozero.evaluation.vm import evaluate


def tuning_tasks(path: str) -> tuple[list[Task], list[Task] | None]:
    """The tasks to tune on and, for an experiment config, its final tasks (else None)."""
    if Path(path).suffix != ".npz":
        data, _ = read_yaml(path, "task spec or config")
        if data is None or (isinstance(data, dict) and "kind" not in data):
            config = load_config(path)
            return (made_tasks(config.select_tasks, f"{path}: select_tasks"),
                    made_tasks(config.final_tasks, f"{path}: final_tasks"))
    return load_tasks(path), None


def tune_report(program_spec: str, tasks_path: str, test_path: str | None = None,
                trials: int = 100, seed: int = 0) -> dict[str, Any]:
    """Untuned and tuned fitness on the tuning and the held-out tasks, the factors, and
    the tuned program's text (held-out entries are null without held-out tasks)."""
    program, memory = load_program(program_spec)
    tasks, held_out = tuning_tasks(tasks_path)
    if test_path is not None:
        held_out = load_tasks(test_path)
    check_vm_memory(program, tasks + (held_out or []), memory)
    tuned = tune(program, tasks, trials=trials, seed=seed, memory=memory)

    def held_out_fitness(candidate: Any) -> float | None:
        return None if held_out is None else float(evaluate(candidate, held_out, memory=memory))

    return {"trials": tuned.trials, "seed": seed, "tuning_tasks": len(tasks),
            "held_out_tasks": None if held_out is None else len(held_out),
            "untuned": {"fitness": tuned.untuned_fitness,
                        "held_out_fitness": held_out_fitness(program)},
            "tuned": {"fitness": tuned.fitness,
                      "held_out_fitness": held_out_fitness(tuned.program)},
            "factors": list(tuned.factors), "program": str(tuned.program)}


def format_report(report: dict[str, Any]) -> str:
    """The report as text: a fitness table, the factors and the tuned program."""
    lines = [f"tuned on {report['tuning_tasks']} tasks, best of {report['trials']} trials "
             f"(seed {report['seed']})",
             f"{'':8}  {'tuning tasks':>12}  {'held-out tasks':>14}"]
    for row in ("untuned", "tuned"):
        held = report[row]["held_out_fitness"]
        lines.append(f"{row:8}  {report[row]['fitness']:12.6f}  "
                     f"{'-' if held is None else f'{held:.6f}':>14}")
    factors = ", ".join(f"{factor:.4g}" for factor in report["factors"])
    lines.append(f"factors: {factors or 'none (no tunable constant)'}")
    return "\n".join(lines) + "\n\n" + report["program"]
