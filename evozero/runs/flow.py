"""The experiment flow of a run: search on islands, select, repeat until solved, final.

Each search experiment evolves on ``search_tasks`` on one or more islands
(:mod:`evozero.runs.island`), hosted by workers on this machine or on a Ray cluster
(:mod:`evozero.runs.workers`); each island has the experiment's whole budget. An
island checks any program reaching ``sufficient_fitness`` on ``select_tasks`` at once (so a
solved run stops early) and, at the end, its best program; the program with the best
select fitness over islands and experiments is kept and finally evaluated on the unseen
``final_tasks``. The main process only gathers: it writes the run directory as things
happen, brokers migration (:mod:`evozero.runs.migration`), restarts a worker that dies from
its islands' last snapshots, and writes a checkpoint of every island (every
``checkpoint_every`` seconds, on Ctrl-C and on SIGTERM) from which :func:`resume_run`
continues, on any number of workers.

A run is one configuration: each checkpoint holds the resolved config and its hash, and a
resume whose config.yaml differs in a key outside :data:`RESUME_CHANGEABLE` is refused.
One process writes a run at a time (:meth:`RunDir.acquire`).
"""
from __future__ import annotations

import hashlib
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Optional, TextIO

from evozero.config import Config, config_to_dict, dump_config, island_count, load_config
from evozero.runs.migration import (IslandView, aggregate, empty_arrivals, latest_arrivals,
                                 round_arrivals)
from evozero.errors import EvozeroError, InternalError
from evozero.search.setup import FINAL, evaluate_on
from evozero.runs.island import (FINISHED, RUNNING, WAITING, IslandSpec, check_checkpoint_islands,
                            nan_lowest, warm_up)
from evozero.nas import results as nas_outcome
from evozero.nas.island import warm_up as warm_up_nas
from evozero.runs.preflight import check_before_start
from evozero.programs.program import Program
from evozero.runs.rundir import RunDir, WriteError
from evozero.search.evolution import evolve
from evozero.runs.workers import LocalBackend, cores
from ops.jit import is_cached

RUN_STATE_FORMAT = "evozero.run/2"
# Seconds of evolution an island runs per command: short enough for a live progress line,
# prompt migration and a quick reaction to Ctrl-C; long enough that messages cost little.
_SLICE_SECONDS = 0.25
# Deaths of one island's worker since its last snapshot before the run gives up.
_MAX_FAILURES = 3
#: Config keys a resume may change (README, "Resuming"): where and how often the run works
#: and reports, its label, and how long it goes on. None of them changes what an evaluated
#: individual or a population means, so the checkpoint stays valid; every other key does.
RESUME_CHANGEABLE = ("name", "workers", "backend", "address", "checkpoint_every",
                     "progress_every", "budget", "max_experiments")
# Seconds a stopping run waits for its islands' snapshots (so it ends within 10 s); then
# workers still busy are ended and their islands keep their last snapshots.
_STOP_SECONDS = 6.0
# Signals that stop a run with a checkpoint: Ctrl-C, kill and a closed terminal.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


@dataclass
class Driver:
    """Where the run is in its flow (JSON-able; saved in every checkpoint)."""

    experiment: int = 0
    seconds: float = 0.0                  # wall time spent before this process
    experiment_started: float = 0.0       # run seconds when the current experiment began
    islands: int = 0                      # islands per experiment, fixed at the start
    experiments: list = field(default_factory=list)
    kept: Optional[dict] = None           # best program over experiments, by select fitness
    solved: bool = False


class Interrupted(Exception):
    """Raised when Ctrl-C, SIGTERM or SIGHUP stopped a run after its checkpoint was
    written."""


def make_backend(config: Config, workers: int) -> Any:
    """The backend ``config`` asks for, with ``workers`` workers."""
    if config.backend == "ray":
        from evozero.runs.ray_backend import RayBackend
        return RayBackend(workers, config.address)
    return LocalBackend(workers)


def available_workers(config: Config) -> int:
    """Workers ``workers: auto`` means: this machine's cores, or the Ray cluster's CPUs."""
    if config.workers != "auto":
        return int(config.workers)
    if config.backend == "ray":
        from evozero.runs.ray_backend import cluster_cpus
        return cluster_cpus(config.address)
    return cores()


class Run:
    """One run: its config, its directory and its progress through the flow."""

    def __init__(self, config: Config, rundir: RunDir, out: Optional[TextIO] = None,
                 workers: Optional[int] = None) -> None:
        self.config = config
        self.rundir = rundir
        self.out = out if out is not None else sys.stdout
        self.workers = workers            # None: as the config says
        self.driver = Driver()
        self.backend: Any = None
        self.views: list[IslandView] = []
        self._saved_islands: Optional[dict[str, Any]] = None
        self._stop_signal: Optional[int] = None
        self._started = time.monotonic()
        self._known_discoveries: set[tuple[int, int, int]] = set()
        self._known_evaluations: set[tuple] = set()
        self._experiment_best = -float("inf")
        self._completed_round = 0
        self._pending_snapshots: set[int] = set()
        self._checkpoint_round = 0
        self._checkpoint_due = False
        self.kernel_seconds = 0.0   # time inside the search kernels, over all islands
        # Each island's summary when its snapshot was taken: a checkpoint keeps that, not a
        # later one, so progress after a resume never reports less than before it.
        self._snapshot_summaries: dict[int, dict[str, Any]] = {}
        # progress.jsonl's length when the pending checkpoint was asked for (see
        # _request_checkpoint); None: take it when the checkpoint is written.
        self._progress_size: Optional[int] = None

    # -- timing -------------------------------------------------------------------------

    def seconds(self) -> float:
        """Wall time of the whole run so far, over every process that worked on it."""
        return self.driver.seconds + time.monotonic() - self._started

    # -- the flow -----------------------------------------------------------------------

    def execute(self) -> dict[str, Any]:
        """Run (or continue) the flow to its end; returns final.json's content."""
        previous = {signum: signal.signal(signum, self._on_signal) for signum in STOP_SIGNALS}
        try:
            if not self._flow_done():
                self._start_workers()
            while not self._flow_done():
                self._run_experiment()
            self._stop_workers()
            self._stop_if_asked()
            return self._finish()
        except WriteError as error:
            raise WriteError(f"{error}; the run stops here. Its last checkpoint is intact: "
                             f"once that is fixed, continue with `evozero resume "
                             f"{self.rundir.path}`") from None
        finally:
            self._stop_workers()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.rundir.release()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop_signal = signum

    def _stop_if_asked(self) -> None:
        """Between phases (after compiling, before the final evaluation) a stop request
        ends the run at once: its checkpoint already holds everything done so far."""
        if self._stop_signal is not None:
            raise Interrupted(signal.Signals(self._stop_signal).name)

    def _flow_done(self) -> bool:
        limit = self.config.max_experiments
        return self.driver.solved or (limit > 0 and self.driver.experiment >= limit)

    def _start_workers(self) -> None:
        config = self.config
        started = time.monotonic()
        if config.nas is not None:
            warm_up_nas(config)
        elif not is_cached(evolve):
            self._say("compiling the search kernels (once per installation, about a minute)")
            warm_up(config)
            self._say(f"compiled in {time.monotonic() - started:.0f} s")
        else:
            warm_up(config)
        self._stop_if_asked()
        workers = self.workers if self.workers is not None else available_workers(config)
        if self.driver.islands == 0:
            self.driver.islands = island_count(config, workers)
        workers = max(1, min(workers, self.driver.islands))
        self.backend = make_backend(config, workers)
        where = "Ray" if config.backend == "ray" else "worker processes"
        self._say(f"{self.driver.islands} island{'s' if self.driver.islands > 1 else ''} on "
                  f"{workers} {where}, migration "
                  f"{'off' if config.migration == 'none' else f'every {config.migrate_every:,} individuals'}"
                  f"{', deterministic' if config.deterministic else ''}")

    def _stop_workers(self) -> None:
        if self.backend is not None:
            backend, self.backend = self.backend, None
            backend.close()

    # -- one experiment -----------------------------------------------------------------

    def _island_specs(self, experiment: int) -> list[IslandSpec]:
        # Each island gets the whole budget: more workers search more in the same time.
        budget = self.config.budget
        individuals = -1 if budget.individuals is None else budget.individuals
        train_steps = -1 if budget.train_steps is None else budget.train_steps
        return [IslandSpec(island=i, experiment=experiment, config=self.config,
                           individuals=individuals, train_steps=train_steps)
                for i in range(self.driver.islands)]

    def _run_experiment(self) -> None:
        config = self.config
        experiment = self.driver.experiment
        specs = self._island_specs(experiment)
        workers = self.backend.workers
        self.views = [IslandView(spec, worker=spec.island % workers) for spec in specs]
        self._pending_snapshots = set()
        saved = self._saved_islands
        self._saved_islands = None
        if saved is not None:
            self._completed_round = saved["completed_round"]
            for view, kept in zip(self.views, saved["islands"]):
                view.snapshot, view.result = kept["snapshot"], kept["result"]
                view.summary = self._snapshot_summaries[view.index] = kept["summary"]
                if view.snapshot is not None and view.snapshot["arrivals"] is not None:
                    view.logged[view.snapshot["meta"]["round"]] = view.snapshot["arrivals"]
                view.snapshot_events = list(kept["events"])
                view.buffer = list(kept["events"])
        else:
            self._completed_round = 0
            self.driver.experiment_started = self.seconds()
            if config.nas is not None:
                self._say(f"experiment {experiment + 1}: {nas_outcome.describe(config)}")
            else:
                self._say(f"experiment {experiment + 1}: evolving on "
                          f"{config.search_tasks.num_tasks} {config.search_tasks.kind} tasks")
        self._experiment_best = max(
            (r["fitness"] for r in self.rundir.read_discoveries()
             if r["experiment"] == experiment + 1), default=-float("inf"))
        for view in self.views:
            if not view.done:
                self._open(view)
        last_progress = last_checkpoint = time.monotonic()
        stopping = False
        while True:
            for worker, reply in self.backend.receive(0.05):
                if reply is None:
                    self._worker_died(worker)
                else:
                    self._on_reply(reply)
            if config.deterministic:
                self._complete_round()
            if self._stop_signal is not None and not stopping:
                stopping = True
                stop_by = time.monotonic() + _STOP_SECONDS
                self._request_checkpoint()
                self.backend.interrupt()   # long work gives up, so snapshots come soon
            if stopping and (not self._pending_snapshots or time.monotonic() >= stop_by):
                self._stop_now()
            now = time.monotonic()
            if now - last_progress >= config.progress_every:
                self._progress()
                last_progress = now
            if now - last_checkpoint >= config.checkpoint_every and not self._pending_snapshots:
                self._request_checkpoint()
                last_checkpoint = now
            if self._pending_snapshots == set() and self._checkpoint_due:
                self._write_checkpoint()
            if self.driver.solved or (config.budget.seconds is not None and self.seconds()
                                      - self.driver.experiment_started >= config.budget.seconds):
                for view in self.views:
                    view.finish_wanted = not view.done
            if all(view.done for view in self.views):
                break
            self._dispatch(snapshots_only=stopping)
        self._flush_events()
        self._progress(final=True)
        self._end_experiment()

    def _open(self, view: IslandView) -> None:
        view.status = view.snapshot["meta"]["status"] if view.snapshot else RUNNING
        self._send(view, {"kind": "open", "spec": view.spec, "snapshot": view.snapshot})

    def _send(self, view: IslandView, command: dict[str, Any]) -> None:
        view.busy = True
        # A failed send means the worker died: receive() reports it and it is restarted.
        self.backend.send(view.worker, command)

    def _send_snapshot(self, view: IslandView) -> None:
        # Migrants already drawn for it but not sent yet belong to the snapshot's moment.
        view.snapshot_arrivals = view.arrivals
        self._send(view, {"kind": "snapshot", "island": view.index})

    def _dispatch(self, snapshots_only: bool = False) -> None:
        for view in self.views:
            if view.busy or view.done:
                continue
            if view.snapshot_wanted:
                self._send_snapshot(view)
            elif snapshots_only:
                continue
            elif view.finish_wanted:
                self._send(view, {"kind": "finish", "island": view.index})
            elif view.status == WAITING and view.arrivals is None or view.status in FINISHED:
                continue
            else:
                arrivals, view.arrivals = view.arrivals, None
                self._send(view, {"kind": "advance", "island": view.index,
                                  "seconds": _SLICE_SECONDS, "arrivals": arrivals})

    def _on_reply(self, reply: dict[str, Any]) -> None:
        if reply["kind"] == "error":
            self._worker_failed(reply)
        view = self.views[reply["island"]]
        view.busy = False
        if reply["kind"] == "stopped":
            # Its worker gave up mid-command and dropped the island: stopping, it keeps
            # its last snapshot; otherwise the worker is ending (SIGTERM) and the island
            # restarts from that snapshot once its death is seen.
            if self._stop_signal is not None:
                self._keep_last_snapshot(view)
            return
        if reply["kind"] == "snapshot":
            view.snapshot = dict(reply["snapshot"], arrivals=view.snapshot_arrivals)
            view.snapshot_events = list(view.buffer)
            view.snapshot_wanted = False
            view.failures = 0
            self._snapshot_summaries[view.index] = view.summary
            done_round = view.snapshot["meta"]["round"]
            view.logged = {r: a for r, a in view.logged.items() if r >= done_round}
            self._pending_snapshots.discard(view.index)
            return
        if reply["kind"] == "finish":
            self._finished(view, reply["result"])
            return
        view.summary = reply["summary"]
        view.status = reply["status"]
        for record in reply.get("evaluations", ()):
            self._log_evaluation(view, record)
        if reply["result"] is not None:
            self._finished(view, reply["result"])
        if self.config.deterministic:
            view.buffer.extend(reply["events"])
        else:
            for event in reply["events"]:
                self._apply_event(event)
        if reply["emigrants"] is not None:
            self._emigrated(view, reply["emigrants"])

    def _finished(self, view: IslandView, result: dict[str, Any]) -> None:
        view.result = result
        # A finished island needs no snapshot: the checkpoint keeps its result.
        self._pending_snapshots.discard(view.index)

    def _emigrated(self, view: IslandView, emigrants: dict[str, Any]) -> None:
        round_ = emigrants["round"]
        if not self.config.deterministic:
            view.emigrants = emigrants
            view.arrivals = latest_arrivals(view, self.views, self.config.seed,
                                            self.driver.experiment)
        elif round_ <= self._completed_round:
            # A restarted island replays a round the others have passed: same migrants.
            view.arrivals = view.logged.get(round_, empty_arrivals())
        else:
            view.emigrants = emigrants

    def _complete_round(self) -> None:
        """Deterministic runs: once every island waits at the next round, flush the
        round's events in a fixed order and hand out its migrants."""
        round_ = self._completed_round + 1
        active = [v for v in self.views if not v.done and v.status not in FINISHED]
        if not active or not all(v.status == WAITING and not v.busy and v.arrivals is None
                   and v.emigrants is not None and v.emigrants["round"] == round_
                   for v in active):
            return
        self._flush_events()
        arrivals = round_arrivals(self.views, self.config.seed, self.driver.experiment, round_)
        for view in active:
            view.arrivals = view.logged[round_] = arrivals[view.index]
        self._completed_round = round_

    def _flush_events(self) -> None:
        events = [e for v in self.views for e in v.buffer]
        for view in self.views:
            view.buffer = []
        for event in sorted(events, key=lambda e: (e["island_individual"], e["island"])):
            self._apply_event(event)

    def _apply_event(self, event: dict[str, Any]) -> None:
        key = (self.driver.experiment, event["island"], event["island_individual"])
        if key in self._known_discoveries:
            return
        self._known_discoveries.add(key)
        island = event["island"]
        if event["select_fitness"] is not None:
            self._say(f"  candidate with search fitness {event['fitness']:.6f} on island "
                      f"{island + 1}: select fitness {event['select_fitness']:.6f}")
            self._keep(event["program"], event["fitness"], event["select_fitness"])
        if event["fitness"] <= self._experiment_best:
            return
        self._experiment_best = event["fitness"]
        count = len(self.views)
        if self.config.deterministic:
            # Islands run in lockstep rounds, so the run's count is the island's x islands.
            individuals = event["island_individual"] * count
            train_steps = event["island_train_steps"] * count
        else:
            others = [v.summary for v in self.views if v.index != island and v.summary]
            individuals = event["island_individual"] + sum(s["individuals"] for s in others)
            train_steps = event["island_train_steps"] + sum(s["train_steps"] for s in others)
        self.rundir.append_discovery({
            "experiment": self.driver.experiment + 1, "island": island + 1,
            "island_individual": event["island_individual"], "individual": individuals,
            "seconds": round(self.seconds(), 3), "train_steps": train_steps,
            "fitness": event["fitness"], "program": event["program"]})

    def _log_evaluation(self, view: IslandView, record: dict[str, Any]) -> None:
        # A restarted island evaluates again what it did after its snapshot: log once.
        key = (self.driver.experiment + 1, view.index + 1, record["island_individual"],
               record["hash"])
        if key in self._known_evaluations:
            return
        self._known_evaluations.add(key)
        self.rundir.append_evaluation(nas_outcome.evaluation_line(
            record, self.driver.experiment + 1, view.index + 1, self.seconds()))

    def _worker_failed(self, reply: dict[str, Any]) -> None:
        """An exception in a worker: an island replays exactly from its snapshot, so it
        would recur; the run stops with it (the last checkpoint stays)."""
        where = "a worker" if reply["island"] is None else f"island {reply['island'] + 1}"
        message = f"{where} failed while {reply['doing']}: {reply['error']}"
        if reply["user"]:
            raise EvozeroError(message)
        self._say(reply["traceback"].rstrip())
        raise InternalError(f"{message}; this is a fault in evozero (traceback above)")

    def _keep_last_snapshot(self, view: IslandView) -> None:
        """A stopping run gets no new snapshot of ``view``: its last one stands."""
        view.busy = False
        view.stale = True
        view.snapshot_wanted = False
        self._pending_snapshots.discard(view.index)

    def _stop_now(self) -> None:
        """End a stopping run: islands without a new snapshot by now keep their last one
        (their workers are ended with the others), and the checkpoint is written unless
        those old snapshots would disagree with it on migration; raises Interrupted."""
        for index in sorted(self._pending_snapshots):
            self._keep_last_snapshot(self.views[index])
        stale = [v for v in self.views if v.stale and not v.done]
        for view in stale:
            self._say(f"island {view.index + 1} gave no snapshot in time; it keeps its "
                      f"last one, at {view.snapshot_individuals:,} individuals")
        # A deterministic island restored before a completed migration round would miss
        # that round's migrants, which the checkpoint does not keep.
        if self.config.deterministic and any(v.snapshot_round < self._checkpoint_round
                                             for v in stale):
            self._checkpoint_due = False
            self._say("the checkpoint is not updated (those snapshots predate a migration "
                      "round); the run resumes from the previous one")
        else:
            self._write_checkpoint()
        raise Interrupted(signal.Signals(self._stop_signal).name)

    def _worker_died(self, worker: int) -> None:
        how = self.backend.death(worker)
        views = [v for v in self.views if v.worker == worker and not v.done]
        if self._stop_signal is not None:   # stopping: no restart, the last snapshots stand
            self._say(f"worker {worker + 1} {how}")
            for view in views:
                self._keep_last_snapshot(view)
            return
        self.backend.restart(worker)
        for view in views:
            view.failures += 1
            if view.failures > _MAX_FAILURES:
                raise EvozeroError(
                    f"island {view.index + 1}: its worker died {view.failures} times since "
                    f"its last snapshot (last: {how}); the run stops here (resume it with "
                    f"`evozero resume {self.rundir.path}` once the cause is fixed)")
            self._say(f"worker {worker + 1} {how}; island {view.index + 1} restarts from its "
                      f"snapshot at {view.snapshot_individuals:,} individuals")
            view.busy = False
            view.arrivals = None
            view.emigrants = None
            self._open(view)

    def _keep(self, program: str, search_fitness: float, select_fitness: float,
              details: Optional[dict[str, Any]] = None) -> None:
        kept = self.driver.kept
        if kept is None or select_fitness >= kept["select_fitness"]:
            self.driver.kept = {"program": program, "search_fitness": search_fitness,
                                "select_fitness": select_fitness,
                                "experiment": self.driver.experiment + 1}
            if details is not None:
                self.driver.kept["details"] = details
            self.rundir.write_best(program)
        sufficient = self.config.sufficient_fitness
        if sufficient is not None and select_fitness > sufficient:
            self.driver.solved = True

    def _end_experiment(self) -> None:
        results = [v.result for v in self.views]
        for result in results:
            self._keep(result["program"], result["search_fitness"], result["select_fitness"],
                       result.get("details"))
        # The experiment's best search fitness, and its candidate: the best on selection.
        search_fitness = max(r["search_fitness"] for r in results)
        select_fitness = max((r["select_fitness"] for r in results), key=nan_lowest)
        summaries = [v.summary for v in self.views]
        self.kernel_seconds += sum(v.summary.get("kernel_seconds", 0.0) for v in self.views)
        record = {"experiment": self.driver.experiment + 1,
                  "search_fitness": search_fitness, "select_fitness": select_fitness,
                  "individuals": sum(s.get("individuals", 0) for s in summaries),
                  "train_steps": sum(s.get("train_steps", 0) for s in summaries),
                  "islands": len(self.views),
                  "seconds": round(self.seconds() - self.driver.experiment_started, 3)}
        self.driver.experiments = [r for r in self.driver.experiments
                                   if r.get("experiment") != record["experiment"]] + [record]
        self._say(f"experiment {record['experiment']} done: search fitness "
                  f"{record['search_fitness']:.6f}, select fitness "
                  f"{record['select_fitness']:.6f}, {record['individuals']:,} individuals in "
                  f"{record['seconds']:.1f} s")
        self.driver.experiment += 1
        self.views = []
        self._write_checkpoint()

    def _finish(self) -> dict[str, Any]:
        kept = self.driver.kept
        if kept is None:
            raise EvozeroError("the run ended without any evaluated program")
        if self.config.nas is not None:
            result = nas_outcome.final_result(self.config, self.rundir, self.driver,
                                              round(self.seconds(), 3))
            self.rundir.write_best(kept["program"])
            self.rundir.write_final(result)
            for line in nas_outcome.final_lines(result):
                self._say(line)
            return result
        program = Program.parse(kept["program"])
        final = evaluate_on(self.config, program, self.config.final_tasks.make(), FINAL,
                            self.driver.experiment)
        result = {
            "search_fitness": kept["search_fitness"], "select_fitness": kept["select_fitness"],
            "final_fitness": final, "solved": self.driver.solved,
            "experiment": kept["experiment"], "experiments": len(self.driver.experiments),
            "individuals": sum(r["individuals"] for r in self.driver.experiments),
            "train_steps": sum(r["train_steps"] for r in self.driver.experiments),
            "seconds": round(self.seconds(), 3), "program": kept["program"],
            "islands": self.driver.islands, "per_experiment": self.driver.experiments}
        self.rundir.write_best(kept["program"])
        self.rundir.write_final(result)
        self._say(f"final fitness on {self.config.final_tasks.num_tasks} unseen tasks: "
                  f"{final:.6f}  (search {kept['search_fitness']:.6f}, select "
                  f"{kept['select_fitness']:.6f}, {'solved' if self.driver.solved else 'not solved'})")
        self._say(kept["program"].rstrip())
        return result

    # -- progress and checkpoints -------------------------------------------------------

    def _progress(self, final: bool = False) -> None:
        seconds = self.seconds() - self.driver.experiment_started
        record = {"seconds": round(self.seconds(), 3), "experiment": self.driver.experiment + 1}
        record.update(aggregate(self.views, seconds))
        self.rundir.append_progress(record)
        shares = "/".join(f"{100 * i['share']:.0f}" for i in record["islands"])
        line = (f"exp {record['experiment']}  {record['individuals']:>11,} indiv  best "
                f"{record['best']:.6f}  mean {record['mean']:.4f}  "
                f"{record['individuals_per_second']:>9,.0f} indiv/s  cache hits "
                f"{100 * record['cache_hit_rate']:4.1f}%")
        if len(record["islands"]) > 1:
            line += f"  islands {shares}%"
        if self.out.isatty() and not final:
            self.out.write("\r" + line)
            self.out.flush()
        else:
            self._say(line)

    def _say(self, text: str) -> None:
        if self.out.isatty():
            text = "\r\033[K" + text
        print(text, file=self.out, flush=True)

    def _request_checkpoint(self) -> None:
        """Ask every unfinished island for a snapshot; the checkpoint is written once all
        have answered. Islands idle now answer first; busy ones right after their current
        command, before anything else is sent to them: so every snapshot reflects the
        same moment of this process's messages, which is what a deterministic resume needs."""
        self._checkpoint_round = self._completed_round
        self._checkpoint_due = True
        # Progress written from now on may count individuals past an island's snapshot;
        # a resume cuts the file back to here, so it never goes back in time.
        self._progress_size = self.rundir.record_sizes()[RunDir.PROGRESS]
        for view in self.views:
            if not view.done:
                view.snapshot_wanted = True
                self._pending_snapshots.add(view.index)
                if not view.busy:
                    self._send_snapshot(view)

    def _write_checkpoint(self) -> None:
        self._checkpoint_due = False
        self.driver.seconds = self.seconds()
        self._started = time.monotonic()
        islands = None
        if self.views:
            islands = {"completed_round": self._checkpoint_round,
                       "islands": [view.to_checkpoint() for view in self.views]}
            for view, kept in zip(self.views, islands["islands"]):
                if not view.done and view.index in self._snapshot_summaries:
                    kept["summary"] = self._snapshot_summaries[view.index]
        records = self.rundir.record_sizes()
        if self._progress_size is not None and islands is not None:
            records[RunDir.PROGRESS] = self._progress_size
        self._progress_size = None   # between experiments every record is final
        self.rundir.save_checkpoint({
            "format": RUN_STATE_FORMAT, "driver": dict(self.driver.__dict__),
            "islands": islands, "config": config_to_dict(self.config),
            "config_sha256": config_hash(self.config), "records": records})

    def restore(self) -> None:
        """Continue from the newest valid checkpoint; EvozeroError if there is none, or if
        config.yaml was changed since in a key a resume may not change."""
        problems: list[str] = []
        saved = self.rundir.load_checkpoint(problems)
        for problem in problems:
            self._say(f"warning: {problem}")
        if saved is None:
            raise EvozeroError(
                f"{self.rundir.path}: no checkpoint to resume from ({RunDir.CHECKPOINTS}/ "
                f"is missing or empty), so the run cannot continue where it stopped; start "
                f"it again with `evozero run {self.rundir.config_path}`")
        if saved.get("format") != RUN_STATE_FORMAT:
            raise EvozeroError(f"{self.rundir.checkpoint_dir}: not an {RUN_STATE_FORMAT} "
                               f"checkpoint (written by another version of evozero)")
        self._check_config(saved)
        self.rundir.cut_records(saved.get("records"))
        for record in self.rundir.read_discoveries():
            self._known_discoveries.add((record["experiment"] - 1, record.get("island", 1) - 1,
                                         record.get("island_individual", record["individual"])))
        for record in self.rundir.read_evaluations():
            self._known_evaluations.add((record["experiment"], record["island"],
                                         record["island_individual"], record["hash"]))
        self.driver = Driver(**saved["driver"])
        check_checkpoint_islands(saved["islands"], self.config, self.driver.islands,
                                 str(self.rundir.checkpoint_dir))
        self._saved_islands = saved["islands"]
        if self.driver.kept is not None:
            # best.txt may hold a program found after the checkpoint, by the process that
            # died; the resumed run finds it again (or not) from here.
            self.rundir.write_best(self.driver.kept["program"])

    def _check_config(self, saved: dict[str, Any]) -> None:
        """Refuse to continue the checkpoint ``saved`` under other settings."""
        if "config_sha256" not in saved:
            self._say(f"warning: {self.rundir.checkpoint_dir}: this checkpoint predates "
                      f"config binding, so changes to {RunDir.CONFIG} since the run started "
                      f"cannot be detected; resuming with {RunDir.CONFIG} as it is now")
            return
        old = saved.get("config") if isinstance(saved.get("config"), dict) else {}
        new = config_to_dict(self.config)
        if saved["config_sha256"] != config_hash(self.config):
            changes = changed_keys(_bound(old), _bound(new)) or [
                "(the checkpoint does not say which: its stored config is missing)"]
            raise EvozeroError(
                f"{self.rundir.config_path}: changed since the run started, in keys a "
                f"resume may not change (the population and its fitness depend on them):\n  "
                + "\n  ".join(changes) + f"\nput the old values back, or start a new run "
                f"with this config (`evozero run {self.rundir.config_path}`); a resume may "
                f"change only {', '.join(RESUME_CHANGEABLE)}")
        for change in changed_keys({k: old.get(k) for k in RESUME_CHANGEABLE if k in old},
                                   {k: new.get(k) for k in RESUME_CHANGEABLE if k in old}):
            self._say(f"note: changed since the last checkpoint: {change}")


def _bound(data: dict[str, Any]) -> dict[str, Any]:
    """The resolved config ``data`` without the keys a resume may change, as plain JSON."""
    kept = {key: value for key, value in data.items() if key not in RESUME_CHANGEABLE}
    return json.loads(json.dumps(kept, default=str))


def config_hash(config: Config) -> str:
    """sha256 of the canonical resolved config, without the keys a resume may change."""
    text = json.dumps(_bound(config_to_dict(config)), sort_keys=True, allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def changed_keys(old: Any, new: Any, key: str = "") -> list[str]:
    """``dotted.key: old -> new`` for each value that differs between two config dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for name in [*old, *(k for k in new if k not in old)]:
            changes += changed_keys(old.get(name), new.get(name), f"{key}.{name}" if key
                                    else name)
        return changes
    if old == new:
        return []
    return [f"{key}: {json.dumps(old, default=str)[:200]} -> "
            f"{json.dumps(new, default=str)[:200]}"]


def start_run(config: Config, out_root: str = "runs", out: Optional[TextIO] = None) -> Run:
    """Create the run directory for ``config`` (config.yaml written) and return the run."""
    check_before_start(config)
    made: list[Run] = []

    def setup(rundir: RunDir) -> None:
        # Complete before it gets its name: its config and a first checkpoint, so every
        # run can be resumed from its start.
        rundir.write_config(dump_config(config))
        made.append(Run(config, rundir, out))
        if rundir.lock_note is not None:
            made[0]._say(f"warning: {rundir.lock_note}")
        made[0]._write_checkpoint()

    rundir = RunDir.create(out_root, config.name or "run", setup)
    run = made[0]
    print(f"run directory: {rundir.path}   (seed {config.seed})", file=run.out, flush=True)
    return run


def resume_run(path: str, out: Optional[TextIO] = None, workers: Optional[int] = None) -> Run:
    """Reopen a run directory to continue it from its newest valid checkpoint, on
    ``workers`` workers (None: as its config says; the islands stay as they were)."""
    rundir = RunDir.open(path)
    rundir.acquire()
    try:
        if rundir.read_final() is not None:
            raise EvozeroError(f"{rundir.path}: this run has finished (final.json exists); "
                               f"see `evozero show {rundir.path}`")
        config = load_config(rundir.config_path)
        check_before_start(config, workers)
        run = Run(config, rundir, out, workers)
        if rundir.lock_note is not None:
            run._say(f"note: {rundir.lock_note}")
        run.restore()
    except BaseException:
        rundir.release()
        raise
    print(f"resuming {rundir.path} at experiment {run.driver.experiment + 1}", file=run.out,
          flush=True)
    return run
