"""The experiment flow of a run: search, select, repeat until solved, final evaluation.

Each search experiment evolves on ``search_tasks`` until its budget; the best program it
found is evaluated on ``select_tasks`` (and so is any program reaching
``sufficient_fitness`` during the search, at once, so a solved run stops early); the
program with the best select fitness over experiments is kept and finally evaluated on
the unseen ``final_tasks``. Everything is written to the run directory as it happens,
and a checkpoint (taken every ``checkpoint_every`` seconds, on Ctrl-C and on SIGTERM)
lets :func:`resume_run` continue exactly where the run stopped.
"""
from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, TextIO

import numpy as np

from evozero.config import Config, dump_config, load_config
from evozero.errors import EvozeroError
from evozero.mutation import CONSTANT_RULES, mutation_arrays, slot_offsets
from evozero.program import Program
from evozero.programs import linear_program, neural_net_program
from evozero.rundir import RunDir
from evozero.search import (BEST_INDIVIDUAL, BUDGET_ON, BUDGET_SPENT, CLASSIFICATION, COMBINE,
                            CONSTANT_RULE, COST_LIMIT, EVOLUTION, FEC_ON, FILLED,
                            FINGERPRINT_HITS, FORGET_EVERY, FULL_EVALS, HURDLE_PERCENTILE,
                            HURDLE_STOPS, HURDLE_WINDOW, HURDLES_ON, IMPROVED, INDIVIDUALS,
                            MAX_ABS_ERROR, MAX_INDIVIDUALS, MAX_TRAIN_STEPS, MEAN, MEDIAN,
                            MUTATE_PROB, NUM_M, NUM_S, NUM_V, POPULATION, RANDOM_SEARCH,
                            ROUNDING_SCALE, STRATEGY, STRUCTURE_HITS, TOURNAMENT, TRAIN_STEPS,
                            BUDGET_REJECTS, SAVED_TRAIN_STEPS, SearchRunner, SearchState,
                            Settings, evolve, program_cost, program_slots)
from evozero.tasks import Task
from evozero.vm import evaluate, group_tasks
from ops.jit import is_cached
from ops.rng import stream_seed

CHECKPOINT_FORMAT = "evozero.run/1"
# Seconds a batch should take: long enough that Python's share is small, short enough
# for a live progress line and a prompt reaction to Ctrl-C.
_BATCH_SECONDS = 0.2
_SEED_LIMIT = 2**31


def _derived_seed(seed: int, purpose: int, experiment: int) -> int:
    """A seed for one purpose of one experiment, from the run's seed."""
    return int(stream_seed(np.uint64(seed), np.uint64(purpose * 1_000_003 + experiment)))


def _task_seed(seed: int, purpose: int, experiment: int) -> int:
    return _derived_seed(seed, purpose, experiment) % _SEED_LIMIT


# --- from a config to kernel settings ------------------------------------------------------

def initial_programs(config: Config) -> Optional[list[Program]]:
    """The initial population's programs (None: random programs)."""
    choice = config.initial_population
    if choice == "random":
        return None
    if choice == "noop":
        return [Program.from_instructions()]
    if choice == "linear":
        return [linear_program()]
    if choice in ("neural_net", "damaged_neural_net"):
        return [neural_net_program(damaged=choice == "damaged_neural_net")]
    return read_programs(choice)


def read_programs(path: str) -> list[Program]:
    """Every program in a text file (each starts at its ``def Setup():`` line)."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise EvozeroError(f"{path}: cannot read the initial programs ({error})") from None
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == "def Setup():"]
    if not starts:
        raise EvozeroError(f"{path}: no program found (each program starts with 'def Setup():')")
    programs = []
    for k, start in enumerate(starts):
        stop = starts[k + 1] if k + 1 < len(starts) else len(lines)
        try:
            programs.append(Program.parse("\n".join(lines[start:stop])))
        except EvozeroError as error:
            raise EvozeroError(f"{path}: program {k + 1} (line {start + 1}): {error}") from None
    return programs


def _check_fits(program: Program, config: Config, where: str) -> None:
    sizes = config.sizes
    for component, length in zip(("setup", "predict", "learn"), program.sizes):
        bound = getattr(sizes, component).max
        if length > bound:
            raise EvozeroError(f"{where}: {component} has {length} instructions but "
                               f"sizes.{component}.max is {bound}")
    need = program.memory_needs()
    have = config.memory.sizes
    if any(h < n for h, n in zip(have, need)):
        raise EvozeroError(f"{where}: the program needs memory {need} (scalars, vectors, "
                           f"matrices) but the config's memory is {have}")


def build_settings(config: Config, tasks: list[Task], eval_seed: int) -> Settings:
    """Kernel settings for one search experiment on ``tasks``."""
    names = ("setup", "predict", "learn")
    bounds = [getattr(config.sizes, c) for c in names]
    max_sizes = np.array([b.max for b in bounds], dtype=np.int64)
    init_sizes = np.array([b.init for b in bounds], dtype=np.int64)
    offsets = slot_offsets(max_sizes)
    rows = int(max_sizes.sum())
    op_lists = [config.ops.codes(c) for c in names]
    width = max(1, max(len(ops) for ops in op_lists))
    allowed = np.zeros((3, width), dtype=np.int64)
    for c, ops in enumerate(op_lists):
        allowed[c, :len(ops)] = ops
    kinds, weights = mutation_arrays(config.mutations)
    given = initial_programs(config)
    # A random population is drawn in the kernel; one empty program fills the slots.
    programs = given if given is not None else [Program.from_instructions()]
    slots = []
    for number, program in enumerate(programs):
        _check_fits(program, config, f"initial_population program {number + 1}")
        code, constants, lengths = program_slots(program, offsets, rows)
        # Shorter programs are padded with no-ops up to the initial sizes.
        slots.append((code, constants, np.maximum(lengths, init_sizes)))
    n_train = tasks[0].n_train * tasks[0].epochs
    baseline = (neural_net_program() if config.compute_budget.baseline == "neural_net"
                else linear_program())
    ints = np.zeros(16, dtype=np.int64)
    ints[STRATEGY] = EVOLUTION if config.strategy == "evolution" else RANDOM_SEARCH
    ints[POPULATION] = config.population_size
    ints[TOURNAMENT] = config.tournament_size
    ints[CONSTANT_RULE] = CONSTANT_RULES[config.constant_mutation]
    ints[FEC_ON] = config.fec.enabled
    ints[FORGET_EVERY] = config.fec.forget_every
    ints[HURDLES_ON] = config.hurdles.enabled
    ints[HURDLE_WINDOW] = config.hurdles.window
    ints[BUDGET_ON] = config.compute_budget.enabled
    ints[COMBINE] = MEAN if config.fitness_combine == "mean" else MEDIAN
    ints[MAX_INDIVIDUALS] = -1 if config.budget.individuals is None else config.budget.individuals
    ints[MAX_TRAIN_STEPS] = -1 if config.budget.train_steps is None else config.budget.train_steps
    ints[NUM_S], ints[NUM_V], ints[NUM_M] = config.memory.sizes
    ints[CLASSIFICATION] = tasks[0].classification
    floats = np.zeros(5)
    floats[MUTATE_PROB] = config.mutate_prob
    floats[MAX_ABS_ERROR] = config.max_abs_error
    floats[HURDLE_PERCENTILE] = config.hurdles.percentile
    floats[COST_LIMIT] = config.compute_budget.factor * program_cost(baseline, n_train)
    floats[ROUNDING_SCALE] = 10.0 ** config.fec.decimals
    return Settings(
        ints=ints, floats=floats, offsets=offsets,
        min_sizes=np.array([b.min for b in bounds], dtype=np.int64), max_sizes=max_sizes,
        init_sizes=init_sizes, allowed=allowed,
        allowed_counts=np.array([len(ops) for ops in op_lists], dtype=np.int64),
        kinds=kinds, kind_weights=weights,
        init_code=np.stack([s[0] for s in slots]), init_constants=np.stack([s[1] for s in slots]),
        init_lengths=np.stack([s[2] for s in slots]),
        init_random=given is None, eval_seed=eval_seed)


# --- the run ----------------------------------------------------------------------------

@dataclass
class Driver:
    """Where the run is in its flow (JSON-able; saved in every checkpoint)."""

    experiment: int = 0
    seconds: float = 0.0                  # wall time spent before this process
    experiment_started: float = 0.0       # run seconds when the current experiment began
    checked: float = -1.0                 # best search fitness already checked on select
    checked_select: float = float("nan")  # and that candidate's select fitness
    experiments: list = field(default_factory=list)
    kept: Optional[dict] = None           # best program over experiments, by select fitness
    solved: bool = False


class Interrupted(Exception):
    """Raised when Ctrl-C or SIGTERM stopped a run after its checkpoint was written."""


class Run:
    """One run: its config, its directory and its progress through the flow."""

    def __init__(self, config: Config, rundir: RunDir, out: Optional[TextIO] = None) -> None:
        self.config = config
        self.rundir = rundir
        self.out = out if out is not None else sys.stdout
        self.driver = Driver()
        self.state: Optional[SearchState] = None
        self._stop_signal: Optional[int] = None
        self._started = time.monotonic()
        self._known_discoveries: set[tuple[int, int]] = set()
        self._select_cache: dict[int, list[Task]] = {}
        self.kernel_seconds = 0.0   # time inside the search kernel (this process)

    # -- timing -------------------------------------------------------------------------

    def seconds(self) -> float:
        """Wall time of the whole run so far, over every process that worked on it."""
        return self.driver.seconds + time.monotonic() - self._started

    # -- tasks --------------------------------------------------------------------------

    def _search_tasks(self, experiment: int) -> list[Task]:
        spec = self.config.search_tasks
        if self.config.randomize_task_seeds and experiment > 0:
            spec = spec.with_seed(_task_seed(self.config.seed, 1, experiment))
        return spec.make()

    def _select_tasks(self, experiment: int) -> list[Task]:
        if experiment not in self._select_cache:
            spec = self.config.select_tasks
            if self.config.randomize_task_seeds and experiment > 0:
                spec = spec.with_seed(_task_seed(self.config.seed, 2, experiment))
            self._select_cache = {experiment: spec.make()}
        return self._select_cache[experiment]

    def _evaluate_on(self, program: Program, tasks: list[Task], purpose: int) -> float:
        return float(evaluate(program, tasks, combine=self.config.fitness_combine,
                              seed=_derived_seed(self.config.seed, purpose, self.driver.experiment),
                              memory=self.config.memory.sizes,
                              max_abs_error=self.config.max_abs_error))

    # -- the flow -----------------------------------------------------------------------

    def execute(self) -> dict[str, Any]:
        """Run (or continue) the flow to its end; returns final.json's content."""
        previous = {signum: signal.signal(signum, self._on_signal)
                    for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not self._flow_done():
                self._run_experiment()
            return self._finish()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop_signal = signum

    def _flow_done(self) -> bool:
        limit = self.config.max_experiments
        return self.driver.solved or (limit > 0 and self.driver.experiment >= limit)

    def _run_experiment(self) -> None:
        config = self.config
        experiment = self.driver.experiment
        tasks = self._search_tasks(experiment)
        groups = group_tasks(tasks)
        if len(groups) != 1:
            raise EvozeroError("search_tasks must all have the same shape")
        settings = build_settings(config, tasks, _derived_seed(config.seed, 3, experiment))
        runner = SearchRunner(settings, groups[0], config.fec.train, config.fec.valid,
                              config.memory.sizes)
        if self.state is None:
            self.state = SearchState.fresh(settings, _derived_seed(config.seed, 4, experiment),
                                           config.fec.cache_size)
            self.driver.checked = -1.0
            self.driver.checked_select = float("nan")
            self.driver.experiment_started = self.seconds()
            self._say(f"experiment {experiment + 1}: evolving on {len(tasks)} "
                      f"{config.search_tasks.kind} tasks")
        state = self.state
        compiling = not is_cached(evolve)
        if compiling:
            self._say("compiling the search kernels (once per installation, about a minute)")
        batch = 64
        last_progress = last_checkpoint = time.monotonic()
        experiment_start = self.driver.experiment_started
        while True:
            started = time.monotonic()
            outcome = runner.step(state, batch)
            elapsed = time.monotonic() - started
            self.kernel_seconds += elapsed
            if compiling:
                # Rates and per-experiment times should describe the search, not the compiler.
                self._say(f"compiled in {elapsed:.0f} s")
                experiment_start = self.driver.experiment_started = self.seconds()
                compiling = False
            batch = int(min(max(batch * _BATCH_SECONDS / max(elapsed, 1e-4), 16), 1 << 20)) \
                if outcome != IMPROVED else batch
            if outcome == IMPROVED:
                self._discovery(state, settings)
                if self._check_promising(state, settings):
                    break
            now = time.monotonic()
            if now - last_progress >= config.progress_every:
                self._progress(state, experiment_start)
                last_progress = now
            if self._stop_signal is not None:
                self._checkpoint()
                raise Interrupted(signal.Signals(self._stop_signal).name)
            if now - last_checkpoint >= config.checkpoint_every:
                self._checkpoint()
                last_checkpoint = now
            if outcome == BUDGET_SPENT or (
                    config.budget.seconds is not None
                    and self.seconds() - experiment_start >= config.budget.seconds):
                break
        self._progress(state, experiment_start, final=True)
        self._end_experiment(state, settings, experiment_start)

    def _discovery(self, state: SearchState, settings: Settings) -> None:
        key = (self.driver.experiment, state.counter(BEST_INDIVIDUAL))
        if key in self._known_discoveries:
            return
        self._known_discoveries.add(key)
        program = state.best_program(settings.offsets)
        self.rundir.append_discovery({
            "experiment": self.driver.experiment + 1, "individual": key[1],
            "seconds": round(self.seconds(), 3), "train_steps": state.counter(TRAIN_STEPS),
            "fitness": state.best_fitness, "program": str(program)})

    def _check_promising(self, state: SearchState, settings: Settings) -> bool:
        """Check a new best reaching sufficient_fitness on the select tasks; True if solved."""
        sufficient = self.config.sufficient_fitness
        if sufficient is None or state.best_fitness < sufficient \
                or state.best_fitness <= self.driver.checked:
            return False
        self.driver.checked = state.best_fitness
        program = state.best_program(settings.offsets)
        fitness = self._evaluate_on(program, self._select_tasks(self.driver.experiment), 2)
        self.driver.checked_select = fitness
        self._say(f"  candidate with search fitness {state.best_fitness:.6f}: "
                  f"select fitness {fitness:.6f}")
        self._keep(program, state.best_fitness, fitness)
        return self.driver.solved

    def _keep(self, program: Program, search_fitness: float, select_fitness: float) -> None:
        kept = self.driver.kept
        if kept is None or select_fitness >= kept["select_fitness"]:
            self.driver.kept = {"program": str(program), "search_fitness": search_fitness,
                                "select_fitness": select_fitness,
                                "experiment": self.driver.experiment + 1}
            self.rundir.write_best(str(program))
        sufficient = self.config.sufficient_fitness
        if sufficient is not None and select_fitness > sufficient:
            self.driver.solved = True

    def _end_experiment(self, state: SearchState, settings: Settings,
                        experiment_start: float) -> None:
        program = state.best_program(settings.offsets)
        if state.best_fitness > self.driver.checked:
            select = self._evaluate_on(program, self._select_tasks(self.driver.experiment), 2)
            self._keep(program, state.best_fitness, select)
        else:
            select = self.driver.checked_select
        record = {"experiment": self.driver.experiment + 1,
                  "search_fitness": state.best_fitness, "select_fitness": select,
                  "individuals": state.counter(INDIVIDUALS),
                  "train_steps": state.counter(TRAIN_STEPS),
                  "seconds": round(self.seconds() - experiment_start, 3)}
        self.driver.experiments = [r for r in self.driver.experiments
                                   if r.get("experiment") != record["experiment"]] + [record]
        self._say(f"experiment {record['experiment']} done: search fitness "
                  f"{record['search_fitness']:.6f}, select fitness {select:.6f}, "
                  f"{record['individuals']:,} individuals in {record['seconds']:.1f} s")
        self.driver.experiment += 1
        self.state = None
        self._checkpoint()

    def _finish(self) -> dict[str, Any]:
        kept = self.driver.kept
        if kept is None:
            raise EvozeroError("the run ended without any evaluated program")
        program = Program.parse(kept["program"])
        final = self._evaluate_on(program, self.config.final_tasks.make(), 5)
        result = {
            "search_fitness": kept["search_fitness"], "select_fitness": kept["select_fitness"],
            "final_fitness": final, "solved": self.driver.solved,
            "experiment": kept["experiment"], "experiments": len(self.driver.experiments),
            "individuals": sum(r["individuals"] for r in self.driver.experiments),
            "train_steps": sum(r["train_steps"] for r in self.driver.experiments),
            "seconds": round(self.seconds(), 3), "program": kept["program"],
            "per_experiment": self.driver.experiments}
        self.rundir.write_best(kept["program"])
        self.rundir.write_final(result)
        self._say(f"final fitness on {self.config.final_tasks.num_tasks} unseen tasks: "
                  f"{final:.6f}  (search {kept['search_fitness']:.6f}, select "
                  f"{kept['select_fitness']:.6f}, {'solved' if self.driver.solved else 'not solved'})")
        self._say(kept["program"].rstrip())
        return result

    # -- progress and checkpoints -------------------------------------------------------

    def _progress(self, state: SearchState, experiment_start: float, final: bool = False) -> None:
        individuals = state.counter(INDIVIDUALS)
        filled = min(state.counter(FILLED), state.fitness.size)
        population = state.fitness[:filled] if filled else np.zeros(1)
        hits = state.counter(STRUCTURE_HITS) + state.counter(FINGERPRINT_HITS)
        seconds = max(self.seconds() - experiment_start, 1e-9)
        record = {
            "seconds": round(self.seconds(), 3), "experiment": self.driver.experiment + 1,
            "individuals": individuals, "train_steps": state.counter(TRAIN_STEPS),
            "best": state.best_fitness, "mean": float(population.mean()),
            "stdev": float(population.std()), "individuals_per_second": individuals / seconds,
            "cache_hit_rate": hits / individuals if individuals else 0.0,
            "structure_hits": state.counter(STRUCTURE_HITS),
            "fingerprint_hits": state.counter(FINGERPRINT_HITS),
            "full_evaluations": state.counter(FULL_EVALS),
            "hurdle_stops": state.counter(HURDLE_STOPS),
            "budget_rejects": state.counter(BUDGET_REJECTS),
            "saved_train_steps": state.counter(SAVED_TRAIN_STEPS)}
        self.rundir.append_progress(record)
        line = (f"exp {record['experiment']}  {individuals:>11,} indiv  best "
                f"{record['best']:.6f}  mean {record['mean']:.4f}  "
                f"{record['individuals_per_second']:>9,.0f} indiv/s  cache hits "
                f"{100 * record['cache_hit_rate']:4.1f}%")
        if self.out.isatty() and not final:
            self.out.write("\r" + line)
            self.out.flush()
        else:
            self._say(line)

    def _say(self, text: str) -> None:
        if self.out.isatty():
            text = "\r\033[K" + text
        print(text, file=self.out, flush=True)

    def _checkpoint(self) -> None:
        self.driver.seconds = self.seconds()
        self._started = time.monotonic()
        driver = dict(self.driver.__dict__)
        self.rundir.save_checkpoint({
            "format": CHECKPOINT_FORMAT, "driver": driver,
            "search": self.state.to_arrays() if self.state is not None else None})

    def restore(self) -> None:
        """Continue from the newest valid checkpoint (or from the start if there is none)."""
        problems: list[str] = []
        saved = self.rundir.load_checkpoint(problems)
        for problem in problems:
            self._say(f"warning: {problem}")
        for record in self.rundir.read_discoveries():
            self._known_discoveries.add((record["experiment"] - 1, record["individual"]))
        if saved is None:
            return
        if saved.get("format") != CHECKPOINT_FORMAT:
            raise EvozeroError(f"{self.rundir.checkpoint_dir}: not an evozero run checkpoint")
        self.driver = Driver(**saved["driver"])
        if saved["search"] is not None:
            self.state = SearchState.from_arrays(saved["search"])


def start_run(config: Config, out_root: str = "runs", out: Optional[TextIO] = None) -> Run:
    """Create the run directory for ``config`` (config.yaml written) and return the run."""
    rundir = RunDir.create(out_root, config.name or "run")
    rundir.write_config(dump_config(config))
    run = Run(config, rundir, out)
    print(f"run directory: {rundir.path}   (seed {config.seed})", file=run.out, flush=True)
    return run


def resume_run(path: str, out: Optional[TextIO] = None) -> Run:
    """Reopen a run directory to continue it from its newest valid checkpoint."""
    rundir = RunDir.open(path)
    if rundir.read_final() is not None:
        raise EvozeroError(f"{rundir.path}: this run has finished (final.json exists); "
                           f"see `evozero show {rundir.path}`")
    config = load_config(rundir.config_path)
    run = Run(config, rundir, out)
    run.restore()
    print(f"resuming {rundir.path} at experiment {run.driver.experiment + 1}", file=run.out,
          flush=True)
    return run
