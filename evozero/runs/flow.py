"""The experiment flow of a run: search on islands, select, repeat until solved, final.

Each search experiment runs on one or more islands (:mod:`evozero.runs.island`) of the
run's search domain (:mod:`evozero.runs.domain`: programs or network cells), hosted by
workers on this machine or on a Ray cluster (:mod:`evozero.runs.workers`); each island
has the experiment's whole budget. An island checks any candidate reaching
``sufficient_fitness`` at once (so a solved run stops early) and, at the end, its best;
the candidate with the best select fitness over islands and experiments is kept, and the
domain makes the final result of it. The main process only gathers and dispatches: it
sends the islands their commands, writes what they report (:mod:`evozero.runs.events`)
and the progress (:mod:`evozero.runs.progress`), brokers migration
(:mod:`evozero.runs.migration`), restarts a worker that dies from its islands' last
snapshots, and writes a checkpoint of every island (:mod:`evozero.runs.checkpointing`:
every ``checkpoint_every`` seconds, on Ctrl-C and on SIGTERM) from which
:func:`reopen_run` continues, on any number of workers.

One process writes a run at a time (:meth:`RunDir.acquire`).
"""
from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TextIO

from evozero.config import Config, dump_config, island_count
from evozero.errors import EvozeroError, InternalError
from evozero.runs import stopflag
from evozero.runs.checkpointing import Checkpoints, load_checkpoint
from evozero.runs.domain import SearchDomain
from evozero.runs.events import EventLog, ordered
from evozero.runs.files import WriteError
from evozero.runs.inline import InlineBackend
from evozero.runs.island import FINISHED, RUNNING, WAITING, IslandSpec, nan_lowest
from evozero.runs.messages import Command, ErrorReply, IslandResult, Reply
from evozero.runs.migration import IslandView, empty_arrivals, latest_arrivals, round_arrivals
from evozero.runs.preflight import check_before_start
from evozero.runs.progress import Console, budget_used, eta_seconds, progress_record
from evozero.runs.rundir import RunDir
from evozero.runs.state import RunState
from evozero.runs.workers import LocalBackend, cores

# Seconds of evolution an island runs per command: short enough for a live progress line,
# prompt migration and a quick reaction to Ctrl-C; long enough that messages cost little.
_SLICE_SECONDS = 0.25
# Deaths of one island's worker since its last snapshot before the run gives up.
_MAX_FAILURES = 3
# Seconds a stopping run waits for its islands' snapshots (so it ends within 10 s); then
# workers still busy are ended and their islands keep their last snapshots.
_STOP_SECONDS = 6.0
# Signals that stop a run with a checkpoint: Ctrl-C, kill and a closed terminal.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


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
    return resolve_workers(config.workers, config.backend, config.address)


def resolve_workers(workers: str | int, backend: str, address: str | None) -> int:
    """``workers`` as a count (``auto``: this machine's cores, or with ``backend: ray``
    the CPUs of the Ray cluster at ``address``)."""
    if workers != "auto":
        return int(workers)
    if backend == "ray":
        from evozero.runs.ray_backend import cluster_cpus
        return cluster_cpus(address)
    return cores()


class Run:
    """One run: its config, its directory and its progress through the flow."""

    def __init__(self, domain: SearchDomain, rundir: RunDir, out: TextIO | None = None,
                 workers: int | None = None) -> None:
        self.domain = domain
        self.config = domain.config
        self.rundir = rundir
        self.console = Console(out if out is not None else sys.stdout)
        self.out = self.console.out
        self.workers = workers            # None: as the config says
        #: True: the islands live in this process (:class:`InlineBackend`), as in a
        #: study's worker; False: in worker processes or Ray actors, as configured.
        self.inline = False
        self.state = RunState()
        self.backend: Any = None
        self.views: list[IslandView] = []
        self.checkpoints = Checkpoints(rundir, self.config)
        self.events = EventLog(rundir, domain, self._say, self._keep)
        self._saved_islands: dict[str, Any] | None = None
        self._stop_signal: int | None = None
        self._started = time.monotonic()
        self._completed_round = 0
        self.kernel_seconds = 0.0   # time inside the search kernels, over all islands

    # -- timing -------------------------------------------------------------------------

    def seconds(self) -> float:
        """Wall time of the whole run so far, over every process that worked on it."""
        return self.state.seconds + time.monotonic() - self._started

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
        if self.inline:
            stopflag.request()   # the island's long work runs right here: it gives up

    def _stop_if_asked(self) -> None:
        """Between phases (after compiling, before the final evaluation) a stop request
        ends the run at once: its checkpoint already holds everything done so far."""
        if self._stop_signal is not None:
            raise Interrupted(signal.Signals(self._stop_signal).name)

    def _flow_done(self) -> bool:
        limit = self.config.max_experiments
        return self.state.solved or (limit > 0 and self.state.experiment >= limit)

    def _start_workers(self) -> None:
        config = self.config
        self.domain.warm_up(self._say)
        self._stop_if_asked()
        workers = 1 if self.inline else (
            self.workers if self.workers is not None else available_workers(config))
        if self.state.islands == 0:
            self.state.islands = island_count(config, workers)
        workers = max(1, min(workers, self.state.islands))
        self.backend = InlineBackend() if self.inline else make_backend(config, workers)
        where = ("in this process" if self.inline else
                 f"on {workers} {'Ray' if config.backend == 'ray' else 'worker processes'}")
        self._say(f"{self.state.islands} island{'s' if self.state.islands > 1 else ''} "
                  f"{where}, migration "
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
        return [self.domain.island_spec(i, experiment, individuals, train_steps)
                for i in range(self.state.islands)]

    def _run_experiment(self) -> None:
        config = self.config
        experiment = self.state.experiment
        specs = self._island_specs(experiment)
        workers = self.backend.workers
        self.views = [IslandView(spec, worker=spec.island % workers) for spec in specs]
        self.checkpoints.pending = set()
        saved = self._saved_islands
        self._saved_islands = None
        if saved is not None:
            self._completed_round = saved["completed_round"]
            for view, kept in zip(self.views, saved["islands"]):
                view.snapshot, view.result = kept["snapshot"], kept["result"]
                view.summary = self.checkpoints.summaries[view.index] = kept["summary"]
                if view.snapshot is not None and view.snapshot["arrivals"] is not None:
                    view.logged[view.snapshot["meta"]["round"]] = view.snapshot["arrivals"]
                view.snapshot_events = list(kept["events"])
                view.buffer = list(kept["events"])
        else:
            self._completed_round = 0
            self.state.experiment_started = self.seconds()
            self._say(f"experiment {experiment + 1}: {self.domain.describe()}")
        self.events.start_experiment(experiment)
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
            if stopping and (not self.checkpoints.pending or time.monotonic() >= stop_by):
                self._stop_now()
            now = time.monotonic()
            if now - last_progress >= config.progress_every:
                self._progress()
                last_progress = now
            if now - last_checkpoint >= config.checkpoint_every and not self.checkpoints.pending:
                self._request_checkpoint()
                last_checkpoint = now
            if not self.checkpoints.pending and self.checkpoints.due:
                self._write_checkpoint()
            if self.state.solved or (config.budget.seconds is not None and self.seconds()
                                      - self.state.experiment_started >= config.budget.seconds):
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

    def _send(self, view: IslandView, command: Command) -> None:
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

    def _on_reply(self, reply: Reply) -> None:
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
            done_round = view.snapshot["meta"]["round"]
            view.logged = {r: a for r, a in view.logged.items() if r >= done_round}
            self.checkpoints.took(view)
            return
        if reply["kind"] == "finish":
            self._finished(view, reply["result"])
            return
        view.summary = reply["summary"]
        view.status = reply["status"]
        for record in reply["evaluations"]:
            self.events.evaluation(record, self.state.experiment, view.index, self.seconds())
        if reply["result"] is not None:
            self._finished(view, reply["result"])
        if self.config.deterministic:
            view.buffer.extend(reply["events"])
        else:
            for event in reply["events"]:
                self._apply_event(event)
        if reply["emigrants"] is not None:
            self._emigrated(view, reply["emigrants"])

    def _finished(self, view: IslandView, result: IslandResult) -> None:
        view.result = result
        # A finished island needs no snapshot: the checkpoint keeps its result.
        self.checkpoints.pending.discard(view.index)

    def _emigrated(self, view: IslandView, emigrants: dict[str, Any]) -> None:
        round_ = emigrants["round"]
        if not self.config.deterministic:
            view.emigrants = emigrants
            view.arrivals = latest_arrivals(view, self.views, self.config.seed,
                                            self.state.experiment)
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
        arrivals = round_arrivals(self.views, self.config.seed, self.state.experiment, round_)
        for view in active:
            view.arrivals = view.logged[round_] = arrivals[view.index]
        self._completed_round = round_

    def _flush_events(self) -> None:
        for event in ordered(self.views):
            self._apply_event(event)

    def _apply_event(self, event: Mapping[str, Any]) -> None:
        self.events.discovery(event, self.state.experiment, self.views,
                              self.config.deterministic, self.seconds())

    def _worker_failed(self, reply: ErrorReply) -> NoReturn:
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
        self.checkpoints.pending.discard(view.index)

    def _stop_now(self) -> None:
        """End a stopping run: islands without a new snapshot by now keep their last one
        (their workers are ended with the others), and the checkpoint is written unless
        those old snapshots would disagree with it on migration; raises Interrupted."""
        for index in sorted(self.checkpoints.pending):
            self._keep_last_snapshot(self.views[index])
        stale = [v for v in self.views if v.stale and not v.done]
        for view in stale:
            self._say(f"island {view.index + 1} gave no snapshot in time; it keeps its "
                      f"last one, at {view.snapshot_individuals:,} individuals")
        # A deterministic island restored before a completed migration round would miss
        # that round's migrants, which the checkpoint does not keep.
        if self.config.deterministic and any(v.snapshot_round < self.checkpoints.round
                                             for v in stale):
            self.checkpoints.due = False
            self._say("the checkpoint is not updated (those snapshots predate a migration "
                      "round); the run resumes from the previous one")
        else:
            self._write_checkpoint()
        assert self._stop_signal is not None   # a run stops only once a signal came
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

    def _keep(self, candidate: str, search_fitness: float, select_fitness: float,
              details: dict[str, Any] | None = None) -> None:
        kept = self.state.kept
        if kept is None or select_fitness >= kept["select_fitness"]:
            self.state.kept = {"program": candidate, "search_fitness": search_fitness,
                                "select_fitness": select_fitness,
                                "experiment": self.state.experiment + 1}
            if details is not None:
                self.state.kept["details"] = details
            self.rundir.write_best(candidate)
        sufficient = self.config.sufficient_fitness
        if sufficient is not None and select_fitness > sufficient:
            self.state.solved = True

    def _end_experiment(self) -> None:
        results: list[IslandResult] = []
        for view in self.views:
            assert view.result is not None   # the experiment ends once every island finished
            results.append(view.result)
        for result in results:
            self._keep(result["candidate"], result["search_fitness"], result["select_fitness"],
                       result.get("details"))
        # The experiment's best search fitness, and its candidate: the best on selection.
        search_fitness = max(r["search_fitness"] for r in results)
        select_fitness = max((r["select_fitness"] for r in results), key=nan_lowest)
        summaries = [v.summary for v in self.views]
        self.kernel_seconds += sum(v.summary.get("kernel_seconds", 0.0) for v in self.views)
        record = {"experiment": self.state.experiment + 1,
                  "search_fitness": search_fitness, "select_fitness": select_fitness,
                  "individuals": sum(s.get("individuals", 0) for s in summaries),
                  "train_steps": sum(s.get("train_steps", 0) for s in summaries),
                  "islands": len(self.views),
                  "seconds": round(self.seconds() - self.state.experiment_started, 3)}
        self.state.experiments = [r for r in self.state.experiments
                                   if r.get("experiment") != record["experiment"]] + [record]
        self._say(f"experiment {record['experiment']} done: search fitness "
                  f"{record['search_fitness']:.6f}, select fitness "
                  f"{record['select_fitness']:.6f}, {record['individuals']:,} individuals in "
                  f"{record['seconds']:.1f} s")
        self.state.experiment += 1
        self.views = []
        self._write_checkpoint()

    def _finish(self) -> dict[str, Any]:
        kept = self.state.kept
        if kept is None:
            raise EvozeroError("the run ended without any evaluated program")
        result, lines = self.domain.final_result(self.rundir, self.state,
                                                 round(self.seconds(), 3))
        self.rundir.write_best(kept["program"])
        self.rundir.write_final(result)
        for line in lines:
            self._say(line)
        return result

    # -- progress and checkpoints -------------------------------------------------------

    def _progress(self, final: bool = False) -> None:
        seconds = self.seconds() - self.state.experiment_started
        record = {"seconds": round(self.seconds(), 3), "experiment": self.state.experiment + 1}
        record.update(progress_record(self.views, seconds))
        self.rundir.append_progress(record)
        used = budget_used(self.views, self.config.budget, seconds)
        limit = self.config.max_experiments
        after = max(limit - self.state.experiment - 1, 0) if limit > 0 else 0
        self.console.progress(record, final, used, eta_seconds(used, seconds, after), limit)

    def _say(self, text: str) -> None:
        self.console.say(text)

    def _request_checkpoint(self) -> None:
        self.checkpoints.request(self.views, self._completed_round, self._send_snapshot)

    def _write_checkpoint(self) -> None:
        self.state.seconds = self.seconds()
        self._started = time.monotonic()
        self.checkpoints.write(self.state, self.views)

    def restore(self) -> None:
        """Continue from the newest valid checkpoint; EvozeroError if there is none, or if
        config.yaml was changed since in a key a resume may not change."""
        self.state, self._saved_islands = load_checkpoint(self.rundir, self.domain,
                                                          self._say)
        self.events.recall()
        if self.state.kept is not None:
            # best.txt may hold a program found after the checkpoint, by the process that
            # died; the resumed run finds it again (or not) from here.
            self.rundir.write_best(self.state.kept["program"])


def create_run(domain: SearchDomain, out_root: str = "runs", out: TextIO | None = None,
               name: str | None = None, source: str | None = None) -> Run:
    """Create the run directory for the domain's config (config.yaml written) and return
    the run; it is named ``name`` (default: the config's name), with a number added when
    that name is taken. ``source``: the config's file, which a refusal names."""
    config = domain.config
    check_before_start(domain, source=source)
    made: list[Run] = []

    def setup(rundir: RunDir) -> None:
        # Complete before it gets its name: its config and a first checkpoint, so every
        # run can be resumed from its start.
        rundir.write_config(dump_config(config))
        made.append(Run(domain, rundir, out))
        if rundir.lock_note is not None:
            made[0]._say(f"warning: {rundir.lock_note}")
        made[0]._write_checkpoint()

    rundir = RunDir.create(out_root, name or config.name or "run", setup)
    run = made[0]
    print(f"run directory: {rundir.path}   (seed {config.seed})", file=run.out, flush=True)
    return run


def reopen_run(path: str, domain_for: Callable[[Config], SearchDomain],
               out: TextIO | None = None, workers: int | None = None) -> Run:
    """Reopen a run directory to continue it from its newest valid checkpoint, on
    ``workers`` workers (None: as its config says; the islands stay as they were), in the
    domain ``domain_for`` picks for its config."""
    rundir = RunDir.open(path)
    rundir.acquire()
    try:
        if rundir.read_final() is not None:
            raise EvozeroError(f"{rundir.path}: this run has finished (final.json exists); "
                               f"see `evozero show {rundir.path}`")
        config = rundir.read_config()
        domain = domain_for(config)
        check_before_start(domain, workers, str(rundir.config_path))
        run = Run(domain, rundir, out, workers)
        if rundir.lock_note is not None:
            run._say(f"note: {rundir.lock_note}")
        run.restore()
    except BaseException:
        rundir.release()
        raise
    print(f"resuming {rundir.path} at experiment {run.state.experiment + 1}", file=run.out,
          flush=True)
    return run
