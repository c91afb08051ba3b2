"""Small offline image and sequence data sets for the architecture search: nothing is
ever downloaded.

- ``digits``: the 1,797 8x8 handwritten digits bundled with scikit-learn (10 classes),
  shaped ``(N, 8, 8, 1)``. Needs the optional scikit-learn dependency.
- ``mnist1d``: the MNIST-1D data set (Greydanus, 2020), 5,000 sequences of 40 points
  (500 per class), shaped ``(N, 1, 40, 1)``. By default the published one, generated bit
  for bit as the ``mnist1d`` package makes it (:mod:`evozero.evaluation.mnist1d`): its 4,000
  training sequences are split into train and validation here, its 1,000 test sequences
  are the test split. Published accuracies on it: about 32 % for logistic regression,
  68 % for an MLP and 94 % for a small CNN. The ``shuffled`` recipe permutes the 40
  positions as the package's ``shuffle_seq`` does; the ``legacy`` recipe is the sample
  evozero generated before (:func:`generate_mnist1d`: the same distortions, other draws),
  whose three splits are all drawn by class as for digits.

- a path: the user's .npz file of images or sequences and integer labels, with its own
  validation and test splits or without (:mod:`evozero.evaluation.class_npz`).

Splits are stratified by class. The test split is fixed per data set (the package's
test sequences, a file's own, or else one drawn with a fixed data seed), so test results of
different search seeds are comparable; ``seed`` decides which of the remaining examples
train and which validate. Inputs are float32 NHWC, standardised with the mean and
standard deviation of the training split's pixels (never the test split's: the package
already standardises MNIST-1D over all 5,000 sequences, an affine map that the training
split's standardisation undoes up to rounding); labels are int64.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, replace

import numpy as np

from evozero.config.cell_search import (
    DATASETS,
    MNIST1D_PUBLISHED_SEED,
    MNIST1D_RECIPES,
    Nas,
    NasMnist1d,
    dataset_is_file,
)
from evozero.errors import EvozeroError
from evozero.evaluation.class_npz import (
    TEST_FRACTION,
    VALID_FRACTION,
    ClassSplits,
    check_unchanged,
    file_sha256,
    held_out_rng,
    read_class_npz,
    split_off,
    validation_rng,
)
from evozero.evaluation.mnist1d import TEMPLATE_POINTS, Mnist1dArgs, make_mnist1d


@dataclass(frozen=True)
class Dataset:
    """One data set split three ways: float32 NHWC inputs and int64 labels in 0..classes-1.

    ``name`` is the built-in data set's name or the data file's path. ``mean`` and ``std``
    are the normalisation applied to every split, taken from the training split: new raw
    inputs ``x`` (for digits, pixels divided by 16) are fed as ``(x - mean) / std``.
    """

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    valid_x: np.ndarray
    valid_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: int
    mean: float
    std: float

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The (H, W, C) shape of one example."""
        _, height, width, channels = self.train_x.shape
        return int(height), int(width), int(channels)


def load_dataset(name: str, seed: int = 0, valid_fraction: float = VALID_FRACTION,
                 test_fraction: float = TEST_FRACTION, mnist1d: NasMnist1d | None = None,
                 sha256: str | None = None) -> Dataset:
    """The data set ``name`` split into train / validation / test, stratified by class.

    ``name`` is a built-in data set or the path of the user's .npz file
    (:mod:`evozero.evaluation.class_npz`), whose contents must have ``sha256`` when one
    is given (what a run recorded). ``test_fraction`` and ``valid_fraction`` are shares
    of all the examples; the test split depends on ``test_fraction`` only (for the
    published MNIST-1D recipes it is the package's last ``test_fraction`` of the
    sequences: its test set), and ``seed`` picks the validation split from the rest.
    ``mnist1d`` chooses the MNIST-1D recipe and generator seed (None: the published data
    set). The same arguments always give the same arrays.
    """
    if name not in DATASETS and not (isinstance(name, str) and os.path.isfile(name)):
        raise EvozeroError(f"unknown data set {name!r}; the data sets are "
                           f"{', '.join(DATASETS)} or the path of a .npz file")
    _check_arguments(seed, valid_fraction, test_fraction)
    if dataset_is_file(name):
        if sha256 is not None:
            check_unchanged(name, sha256)
        return _standardised(name, read_class_npz(name, seed, valid_fraction, test_fraction))
    if name == "digits":
        images, labels = _digits()
        return _split(name, images, labels, seed, valid_fraction, test_fraction)
    mnist1d = mnist1d or NasMnist1d()
    if mnist1d.recipe not in MNIST1D_RECIPES:
        raise EvozeroError(f"unknown MNIST-1D recipe {mnist1d.recipe!r}; the recipes are "
                           f"{', '.join(MNIST1D_RECIPES)}")
    if mnist1d.recipe == "legacy":
        sequences, labels = generate_mnist1d(seed=mnist1d.seed)
        return _split(name, sequences[:, None, :, None], labels, seed, valid_fraction,
                      test_fraction)
    published = make_mnist1d(Mnist1dArgs(train_split=1.0 - test_fraction,
                                         shuffle_seq=mnist1d.recipe == "shuffled",
                                         seed=mnist1d.seed))
    return _split_off_validation(name, published.x[:, None, :, None], published.y,
                                 published.x_test[:, None, :, None], published.y_test,
                                 seed, round((len(published.y) + len(published.y_test))
                                             * valid_fraction))


def record_dataset(nas: Nas) -> Nas:
    """The nas section of a run being created: a data file's sha256 recorded as
    ``dataset_sha256`` (kept when already there: a config that names it is checked against
    the file when loaded), so the run is bound to the data it is made on."""
    if not dataset_is_file(nas.dataset) or nas.dataset_sha256 is not None:
        return nas
    return replace(nas, dataset_sha256=file_sha256(nas.dataset))


def _check_arguments(seed: int, valid_fraction: float, test_fraction: float) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise EvozeroError(f"seed must be a non-negative integer, got {seed!r}")
    for label, value in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < value < 1.0:
            raise EvozeroError(f"{label} must be between 0 and 1 (exclusive), got {value!r}")
    if valid_fraction + test_fraction >= 1.0:
        raise EvozeroError(f"valid_fraction + test_fraction must leave examples to train "
                           f"on (sum below 1), got {valid_fraction} + {test_fraction}")


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """The scikit-learn digits as (N, 8, 8, 1) pixels in [0, 1] and their labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise EvozeroError('the digits data set needs scikit-learn; install it with '
                           'pip install "evozero[data]"') from None
    digits = load_digits()
    return digits.images[..., None] / 16.0, np.asarray(digits.target, dtype=np.int64)


def _split(name: str, inputs: np.ndarray, labels: np.ndarray, seed: int,
           valid_fraction: float, test_fraction: float) -> Dataset:
    """The three stratified splits, the test split drawn with the fixed data seed."""
    n_test, n_valid = round(len(labels) * test_fraction), round(len(labels) * valid_fraction)
    test, kept = split_off(labels, n_test, held_out_rng())
    return _split_off_validation(name, inputs[kept], labels[kept], inputs[test], labels[test],
                                 seed, n_valid)


def _split_off_validation(name: str, inputs: np.ndarray, labels: np.ndarray,
                          test_x: np.ndarray, test_y: np.ndarray, seed: int,
                          n_valid: int) -> Dataset:
    """``n_valid`` of ``inputs`` (stratified, chosen by ``seed``) validate, the rest train."""
    valid, train = split_off(labels, n_valid, validation_rng(seed))
    return _standardised(name, ClassSplits((inputs[train], labels[train]),
                                           (inputs[valid], labels[valid]), (test_x, test_y),
                                           classes=int(labels.max()) + 1))


def _standardised(name: str, splits: ClassSplits) -> Dataset:
    """Every split standardised with the training split's statistics."""
    mean, std = float(splits.train[0].mean()), float(splits.train[0].std())

    def part(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ((x - mean) / std).astype(np.float32), y.copy()

    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = (
        part(*splits.train), part(*splits.valid), part(*splits.test))
    return Dataset(name, train_x, train_y, valid_x, valid_y, test_x, test_y,
                   classes=splits.classes, mean=mean, std=std)


# --- legacy MNIST-1D -----------------------------------------------------------------------


@dataclass(frozen=True)
class Mnist1dRecipe:
    """The distortions of the legacy MNIST-1D generator (the published ones, drawn in
    another order from another generator).

    A 12-point template gets ``padding`` (low, high) zeros appended, is stretched to
    ``12 + padding[1]`` points, multiplied by ``1 + scale * (u - 0.5)``, shifted
    circularly right by 0..``max_shift`` points, given Gaussian noise of scale
    ``smooth_noise`` smoothed with a Gaussian of ``smooth_sigma`` points where it is still
    zero (the background), iid noise of scale ``iid_noise`` everywhere, a linear ramp of
    slope ``shear * (u - 0.5)`` subtracted, and is resampled to ``length`` points
    (``u`` uniform in [0, 1)).
    """

    padding: tuple[int, int] = (36, 60)
    scale: float = 0.4
    max_shift: int = 47
    smooth_noise: float = 0.25
    smooth_sigma: float = 2.0
    iid_noise: float = 0.02
    shear: float = 0.75
    length: int = 40


@functools.lru_cache(maxsize=8)
def generate_mnist1d(samples: int = 5000, seed: int = MNIST1D_PUBLISHED_SEED,
                     recipe: Mnist1dRecipe = Mnist1dRecipe()) -> tuple[np.ndarray, np.ndarray]:
    """Legacy MNIST-1D sequences (float64, shape (n, recipe.length), not standardised)
    and their int64 labels: ``samples // 10`` of each class, in shuffled order.

    Deterministic for a seed and cached per argument set; the arrays are read-only.
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(10, dtype=np.int64), samples // 10))
    count = len(labels)
    stretched = TEMPLATE_POINTS.shape[1] + recipe.padding[1]
    x = _stretched_templates(labels, rng, recipe, stretched)
    x *= 1.0 + recipe.scale * (rng.uniform(size=(count, 1)) - 0.5)
    shifts = rng.integers(0, recipe.max_shift, size=(count, 1), endpoint=True)
    x = np.take_along_axis(x, (np.arange(stretched) - shifts) % stretched, axis=1)
    background = _smooth(recipe.smooth_noise * rng.standard_normal(x.shape),
                         recipe.smooth_sigma)
    x = np.where(x == 0.0, background, x)
    x += recipe.iid_noise * rng.standard_normal(x.shape)
    x -= recipe.shear * (rng.uniform(size=(count, 1)) - 0.5) * np.linspace(-0.5, 0.5, stretched)
    x = x @ _resampling(stretched, recipe.length).T
    x.flags.writeable = False
    labels.flags.writeable = False
    return x, labels


def _stretched_templates(labels: np.ndarray, rng: np.random.Generator,
                         recipe: Mnist1dRecipe, stretched: int) -> np.ndarray:
    """Each label's template followed by a random number of zeros, linearly resampled to
    ``stretched`` points: the more padding, the narrower the digit."""
    templates = TEMPLATE_POINTS - TEMPLATE_POINTS.mean(axis=1, keepdims=True)
    templates /= templates.std(axis=1, keepdims=True)
    # The digit starts at zero, and the background is told apart by being exactly zero;
    # the tiny offset keeps the template's own zeros from being taken for background.
    templates = (templates - templates[:, :1]) / 6.0 + 1e-8
    low, high = recipe.padding
    points = templates.shape[1]
    padded = np.zeros((len(labels), points + high + 1))
    padded[:, :points] = templates[labels]
    last = points - 1 + rng.integers(low, high, size=len(labels), endpoint=True)
    position = np.linspace(0.0, 1.0, stretched) * last[:, None]
    left = np.floor(position).astype(np.int64)
    weight = position - left
    return ((1.0 - weight) * np.take_along_axis(padded, left, axis=1)
            + weight * np.take_along_axis(padded, left + 1, axis=1))


def _resampling(source: int, target: int) -> np.ndarray:
    """The (target, source) matrix of linear interpolation from ``source`` evenly spaced
    points to ``target`` points spanning the same interval."""
    position = np.linspace(0.0, source - 1, target)
    left = np.minimum(np.floor(position).astype(np.int64), source - 2)
    weight = position - left
    matrix = np.zeros((target, source))
    matrix[np.arange(target), left] = 1.0 - weight
    matrix[np.arange(target), left + 1] = weight
    return matrix


def _smooth(noise: np.ndarray, sigma: float) -> np.ndarray:
    """Each row convolved with a normalised Gaussian of ``sigma`` points cut at 4 sigma, the
    edges mirrored (the edge sample repeated), as scipy.ndimage.gaussian_filter1d does."""
    radius = int(4.0 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    mirrored = np.pad(noise, ((0, 0), (radius, radius)), mode="symmetric")
    windows = np.lib.stride_tricks.sliding_window_view(mirrored, len(offsets), axis=1)
    return windows @ kernel
