"""Tests of evozero.analysis.plots: real (small) runs plotted to PNG files."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from evozero.analysis.figure import DPI
from evozero.analysis.plots import FIGSIZE, X_AXES, load_run, plot_runs, program_label
from evozero.config import config_from_dict
from evozero.domains import start_run
from evozero.errors import EvozeroError
from evozero.runs.rundir import RunDir

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_config(seed: int, strategy: str = "evolution", name: str = "evo",
                experiments: int = 1):
    return config_from_dict({
        "name": name, "seed": seed, "strategy": strategy, "population_size": 30,
        "tournament_size": 5,
        "search_tasks": {"num_tasks": 2, "train": 20, "valid": 20},
        "select_tasks": {"num_tasks": 3, "train": 30, "valid": 20},
        "final_tasks": {"num_tasks": 3, "train": 30, "valid": 20},
        "budget": {"individuals": 1500, "train_steps": None},
        "max_experiments": experiments, "progress_every": 0.01, "checkpoint_every": 3600,
        "workers": 1})


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("runs")
    made: dict[str, list[Path]] = {"evo": [], "rnd": [], "multi": []}
    for seed in range(3):
        run = start_run(tiny_config(seed), str(root), out=io.StringIO())
        run.execute()
        made["evo"].append(run.rundir.path)
    for seed in range(2):
        run = start_run(tiny_config(seed, "random", "rnd"), str(root), out=io.StringIO())
        run.execute()
        made["rnd"].append(run.rundir.path)
    run = start_run(tiny_config(5, name="multi", experiments=3), str(root), out=io.StringIO())
    run.execute()
    made["multi"].append(run.rundir.path)
    return made


def check_png(path: Path) -> None:
    assert path.is_file()
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 10_000
    image = imread(path)
    assert image.shape[:2] == (round(FIGSIZE[1] * DPI), round(FIGSIZE[0] * DPI))
    # Not blank: more than a handful of distinct colours.
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 20


@pytest.mark.parametrize("x", sorted(X_AXES))
def test_single_run_every_x(runs, tmp_path, x):
    out = plot_runs([runs["evo"][0]], tmp_path / f"one-{x}.png", x=x)
    assert out == tmp_path / f"one-{x}.png"
    check_png(out)


def test_single_run_without_annotations_and_with_title(runs, tmp_path):
    out = plot_runs([str(runs["evo"][1])], tmp_path / "sub" / "plain.png", annotate=False,
                    title="my title")
    check_png(out)


def test_single_path_is_accepted_as_one_run(runs, tmp_path):
    check_png(plot_runs(runs["evo"][0], tmp_path / "p.png"))


def test_several_seeds_of_one_config(runs, tmp_path):
    check_png(plot_runs(runs["evo"], tmp_path / "group.png"))


def test_compare_groups_by_config_name(runs, tmp_path):
    for x in ("individuals", "seconds"):
        check_png(plot_runs(runs["evo"] + runs["rnd"], tmp_path / f"cmp-{x}.png",
                            compare=True, x=x))


def test_different_configs_need_compare(runs, tmp_path):
    with pytest.raises(EvozeroError, match="compare"):
        plot_runs([runs["evo"][0], runs["rnd"][0]], tmp_path / "bad.png")


def test_counters_are_cumulative_over_experiments(runs, tmp_path):
    path = runs["multi"][0]
    for x in ("individuals", "train_steps"):
        data = load_run(path, x)
        assert set(data.progress_exp.tolist()) == {1, 2, 3}
        # Every point of experiment k+1 lies after every point of experiment k.
        for k in (1, 2):
            before = np.concatenate([data.progress_x[data.progress_exp == k],
                                     data.disc_x[data.disc_exp == k]])
            after = np.concatenate([data.progress_x[data.progress_exp == k + 1],
                                    data.disc_x[data.disc_exp == k + 1]])
            assert before.max() <= after.min()
    assert load_run(path, "individuals").end_x == pytest.approx(3 * 1500)
    check_png(plot_runs([path], tmp_path / "multi.png"))


def test_program_label():
    text = ("def Setup():\n  s2 = 0.5\ndef Predict():\n  s1 = dot(v0, v1)\n"
            "def Learn():\n  s3 = s0 - s1\n  v1 = s3 * v0\n")
    label = program_label(text, (4, 3, 1))
    assert label.startswith("live ")
    assert "learn: s3 = s0 - s1" in label
    assert program_label(text).startswith("instr 1/1/2")
    assert program_label("not a program") == "?"


def test_unknown_x(runs, tmp_path):
    with pytest.raises(EvozeroError, match="unknown x axis 'fitness'"):
        plot_runs([runs["evo"][0]], tmp_path / "x.png", x="fitness")


def test_missing_run_directory(tmp_path):
    with pytest.raises(EvozeroError, match="no such run directory"):
        plot_runs([tmp_path / "nope"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_no_runs(tmp_path):
    with pytest.raises(EvozeroError, match="no run"):
        plot_runs([], tmp_path / "x.png")


def test_run_without_progress(runs, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(runs["evo"][0] / RunDir.CONFIG, empty / RunDir.CONFIG)
    with pytest.raises(EvozeroError, match="no progress"):
        plot_runs([empty], tmp_path / "x.png")
    (empty / RunDir.PROGRESS).write_text("")
    with pytest.raises(EvozeroError, match="no progress"):
        plot_runs([empty], tmp_path / "x.png")


def test_corrupt_progress(runs, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(runs["evo"][0], broken)
    lines = (broken / RunDir.PROGRESS).read_text().splitlines(keepends=True)
    (broken / RunDir.PROGRESS).write_text("{not json\n" + "".join(lines))
    with pytest.raises(EvozeroError, match="progress.jsonl:1"):
        plot_runs([broken], tmp_path / "x.png")


def test_progress_record_without_fields(runs, tmp_path):
    odd = tmp_path / "odd"
    shutil.copytree(runs["evo"][0], odd)
    (odd / RunDir.PROGRESS).write_text('{"experiment": 1}\n')
    with pytest.raises(EvozeroError, match="individuals"):
        plot_runs([odd], tmp_path / "x.png")


def test_live_run_torn_last_line_is_skipped(runs, tmp_path):
    live = tmp_path / "live"
    shutil.copytree(runs["evo"][0], live)
    (live / RunDir.FINAL).unlink()
    with open(live / RunDir.PROGRESS, "a") as handle:
        handle.write('{"seconds": 1')
    check_png(plot_runs([live], tmp_path / "live.png"))
