"""What ``evozero show`` tells about a run: its best program raw and simplified, fitness,
key settings, and the timeline of discoveries."""
from __future__ import annotations

from itertools import zip_longest
from typing import Any

from evozero.config import Config
from evozero.errors import EvozeroError
from evozero.programs.liveness import resolve_memory
from evozero.programs.program import Program
from evozero.programs.simplify import program_changes, simplify
from evozero.runs.files import check_fields
from evozero.runs.rundir import RunDir

# Settings a reader needs to make sense of a result, in the order show prints them; the
# full config is in config.yaml. A cell search (nas.show) has no use for the program-only ones.
_KEY_SETTINGS = ("seed", "strategy", "population_size", "tournament_size", "mutate_prob",
                 "initial_population", "fitness_combine", "sufficient_fitness",
                 "max_experiments", "migration", "migrate_every", "deterministic")
_PROGRAM_ONLY = frozenset({"mutate_prob", "initial_population", "fitness_combine",
                           "sufficient_fitness", "max_experiments"})
# Changes a line of ``show --history`` lists before it only counts the rest (its JSON
# form keeps them all): a few changes read at a glance, thirty do not.
_CHANGES_SHOWN = 6


def key_settings(config: Config, *, programs: bool = True) -> dict[str, Any]:
    """The settings of ``config`` that show prints (without the program-only ones for a
    cell search)."""
    return {key: getattr(config, key) for key in _KEY_SETTINGS
            if programs or key not in _PROGRAM_ONLY}


def settings_line(settings: dict[str, Any]) -> str:
    """The key settings as one indented line of show's output."""
    return "  " + ", ".join(f"{key} {value}" for key, value in settings.items())


def unfinished(run: str) -> str:
    """Show's word for a run that has not finished, with how to continue it."""
    return f"unfinished (continue with: evozero resume {run})"


def run_program(text: str, where: str, memory: tuple[int, int, int]) -> Program:
    """A program stored in a run (best.txt, a discovery), checked against the run's
    memory; EvozeroError naming ``where`` (file or file:line) otherwise."""
    try:
        program = Program.parse(text)
        resolve_memory(program, memory)
    except EvozeroError as error:
        raise EvozeroError(f"{where}: not a valid program of this run: {error}") from None
    return program


def best_program(rundir: RunDir, memory: tuple[int, int, int]) -> Program | None:
    """The program in best.txt (None before there is one), checked as :func:`run_program`."""
    text = rundir.read_best()
    return None if text is None else run_program(text, str(rundir.path / RunDir.BEST), memory)


def run_summary(rundir: RunDir) -> dict[str, Any]:
    """Best program (raw and simplified), its fitness and the run's key settings."""
    config = rundir.read_config()
    memory = config.memory.sizes
    final = rundir.read_final()
    if final is not None:
        check_fields(final, _FINAL_FIELDS, str(rundir.path / RunDir.FINAL))
    progress = rundir.read_progress()
    if progress:
        check_fields(progress[-1], _PROGRESS_FIELDS, f"{rundir.path / RunDir.PROGRESS}: "
                                                     f"its last record")
    lines = rundir.discovery_lines()
    program = best_program(rundir, memory)
    if program is None and lines:
        line, record = lines[-1]
        program = _discovery(rundir, line, record, memory)["program"]
    discoveries = [record for _, record in lines]
    summary: dict[str, Any] = {
        "run": str(rundir.path), "name": config.name, "finished": final is not None,
        "solved": bool(final and final["solved"]),
        "fitness": {key: (final or {}).get(f"{key}_fitness") for key in ("search", "select",
                                                                          "final")},
        "individuals": final["individuals"] if final else
        (progress[-1]["individuals"] if progress else 0),
        "seconds": final["seconds"] if final else (progress[-1]["seconds"] if progress else 0.0),
        "experiments": final["experiments"] if final else
        (progress[-1]["experiment"] if progress else 0),
        "islands": final.get("islands", 1) if final else
        (len(progress[-1].get("islands", [None])) if progress else 0),
        "settings": key_settings(config),
        "search_tasks": f"{config.search_tasks.num_tasks} {config.search_tasks.kind} tasks, "
                        f"F = {config.search_tasks.features}, {config.search_tasks.train} "
                        f"train / {config.search_tasks.valid} valid",
        "program": None, "simplified": None}
    if final is None and discoveries:
        summary["fitness"]["search"] = discoveries[-1]["fitness"]
    if program is not None:
        summary["program"] = str(program)
        summary["simplified"] = str(simplify(program, memory))
    return summary


# The fields of final.json and of a progress record that show reads, with their types.
_FINAL_FIELDS = {"solved": bool, "individuals": int, "experiments": int, "seconds": (int, float),
                 **{f"{key}_fitness": (int, float, type(None))
                    for key in ("search", "select", "final")}}
_PROGRESS_FIELDS = {"individuals": int, "seconds": (int, float), "experiment": int}


def history(rundir: RunDir) -> list[dict[str, Any]]:
    """Every improvement of the best, each with what changed since the previous best of
    its lineage (its island in its experiment), both simplified: ``changes`` (a list) and
    ``change`` (one line). An island's first best is compared with the previous best
    overall instead, and ``against`` says which best each was compared with
    (``same_lineage`` false for that fallback; None for the very first program)."""
    config = rundir.read_config()
    memory = config.memory.sizes
    events: list[dict[str, Any]] = []
    latest: dict[tuple[int, int], tuple[dict[str, Any], Program]] = {}   # by lineage
    previous: tuple[dict[str, Any], Program] | None = None
    for line, record in rundir.discovery_lines():
        record = _discovery(rundir, line, record, memory)
        current = simplify(record["program"], memory)
        lineage = (record["experiment"], record.get("island", 1))
        event: dict[str, Any] = {
            "experiment": record["experiment"], "island": lineage[1],
            "individual": record["individual"], "seconds": record["seconds"],
            "fitness": record["fitness"], "against": None, "changes": [],
            "change": "first program"}
        base = latest.get(lineage, previous)
        if base is not None:
            base_event, base_program = base
            event["against"] = {key: base_event[key] for key in ("experiment", "island",
                                                                 "individual")}
            event["against"]["same_lineage"] = lineage in latest
            event["changes"] = program_changes(base_program, current)
            event["change"] = "; ".join(event["changes"]) or "no change"
        latest[lineage] = previous = (event, current)
        events.append(event)
    return events


# The fields of a discovery record that show reads, and their types.
_DISCOVERY_FIELDS: dict[str, type | tuple[type, ...]] = {
    "experiment": int, "individual": (int, float), "seconds": (int, float),
    "fitness": (int, float), "program": str}


def _discovery(rundir: RunDir, line: int, record: dict[str, Any],
               memory: tuple[int, int, int]) -> dict[str, Any]:
    """``record`` (line ``line`` of discoveries.jsonl) with its program parsed; a clear
    error naming the file and line if a field is missing or wrong."""
    where = f"{rundir.path / RunDir.DISCOVERIES}:{line}"
    for key, kind in _DISCOVERY_FIELDS.items():
        value = record.get(key)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise EvozeroError(f"{where}: a discovery needs {key!r} as a "
                               f"{'text' if kind is str else 'number'}, got {value!r:.80}")
    return dict(record, program=run_program(record["program"], where, memory))


def format_summary(summary: dict[str, Any]) -> str:
    """The human-readable form of :func:`run_summary`."""
    lines = [f"run {summary['run']}"]
    state = ("solved" if summary["solved"] else "not solved") if summary["finished"] \
        else unfinished(summary["run"])
    lines.append(f"  {state}; {summary['experiments']} experiment(s), "
                 f"{summary['individuals']:,} individuals on {summary['islands']} island(s), "
                 f"{summary['seconds']:.1f} s")
    fitness = "   ".join(f"{key} {value:.6f}" for key, value in summary["fitness"].items()
                         if value is not None)
    lines.append(f"  fitness: {fitness or 'none yet'}")
    lines.append(f"  searched on {summary['search_tasks']}")
    lines.append(settings_line(summary["settings"]))
    if summary["program"] is not None:
        raw = summary["program"].rstrip().splitlines()
        simple = summary["simplified"].rstrip().splitlines()
        width = max(len(line) for line in raw + ["best program"])
        lines.append("")
        lines.append(f"{'best program':<{width}}   simplified")
        for left, right in zip_longest(raw, simple, fillvalue=""):
            lines.append(f"{left:<{width}}   {right}".rstrip())
    return "\n".join(lines)


def format_history(events: list[dict[str, Any]]) -> str:
    """The human-readable form of :func:`history`: one line per new best, its first few
    changes and how many more there are."""
    lines = [f"{'seconds':>9} {'exp':>3} {'island':>6} {'individual':>11} {'fitness':>9}  "
             f"change (simplified, since the island's previous best)"]
    for event in events:
        lines.append(f"{event['seconds']:>9.2f} {event['experiment']:>3} {event['island']:>6} "
                     f"{event['individual']:>11,} {event['fitness']:>9.6f}  "
                     f"{_change_text(event)}")
    return "\n".join(lines)


def _change_text(event: dict[str, Any]) -> str:
    """A history event's change for its line: the first few changes, the rest counted,
    after which best they are counted from when that is not the island's previous one."""
    against, changes = event["against"], event["changes"]
    if against is None or not changes:
        return event["change"]
    text = "; ".join(changes[:_CHANGES_SHOWN])
    if len(changes) > _CHANGES_SHOWN:
        text += f"; ... {len(changes) - _CHANGES_SHOWN} more"
    if against["same_lineage"]:
        return text
    where = f"island {against['island']}" if against["experiment"] == event["experiment"] \
        else f"experiment {against['experiment']} island {against['island']}"
    return (f"[first best of this island; {len(changes)} change"
            f"{'s' * (len(changes) != 1)} from the best of {where}] {text}")
