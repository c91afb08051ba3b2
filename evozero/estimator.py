"""Evolved programs as scikit-learn-style estimators (scikit-learn itself is not needed).

``fit(X, y)`` runs Setup once and then, for each row in order (``epochs`` passes),
Predict and Learn, exactly as the VM trains on a task; ``predict(X)`` runs Predict on each
row from the learned memory, which it leaves untouched. The conventions follow
scikit-learn's: ``__init__`` only stores its keyword arguments, ``fit`` returns the
estimator, learned state lives in attributes ending in ``_``, and ``get_params`` /
``set_params`` work, so the estimators fit in ``cross_val_score`` and ``Pipeline``.
"""
from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from evozero.errors import EvozeroError
from evozero.program import Program
from evozero.programs import linear_program
from evozero.vm import strip_dead_code
from ops.interpreter import (HALT, TRAIN_BEGIN, TRAIN_END, TRAIN_PREDICTED, VALID_BEGIN,
                             VALID_END, run_tape)
from ops.rng import stream_seed

ProgramLike = Union[Program, str, None]

try:  # scikit-learn is optional: with it, its tags make Pipeline and the checks work.
    from sklearn.base import BaseEstimator as _Base
    from sklearn.base import ClassifierMixin as _ClassifierBase
    from sklearn.base import RegressorMixin as _RegressorBase
except ImportError:
    _Base = object  # type: ignore[assignment,misc]

    class _ClassifierBase:  # type: ignore[no-redef]
        """Stands in for scikit-learn's ClassifierMixin."""

    class _RegressorBase:  # type: ignore[no-redef]
        """Stands in for scikit-learn's RegressorMixin."""


def _tape(rows: list[tuple[int, int, int, int, int]]) -> np.ndarray:
    return np.array(rows, dtype=np.int64).reshape(-1, 5)


def _program_rows(program: Program, start: int, stop: int) -> list[tuple[int, int, int, int, int]]:
    return [(*(int(v) for v in program.code[row]), row) for row in range(start, stop)]


def _fit_tape(program: Program) -> np.ndarray:
    b = program.bounds
    rows = _program_rows(program, 0, b[1])
    begin = len(rows)
    rows += [(TRAIN_BEGIN, 0, 0, 0, 0)] + _program_rows(program, b[1], b[2])
    rows += [(TRAIN_PREDICTED, 0, 0, 0, 0)] + _program_rows(program, b[2], b[3])
    rows += [(TRAIN_END, begin, 0, 0, 0), (HALT, 0, 0, 0, 0)]
    return _tape(rows)


def _predict_tape(program: Program) -> np.ndarray:
    b = program.bounds
    rows = [(VALID_BEGIN, 0, 0, 0, 0)] + _program_rows(program, b[1], b[2])
    rows += [(VALID_END, 0, 0, 0, 0), (HALT, 0, 0, 0, 0)]
    return _tape(rows)


def _features(X: Any, n_features: Optional[int] = None) -> np.ndarray:
    array = np.asarray(X, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"X must be a non-empty 2-D array (n_samples, n_features), "
                         f"got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("X contains NaN or infinity")
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(f"X has {array.shape[1]} features, but the estimator was fitted "
                         f"with {n_features}")
    return np.ascontiguousarray(array)


class EvolvedEstimator(_Base):
    """Regression with an evolved program (default: the hand-written SGD linear model).

    ``program`` is a :class:`Program` or its text; ``epochs`` passes over the rows in
    fit; ``random_state`` seeds the program's random ops; ``max_abs_error`` as in the VM
    (training stops when the prediction error exceeds it, ``diverged_`` tells).
    """

    _estimator_type = "regressor"
    _classification = False

    def __init__(self, program: ProgramLike = None, *, epochs: int = 1, random_state: int = 0,
                 max_abs_error: float = 100.0) -> None:
        self.program = program
        self.epochs = epochs
        self.random_state = random_state
        self.max_abs_error = max_abs_error

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments."""
        return {"program": self.program, "epochs": self.epochs,
                "random_state": self.random_state, "max_abs_error": self.max_abs_error}

    def set_params(self, **params: Any) -> "EvolvedEstimator":
        """Change constructor arguments; returns the estimator."""
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; "
                                 f"valid: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def _labels(self, y: np.ndarray) -> np.ndarray:
        return y

    def fit(self, X: Any, y: Any) -> "EvolvedEstimator":
        """Run Setup, then Predict and Learn on every row (``epochs`` times); returns self."""
        x = _features(X)
        target = np.asarray(y, dtype=np.float64 if not self._classification else None).ravel()
        if target.shape[0] != x.shape[0]:
            raise ValueError(f"X has {x.shape[0]} rows but y has {target.shape[0]}")
        labels = self._labels(target)
        if not np.all(np.isfinite(labels)):
            raise ValueError("y contains NaN or infinity")
        if not isinstance(self.epochs, (int, np.integer)) or self.epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        program = self._program()
        live = strip_dead_code(program)
        num_s, num_v, num_m = program.memory_needs()
        n, features = x.shape
        rows = np.tile(x, (self.epochs, 1))
        self.scalars_ = np.zeros((num_s, 1))
        self.vectors_ = np.zeros((num_v, features))
        self.matrices_ = np.zeros((max(num_m, 1), features * features))
        self.streams_ = np.array([stream_seed(np.uint64(self.random_state), np.uint64(0))],
                                 dtype=np.uint64)
        steps, _ = run_tape(_fit_tape(live), live.constants, self.scalars_, self.vectors_,
                            self.matrices_, self.streams_, features, np.zeros(features * features),
                            rows.reshape(1, -1, features), np.tile(labels, self.epochs).reshape(
                                1, -1, 1), np.zeros((1, features)), np.zeros((1, 1)),
                            self._classification, True, float(self.max_abs_error), np.zeros(1),
                            np.zeros((1, 0)))
        self.program_ = live
        self.n_features_in_ = features
        self.diverged_ = bool(steps < rows.shape[0])
        return self

    def _program(self) -> Program:
        if self.program is None:
            return linear_program()
        if isinstance(self.program, Program):
            return self.program
        if isinstance(self.program, str):
            return Program.parse(self.program)
        raise EvozeroError(f"program must be a Program, its text or None, got "
                           f"{type(self.program).__name__}")

    def _raw_predictions(self, X: Any) -> np.ndarray:
        if not hasattr(self, "program_"):
            raise AttributeError(f"this {type(self).__name__} is not fitted yet; call fit first")
        x = _features(X, self.n_features_in_)
        n, features = x.shape
        record = np.zeros((1, n))
        # Predict may write memory: run it on copies so predicting never changes the model.
        run_tape(_predict_tape(self.program_), self.program_.constants, self.scalars_.copy(),
                 self.vectors_.copy(), self.matrices_.copy(), self.streams_.copy(), features,
                 np.zeros(features * features), np.zeros((1, 1, features)), np.zeros((1, 1, 1)),
                 x, np.zeros((n, 1)), False, True, float("inf"), np.zeros(1), record)
        return record[0]

    def predict(self, X: Any) -> np.ndarray:
        """The program's prediction (s1 after Predict) for every row of ``X``."""
        return self._raw_predictions(X)

    def score(self, X: Any, y: Any) -> float:
        """Coefficient of determination R^2 of the predictions (scikit-learn's default)."""
        truth = np.asarray(y, dtype=np.float64).ravel()
        residual = np.sum((truth - self.predict(X)) ** 2)
        total = np.sum((truth - truth.mean()) ** 2)
        return float(1.0 - residual / total) if total > 0 else float(residual == 0)


class EvolvedRegressor(_RegressorBase, EvolvedEstimator):
    """Regression flavour (the same as :class:`EvolvedEstimator`)."""


class EvolvedClassifier(_ClassifierBase, EvolvedEstimator):
    """Binary classification: trained on labels 0/1 with the VM's sigmoid; ``classes_``
    holds the two original labels; ``predict`` gives the label where s1 > 0."""

    _estimator_type = "classifier"
    _classification = True

    def _labels(self, y: np.ndarray) -> np.ndarray:
        self.classes_ = np.unique(y)
        if self.classes_.size != 2:
            raise ValueError(f"EvolvedClassifier needs exactly two classes, got "
                             f"{self.classes_.size}")
        return (y == self.classes_[1]).astype(np.float64)

    def decision_function(self, X: Any) -> np.ndarray:
        """The raw s1 of every row (> 0 means the second class)."""
        return self._raw_predictions(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Sigmoid of s1 as the probability of the second class; columns follow classes_."""
        p = 1.0 / (1.0 + np.exp(-np.clip(self._raw_predictions(X), -700, 700)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """The predicted label of every row."""
        return self.classes_[(self._raw_predictions(X) > 0.0).astype(int)]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy of the predicted labels."""
        return float(np.mean(self.predict(X) == np.asarray(y).ravel()))
