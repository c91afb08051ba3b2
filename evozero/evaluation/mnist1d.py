"""The published MNIST-1D data set (Greydanus, 2020), generated bit for bit as the
``mnist1d`` package's ``make_dataset`` generates it, with numpy alone.

The package draws from numpy's legacy global generator, seeded with ``args.seed``; here a
``np.random.RandomState(seed)`` makes the same calls in the same order, so the same
arguments give the same arrays to the last bit. Each example, class by class (500 of
each), is its class's 12-point template plus 1e-8 (``transform``), followed by
``36 + int(u * 25)`` zeros (``pad``), linearly resampled to 72 points, scaled by
``1 + 0.4 (u - 0.5)``, rotated right by ``choice(48)`` points (``translate``), given
Gaussian noise of scale 0.25 smoothed with sigma 2 where it is exactly zero (``corr_noise``,
scipy's ``gaussian_filter``, reproduced here with its kernel and order of additions) and
iid noise of scale 0.02 everywhere, sheared by a ramp of slope ``0.75 (u - 0.5)`` and
resampled to 40 points (scipy's ``interp1d``, which is ``np.interp`` for this input). The
examples are then shuffled, optionally permuted in position (``shuffle_seq``), and all of
them standardised together with the mean and standard deviation of all examples (the
package's choice); the first ``int(num_samples * train_split)`` are the training set.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

# The ten 12-point digit templates of the MNIST-1D paper, class 0 to 9.
TEMPLATE_POINTS = np.array([
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
# Added to every template point so that the digit's own zeros are not taken for padding.
_EPS = 1e-8
# scipy.ndimage.gaussian_filter's defaults as the package calls it: sigma 2, cut at 4 sigma.
_CORR_NOISE_SIGMA = 2
_TRUNCATE = 4.0


@dataclass(frozen=True)
class Mnist1dArgs:
    """The generator's arguments, named as in the package's ``get_dataset_args()``; the
    defaults are the published data set's."""

    num_samples: int = 5000
    train_split: float = 0.8
    template_len: int = 12
    padding: tuple[int, int] = (36, 60)
    scale_coeff: float = 0.4
    max_translation: int = 48
    corr_noise_scale: float = 0.25
    iid_noise_scale: float = 2e-2
    shear_scale: float = 0.75
    shuffle_seq: bool = False
    final_seq_length: int = 40
    seed: int = 42


@dataclass(frozen=True)
class Mnist1dDataset:
    """What the package's ``make_dataset`` returns: training and test sequences (float64,
    standardised over all examples) with int64 labels, the positions ``t`` of the 40
    points, and the templates (``templates_x`` whitened and scaled as the package does,
    ``templates_t`` their positions, ``templates_y`` their labels). Arrays are read-only."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    t: np.ndarray
    templates_x: np.ndarray
    templates_t: np.ndarray
    templates_y: np.ndarray


def templates() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The package's ``get_templates()``: (x, t, y) of the ten digits, x whitened per
    digit, starting at 0 and divided by 6."""
    x = TEMPLATE_POINTS.copy()
    x -= x.mean(1, keepdims=True)
    x /= x.std(1, keepdims=True)
    x -= x[:, :1]
    points = TEMPLATE_POINTS.shape[1]
    return x / 6.0, np.linspace(-5, 5, points) / 6.0, np.arange(10)


@functools.lru_cache(maxsize=4)
def make_mnist1d(args: Mnist1dArgs = Mnist1dArgs()) -> Mnist1dDataset:
    """The data set ``mnist1d.data.make_dataset(args)`` gives, bit for bit (cached per
    argument set)."""
    template_x, template_t, template_y = templates()
    rng = np.random.RandomState(args.seed)
    stretched = args.template_len + args.padding[-1]
    kernel = _gaussian_kernel(_CORR_NOISE_SIGMA)
    xs, ys = [], []
    for label in range(len(template_y)):
        for _ in range(args.num_samples // len(template_y)):
            xs.append(_transform(template_x[label], rng, args, stretched, kernel))
            ys.append(template_y[label])
    t = _interpolate(_interpolate(template_t, stretched), args.final_seq_length)
    order = rng.permutation(len(ys))
    x, y = np.stack(xs)[order], np.stack(ys)[order]
    if args.shuffle_seq:
        x = x[..., rng.permutation(args.final_seq_length)]
    t = t / x.std()
    x = (x - x.mean()) / x.std()
    split = int(len(y) * args.train_split)
    dataset = Mnist1dDataset(x[:split], y[:split], x[split:], y[split:], t,
                             template_x, template_t, template_y)
    for array in vars(dataset).values():
        array.flags.writeable = False
    return dataset


def _transform(x: np.ndarray, rng: np.random.RandomState, args: Mnist1dArgs,
               stretched: int, kernel: np.ndarray) -> np.ndarray:
    """One example made from the template ``x``: the package's ``transform``, same draws."""
    low, high = args.padding
    padding = low + int(rng.rand() * (high - low + 1))
    x = _interpolate(np.concatenate([x + _EPS, np.zeros(padding)]), stretched)
    x *= 1 + args.scale_coeff * (rng.rand() - 0.5)
    shift = rng.choice(args.max_translation)
    x = np.concatenate([x[-shift:], x[:-shift]])       # shift 0 keeps x: x[-0:] is all of it
    mask = x != 0
    corr_noise = _correlate_reflect(args.corr_noise_scale * rng.randn(*x.shape), kernel)
    x = mask * x + (1 - mask) * corr_noise
    x = x + args.iid_noise_scale * rng.randn(*x.shape)
    x = x - args.shear_scale * (rng.rand() - 0.5) * np.linspace(-0.5, 0.5, len(x))
    return _interpolate(x, args.final_seq_length)


def _interpolate(x: np.ndarray, points: int) -> np.ndarray:
    """``x`` linearly resampled to ``points`` points over the same span: scipy's
    ``interp1d(linspace(0, 1, n), x)`` hands a 1-D float64 ``x`` to ``np.interp``."""
    return np.interp(np.linspace(0, 1, points), np.linspace(0, 1, len(x)), x)


def _gaussian_kernel(sigma: int) -> np.ndarray:
    """scipy.ndimage's Gaussian weights for ``sigma``, computed as scipy computes them."""
    radius = int(_TRUNCATE * float(sigma) + 0.5)
    offsets = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * offsets ** 2)
    return phi / phi.sum()


def _correlate_reflect(signal: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``signal`` correlated with the symmetric ``kernel``, its edges mirrored (the edge
    sample repeated): scipy.ndimage.correlate1d's 'reflect' mode with its order of
    operations for symmetric weights (centre first, then each pair of mirrored neighbours
    summed and weighted, the farthest pair first), so that the result is bit-equal."""
    radius = len(kernel) // 2
    padded = np.pad(signal, radius, mode="symmetric")
    length = len(signal)
    result = padded[radius:radius + length] * kernel[radius]
    for offset in range(radius, 0, -1):
        pair = padded[radius - offset:radius - offset + length] + \
            padded[radius + offset:radius + offset + length]
        result = result + pair * kernel[radius - offset]
    return result
