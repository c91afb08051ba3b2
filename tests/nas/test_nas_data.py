"""The offline NAS data sets: shapes, stratified deterministic splits, train-split
normalisation, the legacy MNIST-1D generator and the data's difficulty, and the error
messages (the published MNIST-1D against its package: test_mnist1d_published.py)."""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import time

import numpy as np
import pytest
import yaml
from helpers import nas_config, stop_after_evaluations

from evozero.config.cell_search import NasMnist1d
from evozero.errors import EvozeroError
from evozero.evaluation.mnist1d import make_mnist1d
from evozero.nas.training.data import Mnist1dRecipe, generate_mnist1d, load_dataset
from evozero.runs.checkpointing import RESUME_CHANGEABLE
from evozero.runs.flow import Interrupted
from evozero.runs.rundir import RunDir

pytestmark = pytest.mark.nas

SPLITS = ("train", "valid", "test")
LEGACY = NasMnist1d(recipe="legacy")
# (data set, MNIST-1D recipe): every way the splits are made.
CASES = [("digits", NasMnist1d()), ("mnist1d", NasMnist1d()), ("mnist1d", LEGACY)]


def _raw_inputs(name: str, mnist1d: NasMnist1d) -> np.ndarray:
    """The unnormalised NHWC inputs of a data set, in source order (for the published
    MNIST-1D: the package's training sequences, then its test sequences)."""
    if name == "digits":
        datasets = pytest.importorskip("sklearn.datasets")
        return datasets.load_digits().images[..., None] / 16.0
    if mnist1d.recipe == "legacy":
        return generate_mnist1d()[0][:, None, :, None]
    published = make_mnist1d()
    return np.concatenate([published.x, published.x_test])[:, None, :, None]


def _source_indices(dataset, raw: np.ndarray) -> dict[str, np.ndarray]:
    """Which source examples each split holds, found by normalising every source example
    with the data set's mean and std and matching the float32 bytes exactly."""
    expected = ((raw - dataset.mean) / dataset.std).astype(np.float32)
    position = {row.tobytes(): index for index, row in enumerate(expected)}
    assert len(position) == len(raw)          # every source example is distinct
    return {split: np.array([position[row.tobytes()] for row in getattr(dataset, f"{split}_x")])
            for split in SPLITS}


@pytest.fixture(params=CASES, ids=["digits", "mnist1d", "mnist1d-legacy"])
def case(request) -> tuple[str, NasMnist1d]:
    if request.param[0] == "digits":
        pytest.importorskip("sklearn")
    return request.param


@pytest.mark.parametrize("dataset_name, mnist1d, shape, total", [
    ("digits", NasMnist1d(), (8, 8, 1), 1797), ("mnist1d", NasMnist1d(), (1, 40, 1), 5000),
    ("mnist1d", LEGACY, (1, 40, 1), 5000)])
def test_shapes_dtypes_and_classes(dataset_name, mnist1d, shape, total):
    if dataset_name == "digits":
        pytest.importorskip("sklearn")
    dataset = load_dataset(dataset_name, mnist1d=mnist1d)
    assert dataset.name == dataset_name
    assert dataset.input_shape == shape
    assert dataset.classes == 10
    sizes = []
    for split in SPLITS:
        x, y = getattr(dataset, f"{split}_x"), getattr(dataset, f"{split}_y")
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape == (len(y), *shape)
        assert set(np.unique(y)) == set(range(10))
        sizes.append(len(y))
    assert sum(sizes) == total
    assert sizes[1] == sizes[2] == round(0.2 * total)


def test_splits_are_disjoint_cover_everything_and_are_stratified(case):
    name, mnist1d = case
    raw = _raw_inputs(name, mnist1d)
    dataset = load_dataset(name, seed=3, valid_fraction=0.25, test_fraction=0.15,
                           mnist1d=mnist1d)
    indices = _source_indices(dataset, raw)
    together = np.concatenate(list(indices.values()))
    assert len(together) == len(np.unique(together)) == len(raw)
    labels = np.concatenate([dataset.train_y, dataset.valid_y, dataset.test_y])[
        np.argsort(together)]
    assert len(indices["valid"]) == round(0.25 * len(raw))
    if name == "mnist1d" and mnist1d.recipe == "published":
        # The package's own test split: its last 15 % (train_split 0.85), in its order.
        np.testing.assert_array_equal(indices["test"], np.arange(4250, 5000))
    else:
        counts = np.bincount(labels[indices["test"]], minlength=10)
        assert np.all(np.abs(counts - 0.15 * np.bincount(labels)) <= 2), counts
    # Validation and training are drawn by class from what the test split leaves.
    rest = np.bincount(labels[np.concatenate([indices["train"], indices["valid"]])])
    for split in ("train", "valid"):
        counts = np.bincount(labels[indices[split]], minlength=10)
        share = len(indices[split]) / rest.sum()
        assert np.all(np.abs(counts - share * rest) <= 2), (split, counts)


def test_splits_are_deterministic_and_only_train_valid_depend_on_the_seed(case):
    name, mnist1d = case
    raw = _raw_inputs(name, mnist1d)
    first = _source_indices(load_dataset(name, seed=1, mnist1d=mnist1d), raw)
    again = _source_indices(load_dataset(name, seed=1, mnist1d=mnist1d), raw)
    other = _source_indices(load_dataset(name, seed=2, mnist1d=mnist1d), raw)
    for split in SPLITS:
        np.testing.assert_array_equal(first[split], again[split])
    np.testing.assert_array_equal(first["test"], other["test"])
    assert set(first["valid"]) != set(other["valid"])


def test_normalisation_uses_the_training_split_statistics(case):
    name, mnist1d = case
    raw = _raw_inputs(name, mnist1d)
    dataset = load_dataset(name, seed=5, mnist1d=mnist1d)
    train = raw[_source_indices(dataset, raw)["train"]]
    assert dataset.mean == pytest.approx(train.mean(), rel=1e-12)
    assert dataset.std == pytest.approx(train.std(), rel=1e-12)
    assert abs(dataset.train_x.mean()) < 1e-4
    assert dataset.train_x.std() == pytest.approx(1, abs=1e-4)
    # Another seed trains on other examples, hence other statistics.
    assert load_dataset(name, seed=6, mnist1d=mnist1d).mean != dataset.mean


def test_digits_pixels_are_scaled_to_unit_range_before_standardising():
    pytest.importorskip("sklearn")
    dataset = load_dataset("digits")
    pixels = (dataset.test_x.astype(np.float64) * dataset.std + dataset.mean) * 16.0
    np.testing.assert_allclose(pixels, np.round(pixels), atol=1e-4)
    assert pixels.min() == pytest.approx(0, abs=1e-4)
    assert pixels.max() == pytest.approx(16, abs=1e-4)


def test_mnist1d_generation_is_deterministic_balanced_and_fast():
    generate_mnist1d.cache_clear()
    start = time.perf_counter()
    x, y = generate_mnist1d(seed=7)
    elapsed = time.perf_counter() - start
    generate_mnist1d.cache_clear()
    x_again, y_again = generate_mnist1d(seed=7)
    x_other, _ = generate_mnist1d(seed=8)
    assert elapsed < 2.0
    assert x.shape == (5000, 40) and y.shape == (5000,)
    np.testing.assert_array_equal(x, x_again)
    np.testing.assert_array_equal(y, y_again)
    assert not np.array_equal(x, x_other)
    assert np.array_equal(np.bincount(y), np.full(10, 500))
    assert len(np.unique(y[:50])) > 5                 # shuffled, not sorted by class
    assert generate_mnist1d(seed=7) is generate_mnist1d(seed=7)
    assert not x.flags.writeable


def test_mnist1d_templates_are_distinguishable():
    clean = Mnist1dRecipe(padding=(36, 36), scale=0.0, max_shift=0, smooth_noise=0.0,
                          iid_noise=0.0, shear=0.0)
    x, y = generate_mnist1d(100, 0, clean)
    per_class = np.stack([x[y == label] for label in range(10)])
    np.testing.assert_allclose(per_class, per_class[:, :1].repeat(10, axis=1), atol=1e-12)
    templates = per_class[:, 0]
    distances = np.linalg.norm(templates[:, None] - templates[None], axis=-1)
    assert distances[~np.eye(10, dtype=bool)].min() > 0.05
    # Unshifted but otherwise fully distorted: the class means still mostly tell them apart.
    x, y = generate_mnist1d(2000, 1, dataclasses.replace(Mnist1dRecipe(), max_shift=0))
    assert _nearest_class_mean_accuracy(x[:1000], y[:1000], x[1000:], y[1000:]) > 0.5


def _nearest_class_mean_accuracy(train_x, train_y, test_x, test_y) -> float:
    means = np.stack([train_x[train_y == label].mean(axis=0) for label in range(10)])
    guesses = np.argmin(((test_x[:, None] - means) ** 2).sum(axis=-1), axis=1)
    return float((guesses == test_y).mean())


def _one_blas_thread():
    """BLAS limited to one thread: these products are small, and on a busy machine
    threads that wait for each other make them many times slower."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


@pytest.mark.parametrize("mnist1d", [NasMnist1d(), LEGACY], ids=["published", "legacy"])
def test_mnist1d_is_as_hard_as_published_for_a_linear_model(mnist1d):
    # Published: about 32 % test accuracy for logistic regression, 94 % for a small CNN.
    with _one_blas_thread():
        accuracy = _softmax_regression_accuracy(load_dataset("mnist1d", mnist1d=mnist1d))
    assert 0.22 < accuracy < 0.45


def _softmax_regression_accuracy(dataset) -> float:
    """Test accuracy of multinomial logistic regression fit by 300 full-batch gradient steps."""
    x = dataset.train_x.reshape(len(dataset.train_y), -1).astype(np.float64)
    targets = np.eye(10)[dataset.train_y]
    weights, bias = np.zeros((x.shape[1], 10)), np.zeros(10)
    for _ in range(300):
        logits = x @ weights + bias
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        gradient = (probabilities - targets) / len(x)
        weights -= 0.5 * x.T @ gradient
        bias -= 0.5 * gradient.sum(axis=0)
    test_x = dataset.test_x.reshape(len(dataset.test_y), -1)
    return float(np.mean(np.argmax(test_x @ weights + bias, axis=1) == dataset.test_y))


def test_unknown_name_lists_the_data_sets():
    with pytest.raises(EvozeroError, match="unknown data set 'cifar10'.*digits, mnist1d"):
        load_dataset("cifar10")


@pytest.mark.parametrize("valid_fraction, test_fraction, message", [
    (0.0, 0.2, "valid_fraction must be between 0 and 1"),
    (0.2, 1.0, "test_fraction must be between 0 and 1"),
    (0.5, 0.5, "sum below 1"),
])
def test_bad_fractions_are_rejected(valid_fraction, test_fraction, message):
    with pytest.raises(EvozeroError, match=message):
        load_dataset("mnist1d", valid_fraction=valid_fraction, test_fraction=test_fraction)


def test_a_negative_seed_is_rejected():
    with pytest.raises(EvozeroError, match="seed must be a non-negative integer, got -1"):
        load_dataset("mnist1d", seed=-1)


def test_digits_without_scikit_learn_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)   # makes the import fail
    with pytest.raises(EvozeroError, match=r'scikit-learn.*pip install "evozero\[data\]"'):
        load_dataset("digits")
    assert load_dataset("mnist1d").classes == 10      # generated, so no scikit-learn needed


_KEYS_ADDED_SINCE_RECIPES = ("mnist1d", "dataset_sha256")


def _as_made_before_mnist1d_recipes(rundir: RunDir) -> None:
    """Rewrite ``rundir``'s config.yaml and newest checkpoint as evozero wrote them before
    the nas.mnist1d key existed (nor nas.dataset_sha256, added later): without them, the
    checkpoint's config hash taken without them."""
    data = yaml.safe_load(rundir.config_path.read_text())
    for key in _KEYS_ADDED_SINCE_RECIPES:
        del data["nas"][key]
    rundir.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    path = rundir.checkpoint_dir / f"{rundir.checkpoint_sequences()[-1]:06d}.json"
    meta = json.loads(path.read_text())
    config = meta["state"]["config"]
    for key in _KEYS_ADDED_SINCE_RECIPES:
        del config["nas"][key]
    bound = {key: value for key, value in config.items() if key not in RESUME_CHANGEABLE}
    text = json.dumps(json.loads(json.dumps(bound, default=str)), sort_keys=True)
    meta["state"]["config_sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    path.write_text(json.dumps(meta) + "\n")


def test_a_run_made_before_the_recipes_keeps_its_legacy_data_on_show_and_resume(tmp_path,
                                                                                monkeypatch):
    from evozero.domains import resume_run, start_run

    config = nas_config(nas={"dataset": "mnist1d", "mnist1d": {"recipe": "legacy"}},
                        budget={"individuals": 8, "train_steps": None})
    run = start_run(config, str(tmp_path), out=open(os.devnull, "w"))
    stop_after_evaluations(run, 3, monkeypatch)
    with pytest.raises(Interrupted):
        run.execute()
    monkeypatch.undo()
    _as_made_before_mnist1d_recipes(run.rundir)
    reopened = RunDir.open(run.rundir.path)
    assert reopened.read_config().nas.mnist1d == LEGACY
    # Asking for the published data on resume would change the run's data: refused.
    text = reopened.config_path.read_text()
    reopened.config_path.write_text(text.replace("  dataset: mnist1d\n",
                                                 "  dataset: mnist1d\n  mnist1d:\n"
                                                 "    recipe: published\n"))
    with pytest.raises(EvozeroError, match=r"nas.mnist1d.recipe: \"legacy\" -> \"published\""):
        resume_run(str(reopened.path), out=open(os.devnull, "w"))
    reopened.config_path.write_text(text)
    resumed = resume_run(str(reopened.path), out=open(os.devnull, "w"))
    assert resumed.domain.config.nas.mnist1d == LEGACY
    assert resumed.execute()["evaluations"] == 8
