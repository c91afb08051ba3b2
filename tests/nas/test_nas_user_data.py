"""Cell search on the user's own data: a .npz file named by nas.dataset, checked when the
config loads, split and standardised as the built-in sets, bound to its runs by sha256."""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import nas_config, nas_data, stop_after_evaluations
from hypothesis import given, settings
from hypothesis import strategies as st

from evozero.cli import main
from evozero.config import load_config
from evozero.domains import resume_run, start_run
from evozero.errors import EvozeroError
from evozero.evaluation.class_npz import file_sha256, read_class_npz
from evozero.nas.training.data import load_dataset
from evozero.runs.flow import Interrupted
from evozero.runs.rundir import RunDir

pytestmark = pytest.mark.nas

README = Path(__file__).resolve().parents[2] / "README.md"


def _examples(count: int, shape: tuple[int, ...], classes: int = 3, seed: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
    """Inputs whose mean tells their class (so a network can learn them) and labels with
    every class present."""
    rng = np.random.default_rng(seed)
    y = np.arange(count) % classes
    x = rng.normal(size=(count, *shape)) + y.reshape((-1,) + (1,) * len(shape))
    return x, y


def _config_file(tmp_path: Path, arrays: dict[str, np.ndarray], **nas) -> Path:
    """A config beside ``data.npz`` (holding ``arrays``) that names it relatively."""
    np.savez(tmp_path / "data.npz", **arrays)
    path = tmp_path / "nas.yaml"
    path.write_text(yaml.safe_dump(nas_data(nas={"dataset": "data.npz", **nas})))
    return path


@pytest.mark.parametrize("shape, example", [((6, 5, 2), (6, 5, 2)), ((12,), (1, 12, 1)),
                                            ((12, 3), (1, 12, 3))])
def test_a_data_file_is_split_by_class_and_standardised_by_its_training_split(
        tmp_path, shape, example):
    x, y = _examples(50, shape)
    config = load_config(str(_config_file(tmp_path, {"x": x, "y": y})))
    assert config.nas.dataset == str(tmp_path / "data.npz")
    data = load_dataset(config.nas.dataset, seed=0)
    assert data.input_shape == example and data.classes == 3
    assert (len(data.train_y), len(data.valid_y), len(data.test_y)) == (30, 10, 10)
    assert set(data.train_y) == {0, 1, 2}
    # The splits partition the examples; the statistics are the training split's.
    raw = x.reshape(50, -1)
    restored = np.concatenate([part.reshape(len(part), -1) * data.std + data.mean
                               for part in (data.train_x, data.valid_x, data.test_x)])
    assert np.allclose(np.sort(restored, axis=0), np.sort(raw, axis=0), atol=1e-5)
    train_raw = data.train_x.astype(np.float64) * data.std + data.mean
    assert np.isclose(data.mean, train_raw.mean()) and np.isclose(data.std, train_raw.std())
    other = load_dataset(config.nas.dataset, seed=1)
    assert np.allclose(other.test_x * other.std + other.mean,
                       data.test_x * data.std + data.mean, atol=1e-5)
    assert not np.allclose(other.valid_x * other.std + other.mean,
                           data.valid_x * data.std + data.mean, atol=1e-5)


def test_splits_the_file_gives_are_kept_as_given(tmp_path):
    (x, y), (xv, yv), (xt, yt) = (_examples(n, (4, 4, 1), seed=n) for n in (30, 9, 7))
    config = load_config(str(_config_file(tmp_path, {"x": x, "y": y, "x_valid": xv,
                                                     "y_valid": yv, "x_test": xt,
                                                     "y_test": yt})))
    data = load_dataset(config.nas.dataset, seed=5)
    assert np.array_equal(data.valid_y, yv) and np.array_equal(data.test_y, yt)
    assert np.allclose(data.test_x * data.std + data.mean, xt, atol=1e-5)
    assert np.isclose(data.mean, x.mean())


@settings(max_examples=60, deadline=None)
@given(labels=st.lists(st.integers(0, 4), min_size=1, max_size=40),
       seed=st.integers(0, 2**32 - 1))
def test_any_labels_either_split_with_every_class_in_training_or_are_refused(
        tmp_path_factory, labels, seed):
    path = tmp_path_factory.mktemp("labels") / "data.npz"
    y = np.array(labels)
    np.savez(path, x=np.arange(len(y), dtype=np.float64), y=y)
    try:
        splits = read_class_npz(str(path), seed)
    except EvozeroError as error:
        assert str(path) in str(error)
        return
    parts = (splits.train, splits.valid, splits.test)
    assert sorted(np.concatenate([x.ravel() for x, _ in parts])) == list(range(len(y)))
    assert all(len(labels) >= 1 for _, labels in parts)
    assert set(splits.train[1]) == set(range(splits.classes)) and splits.classes >= 2


X, Y = _examples(40, (4, 4, 1))
BAD_FILES = {
    "objects": ({"x": np.array([object()] * 40).reshape(40, 1), "y": Y}, "x must be numeric"),
    "nan": ({"x": np.where(X > 2, np.nan, X), "y": Y}, "x contains NaN"),
    "fractional labels": ({"x": X, "y": Y + 0.5}, "y holds 0.5; labels must be whole"),
    "negative labels": ({"x": X, "y": Y - 1}, "labels must be whole numbers 0.."),
    "a class missing": ({"x": X, "y": Y * 2}, "class(es) 1, 3 of 0..4 have no example"),
    "one class": ({"x": X, "y": Y * 0}, "one class only"),
    "huge label": ({"x": X, "y": np.where(Y == 2, 10**12, Y)}, "labels go up to"),
    "half a split": ({"x": X, "y": Y, "x_valid": X}, "x_valid and y_valid must be given"),
    "other shape": ({"x": X, "y": Y, "x_test": X[:, :3], "y_test": Y},
                    "every split must have the same"),
    "labels short": ({"x": X, "y": Y[:-1]}, "y must have shape (40,)"),
    "flat x": ({"x": X.ravel(), "y": Y}, "must be images (N, H, W, C) or sequences"),
    "too few": ({"x": X[:2], "y": Y[:2]}, "too few examples (2)"),
    "constant": ({"x": X * 0, "y": Y}, "x holds one value only"),
    "no labels": ({"x": X}, "missing array(s) y"),
}


@pytest.mark.parametrize("arrays, message", BAD_FILES.values(), ids=BAD_FILES)
def test_a_bad_data_file_is_refused_when_the_config_loads(tmp_path, arrays, message):
    path = _config_file(tmp_path, arrays)
    with pytest.raises(EvozeroError) as error:
        load_config(str(path))
    assert "nas.dataset" in str(error.value) and "data.npz" in str(error.value)
    assert message in str(error.value)


def test_on_the_command_line_a_bad_file_is_one_error_line(tmp_path, capsys):
    (tmp_path / "data.npz").write_bytes(b"not a zip")
    path = tmp_path / "nas.yaml"
    path.write_text(yaml.safe_dump(nas_data(nas={"dataset": "data.npz"})))
    assert main(["run", str(path), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err and "not a readable .npz" in err
    path.write_text(yaml.safe_dump(nas_data(nas={"dataset": "digts"})))
    assert main(["run", str(path), "--out", str(tmp_path / "runs")]) == 2
    assert 'did you mean "digits"' in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_skeleton_too_deep_for_the_files_examples_is_refused_at_load(tmp_path):
    x, y = _examples(40, (6, 6, 1))
    path = _config_file(tmp_path, {"x": x, "y": y}, stacks=3)
    with pytest.raises(EvozeroError, match=r"nas.stacks: too deep for data set .*data.npz "
                                           r"\(6x6x1\).*3x3 before reduction block 2"):
        load_config(str(path))


def test_a_run_on_a_file_shows_exports_and_resumes_only_on_the_same_file(tmp_path,
                                                                         monkeypatch, capsys):
    x, y = _examples(60, (4, 4, 1))
    np.savez(tmp_path / "data.npz", x=x, y=y)
    config = nas_config(nas={"dataset": str(tmp_path / "data.npz")},
                        budget={"individuals": 4, "train_steps": None})
    assert config.nas.dataset_sha256 is None
    run = start_run(config, str(tmp_path / "runs"), out=open(os.devnull, "w"))
    assert run.rundir.read_config().nas.dataset_sha256 == file_sha256(str(tmp_path / "data.npz"))
    stop_after_evaluations(run, 2, monkeypatch)
    with pytest.raises(Interrupted):
        run.execute()
    monkeypatch.undo()
    saved = (tmp_path / "data.npz").read_bytes()
    np.savez(tmp_path / "data.npz", x=x[::-1], y=y[::-1])
    with pytest.raises(EvozeroError, match="data file changed since the run was made"):
        resume_run(str(run.rundir.path), out=open(os.devnull, "w"))
    assert main(["resume", str(run.rundir.path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    (tmp_path / "data.npz").write_bytes(saved)
    assert resume_run(str(run.rundir.path), out=open(os.devnull, "w")).execute()[
        "evaluations"] == 4

    assert main(["show", str(run.rundir.path)]) == 0
    assert "data.npz" in capsys.readouterr().out
    module = tmp_path / "net.py"
    assert main(["export", str(run.rundir.path), "--python", str(module)]) == 0
    spec = importlib.util.spec_from_file_location("net", module)
    net = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(net)
    data = load_dataset(str(tmp_path / "data.npz"), config.nas.data_seed)
    assert (net.MEAN, net.STD, net.SCALE) == (data.mean, data.std, 1.0)
    final = RunDir.open(run.rundir.path).read_final()
    raw_test = data.test_x.astype(np.float64) * data.std + data.mean
    assert np.mean(net.predict(raw_test) == data.test_y) == pytest.approx(
        final["test_accuracy"], abs=1e-9)


def test_the_readme_example_makes_a_file_and_config_that_search(tmp_path):
    section = README.read_text()[README.read_text().index("### Your own data"):]
    script = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    heredocs = dict(re.findall(r"^(python3 -|cat > \S+) <<'EOF'.*?\n(.*?)^EOF$", script,
                               re.M | re.S))
    subprocess.run([sys.executable, "-c", heredocs["python3 -"]], cwd=tmp_path, check=True)
    (tmp_path / "bars.yaml").write_text(heredocs["cat > bars.yaml"])
    config = load_config(str(tmp_path / "bars.yaml"))
    assert config.nas.dataset == str(tmp_path / "bars.npz")
    # Shorter than the README's search, on one worker: the example's files are what counts.
    short = dataclasses.replace(config, workers=1, budget=dataclasses.replace(
        config.budget, individuals=2), nas=dataclasses.replace(
        config.nas, training=dataclasses.replace(config.nas.training, epochs=1)))
    run = start_run(short, str(tmp_path / "runs"), out=open(os.devnull, "w"))
    assert run.execute()["evaluations"] == 2
