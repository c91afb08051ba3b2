"""Workers under faults, with real processes and signals: an error in a worker stops the
run with its message; Ctrl-C, SIGTERM and SIGHUP end a run within seconds even with a
stopped or busy worker, and leave it resumable; workers die with a killed main process;
a worker ended by SIGTERM, or silent because stopped, is replaced and its island restarts
from its snapshot."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from helpers import child_pids, cli, is_running

from evozero.config import config_from_dict
from evozero.domains import domain_for
from evozero.errors import EvozeroError
from evozero.nas.search.island import NasIsland
from evozero.runs import stopflag
from evozero.runs.rundir import RunDir
from evozero.runs.workers import HEARTBEAT_VARIABLE, LocalBackend, WorkerHost

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not Path("/proc/self/task").exists(),
                                reason="needs Linux /proc and signals")
# A healthy worker beats every half second: one silent for 2 s is stopped or hung.
HEARTBEAT = "2"
WORKER_ENV = {HEARTBEAT_VARIABLE: HEARTBEAT}
# A stop ends a run within 10 s; the rest is margin for a loaded machine.
STOP_LIMIT = 30.0


def _program_config(path: Path, individuals: int = 10**9) -> Path:
    path.write_text(yaml.safe_dump({
        "name": "hostile", "seed": 5, "population_size": 100, "workers": 2,
        "search_tasks": {"num_tasks": 3, "train": 30, "valid": 30},
        "select_tasks": {"num_tasks": 5, "train": 50, "valid": 20},
        "final_tasks": {"num_tasks": 5, "train": 50, "valid": 20},
        "budget": {"individuals": individuals, "train_steps": None}, "max_experiments": 1,
        "sufficient_fitness": 2.0, "checkpoint_every": 0.3, "progress_every": 0.2}))
    return path


def _long_nas_config(path: Path) -> Path:
    """One network trained for 3,000 epochs: a single command of many minutes."""
    path.write_text(yaml.safe_dump({
        "name": "hostile", "seed": 1, "population_size": 4, "tournament_size": 2,
        "budget": {"individuals": 2, "train_steps": None}, "max_experiments": 1,
        "sufficient_fitness": None, "progress_every": 0.2, "checkpoint_every": 3600.0,
        "workers": 1,
        "nas": {"space": "nb201", "dataset": "digits", "stem_channels": 4, "stacks": 1,
                "profile": "mobile-cpu", "training": {"epochs": 3000}}}))
    return path


def _wait_for(path: Path, process: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)


def _gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while any(is_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(is_running(pid) for pid in pids)


# --- errors in workers -------------------------------------------------------------------

# Islands fail to open in workers (forked: they inherit it), not in the main's warm-up.
_PLANT = """
import os
import evozero.runs.island
MAIN, OPEN = os.getpid(), evozero.runs.island.ProgramIsland.__init__
def _open(self, spec, snapshot=None):
    if os.getpid() != MAIN:
        raise {error}
    OPEN(self, spec, snapshot)
evozero.runs.island.ProgramIsland.__init__ = _open
"""


@pytest.mark.parametrize("error, code, expected", [
    ('MemoryError("Unable to allocate 60.0 GiB for an array")', 2,
     "failed while opening: out of memory (Unable to allocate 60.0 GiB"),
    ('evozero.runs.island.EvozeroError("search_tasks: too large")', 2,
     "failed while opening: search_tasks: too large"),
    ('ValueError("planted")', 1, "failed while opening: ValueError: planted (at "),
])
@pytest.mark.slow
def test_an_error_opening_an_island_stops_the_run_at_once_with_its_cause(tmp_path, error,
                                                                          code, expected):
    config = _program_config(tmp_path / "c.yaml")
    started = time.monotonic()
    process = cli("run", str(config), "--out", str(tmp_path / "runs"),
                   code=_PLANT.format(error=error), env=WORKER_ENV)
    out, err = process.communicate(timeout=300)
    assert process.returncode == code, err
    # Every island meets the fault; whichever worker answers first is the one named.
    assert re.search(rf"island [12] {re.escape(expected)}", err) and "Traceback" not in err, err
    assert "restarts" not in out and "exited with code" not in out
    # Evozero's own fault shows the worker's traceback; the user's error does not.
    assert ("Traceback" in out) == (code == 1)
    assert time.monotonic() - started < 120


def test_a_bad_heartbeat_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(HEARTBEAT_VARIABLE, "soon")
    with pytest.raises(EvozeroError, match=f"{HEARTBEAT_VARIABLE}: must be a number"):
        LocalBackend(1)


# --- stopping ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_ends_the_run_within_seconds_despite_a_stopped_worker(tmp_path, stop):
    config = _program_config(tmp_path / "c.yaml", individuals=300_000)
    process = cli("run", str(config), "--out", str(tmp_path / "runs"), env=WORKER_ENV)
    rundir = tmp_path / "runs" / "hostile"
    _wait_for(rundir / "progress.jsonl", process)
    workers = child_pids(process.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGSTOP)
    started = time.monotonic()
    process.send_signal(stop)
    out, err = process.communicate(timeout=120)
    assert time.monotonic() - started < STOP_LIMIT
    assert process.returncode == 130, err
    assert f"stopped by {stop.name}" in err and "Traceback" not in err
    assert _gone_within(workers, 5), "a worker outlived the run"
    if stop == signal.SIGINT:   # resumable: it continues to the whole budget
        resumed = cli("resume", str(rundir), env=WORKER_ENV)
        out, err = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, err
        assert RunDir.open(rundir).read_final()["individuals"] == 600_000


@pytest.mark.slow
def test_a_deterministic_run_keeps_its_checkpoint_when_a_late_snapshot_would_break_it(
        tmp_path):
    # The stopped island's last snapshot (the one of the start) predates migration rounds
    # the checkpoint would record: resuming from both would hand it no migrants there.
    config = _program_config(tmp_path / "c.yaml")
    data = yaml.safe_load(config.read_text())
    data.update(deterministic=True, migrate_every=1000, checkpoint_every=3600.0)
    config.write_text(yaml.safe_dump(data))
    process = cli("run", str(config), "--out", str(tmp_path / "runs"), env=WORKER_ENV)
    rundir = tmp_path / "runs" / "hostile"
    deadline = time.monotonic() + 300
    while not (rundir / "progress.jsonl").exists() or max(
            (r["individuals"] for r in RunDir.open(rundir).read_progress()),
            default=0) < 10_000:
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)
    checkpoints = sorted((rundir / "checkpoint").iterdir())
    workers = child_pids(process.pid)
    os.kill(workers[0], signal.SIGSTOP)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "island 1 gave no snapshot in time" in out
    assert "the checkpoint is not updated" in out
    assert sorted((rundir / "checkpoint").iterdir()) == checkpoints
    assert _gone_within(workers, 5)


@pytest.mark.slow
def test_sigterm_to_the_whole_process_group_still_saves_every_island(tmp_path):
    # `timeout` and service managers signal every process of the group: the workers
    # finish their command and still answer the snapshot requests of the main process.
    config = _program_config(tmp_path / "c.yaml")
    process = cli("run", str(config), "--out", str(tmp_path / "runs"), start_new_session=True, env=WORKER_ENV)
    rundir = tmp_path / "runs" / "hostile"
    _wait_for(rundir / "progress.jsonl", process)
    workers = child_pids(process.pid)
    os.killpg(process.pid, signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "gave no snapshot" not in out and "Traceback" not in out + err
    islands = RunDir.open(rundir).load_checkpoint()["islands"]["islands"]
    assert all(island["snapshot"] is not None for island in islands)
    assert _gone_within(workers, 5)


@pytest.mark.slow
def test_ctrl_c_stops_one_long_network_training_within_seconds(tmp_path):
    config = _long_nas_config(tmp_path / "nas.yaml")
    process = cli("run", str(config), "--out", str(tmp_path / "runs"), env=WORKER_ENV)
    rundir = tmp_path / "runs" / "hostile"
    _wait_for(rundir / "progress.jsonl", process)
    time.sleep(1.0)   # well inside the first network's 3,000 epochs
    workers = child_pids(process.pid)
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert time.monotonic() - started < STOP_LIMIT
    assert process.returncode == 130, err
    assert _gone_within(workers, 5)
    # The training gave up and the island rolled back to its last whole child: it still
    # gave a snapshot, so the checkpoint is exact.
    assert "gave no snapshot" not in out
    saved = RunDir.open(rundir).load_checkpoint()
    assert saved["islands"]["islands"][0]["snapshot"] is not None


def test_a_stop_request_rolls_a_nas_island_back_to_its_last_whole_child(monkeypatch):
    data = {"seed": 1, "population_size": 4, "tournament_size": 2, "workers": 1,
            "nas": {"space": "nb201", "dataset": "digits", "stem_channels": 4, "stacks": 1,
                    "profile": "mobile-cpu", "training": {"epochs": 1}}}
    spec = domain_for(config_from_dict(data)).island_spec(0, 0, individuals=-1, train_steps=-1)
    island, twin = NasIsland(spec), NasIsland(spec)
    before = island.snapshot()
    monkeypatch.setattr(stopflag, "_requested", True)
    reply = island.advance(60.0)   # gives up in its first training step
    assert reply["summary"]["individuals"] == 0 and reply["status"] == "running"
    assert island.snapshot()["rng"] == before["rng"]
    assert island.snapshot()["counters"] == before["counters"]
    monkeypatch.setattr(stopflag, "_requested", False)
    # Nothing of the abandoned child remains: the island goes on exactly as its twin.
    def measured(reply):
        return [(r["genome"], r["valid_accuracy"], r["losses"], r["train_steps"])
                for r in reply["evaluations"]]
    assert measured(island.advance(0.0)) == measured(twin.advance(0.0))
    assert island.snapshot()["rng"] == twin.snapshot()["rng"]


def test_a_worker_drops_an_island_whose_command_gave_up(monkeypatch):
    host = WorkerHost()

    class GivesUp:
        def advance(self, seconds, arrivals=None):
            raise stopflag.Stopped()

    host.islands[3] = GivesUp()
    assert host.handle_safely({"kind": "advance", "island": 3, "seconds": 1.0}) == \
        {"kind": "stopped", "island": 3}
    assert 3 not in host.islands   # its state is no longer whole: never snapshotted


def test_a_stopped_open_names_its_island():
    # The main process looks the reply's island up; an open carries it in its spec.
    host = WorkerHost()

    class OpensSlowly:
        island = 2

        @staticmethod
        def island_class(spec, snapshot):
            raise stopflag.Stopped()

    assert host.handle_safely({"kind": "open", "spec": OpensSlowly(), "snapshot": None}) == \
        {"kind": "stopped", "island": 2}
    assert not host.islands


@pytest.mark.slow
def test_workers_die_with_a_killed_main_process_even_mid_command(tmp_path):
    config = _long_nas_config(tmp_path / "nas.yaml")
    process = cli("run", str(config), "--out", str(tmp_path / "runs"), env=WORKER_ENV)
    _wait_for(tmp_path / "runs" / "hostile" / "progress.jsonl", process)
    time.sleep(1.0)
    workers = child_pids(process.pid)
    assert workers
    process.kill()
    process.communicate()
    assert _gone_within(workers, 5), "a busy worker ran on without its main process"


# --- deaths from outside are retried -----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fault, told", [(signal.SIGTERM, "killed by SIGTERM"),
                                         (signal.SIGSTOP, f"did not answer for {HEARTBEAT} s")])
def test_a_worker_ended_from_outside_is_replaced_and_the_run_completes(tmp_path, fault,
                                                                       told):
    # Enough budget that the fault lands well before the end, even on an idle machine.
    config = _program_config(tmp_path / "c.yaml", individuals=300_000)
    process = cli("run", str(config), "--out", str(tmp_path / "runs"), env=WORKER_ENV)
    rundir = tmp_path / "runs" / "hostile"
    deadline = time.monotonic() + 300
    while len(list((rundir / "checkpoint").glob("*.json"))
              if (rundir / "checkpoint").is_dir() else []) < 2:
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)
    workers = child_pids(process.pid)
    os.kill(workers[0], fault)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert f"worker 1 {told}" in out and "restarts from its snapshot" in out
    assert not is_running(workers[0])
    # The island redid the work since its snapshot: the budget is still exact.
    assert RunDir.open(rundir).read_final()["individuals"] == 600_000


@pytest.mark.parametrize("phase", ["compiling", "before the final evaluation"])
def test_a_stop_between_phases_ends_the_run_before_the_next_one(tmp_path, monkeypatch, phase):
    from helpers import small_config

    import evozero.runs.flow as flow
    from evozero.domains import resume_run, start_run

    run = start_run(small_config(), str(tmp_path), out=open(os.devnull, "w"))
    asked = lambda *args: setattr(run, "_stop_signal", signal.SIGINT)  # noqa: E731
    if phase == "compiling":   # the signal lands while the kernels compile
        monkeypatch.setattr(run.domain, "warm_up", asked)
    else:                      # ... or while the last experiment ends
        end = run._end_experiment
        monkeypatch.setattr(run, "_end_experiment", lambda: (end(), asked()))
    started = []
    make_backend = flow.make_backend
    monkeypatch.setattr(flow, "make_backend",
                        lambda *args: started.append(1) or make_backend(*args))
    with pytest.raises(flow.Interrupted, match="SIGINT"):
        run.execute()
    assert run.rundir.read_final() is None
    assert not started if phase == "compiling" else started, "workers started after the stop"
    monkeypatch.undo()
    resumed = resume_run(str(run.rundir.path), out=open(os.devnull, "w"))
    assert resumed.execute()["individuals"] == 3000
