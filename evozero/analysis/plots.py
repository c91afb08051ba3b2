"""Fitness curves of run directories as PNG images (``evozero plot``).

Three kinds of figure, each on a private Agg figure (:mod:`evozero.analysis.figure`,
which also draws the median-and-band curves; the labels of the discoveries are placed by
:mod:`evozero.analysis.plot_labels`):

* one run: the best fitness of each experiment (a step line) and the population mean,
  against individuals, seconds or training steps; every discovery (a new best) is a marker
  on the best line and the largest jumps are labelled with a short summary of the program;
* several runs of one config (differing only in seed): the median of the runs' best
  fitness so far with a band (interquartile with 4+ runs, min-max otherwise);
* ``compare=True``: runs grouped by config name, one median + band per group, for example
  evolution against random search.

The individuals and train_steps counters restart at 0 in every experiment of a run, so
they are plotted cumulatively over the experiments; ``seconds`` is already run-wide.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.legend_handler import HandlerTuple

from evozero.analysis.figure import draw_median_band, new_figure, save_figure, series_color
from evozero.analysis.plot_labels import place_labels
from evozero.config import Config, config_to_dict
from evozero.errors import EvozeroError
from evozero.runs.rundir import RunDir

__all__ = ["X_AXES", "RunData", "load_run", "plot_runs", "program_label"]

#: What the x axis can show, with its axis label.
X_AXES = {
    "individuals": "individuals evaluated (cumulative over experiments)",
    "seconds": "wall time (s)",
    "train_steps": "training steps (cumulative over experiments)",
}
#: How many discoveries get a text label on a single-run figure (the largest jumps).
MAX_LABELS = 6
FIGSIZE = (8.0, 5.0)
_RUN_SUFFIX = re.compile(r"-\d+$")
# An instruction that only assigns a constant, such as "s2 = -0.489".
_CONSTANT_SET = re.compile(r"^\w+ = -?[\d.]+(e[-+]?\d+)?$")
# Cap on the common x grid of an aggregate (the union of all the runs' x values).
_MAX_GRID = 4000


# --- reading a run ------------------------------------------------------------------------


@dataclass
class RunData:
    """One run's curves, with x already cumulative over experiments.

    ``progress_*`` come from progress.jsonl, ``disc_*`` from discoveries.jsonl; the
    ``*_exp`` arrays hold the (1-based) experiment of each point.
    """

    path: Path
    config: Config
    x: str
    progress_x: np.ndarray
    progress_exp: np.ndarray
    progress_best: np.ndarray
    progress_mean: np.ndarray
    disc_x: np.ndarray
    disc_exp: np.ndarray
    disc_fitness: np.ndarray
    disc_programs: list[str]
    experiment_starts: dict[int, float]
    finished: bool
    final: dict | None = None
    label: str = field(default="")

    @property
    def group(self) -> str:
        """The config name, or the directory name without a ``-N`` suffix."""
        return self.config.name or _RUN_SUFFIX.sub("", self.path.name)

    @property
    def end_x(self) -> float:
        """The largest x the run has reached."""
        values = np.concatenate([self.progress_x, self.disc_x])
        return float(values.max()) if values.size else 0.0

    def best_so_far(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, best fitness over the whole run up to x), sorted by x, as a step function."""
        xs = np.concatenate([self.progress_x, self.disc_x])
        ys = np.concatenate([self.progress_best, self.disc_fitness])
        keep = np.isfinite(xs) & np.isfinite(ys)
        xs, ys = xs[keep], ys[keep]
        order = np.argsort(xs, kind="stable")
        return xs[order], np.maximum.accumulate(ys[order]) if ys.size else ys


def _number(record: dict, key: str, where: str, nullable: bool = False) -> float:
    value = record.get(key)
    if nullable and value is None:   # strict JSON writes a NaN or infinite value as null
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EvozeroError(f"{where}: record has no number {key!r} (got {value!r}); is this "
                           f"a run directory written by evozero?")
    return float(value)


def load_run(path: str | Path, x: str = "individuals") -> RunData:
    """Read one run directory for plotting; EvozeroError if it has nothing to plot."""
    _check_x(x)
    rundir = RunDir.open(path)
    config = rundir.read_config()
    progress = rundir.read_progress()
    if not progress:
        raise EvozeroError(f"{rundir.path}: no progress recorded yet "
                           f"({RunDir.PROGRESS} is missing or empty); wait for the run to "
                           f"write its first progress line")
    discoveries = rundir.read_discoveries()
    final = rundir.read_final()
    where_p = str(rundir.path / RunDir.PROGRESS)
    where_d = str(rundir.path / RunDir.DISCOVERIES)
    progress = _one_history(progress, x, where_p)
    p_exp = np.array([_number(r, "experiment", where_p) for r in progress], dtype=np.int64)
    d_exp = np.array([_number(r, "experiment", where_d) for r in discoveries], dtype=np.int64)
    p_raw = np.array([_number(r, x, where_p) for r in progress])
    d_key = "individual" if x == "individuals" else x
    d_raw = np.array([_number(r, d_key, where_d) for r in discoveries])
    # Counters restart every experiment: shift each experiment by the totals before it.
    totals: dict[int, float] = {}
    for exp, value in zip(np.concatenate([p_exp, d_exp]), np.concatenate([p_raw, d_raw])):
        totals[int(exp)] = max(totals.get(int(exp), 0.0), value)
    if final is not None and x != "seconds":
        for record in final.get("per_experiment") or []:
            if isinstance(record, dict) and isinstance(record.get(x), (int, float)):
                exp = int(record.get("experiment", 0))
                totals[exp] = max(totals.get(exp, 0.0), float(record[x]))
    starts: dict[int, float] = {}
    offset = 0.0
    for exp in sorted(totals):
        starts[exp] = offset
        offset += totals[exp]
    if x == "seconds":
        # Seconds are run-wide already; an experiment starts at its first record.
        starts = {}
        for exp, value in zip(np.concatenate([p_exp, d_exp]), np.concatenate([p_raw, d_raw])):
            starts[int(exp)] = min(starts.get(int(exp), math.inf), value)
        p_x, d_x = p_raw, d_raw
    else:
        p_x = p_raw + np.array([starts[int(e)] for e in p_exp])
        d_x = d_raw + np.array([starts[int(e)] for e in d_exp]) if d_raw.size else d_raw
    return RunData(
        path=rundir.path, config=config, x=x, progress_x=p_x, progress_exp=p_exp,
        progress_best=np.array([_number(r, "best", where_p, True) for r in progress]),
        progress_mean=np.array([_number(r, "mean", where_p, True) for r in progress]),
        disc_x=d_x, disc_exp=d_exp,
        disc_fitness=np.array([_number(r, "fitness", where_d) for r in discoveries]),
        disc_programs=[str(r.get("program", "")) for r in discoveries],
        experiment_starts=starts, finished=final is not None, final=final,
        label=rundir.path.name)


def _one_history(records: list[dict], x: str, where: str) -> list[dict]:
    """Progress records as one history. A record going back in ``x`` within its experiment
    is where a resumed run took over: it supersedes the records past it, which the process
    that died wrote after its last checkpoint (a resume now cuts those off itself; runs
    from before that still hold them)."""
    kept: list[dict] = []
    for record in records:
        experiment, value = _number(record, "experiment", where), _number(record, x, where)
        while (kept and _number(kept[-1], "experiment", where) == experiment
               and _number(kept[-1], x, where) > value):
            kept.pop()
        kept.append(record)
    return kept


def _check_x(x: str) -> None:
    if x not in X_AXES:
        raise EvozeroError(f"unknown x axis {x!r}; allowed: {', '.join(X_AXES)}")


# --- program labels -------------------------------------------------------------------------


def program_label(text: str, memory: tuple[int, int, int] | None = None) -> str:
    """A short label for a program: live instruction counts and a telling Learn line.

    First line ``live 3/1/4`` (setup/predict/learn instructions that can affect a
    prediction); second line the first live Learn instruction that computes something
    (not a constant assignment), if any. Without ``memory`` every instruction counts
    as live (``instr`` instead of ``live``); an unparsable program gives ``"?"``.
    """
    from evozero.programs.instruction import format_instruction
    from evozero.programs.program import Program

    try:
        program = Program.parse(text)
    except EvozeroError:
        return "?"
    keep = np.ones(len(program.code), dtype=bool)
    word = "instr"
    if memory is not None:
        try:
            from evozero.programs.liveness import live_rows
            keep = np.asarray(live_rows(program.code, program.bounds, memory), dtype=bool)
            word = "live"
        except Exception:  # noqa: BLE001 - a label must never break a plot
            keep = np.ones(len(program.code), dtype=bool)
    bounds = [int(b) for b in program.bounds]
    counts = [int(keep[bounds[c]:bounds[c + 1]].sum()) for c in range(3)]
    label = f"{word} {counts[0]}/{counts[1]}/{counts[2]}"
    learn = program.instructions("learn")
    lines = [format_instruction(inst) for i, inst in enumerate(learn) if keep[bounds[2] + i]]
    computing = [line for line in lines if not _CONSTANT_SET.match(line)]
    if computing:
        line = computing[0]
        if len(line) > 26:
            line = line[:25] + "…"
        label += f"\nlearn: {line}"
    return label


# --- drawing ----------------------------------------------------------------------------------


def plot_runs(runs: Sequence[str | Path], output: str | Path, *, x: str = "individuals",
              compare: bool = False, annotate: bool = True, title: str | None = None) -> Path:
    """Plot run directories into an image file (PNG unless ``output`` says otherwise).

    One run: best and mean fitness with labelled discoveries. Several runs of one config:
    median best-so-far with a band. ``compare``: one median + band per config name.
    Returns the path written. EvozeroError for a missing, empty or corrupt run or an
    unknown ``x``.
    """
    _check_x(x)
    if isinstance(runs, (str, Path)):
        runs = [runs]
    if not runs:
        raise EvozeroError("no run directories given to plot")
    data = [load_run(run, x) for run in runs]
    figure = new_figure(FIGSIZE, left=0.1, right=0.975, bottom=0.11, top=0.93)
    axes = figure.add_subplot()
    # Legend entries that show a median line over its band: line -> (band, line).
    banded: dict[Any, tuple[Any, ...]] = {}
    if compare:
        groups: dict[str, list[RunData]] = {}
        for run in data:
            groups.setdefault(run.group, []).append(run)
        default_title = _compare_title(groups)
        for index, (name, members) in enumerate(groups.items()):
            _note_band(banded, _draw_group(axes, members, series_color(index), name))
        ylabel = "best fitness so far"
    elif len(data) == 1:
        default_title = _single_title(data[0])
        _draw_single(axes, data[0], annotate)
        ylabel = "fitness (search tasks)"
    else:
        _check_same_config(data)
        default_title = _group_title(data)
        _note_band(banded, _draw_group(axes, data, series_color(0), data[0].group))
        ylabel = "best fitness so far (search tasks)"
    axes.set_xlabel(X_AXES[x])
    axes.set_ylabel(ylabel)
    axes.set_title(title if title is not None else default_title, fontsize=11)
    axes.grid(True, alpha=0.3, linewidth=0.6)
    axes.set_xlim(left=min(0.0, axes.get_xlim()[0]))
    handles, labels = axes.get_legend_handles_labels()
    # A banded run's entry is its (line, band) pair, drawn as one by HandlerTuple.
    entries: list[Any] = [banded.get(h, h) for h in handles]
    axes.legend(entries, labels, loc="lower right" if compare or len(data) > 1 else "best",
                fontsize=8, framealpha=0.9, handler_map={tuple: HandlerTuple(ndivide=1)})
    return save_figure(figure, output)


def _note_band(banded: dict[Any, tuple[Any, ...]], handle: tuple[Any, ...] | None) -> None:
    if handle is not None and len(handle) == 2:
        banded[handle[-1]] = handle


def _fmt(value: float | None) -> str:
    return "?" if not isinstance(value, (int, float)) else f"{value:.4f}"


def _single_title(run: RunData) -> str:
    config = run.config
    text = f"{run.path.name}: {config.strategy}, seed {config.seed}"
    if run.final is not None:
        text += (f" — final fitness {_fmt(run.final.get('final_fitness'))}"
                 f"{' (solved)' if run.final.get('solved') else ''}")
    else:
        text += " — running"
    return text


def _group_title(runs: list[RunData]) -> str:
    seeds = ", ".join(str(run.config.seed) for run in runs)
    return f"{runs[0].group}: {runs[0].config.strategy}, {len(runs)} runs (seeds {seeds})"


def _compare_title(groups: dict[str, list[RunData]]) -> str:
    names = [f"{name} ({runs[0].config.strategy})" for name, runs in groups.items()]
    return " vs ".join(names) + f" — {sum(len(g) for g in groups.values())} runs"


def _check_same_config(runs: list[RunData]) -> None:
    """Several runs without ``compare`` must share a config apart from seed and name."""
    def settings(run: RunData) -> dict[str, Any]:
        data = config_to_dict(run.config)
        data.pop("seed", None)
        data.pop("name", None)
        return data

    first = settings(runs[0])
    for run in runs[1:]:
        if run.group != runs[0].group:
            raise EvozeroError(f"{run.path} ({run.group!r}) and {runs[0].path} "
                               f"({runs[0].group!r}) are runs of different configs; "
                               f"plot them with compare to overlay one curve per config")
        other = settings(run)
        differ = sorted(key for key in set(first) | set(other)
                        if first.get(key) != other.get(key))
        if differ:
            raise EvozeroError(f"{run.path} and {runs[0].path} differ in "
                               f"{', '.join(differ)} (not just the seed); plot them with "
                               f"compare to overlay one curve per config")


def _draw_single(axes: Any, run: RunData, annotate: bool) -> None:
    """Best (step) and mean per experiment, discoveries as markers, largest jumps labelled."""
    best_color, mean_color = series_color(0), series_color(1)
    experiments = sorted(set(run.progress_exp.tolist()) | set(run.disc_exp.tolist()))
    for number, exp in enumerate(experiments):
        first = number == 0
        in_p = run.progress_exp == exp
        in_d = run.disc_exp == exp
        xs = np.concatenate([run.progress_x[in_p], run.disc_x[in_d]])
        ys = np.concatenate([run.progress_best[in_p], run.disc_fitness[in_d]])
        finite = np.isfinite(xs) & np.isfinite(ys)
        xs, ys = xs[finite], ys[finite]
        if xs.size:
            order = np.argsort(xs, kind="stable")
            xs, ys = xs[order], np.maximum.accumulate(ys[order])
            axes.step(xs, ys, where="post", color=best_color, linewidth=1.8,
                      label="best (per experiment)" if first else None, zorder=3)
        mx, my = run.progress_x[in_p], run.progress_mean[in_p]
        finite = np.isfinite(mx) & np.isfinite(my)
        if finite.any():
            axes.plot(mx[finite], my[finite], color=mean_color, linewidth=1.2, alpha=0.85,
                      marker="." if finite.sum() < 30 else None, markersize=4,
                      label="population mean" if first else None, zorder=2)
        if number > 0 and exp in run.experiment_starts:
            start = run.experiment_starts[exp]
            axes.axvline(start, color="0.5", linestyle=":", linewidth=0.9, zorder=1)
            axes.annotate(f"exp {exp}", (start, 1.0), xycoords=("data", "axes fraction"),
                          xytext=(3, -3), textcoords="offset points", fontsize=7,
                          color="0.4", va="top")
    finite = np.isfinite(run.disc_x) & np.isfinite(run.disc_fitness)
    if finite.any():
        axes.plot(run.disc_x[finite], run.disc_fitness[finite], linestyle="none", marker="o",
                  markersize=4.5, markerfacecolor="white", markeredgecolor=best_color,
                  markeredgewidth=1.2, label=f"discovery ({int(finite.sum())})", zorder=4)
    if annotate:
        _annotate_jumps(axes, run)


def _annotate_jumps(axes: Any, run: RunData) -> None:
    """Label the MAX_LABELS discoveries that raised the best the most."""
    count = run.disc_fitness.size
    if not count:
        return
    jumps = np.full(count, -np.inf)
    previous: dict[int, float] = {}
    for i in np.argsort(run.disc_x, kind="stable"):
        exp, fitness = int(run.disc_exp[i]), float(run.disc_fitness[i])
        if not (math.isfinite(fitness) and math.isfinite(float(run.disc_x[i]))):
            continue
        before = previous.get(exp)
        # The first discovery of an experiment is its starting point, not a jump.
        jumps[i] = fitness - before if before is not None else 0.0
        previous[exp] = max(fitness, before) if before is not None else fitness
    chosen = [int(i) for i in np.argsort(-jumps, kind="stable")[:MAX_LABELS]
              if jumps[i] > 0]
    if not chosen:
        # Nothing improved: label the best discovery so the figure still says what won.
        finite = np.where(np.isfinite(run.disc_fitness))[0]
        if not finite.size:
            return
        chosen = [int(finite[np.argmax(run.disc_fitness[finite])])]
    chosen.sort(key=lambda i: run.disc_x[i])
    memory = run.config.memory.sizes
    # Enough digits that the labelled fitnesses differ even when the jumps are tiny.
    low, high = axes.get_ylim()
    digits = int(min(8, max(4, math.ceil(-math.log10(max(high - low, 1e-12))) + 2)))
    labels = [(float(run.disc_x[i]), float(run.disc_fitness[i]),
               f"{run.disc_fitness[i]:.{digits}f}  "
               + program_label(run.disc_programs[i], memory))
              for i in chosen]
    place_labels(axes, labels)


def _draw_group(axes: Any, runs: list[RunData], color: str, name: str) -> tuple[Any, ...] | None:
    """Median best-so-far of ``runs`` on a common x grid, with an IQR or min-max band."""
    curves = [run.best_so_far() for run in runs]
    grid = np.unique(np.concatenate([xs for xs, _ in curves] + [np.zeros(0)]))
    if grid.size > _MAX_GRID:
        grid = np.unique(np.concatenate([np.linspace(grid[0], grid[-1], _MAX_GRID),
                                         grid[[0, -1]]]))
    if not grid.size:
        return None
    values = np.full((len(runs), grid.size), np.nan)
    for row, (run, (xs, ys)) in enumerate(zip(runs, curves)):
        if not xs.size:
            continue
        index = np.searchsorted(xs, grid, side="right") - 1
        inside = index >= 0
        if not run.finished:
            # A live run says nothing about x beyond where it is now.
            inside &= grid <= xs[-1]
        values[row, inside] = ys[index[inside]]
    counts = np.sum(np.isfinite(values), axis=0)
    shown = counts > 0
    label = f"{name} ({runs[0].config.strategy})" + (": 1 run" if len(runs) == 1 else "")
    return draw_median_band(axes, grid[shown], values[:, shown], color, label)
