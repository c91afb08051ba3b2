"""A run's checkpoints: asking the islands for snapshots, writing the checkpoint record,
and reading it back for a resume.

A checkpoint (stored by :meth:`evozero.runs.rundir.RunDir.save_checkpoint`) holds the run's
:class:`~evozero.runs.state.RunState`, every island's last snapshot with its result,
summary and unflushed events, the resolved config and its hash, and the length of each
JSON-lines file. A resume whose config.yaml differs in a key outside
:data:`RESUME_CHANGEABLE` is refused. The flow (:mod:`evozero.runs.flow`) decides when;
this module keeps the bookkeeping of a checkpoint in the making (:class:`Checkpoints`).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from evozero.config import Config, config_to_dict, island_config
from evozero.config.cell_search import keys_added_since
from evozero.errors import EvozeroError
from evozero.runs.migration import IslandView
from evozero.runs.rundir import RunDir
from evozero.runs.state import RUN_STATE_FORMAT, RunState

if TYPE_CHECKING:
    from evozero.runs.domain import SearchDomain

#: Config keys a resume may change (README, "Resuming"): where and how often the run works
#: and reports, its label, and how long it goes on. None of them changes what an evaluated
#: individual or a population means, so the checkpoint stays valid; every other key does.
RESUME_CHANGEABLE = ("name", "workers", "backend", "address", "checkpoint_every",
                     "progress_every", "budget", "max_experiments")


class Checkpoints:
    """The checkpoint in the making: which islands still owe a snapshot, and what the
    record keeps of each (see :meth:`request`)."""

    def __init__(self, rundir: RunDir, config: Config) -> None:
        self.rundir = rundir
        self.config = config
        self.pending: set[int] = set()      # islands whose snapshot is still to come
        self.due = False                    # asked for, not written yet
        self.round = 0                      # the completed migration round it is at
        # Each island's summary when its snapshot was taken: a checkpoint keeps that, not
        # a later one, so progress after a resume never reports less than before it.
        self.summaries: dict[int, Mapping[str, Any]] = {}
        # progress.jsonl's length when the pending checkpoint was asked for; None: take
        # it when the checkpoint is written.
        self._progress_size: int | None = None

    def request(self, views: list[IslandView], completed_round: int,
                send_snapshot: Callable[[IslandView], None]) -> None:
        """Ask every unfinished island for a snapshot; the checkpoint is written once all
        have answered. Islands idle now answer first; busy ones right after their current
        command, before anything else is sent to them: so every snapshot reflects the
        same moment of this process's messages, which is what a deterministic resume
        needs."""
        self.round = completed_round
        self.due = True
        # Progress written from now on may count individuals past an island's snapshot;
        # a resume cuts the file back to here, so it never goes back in time.
        self._progress_size = self.rundir.record_sizes()[RunDir.PROGRESS]
        for view in views:
            if not view.done:
                view.snapshot_wanted = True
                self.pending.add(view.index)
                if not view.busy:
                    send_snapshot(view)

    def took(self, view: IslandView) -> None:
        """``view``'s snapshot arrived (its summary is the one the checkpoint keeps)."""
        self.summaries[view.index] = view.summary
        self.pending.discard(view.index)

    def write(self, state: RunState, views: list[IslandView]) -> None:
        """Write the checkpoint of ``state`` and of ``views`` (none between experiments)."""
        self.due = False
        islands = None
        if views:
            kept_views = [_on_disk(view.to_checkpoint()) for view in views]
            for view, kept in zip(views, kept_views):
                if not view.done and view.index in self.summaries:
                    kept["summary"] = self.summaries[view.index]
            islands = {"completed_round": self.round, "islands": kept_views}
        records = self.rundir.record_sizes()
        if self._progress_size is not None and islands is not None:
            records[RunDir.PROGRESS] = self._progress_size
        self._progress_size = None   # between experiments every record is final
        self.rundir.save_checkpoint({
            "format": RUN_STATE_FORMAT, "driver": dict(state.__dict__),
            "islands": islands, "config": config_to_dict(self.config),
            "config_sha256": config_hash(self.config), "records": records})


def load_checkpoint(rundir: RunDir, domain: SearchDomain, say: Callable[[str], None]
                    ) -> tuple[RunState, dict[str, Any] | None]:
    """The run state and the islands part of the newest valid checkpoint of ``rundir``,
    checked against the domain's config (EvozeroError if there is none, or if config.yaml
    was changed since in a key a resume may not change); the records are cut back to
    the checkpoint's moment."""
    problems: list[str] = []
    saved = rundir.load_checkpoint(problems)
    for problem in problems:
        say(f"warning: {problem}")
    if saved is None:
        raise EvozeroError(
            f"{rundir.path}: no checkpoint to resume from ({RunDir.CHECKPOINTS}/ "
            f"is missing or empty), so the run cannot continue where it stopped; start "
            f"it again with `evozero run {rundir.config_path}`")
    if saved.get("format") != RUN_STATE_FORMAT:
        raise EvozeroError(f"{rundir.checkpoint_dir}: not an {RUN_STATE_FORMAT} "
                           f"checkpoint (written by another version of evozero)")
    check_config(saved, domain.config, rundir, say)
    where = str(rundir.checkpoint_dir)
    for key in ("driver", "islands"):
        if key not in saved:
            raise EvozeroError(f"{where}: the checkpoint has no {key!r}; it is not one a "
                               f"run writes")
    state = checked_state(saved.get("driver"), domain, where)
    check_checkpoint_islands(saved.get("islands"), domain, state.islands, where)
    rundir.cut_records(saved.get("records"))
    islands = saved["islands"]
    if islands is not None:
        islands = dict(islands, islands=[_in_memory(kept) for kept in islands["islands"]])
    return state, islands


def checked_state(driver: Any, domain: SearchDomain, where: str) -> RunState:
    """The run state a checkpoint keeps (``driver``), checked before anything resumes
    from it: no unknown key, counters and experiment numbers whole, non-negative and
    consistent with each other, times finite, fitnesses as the domain's
    (:meth:`SearchDomain.fitness_problem`); EvozeroError naming the key otherwise."""
    where = f"{where}: driver"
    if not isinstance(driver, dict):
        raise EvozeroError(f"{where}: must be a mapping of the run's state, got "
                           f"{type(driver).__name__}")
    names = [field.name for field in dataclasses.fields(RunState)]
    unknown = [key for key in driver if key not in names]
    if unknown:
        raise EvozeroError(f"{where}: unknown key {str(unknown[0])[:60]!r} (known: "
                           f"{', '.join(names)})")
    state = RunState(**driver)
    _count(state.experiment, f"{where}.experiment")
    _count(state.islands, f"{where}.islands")
    for key in ("seconds", "experiment_started"):
        _seconds(getattr(state, key), f"{where}.{key}")
    if not isinstance(state.solved, bool):
        raise EvozeroError(f"{where}.solved: must be true or false, got {state.solved!r}")
    if not isinstance(state.experiments, list) or len(state.experiments) != state.experiment:
        raise EvozeroError(f"{where}.experiments: must list the {state.experiment} finished "
                           f"experiment(s), one record each")
    for number, record in enumerate(state.experiments, start=1):
        at = f"{where}.experiments[{number - 1}]"
        if not isinstance(record, dict) or record.get("experiment") != number:
            raise EvozeroError(f"{at}: must be the record of experiment {number}")
        for key in ("individuals", "train_steps", "islands"):
            _count(record.get(key), f"{at}.{key}")
        _seconds(record.get("seconds"), f"{at}.seconds")
        _fitnesses(record, domain, at)
    kept = state.kept
    if kept is None:
        if state.experiment > 0 or state.solved:
            raise EvozeroError(f"{where}.kept: missing, but the run has finished an "
                               f"experiment or is solved")
        return state
    if not isinstance(kept, dict):
        raise EvozeroError(f"{where}.kept: must be the kept candidate with its program")
    # Checked now, not by the final evaluation after a whole experiment.
    domain.check_candidate(kept.get("program"), f"{where}.kept.program")
    _fitnesses(kept, domain, f"{where}.kept")
    experiment = kept.get("experiment")
    if isinstance(experiment, bool) or not isinstance(experiment, int) \
            or not 1 <= experiment <= state.experiment + 1:
        raise EvozeroError(f"{where}.kept.experiment: must be a whole number in "
                           f"[1, {state.experiment + 1}], got {str(experiment)[:60]}")
    return state


def _count(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EvozeroError(f"{where}: must be a whole number >= 0, got {str(value)[:60]}")


def _seconds(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0.0 <= value < math.inf:
        raise EvozeroError(f"{where}: must be a finite number of seconds >= 0, got "
                           f"{str(value)[:60]}")


def _fitnesses(record: dict[str, Any], domain: SearchDomain, where: str) -> None:
    for key in ("search_fitness", "select_fitness"):
        problem = domain.fitness_problem(record.get(key))
        if problem is not None:
            raise EvozeroError(f"{where}.{key}: {problem}, got {str(record.get(key))[:60]}")


def check_checkpoint_islands(saved: Any, domain: SearchDomain, islands: int,
                             where: str) -> None:
    """Raise EvozeroError unless the islands part of a checkpoint (None, or the completed
    round and one entry per island with its last snapshot) fits the domain's config with
    ``islands`` islands. Run in the main process before any worker is given a snapshot."""
    if saved is None:
        return
    entries = saved.get("islands") if isinstance(saved, dict) else None
    completed = saved.get("completed_round") if isinstance(saved, dict) else None
    if not isinstance(entries, list) or len(entries) != islands \
            or isinstance(completed, bool) or not isinstance(completed, int) or completed < 0 \
            or not all(isinstance(entry, dict) and "snapshot" in entry for entry in entries):
        raise EvozeroError(f"{where}: the checkpoint's islands are not {islands} island "
                           f"entries with a completed round")
    for number, entry in enumerate(entries):
        # What a resume reads of an entry besides its snapshot and result.
        if not isinstance(entry.get("summary"), dict) or not isinstance(entry.get("events"),
                                                                         list) \
                or not all(isinstance(event, dict) for event in entry["events"]):
            raise EvozeroError(f"{where}: island {number + 1}: its entry needs a summary (a "
                               f"mapping) and its events (a list of mappings)")
        result = entry.get("result")
        if result is not None:
            if not isinstance(result, dict):
                raise EvozeroError(f"{where}: island {number + 1}: its result must be a "
                                   f"mapping, got {type(result).__name__}")
            at = f"{where}: island {number + 1}: result"
            domain.check_candidate(result.get("program"), f"{at}.program")
            _fitnesses(result, domain, at)
        if entry["snapshot"] is not None:
            domain.check_snapshot(entry["snapshot"], island_config(domain.config, number),
                                  f"{where}: island {number + 1}")


# Checkpoints name an island's best (in its result and its discoveries) "program", for
# a cell search too; the messages call it "candidate".
def _on_disk(kept: dict[str, Any]) -> dict[str, Any]:
    return dict(kept, result=_renamed(kept["result"], "candidate", "program"),
                events=[_renamed(e, "candidate", "program") for e in kept["events"]])


def _in_memory(kept: dict[str, Any]) -> dict[str, Any]:
    return dict(kept, result=_renamed(kept["result"], "program", "candidate"),
                events=[_renamed(e, "program", "candidate") for e in kept["events"]])


def _renamed(record: dict[str, Any] | None, old: str, new: str
             ) -> dict[str, Any] | None:
    if record is None or old not in record:
        return record
    return {(new if key == old else key): value for key, value in record.items()}


# -- the config a checkpoint is bound to ---------------------------------------------------

def check_config(saved: dict[str, Any], config: Config, rundir: RunDir,
                 say: Callable[[str], None]) -> None:
    """Refuse to continue the checkpoint ``saved`` under other settings than ``config``
    (changes in :data:`RESUME_CHANGEABLE` are only noted)."""
    if "config_sha256" not in saved:
        say(f"warning: {rundir.checkpoint_dir}: this checkpoint predates config binding, "
            f"so changes to {RunDir.CONFIG} since the run started cannot be detected; "
            f"resuming with {RunDir.CONFIG} as it is now")
        return
    stored = saved.get("config")
    old: dict[str, Any] = _with_keys_added_since(stored) if isinstance(stored, dict) else {}
    new = config_to_dict(config)
    # A checkpoint written before some keys existed hashes its config without them: with
    # them set as they mean what the run did, an unchanged config compares equal.
    if saved["config_sha256"] != config_hash(config) and _bound(old) != _bound(new):
        changes = changed_keys(_bound(old), _bound(new)) or [
            "(the checkpoint does not say which: its stored config is missing)"]
        raise EvozeroError(
            f"{rundir.config_path}: changed since the run started, in keys a "
            f"resume may not change (the population and its fitness depend on them):\n  "
            + "\n  ".join(changes) + f"\nput the old values back, or start a new run "
            f"with this config (`evozero run {rundir.config_path}`); a resume may "
            f"change only {', '.join(RESUME_CHANGEABLE)}")
    for change in changed_keys({k: old.get(k) for k in RESUME_CHANGEABLE if k in old},
                               {k: new.get(k) for k in RESUME_CHANGEABLE if k in old}):
        say(f"note: changed since the last checkpoint: {change}")


def _with_keys_added_since(stored: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's resolved config with the keys added since it was written, each set
    to the value that means what its run did."""
    completed = copy.deepcopy(stored)
    for dotted, value in keys_added_since(stored).items():
        *sections, name = dotted.split(".")
        target = completed
        for section in sections:
            target = target[section]
        target[name] = value
    return completed


def _bound(data: dict[str, Any]) -> dict[str, Any]:
    """The resolved config ``data`` without the keys a resume may change, as plain JSON."""
    kept = {key: value for key, value in data.items() if key not in RESUME_CHANGEABLE}
    return json.loads(json.dumps(kept, default=str))


def config_hash(config: Config) -> str:
    """sha256 of the canonical resolved config, without the keys a resume may change."""
    return _hash(_bound(config_to_dict(config)))


def _hash(bound: dict[str, Any]) -> str:
    text = json.dumps(bound, sort_keys=True, allow_nan=True)
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
