"""The evolved-program estimators: the VM's predictions, scikit-learn conventions."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from evozero.analysis.estimator import EvolvedClassifier, EvolvedEstimator, EvolvedRegressor
from evozero.evaluation.tasks import make_tasks
from evozero.evaluation.vm import group_tasks
from evozero.programs.liveness import resolve_memory, strip_dead_code
from evozero.programs.program import Program
from evozero.programs.reference import linear_program, neural_net_program


@pytest.mark.parametrize("program, kind", [(linear_program(0.05), "linear"),
                                           (neural_net_program(0.05), "nonlinear")])
def test_predictions_equal_the_vms(program, kind):
    import evozero.evaluation.vm as vm
    task = make_tasks(kind, 1, 4, 200, 50, seed=3)[0]
    group = group_tasks([task])[0]
    live = strip_dead_code(program)
    record = np.zeros((1, task.n_train + task.n_valid))
    sizes = resolve_memory(program, None)
    vm.run_group(live.code, live.constants, live.bounds, np.zeros((sizes[0], 1)),
                 np.zeros((sizes[1], 4)), np.zeros((max(sizes[2], 1), 16)),
                 np.zeros(1, dtype=np.uint64), np.zeros(16),
                 np.zeros((vm.tape_rows(live.code.shape[0]), 5), dtype=np.int64),
                 group.x_train, group.y_train, group.x_valid, group.y_valid, False, True, 100.0,
                 np.uint64(7), np.zeros(1, dtype=np.uint64), np.zeros(1), record)
    model = EvolvedRegressor(program, random_state=7).fit(task.x_train, task.y_train)
    # These programs' Predict overwrites all it reads, so predicting every row from its own
    # copy of the learned memory (predict) equals the VM's sequential validation loop.
    np.testing.assert_array_equal(model.predict(task.x_valid), record[0, task.n_train:])
    # predicting twice gives the same: predict does not change the learned memory
    np.testing.assert_array_equal(model.predict(task.x_valid), record[0, task.n_train:])
    # and a row's prediction depends on that row alone
    np.testing.assert_array_equal(model.predict(task.x_valid[::-1])[::-1],
                                  record[0, task.n_train:])


def test_predict_rows_are_independent_even_when_predict_keeps_state():
    # Predict accumulates into s2, which the VM would carry from row to row; predict()
    # starts every row from the learned memory, so order and batch do not matter.
    program = Program.parse("def Setup():\n  s2 = 0.5\n"
                            "def Predict():\n  s2 = s2 + s2\n  s1 = s2 + s0\n"
                            "def Learn():\n  s3 = s0 - s1\n")
    x = np.arange(12.0).reshape(6, 2)
    model = EvolvedRegressor(program).fit(x, np.ones(6))
    predicted = model.predict(x)
    # fit doubled s2 six times (to 32); every row doubles its own copy once (the VM's
    # validation loop would give 64, 128, 256, ...)
    np.testing.assert_array_equal(predicted, np.full(6, 64.0))
    np.testing.assert_array_equal(model.predict(x[::-1]), predicted[::-1])
    np.testing.assert_array_equal(model.predict(x[2:3]), predicted[2:3])


def test_linear_model_learns_and_params_round_trip():
    task = make_tasks("linear", 1, 4, 1000, 100, seed=1)[0]
    model = EvolvedEstimator(epochs=2)
    assert model.fit(task.x_train, task.y_train) is model
    error = np.sqrt(np.mean((model.predict(task.x_valid) - task.y_valid) ** 2))
    assert error < 0.05 * np.std(task.y_valid)
    assert model.get_params()["epochs"] == 2
    model.set_params(epochs=3, random_state=5)
    assert model.get_params()["epochs"] == 3 and model.random_state == 5
    with pytest.raises(ValueError, match="invalid parameter"):
        model.set_params(learning_rate=1)
    assert model.n_features_in_ == 4 and not model.diverged_


def test_classifier_labels_and_probabilities():
    task = make_tasks("digits", 1, 8, 200, 100, seed=0, pairs=[(0, 1)])[0]
    labels = np.where(task.y_train > 0.5, "one", "zero")
    model = EvolvedClassifier(linear_program(0.1), epochs=3).fit(task.x_train, labels)
    assert list(model.classes_) == ["one", "zero"]
    assert model.score(task.x_valid, np.where(task.y_valid > 0.5, "one", "zero")) > 0.9
    predicted = model.predict(task.x_valid)
    truth = np.where(task.y_valid > 0.5, "one", "zero")
    assert np.mean(predicted == truth) > 0.9
    proba = model.predict_proba(task.x_valid)
    assert proba.shape == (100, 2) and np.allclose(proba.sum(axis=1), 1.0)


def test_errors_are_clear():
    model = EvolvedEstimator()
    with pytest.raises(AttributeError, match="not fitted"):
        model.predict(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="2D"):
        model.fit(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        model.fit(np.full((3, 2), np.nan), np.zeros(3))
    with pytest.raises(ValueError, match="y is None"):
        model.fit(np.ones((3, 2)), None)
    model.fit(np.ones((5, 3)), np.ones(5))
    with pytest.raises(ValueError, match="3"):
        model.predict(np.ones((2, 4)))
    with pytest.raises(ValueError, match="one class"):
        EvolvedClassifier().fit(np.ones((3, 2)), [1, 1, 1])
    with pytest.raises(ValueError, match="continuous"):
        EvolvedClassifier().fit(np.ones((3, 2)), [0.5, 1.0, 2.0])


def test_passes_scikit_learns_estimator_checks():
    from sklearn.utils.estimator_checks import check_estimator
    for estimator in (EvolvedRegressor(), EvolvedClassifier()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = check_estimator(estimator, on_fail=None)
        failed = [(r["check_name"], repr(r["exception"])) for r in results
                  if r["status"] == "failed"]
        assert not failed, failed
        assert any(r["status"] == "passed" for r in results)


def test_multiclass_is_one_vs_rest():
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    x, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    x_train, x_test, y_train, y_test = train_test_split(x, names, test_size=0.3,
                                                        random_state=0, stratify=names)
    model = make_pipeline(StandardScaler(), EvolvedClassifier(epochs=5))
    model.fit(x_train, y_train)
    assert model.score(x_test, y_test) > 0.8
    clf = model[-1]
    assert list(clf.classes_) == ["setosa", "versicolor", "virginica"]
    assert clf.scalars_.shape[1] == 3  # one learned memory per class
    scores = model.decision_function(x_test)
    assert scores.shape == (len(x_test), 3)
    np.testing.assert_array_equal(model.predict(x_test), clf.classes_[scores.argmax(axis=1)])
    proba = model.predict_proba(x_test)
    assert proba.shape == (len(x_test), 3) and np.allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(proba.argmax(axis=1), scores.argmax(axis=1))


def test_works_in_scikit_learn():
    import sklearn.base
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    task = make_tasks("linear", 1, 4, 400, 10, seed=2)[0]
    scores = cross_val_score(make_pipeline(StandardScaler(), EvolvedRegressor(epochs=3)),
                             task.x_train, task.y_train, cv=3)
    assert np.all(scores > 0.9), scores
    assert sklearn.base.clone(EvolvedRegressor(epochs=4)).epochs == 4


def test_without_scikit_learn_the_estimators_say_how_to_install_it():
    import os
    import subprocess
    import sys
    from pathlib import Path
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "import evozero as ez\n"
            "try:\n"
            "    ez.EvolvedRegressor\n"
            "except ez.EvozeroError as e:\n"
            "    print(e)\n")
    root = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=root))
    assert "scikit-learn" in done.stdout and "evozero[data]" in done.stdout, done.stderr


@pytest.mark.parametrize("bad", [np.zeros(3), np.full((3, 2), np.nan), np.zeros((3, 0))])
def test_malformed_X_is_a_value_error(bad):
    with pytest.raises(ValueError):
        EvolvedRegressor().fit(bad, np.zeros(len(bad)))


def test_continuous_labels_and_a_wrong_feature_count_are_value_errors():
    x = np.random.default_rng(0).normal(size=(300, 3))
    y = x @ [1.0, -2.0, 0.5]
    with pytest.raises(ValueError, match="continuous"):
        EvolvedClassifier().fit(x, y)
    with pytest.raises(ValueError, match="features"):
        EvolvedRegressor(epochs=3).fit(x, y).predict(x[:, :2])


def test_random_state_seeds_the_random_ops():
    from evozero.analysis.estimator import EvolvedRegressor as Regressor
    task = make_tasks("nonlinear", 1, 4, 200, 50, seed=4)[0]
    program = neural_net_program(0.05)   # Gaussian weight initialisation in Setup

    def predictions(random_state):
        return Regressor(program, random_state=random_state).fit(
            task.x_train, task.y_train).predict(task.x_valid)

    np.testing.assert_array_equal(predictions(3), predictions(3))
    assert not np.array_equal(predictions(3), predictions(4))
    np.testing.assert_array_equal(predictions(np.random.default_rng(9)),
                                  predictions(np.random.default_rng(9)))
    assert predictions(None).shape == (50,)
    with pytest.raises(ValueError, match="random_state"):
        predictions(-1)
