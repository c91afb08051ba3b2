"""Learning tasks that evolved programs are evaluated on: arrays generated from seeds.

Every task keeps two seeds apart, as AutoML-Zero does: the *data seed* decides the
examples (features, splits, shuffles, the training order of later epochs) and the
*parameter seed* decides the teacher (regression weights, the random projection).
Each purpose draws from its own generator, ``np.random.default_rng([seed, salt])``, so
adding a draw for one purpose never shifts another and global RNG state is never used.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evozero.errors import EvozeroError
from evozero.evaluation.mnist1d import make_mnist1d
from evozero.evaluation.npz_files import NpzHeader, load_npz_arrays, read_npz_arrays_header
from evozero.resources import available_memory, format_bytes

#: The task kinds make_tasks knows.
KINDS = ("linear", "affine", "nonlinear", "digits", "mnist1d", "npz")

#: The nine class pairs AutoML-Zero holds out of the search for selection and final tests
#: (of the digits and of MNIST-1D alike: both have the classes 0..9).
HELD_OUT_PAIRS = ((0, 5), (0, 9), (1, 8), (2, 9), (3, 5), (3, 6), (3, 8), (4, 6), (8, 9))
#: All 45 digit class pairs (i, j), i < j, in lexicographic order.
ALL_PAIRS = tuple((i, j) for i in range(10) for j in range(i + 1, 10))
#: The 36 pairs left for the search once HELD_OUT_PAIRS are removed.
SEARCH_PAIRS = tuple(pair for pair in ALL_PAIRS if pair not in HELD_OUT_PAIRS)
_NAMED_PAIRS = {"all": ALL_PAIRS, "search": SEARCH_PAIRS, "held_out": HELD_OUT_PAIRS}
#: Where the validation examples of "mnist1d" tasks come from: the published training
#: split (disjoint from the training examples) or the published test split.
VALID_SPLITS = ("train", "test")

_OPTIONS = {
    "linear": (),
    "affine": (),
    "nonlinear": (),
    "digits": ("pairs",),
    "mnist1d": ("pairs", "valid_split"),
    "npz": ("path", "classification"),
}

# One salt per purpose, so the streams of one seed are independent of each other.
_DATA_SALT = 0x5EED_DA7A
_PARAM_SALT = 0x5EED_9A2A
_ORDER_SALT = 0x5EED_0D2E


@dataclass(frozen=True, eq=False)
class Task:
    """One learning task: training and validation arrays plus the seeds that made them.

    Arrays are stored float64, C-contiguous and read-only, because one task is shared by
    every program evaluated on it and a stray in-place write would corrupt all later
    fitnesses; the constructor copies whatever array-likes it is given. Equality and
    hashing are by identity (arrays have no useful ``==``).
    """

    kind: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    classification: bool
    epochs: int = 1
    data_seed: int = 0
    param_seed: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        for field in ("x_train", "y_train", "x_valid", "y_valid"):
            array = np.array(getattr(self, field), dtype=np.float64, order="C")
            array.setflags(write=False)
            object.__setattr__(self, field, array)
        if self.x_train.ndim != 2 or self.x_valid.ndim != 2:
            raise EvozeroError(f"task {self.name!r}: x_train and x_valid must be 2-D, got shapes "
                               f"{self.x_train.shape} and {self.x_valid.shape}")
        if self.x_train.shape[1] != self.x_valid.shape[1] or self.x_train.shape[1] < 1:
            raise EvozeroError(f"task {self.name!r}: x_train and x_valid need the same number "
                               f"(>= 1) of features, got {self.x_train.shape[1]} and "
                               f"{self.x_valid.shape[1]}")
        for x, y, split in ((self.x_train, self.y_train, "train"),
                            (self.x_valid, self.y_valid, "valid")):
            if y.shape != (len(x),) or len(x) < 1:
                raise EvozeroError(f"task {self.name!r}: y_{split} must have shape ({len(x)},) "
                                   f"matching x_{split} with at least one example, got {y.shape}")
        if not _is_int(self.epochs) or self.epochs < 1:
            raise EvozeroError(f"task {self.name!r}: epochs must be an integer >= 1, "
                               f"got {self.epochs!r}")
        if self.classification and not (_is_binary(self.y_train) and _is_binary(self.y_valid)):
            raise EvozeroError(f"task {self.name!r}: classification labels must be 0 or 1")

    @property
    def n_features(self) -> int:
        """Number of features F (the length of ``v0``)."""
        return self.x_train.shape[1]

    @property
    def n_train(self) -> int:
        """Number of training examples per epoch."""
        return self.x_train.shape[0]

    @property
    def n_valid(self) -> int:
        """Number of validation examples."""
        return self.x_valid.shape[0]

    def train_orders(self) -> np.ndarray:
        """Example order of each epoch, shape (epochs, n_train), int64.

        Epoch 0 runs in dataset order; every later epoch is a permutation drawn from the
        data seed alone, so it is the same for every program evaluated on this task.
        """
        orders = np.empty((self.epochs, self.n_train), dtype=np.int64)
        orders[0] = np.arange(self.n_train)
        rng = np.random.default_rng([self.data_seed, _ORDER_SALT])
        for epoch in range(1, self.epochs):
            orders[epoch] = rng.permutation(self.n_train)
        return orders

    def shape_key(self) -> tuple[int, int, int, int, bool]:
        """(n_features, n_train, n_valid, epochs, classification): tasks with equal keys can
        be evaluated together in one batch."""
        return (self.n_features, self.n_train, self.n_valid, self.epochs,
                bool(self.classification))


def make_tasks(kind: str, num_tasks: int, features: int | None, train: int, valid: int,
               seed: int = 0, *, epochs: int = 1, data_seeds: Sequence[int] | None = None,
               param_seeds: Sequence[int] | None = None, **options: Any) -> list[Task]:
    """Generate ``num_tasks`` tasks of one ``kind`` (see :data:`KINDS`).

    "linear": ``y = u.x``, "affine": ``y = u.x + a`` (the same ``u``, then ``a ~ N(0, 1)``
    from the parameter seed), features ``N(0, 1)``; "nonlinear": a random two-layer ReLU
    teacher; "digits" and "mnist1d": binary classification of a class pair of the 8x8
    digits or of the published MNIST-1D (:mod:`evozero.evaluation.mnist1d`), randomly
    projected to ``features`` dimensions.

    By default task i gets data seed ``SeedSequence([seed, i, 0])`` and parameter seed
    ``SeedSequence([seed, i, 1])`` (first 32-bit word each); ``data_seeds`` and
    ``param_seeds`` override them. Options: ``pairs`` for "digits" and "mnist1d" (a list
    of (i, j) class pairs with i < j, or "all", "search", "held_out"); ``valid_split`` for
    "mnist1d" ("train": training and validation examples both from the published
    training split; "test": validation examples from the published test split, the
    final evaluation of held-out pairs); ``path`` and ``classification``
    (True, False or None = auto) for "npz", where ``features=None`` takes F from the file.
    Bad arguments raise :class:`EvozeroError`.
    """
    if kind not in KINDS:
        raise EvozeroError(f"unknown task kind {kind!r}; allowed: {', '.join(KINDS)}")
    unknown = sorted(set(options) - set(_OPTIONS[kind]))
    if unknown:
        allowed = ", ".join(_OPTIONS[kind]) or "none"
        raise EvozeroError(f"unknown option(s) {', '.join(unknown)} for {kind!r} tasks; "
                           f"allowed: {allowed}")
    _check_int("num_tasks", num_tasks, 1)
    if not (features is None and kind == "npz"):
        _check_int("features", features, 1)
    _check_int("train", train, 1)
    _check_int("valid", valid, 1)
    _check_int("epochs", epochs, 1)
    _check_int("seed", seed, 0)
    if kind != "npz":
        assert features is not None   # checked above: only npz tasks may leave it unset
        check_task_memory(num_tasks, features, train, valid, epochs)
    data_seeds = _task_seeds("data_seeds", data_seeds, seed, num_tasks, 0)
    param_seeds = _task_seeds("param_seeds", param_seeds, seed, num_tasks, 1)
    seeds = list(zip(data_seeds, param_seeds))

    if kind == "npz":
        return _npz_tasks(options, features, train, valid, epochs, seeds)
    assert features is not None   # as above
    if kind in ("linear", "affine"):
        return [_linear(features, train, valid, epochs, d, p, kind == "affine")
                for d, p in seeds]
    if kind == "nonlinear":
        return [_nonlinear(features, train, valid, epochs, d, p) for d, p in seeds]
    pairs = _digit_pairs(options.get("pairs", "all"))
    if kind == "mnist1d":
        valid_split = options.get("valid_split", "train")
        if valid_split not in VALID_SPLITS:
            raise EvozeroError(f"valid_split must be one of {', '.join(VALID_SPLITS)}, "
                               f"got {valid_split!r}")
        return [_mnist1d(pairs[k % len(pairs)], valid_split, features, train, valid, epochs,
                         d, p) for k, (d, p) in enumerate(seeds)]
    return [_digits(pairs[k % len(pairs)], features, train, valid, epochs, d, p)
            for k, (d, p) in enumerate(seeds)]


# --- argument checks ---------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_binary(y: np.ndarray) -> bool:
    return bool(np.all((y == 0.0) | (y == 1.0)))


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not _is_int(value) or value < minimum:
        raise EvozeroError(f"{name} must be an integer >= {minimum}, got {value!r}")


def task_bytes(num_tasks: int, features: int, train: int, valid: int, epochs: int) -> int:
    """Bytes the arrays of ``num_tasks`` tasks take: features and labels of every example
    (float64) and the example order of every epoch (int64)."""
    return 8 * num_tasks * ((train + valid) * (features + 1) + epochs * train)


def check_task_memory(num_tasks: int, features: int, train: int, valid: int, epochs: int,
                      loading: int = 0) -> None:
    """Refuse tasks whose arrays (plus ``loading`` bytes to read their file) would not fit
    in this machine's available memory."""
    need = task_bytes(num_tasks, features, train, valid, epochs) + loading
    have = available_memory()
    if need > have:
        raise EvozeroError(f"{num_tasks} tasks of {train} + {valid} examples with {features} "
                           f"features ({epochs} epoch(s)) need {format_bytes(need)}"
                           f"{' with their file loaded' if loading else ''}, more than the "
                           f"{format_bytes(have)} of memory available; lower num_tasks, "
                           f"train, valid, features or epochs")


def _task_seeds(name: str, given: Sequence[int] | None, seed: int, num_tasks: int,
                purpose: int) -> list[int]:
    if given is None:
        return [int(np.random.SeedSequence([seed, i, purpose]).generate_state(1)[0])
                for i in range(num_tasks)]
    if isinstance(given, (str, bytes)) or not hasattr(given, "__len__"):
        raise EvozeroError(f"{name} must be a list of {num_tasks} integers >= 0, got {given!r}")
    if len(given) != num_tasks:
        raise EvozeroError(f"{name} must have num_tasks = {num_tasks} entries, "
                           f"got {len(given)}")
    for value in given:
        # SeedSequence only takes non-negative integers.
        if not _is_int(value) or value < 0:
            raise EvozeroError(f"{name} must hold integers >= 0, got {value!r}")
    return [int(value) for value in given]


def _data_rng(data_seed: int) -> np.random.Generator:
    return np.random.default_rng([data_seed, _DATA_SALT])


def _param_rng(param_seed: int) -> np.random.Generator:
    return np.random.default_rng([param_seed, _PARAM_SALT])


def _seed_text(data_seed: int, param_seed: int) -> str:
    return f"data_seed={data_seed}, param_seed={param_seed}"


# --- synthetic regression ------------------------------------------------------------


def _gaussian_features(features: int, train: int, valid: int,
                       data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = _data_rng(data_seed)
    x_train = rng.standard_normal((train, features))
    return x_train, rng.standard_normal((valid, features))


def _linear(features: int, train: int, valid: int, epochs: int, data_seed: int,
            param_seed: int, affine: bool = False) -> Task:
    """``y = u.x``, or with ``affine`` ``y = u.x + a``: ``u`` as for linear tasks (so the
    two kinds share it for equal seeds), then ``a ~ N(0, 1)`` from the same stream."""
    x_train, x_valid = _gaussian_features(features, train, valid, data_seed)
    rng = _param_rng(param_seed)
    w = rng.standard_normal(features)
    bias = rng.standard_normal() if affine else 0.0
    kind = "affine" if affine else "linear"
    return Task(kind, x_train, x_train @ w + bias, x_valid, x_valid @ w + bias, False, epochs,
                data_seed, param_seed, f"{kind}({_seed_text(data_seed, param_seed)})")


def _nonlinear(features: int, train: int, valid: int, epochs: int, data_seed: int,
               param_seed: int) -> Task:
    x_train, x_valid = _gaussian_features(features, train, valid, data_seed)
    rng = _param_rng(param_seed)
    w = rng.standard_normal((features, features))
    u = rng.standard_normal(features)
    if features > 2:
        # The reference teacher zeroes hidden units 0 and 2 (rows of W, entries of u), so
        # its effective hidden width is F - 2; we keep that to match its task difficulty.
        w[[0, 2]] = 0.0
        u[[0, 2]] = 0.0

    def teacher(x: np.ndarray) -> np.ndarray:
        return np.maximum(x @ w.T, 0.0) @ u

    return Task("nonlinear", x_train, teacher(x_train), x_valid, teacher(x_valid), False,
                epochs, data_seed, param_seed,
                f"nonlinear({_seed_text(data_seed, param_seed)})")


# --- projected binary classification on the digits and MNIST-1D ----------------------


def _digit_pairs(pairs: Any) -> tuple[tuple[int, int], ...]:
    if isinstance(pairs, str):
        if pairs not in _NAMED_PAIRS:
            raise EvozeroError(f"unknown pairs {pairs!r}; allowed: {', '.join(_NAMED_PAIRS)} "
                               f"or a list of (i, j) class pairs with 0 <= i < j <= 9")
        return _NAMED_PAIRS[pairs]
    problem = f"pairs must be 'all', 'search', 'held_out' or a non-empty list of (i, j) " \
              f"class pairs with 0 <= i < j <= 9, got {pairs!r}"
    try:
        result = tuple(tuple(pair) for pair in pairs)
    except TypeError:
        raise EvozeroError(problem) from None
    if not result or not all(len(pair) == 2 and all(_is_int(c) for c in pair)
                             and 0 <= pair[0] < pair[1] <= 9 for pair in result):
        raise EvozeroError(problem)
    return tuple((int(i), int(j)) for i, j in result)


@functools.lru_cache(maxsize=1)
def _digits_by_class() -> tuple[np.ndarray, ...]:
    """The 8x8 digit images (64 float64 pixels each) of classes 0..9, in dataset order."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise EvozeroError('the digits tasks need scikit-learn; install it with '
                           'pip install "evozero[data]"') from None
    digits = load_digits()
    pixels = np.asarray(digits.data, dtype=np.float64)
    return tuple(pixels[digits.target == label] for label in range(10))


def _stratified_split(labels: np.ndarray, train: int, valid: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled train and valid indices with the class ratio of ``labels`` in each split.

    Stratifying, as the reference generator does, keeps both classes in the training set
    whenever it has two or more examples; the final shuffle interleaves the classes so an
    online learner does not see one class first.
    """
    positives = rng.permutation(np.flatnonzero(labels == 1.0))
    negatives = rng.permutation(np.flatnonzero(labels == 0.0))
    ratio = len(positives) / len(labels)
    low = max(train - len(negatives), 1 if train >= 2 else 0)
    high = min(len(positives), train - 1 if train >= 2 else train)
    pos_train = min(max(round(train * ratio), low), high)
    neg_train = train - pos_train
    pos_left, neg_left = len(positives) - pos_train, len(negatives) - neg_train
    pos_valid = min(max(round(valid * ratio), valid - neg_left, 0), pos_left, valid)
    neg_valid = valid - pos_valid
    train_idx = np.concatenate([positives[:pos_train], negatives[:neg_train]])
    valid_idx = np.concatenate([positives[pos_train:pos_train + pos_valid],
                                negatives[neg_train:neg_train + neg_valid]])
    return rng.permutation(train_idx), rng.permutation(valid_idx)


def _pair_examples(inputs: np.ndarray, classes: np.ndarray,
                   pair: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The examples of the two classes of ``pair``, labelled 1 (first) and 0 (second)."""
    chosen = (classes == pair[0]) | (classes == pair[1])
    return inputs[chosen], (classes[chosen] == pair[0]).astype(np.float64)


def _projected_task(kind: str, pair: tuple[int, int], x_train: np.ndarray, y_train: np.ndarray,
                    x_valid: np.ndarray, y_valid: np.ndarray, features: int, epochs: int,
                    data_seed: int, param_seed: int) -> Task:
    """A binary task of raw inputs projected by a random N(0, 1) matrix to ``features``
    dimensions, standardised with the training examples' mean and deviation."""
    projection = _param_rng(param_seed).standard_normal((x_train.shape[1], features))
    x_train, x_valid = x_train @ projection, x_valid @ projection
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0.0] = 1.0
    return Task(kind, (x_train - mean) / std, y_train, (x_valid - mean) / std, y_valid, True,
                epochs, data_seed, param_seed,
                f"{kind} {pair[0]} vs {pair[1]} ({_seed_text(data_seed, param_seed)})")


def _digits(pair: tuple[int, int], features: int, train: int, valid: int, epochs: int,
            data_seed: int, param_seed: int) -> Task:
    by_class = _digits_by_class()
    pixels = np.concatenate([by_class[pair[0]], by_class[pair[1]]])
    labels = np.concatenate([np.ones(len(by_class[pair[0]])), np.zeros(len(by_class[pair[1]]))])
    if train + valid > len(labels):
        raise EvozeroError(f"train + valid = {train + valid} exceeds the {len(labels)} examples "
                           f"of digits pair {pair}; at most {len(labels)} allowed")
    train_idx, valid_idx = _stratified_split(labels, train, valid, _data_rng(data_seed))
    return _projected_task("digits", pair, pixels[train_idx], labels[train_idx],
                           pixels[valid_idx], labels[valid_idx], features, epochs, data_seed,
                           param_seed)


def _mnist1d(pair: tuple[int, int], valid_split: str, features: int, train: int, valid: int,
             epochs: int, data_seed: int, param_seed: int) -> Task:
    """A pair of the published MNIST-1D (4,000 training and 1,000 test sequences of 40
    points): training examples from its training split; validation examples from the
    same split (disjoint) or, with ``valid_split="test"``, from its test split."""
    published = make_mnist1d()
    x, y = _pair_examples(published.x, published.y, pair)
    rng = _data_rng(data_seed)
    if valid_split == "train":
        if train + valid > len(y):
            raise EvozeroError(f"train + valid = {train + valid} exceeds the {len(y)} training "
                               f"examples of MNIST-1D pair {pair}; at most {len(y)} allowed "
                               f"(or take valid from the test split: valid_split: test)")
        train_idx, valid_idx = _stratified_split(y, train, valid, rng)
        return _projected_task("mnist1d", pair, x[train_idx], y[train_idx], x[valid_idx],
                               y[valid_idx], features, epochs, data_seed, param_seed)
    x_test, y_test = _pair_examples(published.x_test, published.y_test, pair)
    for need, have, split in ((train, len(y), "training"), (valid, len(y_test), "test")):
        if need > have:
            raise EvozeroError(f"{'train' if split == 'training' else 'valid'} = {need} exceeds "
                               f"the {have} {split} examples of MNIST-1D pair {pair}; at most "
                               f"{have} allowed")
    train_idx, _ = _stratified_split(y, train, 0, rng)
    valid_idx, _ = _stratified_split(y_test, valid, 0, rng)
    return _projected_task("mnist1d", pair, x[train_idx], y[train_idx], x_test[valid_idx],
                           y_test[valid_idx], features, epochs, data_seed, param_seed)


# --- user data from a .npz file --------------------------------------------------------


def _npz_tasks(options: dict[str, Any], features: int | None, train: int, valid: int,
               epochs: int, seeds: list[tuple[int, int]]) -> list[Task]:
    if "path" not in options:
        raise EvozeroError("npz tasks need the option path (a .npz file with arrays x and y)")
    path = os.fspath(options["path"])
    classification = options.get("classification")
    if classification not in (True, False, None):
        raise EvozeroError(f"classification must be true, false or null (auto), "
                           f"got {classification!r}")
    header = read_npz_header(path)
    check_task_memory(len(seeds), header.shapes["x"][1], train, valid, epochs,
                      loading=header.load_bytes)
    x, y, given_valid = _read_npz(path, header)
    label = os.path.basename(path)
    n_features = x.shape[1]
    if features is not None and features != n_features:
        raise EvozeroError(f"{path}: features = {features} but the file has {n_features} "
                           f"features; use features = {n_features} (or leave it unset)")
    if given_valid is not None and (train > len(x) or valid > len(given_valid[0])):
        raise EvozeroError(f"{path}: train = {train} and valid = {valid} but the file has "
                           f"{len(x)} training and {len(given_valid[0])} validation examples")
    if given_valid is None and train + valid > len(x):
        raise EvozeroError(f"{path}: train + valid = {train + valid} exceeds the {len(x)} "
                           f"examples in the file; at most {len(x)} allowed")
    all_labels = np.concatenate([y, given_valid[1]]) if given_valid is not None else y
    if classification is None:
        classification = _is_binary(all_labels)
    elif classification and not _is_binary(all_labels):
        bad = np.unique(all_labels[(all_labels != 0.0) & (all_labels != 1.0)])
        raise EvozeroError(f"{path}: classification needs labels 0 or 1, found "
                           f"{', '.join(repr(float(v)) for v in bad[:5])}")
    tasks = []
    for data_seed, param_seed in seeds:
        if given_valid is not None:
            # The user made the split; we keep it and its order (the data seed still
            # shuffles later epochs through train_orders).
            x_valid, y_valid = given_valid
            parts = (x[:train], y[:train], x_valid[:valid], y_valid[:valid])
        else:
            order = _data_rng(data_seed).permutation(len(x))
            t, v = order[:train], order[train:train + valid]
            parts = (x[t], y[t], x[v], y[v])
        tasks.append(Task("npz", parts[0], parts[1], parts[2], parts[3], classification,
                          epochs, data_seed, param_seed,
                          f"npz {label} ({_seed_text(data_seed, param_seed)})"))
    return tasks


#: The arrays a task file may hold, ``x_valid``/``y_valid`` optional.
NPZ_ARRAYS = ("x", "y", "x_valid", "y_valid")


def read_npz_header(path: str) -> NpzHeader:
    """The :class:`~evozero.evaluation.npz_files.NpzHeader` of the task file ``path``
    (:func:`~evozero.evaluation.npz_files.read_npz_arrays_header`: nothing decompressed),
    with the shapes tasks need: x (n, F) and y (n,), likewise x_valid and y_valid."""
    header = read_npz_arrays_header(
        path, NPZ_ARRAYS, (("x", "y"), ("x_valid", "y_valid")),
        "x (n, F) and y (n,), optionally x_valid and y_valid")
    _check_npz_shapes(path, header.shapes)
    return header


def _read_npz(path: str, header: NpzHeader
              ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """x and y, and the file's own validation split (x_valid, y_valid) or None."""
    arrays = load_npz_arrays(path, header)
    if "x_valid" not in arrays:
        return arrays["x"], arrays["y"], None
    return arrays["x"], arrays["y"], (arrays["x_valid"], arrays["y_valid"])


def _check_npz_shapes(path: str, shapes: dict[str, tuple[int, ...]]) -> None:
    """x (n, F) with n, F >= 1 and y (n,), the same for x_valid and y_valid, which must
    have the features of x."""
    for x_key, y_key in (("x", "y"), ("x_valid", "y_valid")):
        if x_key not in shapes:
            continue
        x, y = shapes[x_key], shapes[y_key]
        if len(x) != 2 or x[0] < 1 or x[1] < 1:
            raise EvozeroError(f"{path}: {x_key} must be a non-empty 2-D array (n, F), "
                               f"got shape {x}")
        if y != (x[0],):
            raise EvozeroError(f"{path}: {y_key} must have shape ({x[0]},) to match "
                               f"{x_key}, got {y}")
    if "x_valid" in shapes and shapes["x_valid"][1] != shapes["x"][1]:
        raise EvozeroError(f"{path}: x has {shapes['x'][1]} features but x_valid has "
                           f"{shapes['x_valid'][1]}")
