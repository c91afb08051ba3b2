"""The evolved-program estimators: the VM's predictions, scikit-learn conventions."""
from __future__ import annotations

import numpy as np
import pytest

from evozero.estimator import EvolvedClassifier, EvolvedEstimator, EvolvedRegressor
from evozero.programs import linear_program, neural_net_program
from evozero.tasks import make_tasks
from evozero.vm import group_tasks, resolve_memory, strip_dead_code


@pytest.mark.parametrize("program, kind", [(linear_program(0.05), "linear"),
                                           (neural_net_program(0.05), "nonlinear")])
def test_predictions_equal_the_vms(program, kind):
    import evozero.vm as vm
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
    np.testing.assert_array_equal(model.predict(task.x_valid), record[0, task.n_train:])
    # predicting twice gives the same: predict does not change the learned memory
    np.testing.assert_array_equal(model.predict(task.x_valid), record[0, task.n_train:])


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
    with pytest.raises(ValueError, match="2-D"):
        model.fit(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        model.fit(np.full((3, 2), np.nan), np.zeros(3))
    model.fit(np.ones((5, 3)), np.ones(5))
    with pytest.raises(ValueError, match="3"):
        model.predict(np.ones((2, 4)))
    with pytest.raises(ValueError, match="two classes"):
        EvolvedClassifier().fit(np.ones((3, 2)), [0, 1, 2])


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


def test_works_without_scikit_learn():
    import os
    import subprocess
    import sys
    from pathlib import Path
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "import numpy as np\n"
            "from evozero.estimator import EvolvedRegressor, EvolvedClassifier\n"
            "x = np.random.default_rng(0).normal(size=(300, 3)); y = x @ [1.0, -2.0, 0.5]\n"
            "m = EvolvedRegressor(epochs=3).fit(x, y)\n"
            "assert m.score(x, y) > 0.99, m.score(x, y)\n"
            "c = EvolvedClassifier().fit(x, y > 0)\n"
            "assert c.score(x, y > 0) > 0.9\n"
            "print('ok')\n")
    root = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=root))
    assert done.stdout.strip() == "ok", done.stderr
