"""The published MNIST-1D: evozero's generator against the mnist1d package itself (the
``test`` extra installs it), bit for bit, and the splits ``dataset: mnist1d`` makes of it."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mnist1d.data import get_dataset_args, make_dataset
from mnist1d.utils import ObjectView
from scipy.interpolate import interp1d
from scipy.ndimage import gaussian_filter

from evozero.config.cell_search import NasMnist1d
from evozero.evaluation.mnist1d import (
    Mnist1dArgs,
    _correlate_reflect,
    _gaussian_kernel,
    _interpolate,
    make_mnist1d,
)
from evozero.nas.training.data import load_dataset

pytestmark = pytest.mark.nas


@pytest.fixture(scope="module")
def package() -> dict:
    """The package's data set with its default arguments (the published one)."""
    return make_dataset(get_dataset_args())


def _assert_same(ours, theirs) -> None:
    """Every array of the package's data set equals ours, values and dtype."""
    pairs = {"x": (ours.x, theirs["x"]), "y": (ours.y, theirs["y"]),
             "x_test": (ours.x_test, theirs["x_test"]), "y_test": (ours.y_test, theirs["y_test"]),
             "t": (ours.t, theirs["t"]),
             "templates x": (ours.templates_x, theirs["templates"]["x"]),
             "templates t": (ours.templates_t, theirs["templates"]["t"]),
             "templates y": (ours.templates_y, theirs["templates"]["y"])}
    for name, (mine, package) in pairs.items():
        assert mine.dtype == np.asarray(package).dtype, name
        np.testing.assert_array_equal(mine, package, err_msg=name, strict=True)


def test_default_arguments_are_the_packages():
    assert dataclasses.asdict(Mnist1dArgs()) == {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in get_dataset_args(as_dict=True).items() if key != "url"}


def test_the_published_data_set_is_the_packages_bit_for_bit(package):
    ours = make_mnist1d()
    _assert_same(ours, package)
    assert ours.x.shape == (4000, 40) and ours.x_test.shape == (1000, 40)


@settings(max_examples=20, deadline=None)
@given(samples=st.integers(10, 60), seed=st.integers(0, 2**32 - 1),
       low=st.integers(0, 30), extra=st.integers(0, 30), translation=st.integers(1, 60),
       length=st.integers(2, 80), split=st.sampled_from([0.5, 0.8, 0.9]),
       shuffle=st.booleans(), scales=st.tuples(*[st.floats(0, 2)] * 4))
def test_other_arguments_give_the_packages_data_too(samples, seed, low, extra, translation,
                                                    length, split, shuffle, scales):
    scale_coeff, corr_noise, iid_noise, shear = scales
    args = Mnist1dArgs(num_samples=samples, train_split=split, padding=(low, low + extra),
                       scale_coeff=scale_coeff, max_translation=translation,
                       corr_noise_scale=corr_noise, iid_noise_scale=iid_noise,
                       shear_scale=shear, shuffle_seq=shuffle, final_seq_length=length,
                       seed=seed)
    package_args = dict(dataclasses.asdict(args), padding=list(args.padding))
    _assert_same(make_mnist1d(args), make_dataset(ObjectView(package_args)))


@settings(max_examples=50, deadline=None)
@given(length=st.integers(1, 120), scale=st.floats(1e-3, 1e3), seed=st.integers(0, 2**32 - 1))
def test_the_smoothing_is_scipys_gaussian_filter_bit_for_bit(length, scale, seed):
    noise = scale * np.random.RandomState(seed).randn(length)
    np.testing.assert_array_equal(_correlate_reflect(noise, _gaussian_kernel(2)),
                                  gaussian_filter(noise, 2), strict=True)


@settings(max_examples=50, deadline=None)
@given(source=st.integers(2, 100), target=st.integers(2, 100), seed=st.integers(0, 2**32 - 1))
def test_the_resampling_is_scipys_interp1d_bit_for_bit(source, target, seed):
    x = np.random.RandomState(seed).randn(source)
    expected = interp1d(np.linspace(0, 1, source), x, axis=0, kind="linear")(
        np.linspace(0, 1, target))
    np.testing.assert_array_equal(_interpolate(x, target), expected, strict=True)


def test_shuffled_recipe_is_the_packages_shuffled_data_set():
    package = make_dataset(ObjectView(dict(get_dataset_args(as_dict=True), shuffle_seq=True)))
    _assert_same(make_mnist1d(Mnist1dArgs(shuffle_seq=True)), package)
    data = load_dataset("mnist1d", mnist1d=NasMnist1d(recipe="shuffled"))
    np.testing.assert_array_equal(
        data.test_x[:, 0, :, 0],
        ((package["x_test"] - data.mean) / data.std).astype(np.float32))


@pytest.mark.parametrize("seed", [0, 9])
def test_dataset_mnist1d_validates_on_part_of_the_package_training_set_and_tests_on_its_test_set(
        seed, package):
    data = load_dataset("mnist1d", seed=seed)
    assert (len(data.train_y), len(data.valid_y), len(data.test_y)) == (3000, 1000, 1000)
    # The test split is the package's, in its order, standardised with the training
    # split's statistics (float32).
    np.testing.assert_array_equal(data.test_y, package["y_test"])
    expected = ((package["x_test"] - data.mean) / data.std).astype(np.float32)
    np.testing.assert_array_equal(data.test_x[:, 0, :, 0], expected)
    # Train and validation hold each of the package's training sequences once.
    ours = np.concatenate([data.train_x, data.valid_x])[:, 0, :, 0]
    theirs = ((package["x"] - data.mean) / data.std).astype(np.float32)
    assert sorted(map(bytes, ours)) == sorted(map(bytes, theirs))
    # Standardised with the statistics of the training split alone.
    train_rows = {bytes(row) for row in data.train_x[:, 0, :, 0]}
    in_train = np.array([bytes(row) in train_rows for row in theirs])
    assert in_train.sum() == 3000
    assert data.mean == pytest.approx(package["x"][in_train].mean(), rel=1e-12)
    assert data.std == pytest.approx(package["x"][in_train].std(), rel=1e-12)
    # Stratified: every class validates in proportion to its share of the training set.
    counts = np.bincount(data.valid_y, minlength=10)
    assert np.all(np.abs(counts - 0.25 * np.bincount(package["y"])) <= 1), counts
