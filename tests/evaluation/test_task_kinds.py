"""The affine regression kind and projected binary classification of MNIST-1D pairs."""
from __future__ import annotations

import numpy as np
import pytest

from evozero.errors import EvozeroError
from evozero.evaluation import tasks as tasks_module
from evozero.evaluation.mnist1d import Mnist1dDataset, make_mnist1d
from evozero.evaluation.tasks import HELD_OUT_PAIRS, SEARCH_PAIRS, make_tasks


def test_affine_labels_are_the_linear_teacher_plus_one_offset_per_task():
    affine = make_tasks("affine", 30, 5, 40, 10, seed=4)
    linear = make_tasks("linear", 30, 5, 40, 10, seed=4)
    offsets = []
    for a, b in zip(affine, linear):
        np.testing.assert_array_equal(a.x_train, b.x_train)
        shift = a.y_train - b.y_train    # same u, same features: the difference is a
        np.testing.assert_allclose(shift, shift[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(a.y_valid - b.y_valid, shift[0], rtol=0, atol=1e-12)
        offsets.append(shift[0])
        assert a.kind == "affine" and a.name.startswith("affine(") and not a.classification
    # a ~ N(0, 1): 30 draws, mean within 4 standard errors, spread near 1.
    assert abs(np.mean(offsets)) < 4 / np.sqrt(30) and 0.5 < np.std(offsets) < 1.6


def test_mnist1d_pairs_like_the_digits():
    held = make_tasks("mnist1d", 9, 16, 100, 50, seed=2, pairs="held_out")
    assert [t.name.split(" (")[0] for t in held] == [f"mnist1d {i} vs {j}"
                                                     for i, j in HELD_OUT_PAIRS]
    search = make_tasks("mnist1d", 36, 2, 5, 5, pairs="search")
    assert [t.name.split(" (")[0] for t in search] == [f"mnist1d {i} vs {j}"
                                                       for i, j in SEARCH_PAIRS]
    for task in held:
        assert task.classification and task.kind == "mnist1d"
        assert task.shape_key() == (16, 100, 50, 1, True)
        assert 45 <= task.y_train.sum() <= 55 and set(np.unique(task.y_valid)) == {0.0, 1.0}
        np.testing.assert_allclose(task.x_train.mean(axis=0), 0.0, atol=1e-9)
        np.testing.assert_allclose(task.x_train.std(axis=0), 1.0, atol=1e-9)


def test_mnist1d_is_deterministic_and_seeds_separate_examples_from_projection():
    (a,) = make_tasks("mnist1d", 1, 4, 30, 10, data_seeds=[1], param_seeds=[2])
    (again,) = make_tasks("mnist1d", 1, 4, 30, 10, data_seeds=[1], param_seeds=[2])
    (b,) = make_tasks("mnist1d", 1, 4, 30, 10, data_seeds=[1], param_seeds=[3])
    (c,) = make_tasks("mnist1d", 1, 4, 30, 10, data_seeds=[9], param_seeds=[2])
    np.testing.assert_array_equal(a.x_valid, again.x_valid)
    np.testing.assert_array_equal(a.y_train, b.y_train)       # same examples...
    assert not np.array_equal(a.x_train, b.x_train)           # ...projected differently
    assert not np.array_equal(a.y_train, c.y_train)


def test_a_test_split_task_trains_on_the_same_examples_and_validates_on_others():
    common = dict(seed=5, pairs=[(2, 7)])
    (train_split,) = make_tasks("mnist1d", 1, 8, 200, 100, valid_split="train", **common)
    (test_split,) = make_tasks("mnist1d", 1, 8, 200, 100, valid_split="test", **common)
    np.testing.assert_array_equal(train_split.x_train, test_split.x_train)
    np.testing.assert_array_equal(train_split.y_train, test_split.y_train)
    assert not np.array_equal(train_split.x_valid, test_split.x_valid)


class _IdentityProjection:
    def standard_normal(self, shape):
        return np.eye(*shape)


def test_mnist1d_examples_come_from_the_pair_and_the_split(monkeypatch):
    # Raw input: column 0 marks the split (0 training, 1000 test), column 1 is the class;
    # with the projection the identity, standardising keeps both readable.
    rng = np.random.default_rng(0)
    y, y_test = rng.permutation(np.repeat(np.arange(10), 40)), np.repeat(np.arange(10), 10)
    x = np.stack([np.zeros(400), y], axis=1).astype(float)
    x_test = np.stack([np.full(100, 1000.0), y_test], axis=1)
    fake = Mnist1dDataset(x, y, x_test, y_test, *(np.zeros(1),) * 4)
    monkeypatch.setattr(tasks_module, "make_mnist1d", lambda: fake)
    monkeypatch.setattr(tasks_module, "_param_rng", lambda seed: _IdentityProjection())
    (same,) = make_tasks("mnist1d", 1, 2, 50, 30, pairs=[(3, 6)])
    (test,) = make_tasks("mnist1d", 1, 2, 50, 10, pairs=[(3, 6)], valid_split="test")
    for task in (same, test):
        rows = np.concatenate([task.x_train, task.x_valid])
        labels = np.concatenate([task.y_train, task.y_valid])
        # Two classes only, the lower one labelled 1.
        assert len(np.unique(rows[:, 1])) == 2
        assert np.all(rows[labels == 1, 1] < rows[labels == 0, 1].min())
    assert np.all(same.x_valid[:, 0] == same.x_train[0, 0])
    assert np.all(test.x_valid[:, 0] > 1e6 * abs(test.x_train[0, 0]) + 100)
    with pytest.raises(EvozeroError, match="valid = 21 exceeds the 20 test examples"):
        make_tasks("mnist1d", 1, 2, 50, 21, pairs=[(3, 6)], valid_split="test")


def test_mnist1d_sizes_and_options_are_checked():
    published = make_mnist1d()
    pool = int(np.sum((published.y == 0) | (published.y == 1)))
    with pytest.raises(EvozeroError, match=f"exceeds the {pool} training examples .* at "
                                           f"most {pool} allowed"):
        make_tasks("mnist1d", 1, 4, pool - 10, 11, pairs=[(0, 1)])
    make_tasks("mnist1d", 1, 4, pool - 10, 10, pairs=[(0, 1)])
    with pytest.raises(EvozeroError, match="valid_split must be one of train, test"):
        make_tasks("mnist1d", 1, 4, 5, 5, valid_split="final")
    with pytest.raises(EvozeroError, match="pairs"):
        make_tasks("mnist1d", 1, 4, 5, 5, pairs=[(1, 0)])
    with pytest.raises(EvozeroError, match="unknown option"):
        make_tasks("digits", 1, 4, 5, 5, valid_split="test")
