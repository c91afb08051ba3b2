"""Behaviour of the task generators in evozero.evaluation.tasks."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evozero.errors import EvozeroError
from evozero.evaluation import tasks as tasks_module
from evozero.evaluation.tasks import ALL_PAIRS, HELD_OUT_PAIRS, SEARCH_PAIRS, Task, make_tasks

FAST = settings(max_examples=25)
sizes = st.integers(min_value=1, max_value=12)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def teacher_weights(task: Task) -> tuple[np.ndarray, float]:
    """Least-squares weights of a linear task and the largest residual on its train set."""
    w, *_ = np.linalg.lstsq(task.x_train, task.y_train, rcond=None)
    return w, float(np.max(np.abs(task.x_train @ w - task.y_train)))


# --- shapes, dtypes, determinism --------------------------------------------------------


@FAST
@given(kind=st.sampled_from(["linear", "affine", "nonlinear"]), num_tasks=st.integers(1, 3),
       features=sizes, train=sizes, valid=sizes, epochs=st.integers(1, 3), seed=seeds)
def test_synthetic_shapes_and_dtypes(kind, num_tasks, features, train, valid, epochs, seed):
    made = make_tasks(kind, num_tasks, features, train, valid, seed, epochs=epochs)
    assert len(made) == num_tasks
    for task in made:
        assert task.kind == kind and not task.classification and task.epochs == epochs
        assert task.x_train.shape == (train, features) and task.y_train.shape == (train,)
        assert task.x_valid.shape == (valid, features) and task.y_valid.shape == (valid,)
        for array in (task.x_train, task.y_train, task.x_valid, task.y_valid):
            assert array.dtype == np.float64 and array.flags.c_contiguous
            assert not array.flags.writeable
        assert (task.n_features, task.n_train, task.n_valid) == (features, train, valid)
        assert task.shape_key() == (features, train, valid, epochs, False)
        assert kind in task.name and str(task.data_seed) in task.name


@FAST
@given(kind=st.sampled_from(["linear", "affine", "nonlinear"]), seed=seeds)
def test_same_seed_same_arrays_different_seed_different_arrays(kind, seed):
    first = make_tasks(kind, 2, 4, 6, 3, seed)
    again = make_tasks(kind, 2, 4, 6, 3, seed)
    other = make_tasks(kind, 2, 4, 6, 3, seed + 1)
    for a, b, c in zip(first, again, other):
        assert (a.data_seed, a.param_seed) == (b.data_seed, b.param_seed)
        np.testing.assert_array_equal(a.x_train, b.x_train)
        np.testing.assert_array_equal(a.y_valid, b.y_valid)
        assert not np.array_equal(a.x_train, c.x_train)
    assert not np.array_equal(first[0].x_train, first[1].x_train)


def test_default_seeds_come_from_seed_sequence():
    task = make_tasks("linear", 2, 3, 4, 2, seed=7)[1]
    assert task.data_seed == int(np.random.SeedSequence([7, 1, 0]).generate_state(1)[0])
    assert task.param_seed == int(np.random.SeedSequence([7, 1, 1]).generate_state(1)[0])
    assert type(task.data_seed) is int and type(task.param_seed) is int


def test_explicit_seed_lists_override_defaults():
    task_a, task_b = make_tasks("linear", 2, 3, 5, 2, data_seeds=[10, 11], param_seeds=[20, 21])
    assert (task_a.data_seed, task_a.param_seed, task_b.data_seed) == (10, 20, 11)
    assert task_a.name == "linear(data_seed=10, param_seed=20)"
    # The top-level seed is irrelevant once both lists are given.
    same = make_tasks("linear", 2, 3, 5, 2, 99, data_seeds=[10, 11], param_seeds=[20, 21])
    np.testing.assert_array_equal(same[1].y_train, task_b.y_train)


# --- data seed vs parameter seed ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["linear", "nonlinear"])
def test_param_seed_changes_teacher_only(kind):
    (a,) = make_tasks(kind, 1, 5, 20, 5, data_seeds=[1], param_seeds=[2])
    (b,) = make_tasks(kind, 1, 5, 20, 5, data_seeds=[1], param_seeds=[3])
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.x_valid, b.x_valid)
    assert not np.array_equal(a.y_train, b.y_train)


def test_data_seed_changes_examples_only():
    (a,) = make_tasks("linear", 1, 5, 20, 5, data_seeds=[1], param_seeds=[2])
    (b,) = make_tasks("linear", 1, 5, 20, 5, data_seeds=[4], param_seeds=[2])
    assert not np.array_equal(a.x_train, b.x_train)
    np.testing.assert_allclose(teacher_weights(a)[0], teacher_weights(b)[0], atol=1e-9)


# --- the synthetic teachers ---------------------------------------------------------------


@FAST
@given(features=st.integers(1, 8), seed=seeds)
def test_linear_labels_are_exactly_linear(features, seed):
    (task,) = make_tasks("linear", 1, features, features + 5, 4, seed)
    w, residual = teacher_weights(task)
    assert residual < 1e-8
    np.testing.assert_allclose(task.x_valid @ w, task.y_valid, atol=1e-8)


@pytest.mark.parametrize("seed", range(5))
def test_nonlinear_labels_are_not_linear(seed):
    (task,) = make_tasks("nonlinear", 1, 6, 60, 10, seed)
    _, residual = teacher_weights(task)
    assert residual > 1e-3


def test_nonlinear_teacher_ignores_hidden_units_0_and_2():
    # With W rows 0 and 2 zeroed, a teacher on F = 3 has a single hidden unit: y = u1 relu(w1 x),
    # so y is zero wherever it is not of one sign, and linear on the other side.
    (task,) = make_tasks("nonlinear", 1, 3, 200, 5, 3)
    y = task.y_train
    assert np.all(y >= 0) or np.all(y <= 0)
    active = y != 0
    assert 0 < active.sum() < len(y)
    w, *_ = np.linalg.lstsq(task.x_train[active], y[active], rcond=None)
    np.testing.assert_allclose(task.x_train[active] @ w, y[active], atol=1e-8)


# --- training orders ------------------------------------------------------------------------


@FAST
@given(train=st.integers(1, 30), epochs=st.integers(1, 5), seed=seeds)
def test_train_orders(train, epochs, seed):
    (task,) = make_tasks("linear", 1, 2, train, 1, seed, epochs=epochs)
    orders = task.train_orders()
    assert orders.shape == (epochs, train) and orders.dtype == np.int64
    np.testing.assert_array_equal(orders[0], np.arange(train))
    for row in orders[1:]:
        np.testing.assert_array_equal(np.sort(row), np.arange(train))
    np.testing.assert_array_equal(orders, task.train_orders())


def test_train_orders_depend_on_data_seed_only():
    (a,) = make_tasks("linear", 1, 2, 50, 1, epochs=3, data_seeds=[5], param_seeds=[6])
    (b,) = make_tasks("linear", 1, 2, 50, 1, epochs=3, data_seeds=[5], param_seeds=[7])
    (c,) = make_tasks("linear", 1, 2, 50, 1, epochs=3, data_seeds=[8], param_seeds=[6])
    np.testing.assert_array_equal(a.train_orders(), b.train_orders())
    assert not np.array_equal(a.train_orders(), c.train_orders())
    assert not np.array_equal(a.train_orders()[1], a.train_orders()[2])


# --- digits ---------------------------------------------------------------------------------


def test_digits_labels_split_and_standardisation():
    made = make_tasks("digits", 3, 8, 200, 100, seed=1)
    for task in made:
        assert task.classification and task.kind == "digits"
        assert task.shape_key() == (8, 200, 100, 1, True)
        assert set(np.unique(task.y_train)) == {0.0, 1.0}
        assert set(np.unique(task.y_valid)) <= {0.0, 1.0}
        np.testing.assert_allclose(task.x_train.mean(axis=0), 0.0, atol=1e-9)
        np.testing.assert_allclose(task.x_train.std(axis=0), 1.0, atol=1e-9)
    assert [t.name.split(" (")[0] for t in made] == ["digits 0 vs 1", "digits 0 vs 2",
                                                     "digits 0 vs 3"]


def test_digits_both_classes_in_small_training_sets():
    for task in make_tasks("digits", 10, 4, 2, 2, seed=3):
        assert sorted(task.y_train) == [0.0, 1.0]


def test_digits_examples_are_distinct_and_disjoint():
    (task,) = make_tasks("digits", 1, 16, 250, 100, pairs=[(3, 8)])
    rows = np.concatenate([task.x_train, task.x_valid])
    assert len(np.unique(rows, axis=0)) == len(rows)


def test_digits_seeds_separate_split_from_projection():
    (a,) = make_tasks("digits", 1, 4, 30, 10, data_seeds=[1], param_seeds=[2])
    (b,) = make_tasks("digits", 1, 4, 30, 10, data_seeds=[1], param_seeds=[3])
    (c,) = make_tasks("digits", 1, 4, 30, 10, data_seeds=[9], param_seeds=[2])
    np.testing.assert_array_equal(a.y_train, b.y_train)  # same examples...
    assert not np.array_equal(a.x_train, b.x_train)  # ...projected differently
    assert not np.array_equal(a.y_train, c.y_train)


def test_digits_pair_sets():
    assert len(ALL_PAIRS) == 45 and len(SEARCH_PAIRS) == 36 and len(HELD_OUT_PAIRS) == 9
    held = make_tasks("digits", 9, 2, 5, 5, pairs="held_out")
    assert [t.name.split(" (")[0] for t in held] == [f"digits {i} vs {j}"
                                                     for i, j in HELD_OUT_PAIRS]
    search = make_tasks("digits", 36, 2, 5, 5, pairs="search")
    assert not any(f"digits {i} vs {j} " in t.name for t in search for i, j in HELD_OUT_PAIRS)
    everything = make_tasks("digits", 46, 2, 5, 5)
    names = {t.name.split(" (")[0] for t in everything}
    assert names == {f"digits {i} vs {j}" for i, j in ALL_PAIRS}
    assert everything[45].name.startswith("digits 0 vs 1 ")  # task k uses pair k mod 45


def test_digits_label_one_is_lower_class(monkeypatch):
    # Classes of different sizes make the label mapping visible through the class counts.
    rng = np.random.default_rng(0)
    fake = tuple(rng.standard_normal((10 + k, 64)) for k in range(10))
    monkeypatch.setattr(tasks_module, "_digits_by_class", lambda: fake)
    (task,) = make_tasks("digits", 1, 4, 20, 11, pairs=[(3, 8)])
    assert task.y_train.sum() + task.y_valid.sum() == 13  # all of class 3, none of class 8


def test_digits_too_many_examples():
    with pytest.raises(EvozeroError, match=r"at most 3\d\d"):
        make_tasks("digits", 1, 4, 300, 100, pairs=[(0, 1)])


@pytest.mark.parametrize("pairs", ["some", [], [(1, 0)], [(0, 10)], [(0, 1, 2)], [("0", "1")],
                                   5])
def test_digits_bad_pairs(pairs):
    with pytest.raises(EvozeroError, match="pairs"):
        make_tasks("digits", 1, 4, 5, 5, pairs=pairs)


def test_digits_without_scikit_learn(monkeypatch):
    tasks_module._digits_by_class.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    try:
        with pytest.raises(EvozeroError, match=r'need scikit-learn.*pip install "evozero\[data\]"'):
            make_tasks("digits", 1, 4, 5, 5)
    finally:
        tasks_module._digits_by_class.cache_clear()


# --- npz ------------------------------------------------------------------------------------


@pytest.fixture
def npz_file(tmp_path):
    def write(name="data.npz", **arrays):
        path = tmp_path / name
        np.savez(path, **arrays)
        return path
    return write


def test_npz_round_trip_with_split(npz_file):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((30, 3)), rng.standard_normal(30)
    path = npz_file(x=x, y=y)
    made = make_tasks("npz", 2, 3, 20, 10, path=path)
    for task in made:
        assert not task.classification and task.kind == "npz" and "data.npz" in task.name
        rows = np.concatenate([task.x_train, task.x_valid])
        labels = np.concatenate([task.y_train, task.y_valid])
        order = [int(np.flatnonzero((x == row).all(axis=1))[0]) for row in rows]
        assert sorted(order) == list(range(30))  # a shuffle of every example, no repeats
        np.testing.assert_array_equal(labels, y[order])
    assert not np.array_equal(made[0].x_train, made[1].x_train)
    again = make_tasks("npz", 2, None, 20, 10, path=str(path))
    np.testing.assert_array_equal(again[1].x_valid, made[1].x_valid)


def test_npz_with_given_validation_split(npz_file):
    x, xv = np.arange(12.0).reshape(6, 2), -np.arange(8.0).reshape(4, 2)
    path = npz_file(x=x, y=np.array([0, 1, 1, 0, 1, 0]), x_valid=xv, y_valid=np.array([1, 0, 0, 1]))
    (task,) = make_tasks("npz", 1, 2, 5, 3, path=path, epochs=2)
    assert task.classification  # auto: every label is 0 or 1
    np.testing.assert_array_equal(task.x_train, x[:5])
    np.testing.assert_array_equal(task.x_valid, xv[:3])
    assert task.train_orders().shape == (2, 5)


def test_npz_classification_option(npz_file):
    path = npz_file(x=np.ones((4, 2)), y=np.array([0.0, 1.0, 1.0, 0.0]))
    assert not make_tasks("npz", 1, 2, 2, 2, path=path, classification=False)[0].classification
    assert make_tasks("npz", 1, 2, 2, 2, path=path, classification=True)[0].classification
    real = npz_file("real.npz", x=np.ones((4, 2)), y=np.array([0.0, 1.0, 0.5, 0.0]))
    assert not make_tasks("npz", 1, 2, 2, 2, path=real)[0].classification
    with pytest.raises(EvozeroError, match=r"real\.npz.*0 or 1.*0\.5"):
        make_tasks("npz", 1, 2, 2, 2, path=real, classification=True)


@pytest.mark.parametrize("arrays, match", [
    (dict(y=np.zeros(3)), r"missing array\(s\) x"),
    (dict(x=np.zeros((3, 2))), r"missing array\(s\) y"),
    (dict(x=np.zeros(3), y=np.zeros(3)), r"x must be a non-empty 2-D"),
    (dict(x=np.zeros((3, 2)), y=np.zeros(4)), r"y must have shape \(3,\)"),
    (dict(x=np.full((3, 2), np.nan), y=np.zeros(3)), r"x contains NaN"),
    (dict(x=np.zeros((3, 2)), y=np.array([0, np.inf, 0])), r"y contains NaN or infinite"),
    (dict(x=np.array([["a", "b"]] * 3), y=np.zeros(3)), r"x must be numeric"),
    (dict(x=np.zeros((3, 2)), y=np.zeros(3), x_valid=np.zeros((2, 2))), r"given together"),
    (dict(x=np.zeros((3, 2)), y=np.zeros(3), x_valid=np.zeros((2, 3)), y_valid=np.zeros(2)),
     r"x_valid has 3"),
])
def test_npz_bad_files(npz_file, arrays, match):
    path = npz_file(**arrays)
    with pytest.raises(EvozeroError, match=match) as error:
        make_tasks("npz", 1, None, 1, 1, path=path)
    assert "data.npz" in str(error.value)


def test_npz_missing_and_corrupt_files(tmp_path):
    with pytest.raises(EvozeroError, match=r"nowhere\.npz: no such"):
        make_tasks("npz", 1, None, 1, 1, path=tmp_path / "nowhere.npz")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip file")
    with pytest.raises(EvozeroError, match=r"corrupt\.npz: not a readable"):
        make_tasks("npz", 1, None, 1, 1, path=corrupt)
    with pytest.raises(EvozeroError, match="path"):
        make_tasks("npz", 1, None, 1, 1)


def test_npz_size_errors(npz_file):
    path = npz_file(x=np.zeros((5, 2)), y=np.zeros(5))
    with pytest.raises(EvozeroError, match=r"features = 3.*has 2 features"):
        make_tasks("npz", 1, 3, 2, 2, path=path)
    with pytest.raises(EvozeroError, match=r"train \+ valid = 6.*at most 5"):
        make_tasks("npz", 1, 2, 4, 2, path=path)
    split = npz_file("split.npz", x=np.zeros((5, 2)), y=np.zeros(5), x_valid=np.zeros((2, 2)),
                     y_valid=np.zeros(2))
    with pytest.raises(EvozeroError, match=r"valid = 3.*2 validation"):
        make_tasks("npz", 1, 2, 5, 3, path=split)
    with pytest.raises(EvozeroError, match="classification"):
        make_tasks("npz", 1, 2, 2, 2, path=path, classification="yes")


# --- argument validation ---------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, names", [
    (dict(kind="quadratic"), ["quadratic", "linear, affine, nonlinear, digits, mnist1d, npz"]),
    (dict(num_tasks=0), ["num_tasks", "0", ">= 1"]),
    (dict(features=0), ["features", ">= 1"]),
    (dict(features=None), ["features", "None"]),
    (dict(features=2.5), ["features", "2.5"]),
    (dict(train=0), ["train", ">= 1"]),
    (dict(train=True), ["train", "True"]),
    (dict(valid=-1), ["valid", "-1"]),
    (dict(valid="3"), ["valid", "'3'"]),
    (dict(seed=-1), ["seed", "-1"]),
    (dict(epochs=0), ["epochs", ">= 1"]),
    (dict(data_seeds=[1]), ["data_seeds", "2 entries", "got 1"]),
    (dict(param_seeds=[1, 2, 3]), ["param_seeds", "got 3"]),
    (dict(param_seeds=[1, -2]), ["param_seeds", "-2"]),
    (dict(data_seeds=5), ["data_seeds", "5"]),
    (dict(pairs="all"), ["pairs", "linear", "none"]),
])
def test_bad_arguments_name_the_argument(kwargs, names):
    args = dict(kind="linear", num_tasks=2, features=3, train=4, valid=2)
    args.update(kwargs)
    with pytest.raises(EvozeroError) as error:
        make_tasks(**args)
    for name in names:
        assert name in str(error.value)


@FAST
@given(train=st.integers(-5, 0), valid=st.integers(-5, 0))
def test_non_positive_sizes_rejected(train, valid):
    with pytest.raises(EvozeroError, match="train|valid"):
        make_tasks("nonlinear", 1, 2, train, valid)


def test_minimal_sizes_allowed():
    (task,) = make_tasks("nonlinear", 1, 1, 1, 1)
    assert task.shape_key() == (1, 1, 1, 1, False)


def test_unknown_digits_option():
    with pytest.raises(EvozeroError, match=r"unknown option\(s\) path.*allowed: pairs"):
        make_tasks("digits", 1, 2, 3, 3, path="x.npz")


# --- Task itself --------------------------------------------------------------------------------


def test_task_is_frozen_and_checks_its_arrays():
    task = Task("linear", [[1.0], [2.0]], [1, 2], [[3.0]], [3], False, name="tiny")
    with pytest.raises(AttributeError):
        task.epochs = 3
    with pytest.raises(ValueError):
        task.x_train[0, 0] = 5.0
    assert task.x_train.dtype == np.float64 and task.y_train.dtype == np.float64
    with pytest.raises(EvozeroError, match="tiny.*y_train"):
        Task("linear", [[1.0], [2.0]], [1], [[3.0]], [3], False, name="tiny")
    with pytest.raises(EvozeroError, match="same number"):
        Task("linear", [[1.0]], [1], [[3.0, 4.0]], [3], False)
    with pytest.raises(EvozeroError, match="0 or 1"):
        Task("npz", [[1.0]], [2], [[3.0]], [1], True)
    with pytest.raises(EvozeroError, match="epochs"):
        Task("linear", [[1.0]], [1], [[3.0]], [3], False, epochs=0)
