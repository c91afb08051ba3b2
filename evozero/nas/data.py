"""Small offline image and sequence data sets for the architecture search: nothing is
ever downloaded.

- ``digits``: the 1,797 8x8 handwritten digits bundled with scikit-learn (10 classes),
  shaped ``(N, 8, 8, 1)``. Needs the optional scikit-learn dependency.
- ``mnist1d``: the MNIST-1D data set (Greydanus, 2020), generated here from its recipe:
  ten hand-made 1-D digit templates of 12 points, each padded with a random run of zeros,
  stretched, rescaled, shifted circularly, given smooth noise in the background and iid
  noise everywhere, sheared, and resampled to 40 points. 5,000 examples (500 per class),
  shaped ``(N, 1, 40, 1)``. Reference accuracies on it are about 32 % for logistic
  regression, 68 % for an MLP and 94 % for a small CNN.

Both are split by class into train, validation (what the search scores on) and test (held
out, only reported). The test split is fixed per data set (a fixed data seed), so test
results of different search seeds are comparable; ``seed`` decides which of the remaining
examples train and which validate. Inputs are float32 NHWC, standardised with the mean and
standard deviation of the training split's pixels; labels are int64.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from evozero.config.cell_search import DATASETS
from evozero.errors import EvozeroError

# Fixes the generated MNIST-1D examples and every test split (the published generator's seed).
_DATA_SEED = 42
# Salts of np.random.default_rng([seed, salt]), one per purpose, as in evozero.evaluation.tasks.
_TEST_SALT = 0x7E57
_VALID_SALT = 0x7A11


@dataclass(frozen=True)
class Dataset:
    """One data set split three ways: float32 NHWC inputs and int64 labels in 0..classes-1.

    ``mean`` and ``std`` are the normalisation applied to every split, taken from the
    training split: new raw inputs ``x`` (for digits, pixels divided by 16) are fed as
    ``(x - mean) / std``.
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


def load_dataset(name: str, seed: int = 0, valid_fraction: float = 0.2,
                 test_fraction: float = 0.2) -> Dataset:
    """The data set ``name`` split into train / validation / test, stratified by class.

    ``test_fraction`` and ``valid_fraction`` are shares of all the examples; the test split
    depends on ``test_fraction`` only, and ``seed`` picks the validation split from the
    rest. The same arguments always give the same arrays.
    """
    if name not in DATASETS:
        raise EvozeroError(f"unknown data set {name!r}; the data sets are "
                           f"{', '.join(DATASETS)}")
    _check_arguments(seed, valid_fraction, test_fraction)
    if name == "digits":
        images, labels = _digits()
    else:
        sequences, labels = generate_mnist1d()
        images = sequences[:, None, :, None]
    return _split(name, images, labels, seed, valid_fraction, test_fraction)


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
    """The three stratified splits, standardised with the training split's statistics."""
    count = len(labels)
    n_test, n_valid = round(count * test_fraction), round(count * valid_fraction)
    order = _stratified_order(labels, np.random.default_rng([_DATA_SEED, _TEST_SALT]))
    test, kept = order[:n_test], order[n_test:]
    kept = kept[_stratified_order(labels[kept],
                                  np.random.default_rng([int(seed), _VALID_SALT]))]
    valid, train = kept[:n_valid], kept[n_valid:]
    mean, std = float(inputs[train].mean()), float(inputs[train].std())

    def part(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ((inputs[indices] - mean) / std).astype(np.float32), labels[indices].copy()

    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = map(part, (train, valid, test))
    return Dataset(name, train_x, train_y, valid_x, valid_y, test_x, test_y,
                   classes=int(labels.max()) + 1, mean=mean, std=std)


def _stratified_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation of the examples in which every class is spread evenly.

    Each example's key is its (shuffled) rank within its class as a fraction of the class
    size, so any prefix of the order holds every class in proportion, to within one
    example, and cutting prefixes gives stratified splits of exact sizes.
    """
    keys = np.empty(len(labels))
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        ranks = rng.permutation(len(members)) + rng.uniform(size=len(members))
        keys[members] = ranks / len(members)
    return np.argsort(keys, kind="stable")


# --- MNIST-1D -----------------------------------------------------------------------------

# The ten 12-point digit templates of the MNIST-1D paper, class 0 to 9.
_TEMPLATES = np.array([
    [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
    [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
    [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
    [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
    [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
    [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
    [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
    [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
])


@dataclass(frozen=True)
class Mnist1dRecipe:
    """The distortions of MNIST-1D; the defaults are the published data set's.

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
def generate_mnist1d(samples: int = 5000, seed: int = _DATA_SEED,
                     recipe: Mnist1dRecipe = Mnist1dRecipe()) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-1D sequences (float64, shape (n, recipe.length), not standardised) and their
    int64 labels: ``samples // 10`` of each class, in shuffled order.

    Deterministic for a seed and cached per argument set; the arrays are read-only.
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(10, dtype=np.int64), samples // 10))
    count = len(labels)
    stretched = _TEMPLATES.shape[1] + recipe.padding[1]
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
    templates = _TEMPLATES - _TEMPLATES.mean(axis=1, keepdims=True)
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
