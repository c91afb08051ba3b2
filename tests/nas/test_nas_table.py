"""The tabular benchmark: its file, its build (resumable, locked, checked) and verify."""
from __future__ import annotations

import io
import json
import os
import signal
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evozero.cli import main
from evozero.config.root import config_from_dict
from evozero.domains import domain_for
from evozero.errors import EvozeroError
from evozero.nas.spaces.cells import NB201_OPS, Nb201Cell
from evozero.nas.table import build as build_module
from evozero.nas.table.build import (
    RECORDS_FILE,
    TableBuild,
    build_table,
    network_rows,
    training_record,
    verify_table,
)
from evozero.nas.table.figures import kendall, table_figures
from evozero.nas.table.recipe import recipe_config, table_recipe
from evozero.nas.table.store import (
    NB201_CELLS,
    cell_index,
    cell_of_index,
    cell_ops,
    load_table,
    ops_index,
)
from evozero.runs import stopflag
from evozero.runs.flow import Interrupted

pytestmark = pytest.mark.nas

# A recipe small enough to train a network in a fraction of a second.
TINY = {"space": "nb201", "dataset": "mnist1d", "stem_channels": 2, "stacks": 1,
        "cells_per_stack": 1, "latency_drift": "none",
        "training": {"epochs": 2, "batch_size": 512}}


def tiny_config(**changes):
    return config_from_dict({"nas": {**TINY, **changes}})


def nas_of(config):
    return domain_for(config).section


@given(st.integers(0, NB201_CELLS - 1))
def test_cell_index_round_trips(index):
    cell = cell_of_index(index)
    assert cell_index(cell) == index
    assert Nb201Cell.parse(str(cell)) == cell
    assert ops_index(cell_ops(np.array([index])))[0] == index
    assert [NB201_OPS[o] for o in cell_ops(np.array([index]))[0]] == list(cell.edge_ops)


def test_rows_group_exactly_the_cells_of_one_network():
    rows, cells = network_rows()
    assert len(rows) == NB201_CELLS
    assert np.array_equal(rows[cells], np.arange(len(cells)))
    # Renumbering nodes 1 and 2 (edges 2<-0 / 1<-0 swap, 3<-1 / 3<-2 swap, 2<-1 reversed
    # is not a renumbering) keeps the network; a changed op on a live edge does not.
    a = Nb201Cell.parse("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|avg_pool_3x3~1|"
                        "nor_conv_1x1~2|")
    b = Nb201Cell.parse("|skip_connect~0|+|nor_conv_3x3~0|none~1|+|none~0|nor_conv_1x1~1|"
                        "avg_pool_3x3~2|")
    c = Nb201Cell.parse("|skip_connect~0|+|nor_conv_3x3~0|none~1|+|none~0|nor_conv_1x1~1|"
                        "nor_conv_1x1~2|")
    assert rows[cell_index(a)] == rows[cell_index(b)] != rows[cell_index(c)]
    assert len(cells) == len({cell_of_index(int(i)).hash() for i in cells})


def fake_record(row: int, seed: int, epochs: int = 2) -> dict:
    """A training record whose figures tell its row and seed apart."""
    value = (row % 997) / 1000 + seed / 10_000
    return {"train_loss": [2.0 - value] * epochs, "train_accuracy": [value] * epochs,
            "valid_accuracy": [value / 2] + [value] * (epochs - 1),
            "test_accuracy": value, "seconds": 0.5 + row % 3}


class SyncBackend:
    """A backend that answers each job at once in this process; optionally sends this
    process SIGINT after ``interrupt_after`` jobs (a Ctrl-C during the build)."""

    def __init__(self, count, make_host, interrupt_after=None):
        self.host = make_host()
        self.replies: deque = deque()
        self.sent = 0
        self.interrupt_after = interrupt_after

    def send(self, worker, job):
        self.sent += 1
        self.replies.append((worker, self.host.handle_safely(job)))
        if self.sent == self.interrupt_after:
            os.kill(os.getpid(), signal.SIGINT)

    def receive(self, timeout):
        replies = list(self.replies)
        self.replies.clear()
        return replies

    def death(self, worker):
        return "died"

    def restart(self, worker):
        pass

    def interrupt(self, signum=None):
        stopflag.request()

    def close(self):
        stopflag.clear()


@pytest.fixture
def fake_training(monkeypatch):
    """Training replaced by :func:`fake_record`; returns the (row, seed) of every call."""
    calls = []
    rows = network_rows()[0]

    def record(evaluator, cell, costs):
        row = int(rows[cell_index(cell)])
        calls.append((row, evaluator.seed))
        result = fake_record(row, evaluator.seed)
        if costs:
            result.update(params=row, flops=10 * row,
                          latency_ms={name: 0.25 for name in evaluator.profiles})
        return result

    monkeypatch.setattr(build_module, "training_record", record)
    return calls


def test_an_interrupted_build_resumes_and_trains_nothing_twice(tmp_path, fake_training):
    config = tiny_config()
    folder = tmp_path / "build"
    with pytest.raises(Interrupted):
        build_table(folder, config, nas_of(config), 1, 5,
                    lambda count, host: SyncBackend(count, host, interrupt_after=300),
                    out=io.StringIO())
    recorded = (folder / RECORDS_FILE).read_text().count("\n")
    assert 290 <= recorded <= 300 and not (folder / "table.npz").exists()
    out = io.StringIO()
    target = build_table(folder, config, nas_of(config), 2, 5, SyncBackend, out=out)
    networks = len(network_rows()[1])
    assert len(fake_training) == len(set(fake_training)) == networks + 5
    assert f"{recorded:,} recorded" in out.getvalue()
    table = load_table(target)
    assert table.meta["recipe"] == table_recipe(config)
    assert table.trained()[:, 0].all() and table.trained()[:, 1].sum() == 5
    row = int(network_rows()[0][cell_index(cell_of_index(12345))])
    assert table.test_accuracy[row, 0] == np.float32(fake_record(row, 0)["test_accuracy"])
    record = table.record(str(cell_of_index(12345)))
    assert record["row"] == row and record["params"] == row
    assert record["seeds"][0]["valid_accuracy"] == pytest.approx(
        fake_record(row, 0)["valid_accuracy"])


def test_a_build_folder_keeps_its_recipe_and_sample(tmp_path):
    folder = tmp_path / "build"
    TableBuild(folder).prepare(tiny_config(), 3)
    with pytest.raises(EvozeroError, match=r"another recipe \(nas.stem_channels: 4, but "
                                           r"that build was built with 2\)"):
        TableBuild(folder).prepare(tiny_config(stem_channels=4), 3)
    with pytest.raises(EvozeroError, match="started with --second-seeds 3, not 4"):
        TableBuild(folder).prepare(tiny_config(), 4)
    with pytest.raises(EvozeroError, match="--second-seeds 99999: must be 0"):
        TableBuild(tmp_path / "other").prepare(tiny_config(), 99_999)


def test_a_bad_record_line_is_named_and_a_torn_last_line_skipped(tmp_path):
    folder = tmp_path / "build"
    build = TableBuild(folder)
    build.prepare(tiny_config(), 0)
    good = {"row": 0, "seed": 0, "cell": 0, **fake_record(0, 0), "params": 1, "flops": 2,
            "latency_ms": {"host": 1.0}}
    build.append(good)
    with open(folder / RECORDS_FILE, "ab") as handle:
        handle.write(b'{"row": 1, "se')
    assert list(build.records(2, ["host"])) == [(0, 0)]
    build.append(dict(good, row=1, cell=1, valid_accuracy=[0.5, 1.5]))
    with pytest.raises(EvozeroError, match=r"records.jsonl, line 2: accuracies must be in"):
        build.records(2, ["host"])


def test_a_second_builder_is_refused(tmp_path, fake_training):
    config = tiny_config()
    folder = tmp_path / "build"
    TableBuild(folder).prepare(config, 0)
    from evozero.runs.rundir import release_lock, take_lock
    fd, _ = take_lock(folder / "build.lock", lambda holder: holder)
    try:
        # The lock is per open file description: a second take in this process is refused
        # as a second process would be.
        with pytest.raises(EvozeroError, match="is being built by another process"):
            build_table(folder, config, nas_of(config), 1, 0, SyncBackend, out=io.StringIO())
    finally:
        release_lock(fd)


def test_training_is_deterministic_and_verify_finds_what_differs(tmp_path, fake_training,
                                                                  monkeypatch):
    config = tiny_config()
    nas = nas_of(config)
    target = build_table(tmp_path / "b", config, nas, 1, 0, SyncBackend, out=io.StringIO())
    table = load_table(target)
    # The rows verify draws with seed 3 get their real training; the rest stay fake.
    chosen = np.random.default_rng(3).choice(len(table.cell), 2, replace=False)
    from evozero.nas.evaluate import evaluator_for
    monkeypatch.undo()   # verify trains for real
    for row in chosen:
        cell = cell_of_index(int(table.cell[row]))
        real = training_record(evaluator_for(nas, 0), cell, costs=False)
        again = training_record(evaluator_for(nas, 0), cell, costs=False)
        assert {k: v for k, v in real.items() if k != "seconds"} == \
            {k: v for k, v in again.items() if k != "seconds"}
        for key in ("train_loss", "train_accuracy", "valid_accuracy"):
            getattr(table, key)[row, 0] = real[key]
        table.test_accuracy[row, 0] = real["test_accuracy"]
    lines = []
    assert verify_table(table, nas, 2, 3, lines.append) == []
    assert all(line.endswith(": same") for line in lines)
    problems = verify_table(table, nas, 3, 4, lines.append)
    assert problems and "train_loss" in problems[0]


def test_the_figures_of_a_table(tmp_path, fake_training):
    config = tiny_config()
    table = load_table(build_table(tmp_path / "b", config, nas_of(config), 1, 40,
                                   SyncBackend, out=io.StringIO()))
    figures = table_figures(table)
    test = table.test_accuracy[:, 0]
    assert figures["best_by_test"]["test_accuracy"] == pytest.approx(
        float(np.nanmean(table.test_accuracy, axis=1).max()))
    assert figures["test_accuracy_over_networks"]["max"] == pytest.approx(float(test.max()),
                                                                          abs=1e-4)
    assert figures["seed_noise"]["networks_with_two_seeds"] == 40
    # fake seeds differ by exactly 1e-4 in every figure
    assert figures["seed_noise"]["mean_abs_difference"] == pytest.approx(1e-4, rel=1e-2)
    assert figures["early_epoch_vs_last"][0]["spearman"] == pytest.approx(1.0)


def test_kendall_counts_ties_as_tau_b():
    assert kendall([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # tau-b with ties in y: (C - D) / sqrt((n0 - n1)(n0 - n2)) = (5 - 0) / sqrt(6 * 5)
    assert kendall([1, 2, 3, 4], [1, 2, 2, 3]) == pytest.approx(5 / np.sqrt(30))
    assert np.isnan(kendall([1, 1, 1], [1, 2, 3]))


@pytest.fixture
def saved_table(tmp_path, fake_training):
    config = tiny_config()
    return build_table(tmp_path / "b", config, nas_of(config), 1, 0, SyncBackend,
                       out=io.StringIO())


def _rewrite(path: Path, **changes) -> None:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays.update(changes)
    for name in [n for n, v in changes.items() if v is None]:
        del arrays[name]
    np.savez_compressed(path, **arrays)


@pytest.mark.parametrize("damage, message", [
    ("truncate", "not a readable .npz file"),
    ("garbage", "not a readable .npz file"),
    ("no valid_accuracy", r"missing array\(s\) valid_accuracy"),
    ("nan test", "seed 0 must be trained for every network"),
    ("accuracy 2", "valid_accuracy must be in"),
    ("meta", "meta is not JSON"),
    ("format", "a table of format 99"),
    ("rows", "row must index"),
    ("object array", "cell must be numeric, got dtype object"),
])
def test_a_damaged_table_file_is_refused_with_its_name(saved_table, damage, message):
    path = Path(saved_table)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:5000])
    elif damage == "garbage":
        path.write_bytes(b"not a zip at all")
    elif damage == "no valid_accuracy":
        _rewrite(path, valid_accuracy=None)
    elif damage == "nan test":
        table = load_table(path)
        test = table.test_accuracy.copy()
        test[7, 0] = np.nan
        _rewrite(path, test_accuracy=test)
    elif damage == "accuracy 2":
        valid = load_table(path).valid_accuracy.copy()
        valid[3, 0, 1] = 2.0
        _rewrite(path, valid_accuracy=valid)
    elif damage == "meta":
        _rewrite(path, meta=np.array("{not json"))
    elif damage == "format":
        meta = json.loads(str(np.load(path)["meta"]))
        _rewrite(path, meta=np.array(json.dumps(dict(meta, format=99))))
    elif damage == "rows":
        row = load_table(path).row.copy()
        row[0] = 10 ** 6
        _rewrite(path, row=row)
    else:
        _rewrite(path, cell=np.array([{"x": 1}], dtype=object))
    with pytest.raises(EvozeroError, match=message) as caught:
        load_table(path)
    assert str(path) in str(caught.value)


def test_the_table_commands(saved_table, capsys):
    cell = str(cell_of_index(9902))
    assert main(["table", "query", cell, "--table", str(saved_table), "--format", "json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["cell"] == cell and record["index"] == 9902
    assert main(["table", "info", str(saved_table)]) == 0
    assert "distinct networks" in capsys.readouterr().out
    assert main(["table", "query", "|bogus~0|", "--table", str(saved_table)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert main(["table", "info", str(saved_table) + ".missing"]) == 2
    assert "no table file there" in capsys.readouterr().err
    assert main(["table", "verify", str(saved_table), "--seed", "-1"]) == 2
    assert capsys.readouterr().err == f"error: --seed -1: must be 0 .. {2**64 - 1}\n"


def test_verify_retrains_with_the_tables_recipe(saved_table):
    table = load_table(saved_table)
    config = recipe_config(table.meta["recipe"])
    assert table_recipe(config) == table.meta["recipe"]
    assert nas_of(config).stem_channels == TINY["stem_channels"]
