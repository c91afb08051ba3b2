"""Hostile and careless use of run directories: edited configs on resume, two writers,
killed writers, storage faults, records after a crash, bad files read by show and export.

Each case asserts the exit code (or the EvozeroError), the message, and that nothing
already written was lost.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import cli, small_config

from evozero.analysis.plots import load_run
from evozero.cli import main
from evozero.domains import start_run
from evozero.errors import EvozeroError
from evozero.runs.checkpointing import RESUME_CHANGEABLE
from evozero.runs.rundir import RunDir

REPO = Path(__file__).resolve().parents[2]


def _new_run(tmp_path: Path, **overrides) -> Path:
    """A run directory as `evozero run` leaves it right after set-up (first checkpoint
    written), its lock released as if its process had stopped."""
    run = start_run(small_config(**overrides), str(tmp_path / "runs"),
                    out=open(os.devnull, "w"))
    run.rundir.release()
    return run.rundir.path


def _edit_config(path: Path, key: str, value) -> None:
    data = yaml.safe_load((path / RunDir.CONFIG).read_text())
    *parents, last = key.split(".")
    target = data
    for part in parents:
        target = target[part]
    target[last] = value
    (path / RunDir.CONFIG).write_text(yaml.safe_dump(data, sort_keys=False))


def _snapshot(path: Path) -> dict[str, bytes]:
    """Every file of a run directory (but its lock) with its content."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and p.name != RunDir.LOCK}


def _increasing(records: list[dict], key: str) -> bool:
    points = [(r["experiment"], r[key]) for r in records]
    return all(a <= b for a, b in zip(points, points[1:]))


def _discovery_keys(path: Path) -> list[tuple]:
    return [(r["experiment"], r["island"], r["island_individual"])
            for r in RunDir.open(path).read_discoveries()]


# --- a run is one configuration ------------------------------------------------------

@pytest.mark.parametrize("key, value, shown", [
    ("seed", 4, "seed: 3 -> 4"),
    ("population_size", 60, "population_size: 50 -> 60"),
    ("tournament_size", 6, "tournament_size: 5 -> 6"),
    ("memory.scalars", 5, "memory.scalars: 4 -> 5"),
    ("search_tasks.features", 5, "search_tasks.features: 4 -> 5"),
    ("ops.setup", ["SCALAR_SUM"], "ops.setup: ["),
    ("fec.enabled", False, "fec.enabled: true -> false"),
    ("mutate_prob", 0.5, "mutate_prob: 0.9 -> 0.5"),
])
def test_resume_after_an_edited_config_lists_the_changed_keys(tmp_path, capsys, key, value,
                                                              shown):
    path = _new_run(tmp_path)
    _edit_config(path, key, value)
    _edit_config(path, "workers", 2)   # allowed: must not be listed
    before = _snapshot(path)
    assert main(["resume", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path / RunDir.CONFIG}: changed since the run started")
    assert shown in err and "workers" not in err.split("a resume may change only")[0]
    assert "Traceback" not in err
    assert _snapshot(path) == before
    assert RunDir.open(path).load_checkpoint() is not None


def test_resume_may_change_the_budget_workers_and_intervals(tmp_path, capsys):
    path = _new_run(tmp_path)
    for key, value in (("budget.individuals", 4000), ("workers", 2),
                       ("checkpoint_every", 1000.0), ("progress_every", 1000.0)):
        _edit_config(path, key, value)
    assert main(["resume", str(path)]) == 0
    out = capsys.readouterr().out
    assert "note: changed since the last checkpoint: budget.individuals: 3000 -> 4000" in out
    final = RunDir.open(path).read_final()
    # Islands are counted when workers first start: here on the resume, on 2 workers.
    assert final["islands"] == 2 and final["individuals"] == 2 * 4000


def test_every_key_a_resume_may_change_is_in_the_readme():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Resuming"):]
    for key in RESUME_CHANGEABLE:
        assert f"`{key}`" in section, key


def test_a_checkpoint_from_before_config_binding_resumes_with_a_warning(tmp_path, capsys):
    path = _new_run(tmp_path)
    (checkpoint,) = (path / RunDir.CHECKPOINTS).glob("*.json")
    meta = json.loads(checkpoint.read_text())
    for key in ("config", "config_sha256", "records"):
        del meta["state"][key]
    checkpoint.write_text(json.dumps(meta))
    assert main(["resume", str(path)]) == 0
    assert "predates config binding" in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["removed", "corrupt"])
def test_resume_without_a_usable_checkpoint_is_a_clear_error(tmp_path, capsys, damage):
    path = _new_run(tmp_path)
    if damage == "removed":
        shutil.rmtree(path / RunDir.CHECKPOINTS)
    else:
        for npz in (path / RunDir.CHECKPOINTS).glob("*.npz"):
            npz.write_bytes(b"not a zip")
    before = _snapshot(path)
    assert main(["resume", str(path)]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint to resume from" in err or "no usable checkpoint" in err
    assert str(path) in err and "Traceback" not in err
    assert _snapshot(path) == before   # nothing was started over


# --- one writer per run directory ------------------------------------------------------

def test_a_second_writer_is_refused_naming_the_holder(tmp_path, capsys):
    run = start_run(small_config(), str(tmp_path / "runs"), out=open(os.devnull, "w"))
    try:
        before = _snapshot(run.rundir.path)
        assert main(["resume", str(run.rundir.path)]) == 2
        err = capsys.readouterr().err
        assert f"another process is writing this run (pid {os.getpid()} on " in err
        assert _snapshot(run.rundir.path) == before
        # Readers need no lock.
        assert main(["show", str(run.rundir.path)]) == 0
    finally:
        run.rundir.release()


@pytest.mark.slow
def test_two_resumes_at_once_one_writes_the_other_is_refused(tmp_path):
    path = _new_run(tmp_path, budget={"individuals": 60_000, "train_steps": None},
                    progress_every=0.1)
    first, second = cli("resume", str(path)), cli("resume", str(path))
    results = [(p.pid, p.wait(timeout=300), p.communicate()) for p in (first, second)]
    codes = sorted(code for _, code, _ in results)
    assert codes == [0, 2], results
    (winner,) = [pid for pid, code, _ in results if code == 0]
    (err,) = [io[1] for _, code, io in results if code == 2]
    assert f"another process is writing this run (pid {winner} " in err
    assert "Traceback" not in err
    run = RunDir.open(path)
    assert run.read_final()["individuals"] == 60_000
    assert _increasing(run.read_progress(), "individuals")
    keys = _discovery_keys(path)
    assert len(keys) == len(set(keys))


@pytest.mark.slow
def test_the_lock_of_a_killed_writer_is_taken_over_and_its_records_cut(tmp_path, capsys):
    path = _new_run(tmp_path, budget={"individuals": 2_000_000, "train_steps": None},
                    progress_every=0.05, checkpoint_every=0.5)
    process = cli("resume", str(path))
    lock = path / RunDir.LOCK
    deadline = time.monotonic() + 120
    # Killed after a checkpoint with progress written past it.
    while time.monotonic() < deadline:
        sequences = RunDir(path).checkpoint_sequences()
        if f'"pid": {process.pid}' in lock.read_text() and sequences and sequences[-1] >= 3:
            break
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    _edit_config(path, "budget.individuals", 3000)   # finish soon
    assert main(["resume", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"took over the lock of pid {process.pid} " in out
    run = RunDir.open(path)
    progress = run.read_progress()
    assert _increasing(progress, "individuals") and _increasing(progress, "seconds")
    keys = _discovery_keys(path)
    assert len(keys) == len(set(keys))
    data = load_run(path)
    assert list(data.progress_x) == sorted(data.progress_x)   # plot: one curve


_FORK_AND_DIE = """
import os, signal, sys, time
from evozero.runs.rundir import RunDir
run = RunDir(sys.argv[1])
run.acquire()
child = os.fork()
if child == 0:            # a worker that outlives its main process
    for fd in (1, 2):     # not holding the test's pipes open
        os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
    time.sleep(60)
    os._exit(0)
print(child, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_forked_worker_does_not_keep_the_lock_of_its_dead_main_process(tmp_path):
    path = _new_run(tmp_path)
    holder = subprocess.run([sys.executable, "-c", _FORK_AND_DIE, str(path)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert holder.returncode == -signal.SIGKILL, holder.stderr
    child = int(holder.stdout)
    try:
        os.kill(child, 0)   # still alive, with the lock file open
        run = RunDir(path)
        run.acquire()
        assert run.lock_note is not None and "took over the lock" in run.lock_note
        run.release()
    finally:
        os.kill(child, signal.SIGKILL)


# --- records after a crash --------------------------------------------------------------

def test_records_written_after_the_checkpoint_are_cut_on_resume(tmp_path):
    path = _new_run(tmp_path)
    run = RunDir.open(path)
    # What a process killed after the first checkpoint had written past it.
    ghost = {"experiment": 1, "individuals": 99_999, "seconds": 99.0, "best": 0.5,
             "mean": 0.1}
    run.append_progress(ghost)
    run.append_discovery({"experiment": 1, "island": 1, "island_individual": 99_999,
                          "individual": 99_999, "seconds": 99.0, "train_steps": 0,
                          "fitness": 0.99, "program": "def Setup():\ndef Predict():\n"
                                                      "def Learn():\n"})
    assert main(["resume", str(path)]) == 0
    progress = run.read_progress()
    assert ghost not in progress and _increasing(progress, "individuals")
    assert all(r["island_individual"] != 99_999 for r in run.read_discoveries())


def test_plot_draws_one_curve_for_a_run_resumed_before_records_were_cut(tmp_path, capsys):
    path = _new_run(tmp_path)
    assert main(["resume", str(path)]) == 0
    run = RunDir.open(path)
    records = run.read_progress()
    last = records[-1]
    # An older version kept what a killed process wrote past its checkpoint.
    stale = [dict(last, individuals=i, seconds=i / 1000) for i in (100, 2000, 2500)]
    resumed = [dict(last, individuals=i, seconds=i / 1000 + 1) for i in (1500, 3000)]
    (path / RunDir.PROGRESS).write_text(
        "".join(json.dumps(r) + "\n" for r in stale + resumed))
    data = load_run(path)
    assert list(data.progress_x) == [100, 1500, 3000]
    assert main(["plot", str(path), "-o", str(tmp_path / "p.png")]) == 0


# --- storage faults --------------------------------------------------------------------

def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("code, cause", [(errno.ENOSPC, "the disk is full"),
                                         (errno.EROFS, "the file system is read-only")])
def test_a_failed_atomic_write_stops_with_the_path_and_keeps_the_checkpoint(
        tmp_path, capsys, monkeypatch, code, cause):
    path = _new_run(tmp_path)
    before = _snapshot(path / RunDir.CHECKPOINTS)

    def failing(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", failing)
    assert main(["resume", str(path)]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert f"{path}/" in err and f"cannot write ({cause}" in err
    assert f"evozero resume {path}" in err and "Traceback" not in err
    assert _snapshot(path / RunDir.CHECKPOINTS) == before
    assert not [p for p in path.rglob(".*.tmp")]
    assert main(["resume", str(path)]) == 0   # space again: the run goes on


def test_disk_full_on_an_append_keeps_whole_lines(tmp_path, capsys, monkeypatch):
    path = _new_run(tmp_path)
    real_write = os.write

    def half_then_full(fd, data):
        if stat.S_ISREG(os.fstat(fd).st_mode):   # files fill up; pipes to workers do not
            real_write(fd, bytes(data[:len(data) // 2]))
            _disk_full()
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", half_then_full)
    assert main(["resume", str(path)]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert ".jsonl: cannot write (the disk is full" in err and "Traceback" not in err
    for name in RunDir.RECORDS:
        data = (path / name).read_bytes() if (path / name).exists() else b""
        assert data == b"" or data.endswith(b"\n"), name
    assert RunDir.open(path).load_checkpoint() is not None


def test_a_missing_folder_is_a_clear_error_naming_it(tmp_path):
    run = RunDir.create(tmp_path, "gone")
    run.release()
    shutil.rmtree(run.path)
    with pytest.raises(EvozeroError, match=f"{run.path}/progress.jsonl: cannot write .*"
                                           f"folder does not exist"):
        run.append_progress({"experiment": 1})
    with pytest.raises(EvozeroError, match=f"{run.path}/checkpoint: cannot write"):
        run.save_checkpoint({"a": 1})


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip("needs root and mount (a small tmpfs)")


def test_a_full_and_a_read_only_file_system(tmp_path):
    mount = tmp_path / "disk"
    _mount_tmpfs(mount, "48k")
    try:
        config = tmp_path / "c.yaml"
        data = yaml.safe_load(Path(_new_run(tmp_path) / RunDir.CONFIG).read_text())
        data.update(name="full", budget={"individuals": 2_000_000, "train_steps": None},
                    checkpoint_every=0.2)
        config.write_text(yaml.safe_dump(data))
        process = cli("run", str(config), "--out", str(mount))
        _, err = process.communicate(timeout=300)
        assert process.returncode == 2, err
        assert "cannot write (the disk is full" in err and "Traceback" not in err
        run = RunDir.open(mount / "full")
        assert run.load_checkpoint() is not None
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        process = cli("resume", str(run.path))
        _, err = process.communicate(timeout=300)
        assert process.returncode == 2
        assert f"{run.path}/{RunDir.LOCK}: cannot write (the file system is read-only" in err
        assert run.load_checkpoint() is not None
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("where", ["folder", "missing"])
def test_export_to_a_folder_or_a_missing_folder_is_a_clear_error(tmp_path, capsys, where):
    path = _new_run(tmp_path)
    assert main(["resume", str(path)]) == 0
    target = tmp_path if where == "folder" else tmp_path / "nowhere" / "x.py"
    listing = sorted(os.listdir(tmp_path))
    assert main(["export", str(path), "--python", str(target)]) == 2
    err = capsys.readouterr().err
    assert f"--python {target}: " in err and "Traceback" not in err
    assert ("is a folder" if where == "folder" else "does not exist") in err
    assert sorted(os.listdir(tmp_path)) == listing


# --- bad files read by show and export --------------------------------------------------

@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    path = _new_run(tmp_path_factory.mktemp("finished"))
    assert main(["resume", str(path)]) == 0
    return path


@pytest.mark.parametrize("line, expected", [
    ('{"experiment": 1', "corrupt line"),
    ('{"experiment": 1}', "a discovery needs 'individual'"),
    ('{"experiment": 1, "individual": 3, "seconds": 1, "fitness": "high", "program": ""}',
     "a discovery needs 'fitness'"),
    ('{"experiment": 1, "individual": 3, "seconds": 1, "fitness": 0.5, "program": "x"}',
     "not a valid program of this run"),
])
def test_show_history_names_the_file_and_line_of_a_bad_record(finished, tmp_path, capsys,
                                                              line, expected):
    path = tmp_path / "run"
    shutil.copytree(finished, path)
    lines = (path / RunDir.DISCOVERIES).read_text().splitlines()
    (path / RunDir.DISCOVERIES).write_text("\n".join([lines[0], line, *lines[1:]]) + "\n")
    assert main(["show", str(path), "--history"]) == 2
    err = capsys.readouterr().err
    assert f"{path / RunDir.DISCOVERIES}:2: " in err and expected in err
    assert "Traceback" not in err


@pytest.mark.parametrize("text", ["garbage\n", "def Setup():\n  s9 = s1 + s2\n"
                                               "def Predict():\ndef Learn():\n"])
def test_show_export_and_eval_refuse_a_bad_best_txt_naming_it(finished, tmp_path, capsys,
                                                              text):
    path = tmp_path / "run"
    shutil.copytree(finished, path)
    (path / RunDir.BEST).write_text(text)
    module = tmp_path / "m.py"
    for command in (["show", str(path)], ["export", str(path), "--python", str(module)],
                    ["eval", str(path), "--tasks", str(path / RunDir.CONFIG)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path / RunDir.BEST}: not a valid program of this run")
    assert not module.exists()


# --- names and creation ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a\nb", "tab\there", "bell\x07", "x" * 201])
def test_a_run_name_unusable_as_a_directory_name_is_refused(tmp_path, capsys, name):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"name": name}))
    assert main(["run", str(config), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "invalid run name" in err and "config key name" in err
    assert not (tmp_path / "runs").exists()


def test_a_run_directory_appears_only_complete(tmp_path):
    seen = []

    def setup(run: RunDir) -> None:
        run.write_config("name: x\n")
        seen.append(sorted(os.listdir(tmp_path)))

    run = RunDir.create(tmp_path, "demo", setup)
    run.release()
    assert all(name.startswith(".") for name in seen[0])   # only the hidden build
    assert os.listdir(tmp_path) == ["demo"]
    assert (tmp_path / "demo" / RunDir.CONFIG).read_text() == "name: x\n"

    def failing(run: RunDir) -> None:
        raise EvozeroError("set-up failed")

    with pytest.raises(EvozeroError, match="set-up failed"):
        RunDir.create(tmp_path, "broken", failing)
    assert os.listdir(tmp_path) == ["demo"]   # nothing half-made is left
