"""A user's classification data for a cell search: a .npz file of examples and integer
labels, checked whole and split three ways as the built-in data sets are.

The file holds ``x`` and ``y``, optionally ``x_valid``/``y_valid`` and ``x_test``/``y_test``.
``x`` is images ``(N, H, W, C)`` or sequences ``(N, L)`` / ``(N, L, C)``, which become
``(N, 1, L, C)`` as MNIST-1D's do; ``y`` holds whole numbers 0..classes-1. A split the file
lacks is split off stratified by class (:func:`split_off`): the test split with a fixed
seed, the validation split with the run's data seed, each ``TEST_FRACTION`` or
``VALID_FRACTION`` of all the examples. The config checks the file with
:func:`read_class_npz` when it is loaded, so a bad file is refused before a run is made;
its sha256 (:func:`file_sha256`) binds a run to the file's contents.
"""
from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np

from evozero.errors import EvozeroError
from evozero.evaluation.npz_files import NpzHeader, load_npz_arrays, read_npz_arrays_header

#: The shares of all examples the test and validation splits take when split off.
TEST_FRACTION = 0.2
VALID_FRACTION = 0.2
#: Fixes every test split drawn (the published MNIST-1D generator's seed).
TEST_SEED = 42
# Salts of np.random.default_rng([seed, salt]), one per purpose, as in evozero.evaluation.tasks.
_TEST_SALT = 0x7E57
_VALID_SALT = 0x7A11
#: The (x, y) arrays of each split a file may hold, the training split's required.
SPLIT_ARRAYS = {"train": ("x", "y"), "validation": ("x_valid", "y_valid"),
                "test": ("x_test", "y_test")}
_NEEDS = ("x, images (N, H, W, C) or sequences (N, L) or (N, L, C), and y, their integer "
          "labels 0..classes-1 (N,); optionally x_valid/y_valid and x_test/y_test")


class ClassSplits(NamedTuple):
    """The three splits of a data file, each ``(x, y)``: float64 ``(N, H, W, C)`` inputs as
    the file holds them and int64 labels in 0..classes-1."""

    train: tuple[np.ndarray, np.ndarray]
    valid: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    classes: int


def held_out_rng() -> np.random.Generator:
    """The generator every test split is drawn with."""
    return np.random.default_rng([TEST_SEED, _TEST_SALT])


def validation_rng(seed: int) -> np.random.Generator:
    """The generator the validation split of data seed ``seed`` is drawn with."""
    return np.random.default_rng([int(seed), _VALID_SALT])


def split_off(labels: np.ndarray, count: int, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """Indices of ``count`` examples stratified by class (drawn with ``rng``), and of the
    rest."""
    order = stratified_order(labels, rng)
    return order[:count], order[count:]


def stratified_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
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


def file_sha256(path: str) -> str:
    """The sha256 of the file's bytes, in hexadecimal."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_unchanged(path: str, sha256: str) -> None:
    """Refuse the data file ``path`` unless its contents have the sha256 a run recorded."""
    now = file_sha256(path)
    if now != sha256:
        raise EvozeroError(f"{path}: the data file changed since the run was made (sha256 "
                           f"{now}, the run recorded {sha256} as nas.dataset_sha256); a run "
                           f"is bound to its data: restore the file, or start a new run")


def example_shape(path: str) -> tuple[int, int, int]:
    """The (H, W, C) shape of one example of the data file ``path`` (from its headers)."""
    return _example_shape(path, "x", _header(path).shapes["x"])


def read_class_npz(path: str, seed: int, valid_fraction: float = VALID_FRACTION,
                   test_fraction: float = TEST_FRACTION) -> ClassSplits:
    """The data file ``path`` checked whole and split (see the module docstring); ``seed``
    picks the validation split when the file has none. Raises EvozeroError naming the
    file, the array and what is allowed."""
    header = _header(path)
    arrays = load_npz_arrays(path, header)
    given = {split: (_examples(path, x, arrays[x]), _labels(path, y, arrays[y]))
             for split, (x, y) in SPLIT_ARRAYS.items() if x in arrays}
    total = sum(len(y) for _, y in given.values())
    x, y = given["train"]
    if "test" not in given:
        test, kept = split_off(y, _count(path, "test", total, test_fraction), held_out_rng())
        given["test"], (x, y) = (x[test], y[test]), (x[kept], y[kept])
    if "validation" not in given:
        valid, kept = split_off(y, _count(path, "validation", total, valid_fraction),
                                validation_rng(seed))
        given["validation"], (x, y) = (x[valid], y[valid]), (x[kept], y[kept])
    classes = max(int(labels.max()) for _, labels in given.values()) + 1
    if classes < 2:
        raise EvozeroError(f"{path}: y holds one class only; a classification needs at "
                           f"least 2 (labels 0..classes-1)")
    if classes > len(y):
        raise EvozeroError(f"{path}: the labels go up to {classes - 1} but the training split "
                           f"has {len(y)} examples; labels must be 0..classes-1 with every "
                           f"class in training")
    absent = np.flatnonzero(np.bincount(y, minlength=classes) == 0).tolist()
    if absent:
        raise EvozeroError(
            f"{path}: class(es) {', '.join(map(str, absent[:10]))} of 0..{classes - 1} have no "
            f"example in the training split; labels must be 0..classes-1 with every class "
            f"in training (x, y less what is split off)")
    if not x.std() > 0.0:
        raise EvozeroError(f"{path}: x holds one value only in the training split; inputs "
                           f"are standardised by their standard deviation, which must not "
                           f"be 0")
    return ClassSplits((x, y), given["validation"], given["test"], classes)


def _header(path: str) -> NpzHeader:
    """The file's header, its shapes checked: examples of one shape in every split, and as
    many labels as examples."""
    header = read_npz_arrays_header(path, [key for pair in SPLIT_ARRAYS.values() for key in pair],
                                    tuple(SPLIT_ARRAYS.values()), _NEEDS)
    shapes = header.shapes
    first = None
    for x_key, y_key in SPLIT_ARRAYS.values():
        if x_key not in shapes:
            continue
        shape = _example_shape(path, x_key, shapes[x_key])
        if shapes[y_key] != shapes[x_key][:1]:
            raise EvozeroError(f"{path}: {y_key} must have shape ({shapes[x_key][0]},) to "
                               f"match {x_key}, got {shapes[y_key]}")
        if first is None:
            first = (x_key, shapes[x_key], shape)
        elif shapes[x_key][1:] != first[1][1:]:
            raise EvozeroError(f"{path}: {x_key} has examples of shape {shapes[x_key][1:]} but "
                               f"{first[0]} of {first[1][1:]}; every split must have the same")
    return header


def _example_shape(path: str, key: str, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(H, W, C) of the examples of an array of ``shape``: (N, H, W, C), or (N, L) and
    (N, L, C) sequences as (1, L, C)."""
    if len(shape) not in (2, 3, 4) or min(shape) < 1:
        raise EvozeroError(f"{path}: {key} must be images (N, H, W, C) or sequences (N, L) "
                           f"or (N, L, C), every size at least 1, got shape {shape}")
    if len(shape) == 4:
        return shape[1], shape[2], shape[3]
    return 1, shape[1], shape[2] if len(shape) == 3 else 1


def _examples(path: str, key: str, x: np.ndarray) -> np.ndarray:
    return x.reshape((len(x),) + _example_shape(path, key, x.shape))


def _labels(path: str, key: str, y: np.ndarray) -> np.ndarray:
    bad = y[(y != np.round(y)) | (y < 0)]
    if len(bad):
        raise EvozeroError(f"{path}: {key} holds {float(bad[0]):g}; labels must be whole numbers "
                           f"0..classes-1")
    return y.astype(np.int64)


def _count(path: str, split: str, total: int, fraction: float) -> int:
    count = round(total * fraction)
    if count < 1:
        raise EvozeroError(f"{path}: x has too few examples ({total}) to split off a "
                           f"{split} split ({fraction:.0%} of them); give at least "
                           f"{int(np.ceil(0.5 / fraction))} examples, or give the split "
                           f"in the file")
    return count
