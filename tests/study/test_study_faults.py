"""A study survives its faults: kill -9 of the study process, Ctrl-C, a worker's death.
After each, `evozero resume STUDY` loses no finished run and runs none twice."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from helpers import child_pids, cli
from study_helpers import write_study

from evozero.runs.rundir import RunDir

# Runs of a few seconds with frequent checkpoints, so a fault finds some mid-way.
_LONGER = {"budget": {"individuals": 150_000, "train_steps": None}, "checkpoint_every": 0.3}


def _study(tmp_path: Path) -> Path:
    return write_study(tmp_path, config=_LONGER, seeds=3, workers=2)


def _records(directory: Path) -> list[dict]:
    path = directory / "runs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() \
        else []


def _wait(condition, process, seconds: float = 300.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _running_with_checkpoint(directory: Path) -> list[Path]:
    """Run directories with a checkpoint past their first and no final.json."""
    return [run for run in directory.glob("runs/*/seed-*")
            if not (run / "final.json").exists() and len(RunDir(run).checkpoint_sequences())
            and RunDir(run).checkpoint_sequences()[-1] >= 2]


def _finished(directory: Path) -> dict[str, int]:
    return {str(p.parent): p.stat().st_mtime_ns for p in directory.glob("runs/*/*/final.json")}


def _resume_to_end(directory: Path) -> str:
    process = cli("resume", str(directory))
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    return out


def _complete(directory: Path) -> list[dict]:
    records = _records(directory)
    pairs = sorted((r["arm"], r["seed"]) for r in records)
    assert pairs == sorted((arm, seed) for arm in ("evolution", "random") for seed in range(3))
    return records


@pytest.mark.slow
def test_kill_9_of_the_study_and_resume_lose_nothing_and_repeat_nothing(tmp_path):
    directory = tmp_path / "out"
    process = cli("study", str(_study(tmp_path)), "--out", str(directory))
    _wait(lambda: _records(directory) and _running_with_checkpoint(directory), process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _records(directory)
    finished = _finished(directory)
    interrupted = _running_with_checkpoint(directory)
    _resume_to_end(directory)
    records = _complete(directory)
    assert records[:len(before)] == before
    # No finished run ran again; a run under way resumed from its checkpoint.
    assert all(_finished(directory)[path] == stamp for path, stamp in finished.items())
    for run in interrupted:
        assert "resuming " in (run / "console.log").read_text()


@pytest.mark.slow
def test_ctrl_c_checkpoints_the_runs_and_exits_130(tmp_path):
    directory = tmp_path / "out"
    process = cli("study", str(_study(tmp_path)), "--out", str(directory),
                  start_new_session=True)
    _wait(lambda: _running_with_checkpoint(directory), process)
    os.killpg(process.pid, signal.SIGINT)   # as a terminal's Ctrl-C: the whole group
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert f"evozero resume {directory}" in err and "Traceback" not in err
    before = _records(directory)
    stopped = [run for run in directory.glob("runs/*/seed-*")
               if not (run / "final.json").exists()]
    assert stopped
    for run in stopped:
        assert "stopped by SIGINT; checkpoint written" in (run / "console.log").read_text()
    _resume_to_end(directory)
    assert _complete(directory)[:len(before)] == before


@pytest.mark.slow
def test_a_dead_worker_is_restarted_and_its_run_resumed(tmp_path):
    directory = tmp_path / "out"
    process = cli("study", str(_study(tmp_path)), "--out", str(directory))
    _wait(lambda: _running_with_checkpoint(directory), process)
    victim = _running_with_checkpoint(directory)[0]
    holder = json.loads((victim / RunDir.LOCK).read_text())["pid"]
    assert holder in child_pids(process.pid)
    os.kill(holder, signal.SIGKILL)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    assert "killed by SIGKILL" in out and "resumes from its checkpoint" in out
    _complete(directory)
    assert "resuming " in (victim / "console.log").read_text()
