"""Building a table on the workers, resumably, and verifying it.

A build directory holds::

    config.yaml     the resolved config whose nas section is the recipe  (written once)
    plan.json       which networks get a second training seed            (written once)
    records.jsonl   one line per trained (network, seed), appended as each finishes
    build.lock      held (flock) by the one process building
    table.npz       the table, written when every training is recorded

Each of the 15,625 NB-201 cells maps to its network (``Nb201Cell.hash``); every network
is trained once with seed 0 and a sample with seed 1 (a table seed k is run seed k of a
real-training search with the same config: the same weights, the same accuracies). A
job is one training, so kill -9 loses only the trainings under way, and a build started
again (the same command) trains only what ``records.jsonl`` lacks. Workers are the
local processes or Ray actors of a run (:mod:`evozero.runs.workers`); the main process
alone writes. Training runs one BLAS thread and is deterministic, so :func:`verify_table`
retrains cells and compares them with the table bit for bit.
"""
from __future__ import annotations

import functools
import json
import math
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from threadpoolctl import threadpool_limits

from evozero.config import Config, Nas, load_config
from evozero.config.loading import dump_config
from evozero.errors import EvozeroError, InternalError
from evozero.nas.evaluate import Evaluator, evaluator_for
from evozero.nas.spaces.cells import Nb201Cell
from evozero.nas.table.recipe import recipe_mismatch, table_recipe
from evozero.nas.table.store import NB201_CELLS, Table, cell_of_index
from evozero.runs import stopflag
from evozero.runs.files import (
    append_line,
    atomic_write_text,
    json_line,
    json_text,
    numbered_json_lines,
)
from evozero.runs.flow import STOP_SIGNALS, Interrupted
from evozero.runs.rundir import release_lock, take_lock
from evozero.runs.workers import LocalBackend, job_error_reply
from ops import neural
from ops.rng import SEED_MAX

CONFIG_FILE = "config.yaml"
PLAN_FILE = "plan.json"
RECORDS_FILE = "records.jsonl"
LOCK_FILE = "build.lock"
TABLE_FILE = "table.npz"
#: Training seeds a table has: 0 for every network, 1 for a sample.
SEEDS = 2
# Deaths of one training's worker before the build gives up on it.
_MAX_FAILURES = 3
# Seconds between progress lines off a terminal.
_LOG_EVERY = 10.0
# Seed of the draw of the second-seed sample (part of plan.json, so fixed per build).
_SAMPLE_SEED = 201


@functools.lru_cache(maxsize=1)
def network_rows() -> tuple[np.ndarray, np.ndarray]:
    """The row of each of the 15,625 cells, and each row's first cell (by index): rows
    are the distinct networks, numbered in the order their first cell comes."""
    rows = np.empty(NB201_CELLS, dtype=np.int32)
    first: dict[str, int] = {}
    cells: list[int] = []
    for index in range(NB201_CELLS):
        key = cell_of_index(index).hash()
        if key not in first:
            first[key] = len(cells)
            cells.append(index)
        rows[index] = first[key]
    return rows, np.asarray(cells, dtype=np.int32)


def training_record(evaluator: Evaluator, cell: Nb201Cell, costs: bool) -> dict[str, Any]:
    """Train ``cell``'s network as a search with the evaluator's seed would; its per-epoch
    figures, test accuracy and CPU seconds (and with ``costs`` its parameters, FLOPs and
    latency per device profile)."""
    arch = evaluator.architecture(cell)
    started = time.thread_time()
    result, _, _ = evaluator.train(arch, evaluator.train_seed(cell.hash()),
                                    record_epochs=True)
    record: dict[str, Any] = {
        "train_loss": result.losses, "train_accuracy": result.train_accuracies,
        "valid_accuracy": result.valid_accuracies, "test_accuracy": result.test_accuracy,
        "seconds": time.thread_time() - started}
    if costs:
        cost = evaluator.cost(arch)
        record.update(params=int(cost["params"]), flops=int(cost["flops"]),
                      latency_ms=dict(cost["latency_ms"]))
    return record


class TableHost:
    """What a build's worker serves: one training per job ``{"row", "seed"}``."""

    def __init__(self, nas: Nas) -> None:
        # One BLAS thread: one worker per core, and the sums keep one order (exact).
        threadpool_limits(1, user_api="blas")
        neural.retain_freed_memory()
        self.nas = nas
        self.rows = network_rows()

    def handle_safely(self, job: dict[str, Any]) -> dict[str, Any]:
        """Train the job's network; the reply is ``done`` with its record, ``interrupted``
        (a stop request) or ``error``."""
        reply = {"row": job["row"], "seed": job["seed"]}
        try:
            index = int(self.rows[1][job["row"]])
            evaluator = evaluator_for(self.nas, job["seed"])
            record = training_record(evaluator, cell_of_index(index), job["seed"] == 0)
            return {**reply, "kind": "done", "record": {**reply, "cell": index, **record}}
        except stopflag.Stopped:
            return {**reply, "kind": "interrupted"}
        except Exception as error:   # reported to the main process, which stops the build
            return job_error_reply(reply, error)


class TableBuild:
    """One build directory (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def prepare(self, config: Config, second_seeds: int) -> None:
        """Create the directory for ``config``'s recipe, or check that the one there was
        started with the same recipe and sample size."""
        if second_seeds < 0 or second_seeds > len(network_rows()[1]):
            raise EvozeroError(f"--second-seeds {second_seeds}: must be 0 .. "
                               f"{len(network_rows()[1])} (the networks of the space)")
        if self.path.exists() and not self.path.is_dir():
            raise EvozeroError(f"{self.path}: is a file; give a folder for the build")
        self.path.mkdir(parents=True, exist_ok=True)
        config_file, plan_file = self.path / CONFIG_FILE, self.path / PLAN_FILE
        if config_file.exists():
            before = load_config(config_file)
            mismatch = recipe_mismatch(table_recipe(config), table_recipe(before))
            if mismatch is not None:
                raise EvozeroError(f"{self.path} holds a build of another recipe "
                                   f"({mismatch.replace('the table', 'that build')}); "
                                   f"build in another folder")
            plan = self.plan()
            if len(plan) != second_seeds:
                raise EvozeroError(f"{self.path} was started with --second-seeds "
                                   f"{len(plan)}, not {second_seeds}; give the same number "
                                   f"or build in another folder")
            return
        rows = len(network_rows()[1])
        sample = np.sort(np.random.default_rng(_SAMPLE_SEED).choice(rows, second_seeds,
                                                                    replace=False))
        atomic_write_text(plan_file, json_text({"second_seed_rows": sample.tolist()}))
        atomic_write_text(config_file, dump_config(config))   # last: it marks a build

    def plan(self) -> list[int]:
        """The rows trained with a second seed."""
        where = self.path / PLAN_FILE
        try:
            rows = json.loads(where.read_text(encoding="utf-8"))["second_seed_rows"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise EvozeroError(f"{where}: not a build plan ({error}); start the build in "
                               f"a new folder") from None
        count = len(network_rows()[1])
        if not isinstance(rows, list) or not all(isinstance(r, int) and 0 <= r < count
                                                 for r in rows) or len(set(rows)) != len(rows):
            raise EvozeroError(f"{where}: second_seed_rows must be distinct rows 0 .. "
                               f"{count - 1}")
        return rows

    def jobs(self) -> list[tuple[int, int]]:
        """Every (row, seed) the table needs: seed 0 of every network, then seed 1 of
        the sample."""
        rows = len(network_rows()[1])
        return [(row, 0) for row in range(rows)] + [(row, 1) for row in self.plan()]

    def records(self, epochs: int, profiles: list[str]) -> dict[tuple[int, int], dict]:
        """The recorded trainings by (row, seed), each checked (EvozeroError naming the
        line otherwise); a torn last line is skipped."""
        where = self.path / RECORDS_FILE
        found: dict[tuple[int, int], dict] = {}
        rows, cells = network_rows()
        for number, record in numbered_json_lines(where):
            problem = _record_problem(record, epochs, profiles, rows, cells)
            if problem is not None:
                raise EvozeroError(f"{where}, line {number}: {problem}; remove the line "
                                   f"(that training is then done again)")
            found.setdefault((record["row"], record["seed"]), record)
        return found

    def append(self, record: dict[str, Any]) -> None:
        """Record one finished training."""
        append_line(self.path / RECORDS_FILE, json_line(record))


def _record_problem(record: Any, epochs: int, profiles: list[str], rows: np.ndarray,
                    cells: np.ndarray) -> str | None:
    """Why ``record`` is not a training of this build, or None."""
    if not isinstance(record, dict):
        return "not a record"
    row, seed = record.get("row"), record.get("seed")
    if not isinstance(row, int) or not 0 <= row < len(cells) or seed not in range(SEEDS) \
            or record.get("cell") != int(cells[row]):
        return f"row, seed and cell must name a network of the space (row 0 .. " \
               f"{len(cells) - 1}, seed 0 or 1, its first cell)"
    for key in ("train_loss", "train_accuracy", "valid_accuracy"):
        values = record.get(key)
        if not isinstance(values, list) or len(values) != epochs or not all(
                isinstance(v, float | int) and math.isfinite(v) for v in values):
            return f"{key} must be {epochs} finite numbers"
    if not all(0 <= v <= 1 for key in ("train_accuracy", "valid_accuracy")
               for v in record[key]):
        return "accuracies must be in [0, 1]"
    test, seconds = record.get("test_accuracy"), record.get("seconds")
    if not isinstance(test, float | int) or not 0 <= test <= 1:
        return "test_accuracy must be in [0, 1]"
    if not isinstance(seconds, float | int) or not 0 <= seconds < math.inf:
        return "seconds must be a number >= 0"
    if seed == 0:
        latency = record.get("latency_ms")
        if not all(isinstance(record.get(k), int) and record[k] >= 0
                   for k in ("params", "flops")) or not isinstance(latency, dict) \
                or sorted(latency) != sorted(profiles) or not all(
                    v is None or isinstance(v, float | int) and v >= 0
                    for v in latency.values()):
            return f"a seed-0 record needs params, flops (whole numbers >= 0) and " \
                   f"latency_ms (>= 0, or null: does not fit) of the profiles " \
                   f"{', '.join(profiles)}"
    return None


def assemble(config: Config, nas: Nas, records: dict[tuple[int, int], dict],
             profiles: list[str]) -> Table:
    """The table of a finished build's records."""
    rows, cells = network_rows()
    count, epochs = len(cells), nas.training.epochs
    per_epoch = {key: np.full((count, SEEDS, epochs), np.nan, dtype=np.float32)
                 for key in ("train_loss", "train_accuracy", "valid_accuracy")}
    test = np.full((count, SEEDS), np.nan, dtype=np.float32)
    seconds = np.full((count, SEEDS), np.nan, dtype=np.float32)
    params = np.zeros(count, dtype=np.int64)
    flops = np.zeros(count, dtype=np.int64)
    latency = np.zeros((count, len(profiles)), dtype=np.float32)
    for (row, seed), record in records.items():
        for key, array in per_epoch.items():
            array[row, seed] = record[key]
        test[row, seed] = record["test_accuracy"]
        seconds[row, seed] = record["seconds"]
        if seed == 0:
            params[row], flops[row] = record["params"], record["flops"]
            # null in JSON: the network does not fit the profile's memory
            latency[row] = [math.inf if record["latency_ms"][name] is None
                            else record["latency_ms"][name] for name in profiles]
    meta = {"recipe": table_recipe(config), "profiles": profiles,
            "space": "nb201", "networks": count, "cells": NB201_CELLS,
            "seed_meaning": "table seed k is run seed k of a search with this recipe",
            "seconds": "CPU seconds of one training (every epoch and its validation pass), "
                       "one BLAS thread"}
    return Table(meta=meta, row=rows, cell=cells, test_accuracy=test, seconds=seconds,
                 params=params, flops=flops, latency_ms=latency, **per_epoch)


class _Progress:
    """The build's progress: a live line on a terminal, a line every 10 s elsewhere."""

    def __init__(self, out: TextIO, total: int, done: int) -> None:
        self.out, self.total, self.start_done = out, total, done
        self.live = out.isatty()
        self.started = time.monotonic()
        self._last = -math.inf

    def say(self, text: str) -> None:
        print(("\r\033[K" if self.live else "") + text, file=self.out, flush=True)

    def show(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.live and not force and now - self._last < _LOG_EVERY:
            return
        self._last = now
        new = done - self.start_done
        rate = new / (now - self.started) if now > self.started else 0.0
        eta = (self.total - done) / rate if rate > 0 else None
        eta_text = "—" if eta is None else time.strftime("%H:%M:%S", time.gmtime(eta))
        line = (f"trained {done:,}/{self.total:,} ({100 * done / self.total:.1f}%)  "
                f"{rate:.2f} networks/s  ETA {eta_text}")
        if self.live:
            self.out.write("\r\033[K" + line)
            self.out.flush()
        else:
            self.say(line)


def build_table(directory: str | Path, config: Config, nas: Nas, workers: int,
                second_seeds: int, make_backend: Callable[[int, Any], Any] | None = None,
                out: TextIO | None = None) -> Path:
    """Train what the build in ``directory`` lacks on ``workers`` workers, then write its
    table; returns the table's path. Raises Interrupted on Ctrl-C (every finished
    training is recorded; run the same command again to continue)."""
    out = out if out is not None else sys.stdout
    build = TableBuild(directory)
    build.prepare(config, second_seeds)
    lock, note = take_lock(build.path / LOCK_FILE, lambda holder: (
        f"{build.path} is being built by another process ({holder}); wait for it or "
        f"stop it"))
    try:
        if note is not None:
            print(f"note: {note}", file=out)
        profiles = sorted(evaluator_for(nas, 0).profiles)
        records = build.records(nas.training.epochs, profiles)
        pending = deque(job for job in build.jobs() if job not in records)
        total = len(build.jobs())
        progress = _Progress(out, total, total - len(pending))
        if pending:
            progress.say(f"building {build.path}: {total:,} trainings ({len(network_rows()[1]):,}"
                         f" networks, {len(build.plan()):,} with a second seed), "
                         f"{total - len(pending):,} recorded, {len(pending):,} to train on "
                         f"{min(workers, len(pending))} worker(s)")
            _train(build, nas, pending, records, min(workers, len(pending)), make_backend,
                   progress)
        table = assemble(config, nas, records, profiles)
        target = build.path / TABLE_FILE
        table.save(target)
        progress.say(f"table written: {target}")
        return target
    finally:
        release_lock(lock)


def _train(build: TableBuild, nas: Nas, pending: deque[tuple[int, int]],
           records: dict[tuple[int, int], dict], count: int,
           make_backend: Callable[[int, Any], Any] | None, progress: _Progress) -> None:
    stop: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: stop.append(signum))
                for signum in STOP_SIGNALS}
    host = functools.partial(TableHost, nas)
    backend: Any = make_backend(count, host) if make_backend else LocalBackend(count, host)
    jobs: dict[int, tuple[int, int]] = {}
    failures: dict[tuple[int, int], int] = {}
    interrupted = False
    try:
        while pending or jobs:
            if stop:
                if not jobs:
                    break
                if not interrupted:   # the trainings under way give up at their next step
                    backend.interrupt()
                    interrupted = True
            else:
                for worker in range(count):
                    if worker not in jobs and pending:
                        jobs[worker] = pending.popleft()
                        backend.send(worker, {"row": jobs[worker][0], "seed": jobs[worker][1]})
            for worker, reply in backend.receive(0.2):
                job = jobs.pop(worker, None)
                if job is None:
                    continue
                if reply is None:
                    _died(backend, worker, job, failures, pending, stopping=bool(stop))
                elif reply["kind"] == "done":
                    records[job] = reply["record"]
                    build.append(reply["record"])
                elif reply["kind"] == "error":
                    _failed(reply, progress)
                elif not stop:
                    pending.appendleft(job)
            progress.show(len(records))
    finally:
        backend.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    progress.show(len(records), force=True)
    if stop:
        raise Interrupted(signal.Signals(stop[0]).name)


def _died(backend: Any, worker: int, job: tuple[int, int], failures: dict[tuple[int, int], int],
          pending: deque[tuple[int, int]], stopping: bool) -> None:
    how = backend.death(worker)
    if stopping:
        return
    backend.restart(worker)
    failures[job] = failures.get(job, 0) + 1
    if failures[job] > _MAX_FAILURES:
        raise EvozeroError(f"network row {job[0]} seed {job[1]}: its worker died "
                           f"{failures[job]} times (last: {how}); the build stops here "
                           f"(every finished training is recorded)")
    pending.appendleft(job)


def _failed(reply: dict[str, Any], progress: _Progress) -> None:
    message = f"network row {reply['row']} seed {reply['seed']} failed: {reply['error']}"
    if reply["user"]:
        raise EvozeroError(message)
    progress.say(reply["traceback"].rstrip())
    raise InternalError(f"{message}; this is a fault in evozero (traceback above)")


def verify_table(table: Table, nas: Nas, cells: int, seed: int,
                 say: Callable[[str], None]) -> list[str]:
    """Retrain ``cells`` networks drawn with ``seed`` (one of their trained seeds each)
    and compare every recorded figure bit for bit (as the table stores them, float32);
    returns the differences found (empty: the table holds). Seconds are not compared."""
    if not 1 <= cells <= len(table.cell):
        raise EvozeroError(f"--cells {cells}: must be 1 .. {len(table.cell)}")
    if not 0 <= seed <= SEED_MAX:
        raise EvozeroError(f"--seed {seed}: must be 0 .. {SEED_MAX}")
    threadpool_limits(1, user_api="blas")
    neural.retain_freed_memory()
    rng = np.random.default_rng(seed)
    trained = table.trained()
    problems = []
    for row in rng.choice(len(table.cell), cells, replace=False):
        seeds = np.flatnonzero(trained[row])
        train_seed = int(seeds[rng.integers(len(seeds))])
        cell = cell_of_index(int(table.cell[row]))
        record = training_record(evaluator_for(nas, train_seed), cell, costs=False)
        differences = [key for key in ("train_loss", "train_accuracy", "valid_accuracy")
                       if not np.array_equal(np.asarray(record[key], dtype=np.float32),
                                             getattr(table, key)[row, train_seed])]
        if np.float32(record["test_accuracy"]) != table.test_accuracy[row, train_seed]:
            differences.append("test_accuracy")
        verdict = "same" if not differences else "DIFFERS in " + ", ".join(differences)
        say(f"{cell} (row {row}, seed {train_seed}): {verdict}")
        if differences:
            problems.append(f"{cell} seed {train_seed}: {', '.join(differences)}")
    return problems
