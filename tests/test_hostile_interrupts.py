"""Ctrl-C in any command: exit code 130 and one line, never a KeyboardInterrupt traceback,
and no file half-written. `run` and `study` stop with a checkpoint of their own
(tests/runs, tests/study); every other command is stopped here where it does its work."""
from __future__ import annotations

import signal
import time

import pytest
from helpers import cli

from evozero.cli import main

TASKS = "{kind: linear, num_tasks: 2, features: 4, train: 20, valid: 20, seed: 1}"
CELL = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.fixture
def tasks(tmp_path) -> str:
    path = tmp_path / "tasks.yaml"
    path.write_text(TASKS)
    return str(path)


# Each command, and a function on its way that Ctrl-C interrupts.
COMMANDS = {
    "tune": ("evozero.analysis.tuning.evaluate_group",
             ["tune", "linear", "--tasks", "{tasks}", "--output", "{out}"]),
    "eval": ("evozero.analysis.transfer.evaluate", ["eval", "linear", "--tasks", "{tasks}"]),
    "export": ("evozero.analysis.export.export_python",
               ["export", "linear", "--python", "{out}"]),
    "cost": ("evozero.nas.reports.cost_command.cost_record", ["cost", CELL]),
    "show": ("evozero.runs.rundir.RunDir.open", ["show", "{tmp}"]),
    "plot": ("evozero.runs.rundir.RunDir.open", ["plot", "{tmp}", "-o", "{out}"]),
    "calibrate": ("evozero.nas.devices.calibrate.check_output",
                  ["calibrate", "--output", "{out}"]),
    "bench": ("evozero.bench.vm.make_tasks", ["bench", "vm", "--quick"]),
    "ops": ("ops.table.markdown", ["ops"]),
    "table": ("evozero.nas.table.store.load_table", ["table", "info"]),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_ctrl_c_exits_130_with_one_line(command, monkeypatch, capsys, tmp_path, tasks):
    where, argv = COMMANDS[command]
    monkeypatch.setattr(where, _interrupt)
    out = tmp_path / "out.file"
    code = main([arg.format(tasks=tasks, out=out, tmp=tmp_path) for arg in argv])
    err = capsys.readouterr().err
    assert code == 130, err
    assert err.strip().splitlines() == [f"stopped by SIGINT (Ctrl-C): evozero {command} "
                                        f"wrote nothing half-way"]
    assert not out.exists()


def test_ctrl_c_within_an_atomic_write_leaves_neither_file_nor_temporary(monkeypatch, capsys,
                                                                       tmp_path):
    monkeypatch.setattr("os.fsync", _interrupt)
    out = tmp_path / "evolved.py"
    assert main(["export", "linear", "--python", str(out)]) == 130
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_real_ctrl_c_stops_a_long_tuning_at_once(tmp_path, tasks):
    # A finished trial writes a mark, so the signal comes once tuning is under way (no
    # sleep races) and its kernels are compiled: from a cold cache in a fresh clone that
    # first compile alone can outlast the wait below.
    mark = tmp_path / "tuning"
    plant = (f"import pathlib, evozero.analysis.tuning as t\n"
             f"_evaluate = t.evaluate_group\n"
             f"def evaluate_group(*a):\n"
             f"    result = _evaluate(*a)\n"
             f"    pathlib.Path({str(mark)!r}).touch()\n"
             f"    return result\n"
             f"t.evaluate_group = evaluate_group\n")
    out = tmp_path / "tuned.txt"
    process = cli("tune", "linear", "--tasks", tasks, "--trials", "10000000", "--output",
                  str(out), code=plant)
    deadline = time.monotonic() + 300
    while not mark.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "tuning never started"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err.strip() == "stopped by SIGINT (Ctrl-C): evozero tune wrote nothing half-way"
    assert not out.exists()
