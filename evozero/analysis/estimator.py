"""Evolved programs as scikit-learn estimators (scikit-learn comes with the ``data`` extra).

``fit(X, y)`` runs Setup once and then, for each row in order (``epochs`` passes),
Predict and Learn, exactly as the VM trains on a task. ``predict(X)`` runs Predict on
each row *independently*, every row starting from a fresh copy of the learned memory
(the learned memory itself is never changed). This differs from the VM's validation
loop, which carries memory from one validation row to the next: a prediction then
depends only on its own row, never on the other rows or their order, which is what
scikit-learn requires (sample-order and subset invariance). For the usual programs,
whose Predict overwrites everything it reads before the next row (e.g. the linear and
neural-net programs), the two give identical predictions.

The conventions follow scikit-learn's: ``__init__`` only stores its keyword arguments,
``fit`` returns the estimator, learned state lives in attributes ending in ``_``, and
``get_params`` / ``set_params`` work. The estimators derive from scikit-learn's
``BaseEstimator`` and mixins and validate inputs with its own tools (``validate_data``,
``check_is_fitted``, ``check_classification_targets``), so they pass
``sklearn.utils.estimator_checks.check_estimator`` and fit in ``Pipeline`` and
``cross_val_score``. Without scikit-learn, importing this module is an EvozeroError that
says how to install it.

:class:`EvolvedClassifier` runs the VM's classification protocol on labels 0/1
(docs/design.md, "Evaluation protocol"). With more than two classes it is one-vs-rest:
one learned memory per class (the program trained on "this class or not"), the
prediction is the class whose s1 is largest.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from evozero.errors import EvozeroError
from evozero.evaluation.vm import build_tape, tape_rows
from evozero.programs.liveness import strip_dead_code
from evozero.programs.program import Program
from evozero.programs.reference import linear_program
from ops.interpreter import HALT, TRAIN_END, VALID_END, run_tape
from ops.rng import stream_seed

ProgramLike = Program | str | None

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError:
    raise EvozeroError("the estimators (EvolvedEstimator, EvolvedRegressor, "
                       "EvolvedClassifier) need scikit-learn: pip install 'evozero[data]'") from None

# Upper bound on the doubles of one batch of independent predictions (memory per row).
_BATCH_DOUBLES = 1 << 22


#: Most epochs one fit may run (as for task specs) and most values its training stream holds.
MAX_EPOCHS = 1_000_000
_MAX_STREAM_DOUBLES = 1 << 28


class InvalidParameterError(EvozeroError, ValueError):
    """A constructor argument outside its range: an EvozeroError, and a ValueError as
    scikit-learn expects of estimators."""


# ---------------------------------------------------------------------------------------
# Tapes

def _split_tape(program: Program, part: str) -> np.ndarray:
    """The training part ("fit": Setup and the training step) or the validation step
    ("predict") of the VM's evaluation tape, each ending in HALT."""
    full = np.zeros((tape_rows(len(program.code)), 5), dtype=np.int64)
    length = build_tape(program.code, program.bounds, full)
    codes = full[:length, 0]
    train_end = int(np.flatnonzero(codes == TRAIN_END)[0])
    if part == "fit":
        rows = full[:train_end + 1]
    else:
        rows = full[train_end + 1:int(np.flatnonzero(codes == VALID_END)[0]) + 1].copy()
        rows[-1, 1] = 0  # the validation loop now starts at row 0
    return np.vstack([rows, [[HALT, 0, 0, 0, 0]]])


def _stream_root(random_state: Any) -> int:
    """The seed of the random ops: an int as given, None fresh entropy (as in
    scikit-learn), a numpy RandomState or Generator one draw from it."""
    if random_state is None:
        entropy = np.random.SeedSequence().entropy   # an int when drawn fresh
        return int(entropy) % 2**64  # type: ignore[arg-type]
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool) \
            and 0 <= random_state < 2**64:
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**63))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63))
    raise InvalidParameterError(f"random_state must be None, an integer in [0, 2**64) or a "
                                f"numpy RandomState/Generator, got {random_state!r}"[:200])


class EvolvedEstimator(BaseEstimator):
    """Regression with an evolved program (default: the hand-written SGD linear model).

    ``program`` is a :class:`Program` or its text; ``epochs`` passes over the rows in
    fit; ``random_state`` seeds the program's random ops (None: fresh each fit);
    ``max_abs_error`` as in the VM (training stops when the prediction error exceeds it,
    ``diverged_`` tells).

    Learned state: ``program_`` (the live program), ``scalars_`` / ``vectors_`` /
    ``matrices_`` / ``streams_`` in the VM's task-major layout with one "task" per
    learned model (one for regression and binary classification, one per class for
    one-vs-rest), ``n_features_in_`` and ``diverged_``.
    """

    _estimator_type = "regressor"
    _classification = False

    def __init__(self, program: ProgramLike = None, *, epochs: int = 1, random_state: Any = 0,
                 max_abs_error: float = 100.0) -> None:
        self.program = program
        self.epochs = epochs
        self.random_state = random_state
        self.max_abs_error = max_abs_error

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments."""
        return {"program": self.program, "epochs": self.epochs,
                "random_state": self.random_state, "max_abs_error": self.max_abs_error}

    def set_params(self, **params: Any) -> EvolvedEstimator:
        """Change constructor arguments; returns the estimator."""
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; "
                                 f"valid: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    # -- validation ---------------------------------------------------------------------

    def _check_X_y(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target "
                             f"y is None.")
        x, target = validate_data(self, X, y, dtype=np.float64,
                                  y_numeric=not self._classification)
        if self._classification:
            check_classification_targets(target)
        else:
            target = np.asarray(target, dtype=np.float64)
        # A private contiguous float64 copy (inputs may be read-only memmaps or F-ordered).
        return np.array(x, dtype=np.float64, order="C", copy=True), target

    def _check_X(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "program_")
        x = validate_data(self, X, dtype=np.float64, reset=False)
        return np.array(x, dtype=np.float64, order="C", copy=True)

    def _program(self) -> Program:
        if self.program is None:
            return linear_program()
        if isinstance(self.program, Program):
            return self.program
        if isinstance(self.program, str):
            return Program.parse(self.program)
        raise EvozeroError(f"program must be a Program, its text or None, got "
                           f"{type(self.program).__name__}")

    # -- fit ------------------------------------------------------------------------------

    def _targets(self, y: np.ndarray) -> list[np.ndarray]:
        """The label vector of every model to learn (one here)."""
        return [y.astype(np.float64)]

    def fit(self, X: Any, y: Any) -> EvolvedEstimator:
        """Run Setup, then Predict and Learn on every row (``epochs`` times); returns self."""
        if not isinstance(self.epochs, (int, np.integer)) or isinstance(self.epochs, bool) \
                or not 1 <= self.epochs <= MAX_EPOCHS:
            raise InvalidParameterError(f"epochs must be an integer in 1..{MAX_EPOCHS:,}, got "
                                        f"{self.epochs!r}"[:200])
        if not isinstance(self.max_abs_error, (int, float, np.integer, np.floating)) \
                or isinstance(self.max_abs_error, bool) or not 0 < self.max_abs_error <= np.inf:
            raise InvalidParameterError(f"max_abs_error must be > 0 (a number; inf: no limit), "
                                        f"got {self.max_abs_error!r}"[:200])
        x, target = self._check_X_y(X, y)
        # fit streams every epoch's rows as one array: refuse one that cannot be allocated.
        if self.epochs * x.size > _MAX_STREAM_DOUBLES:
            raise InvalidParameterError(
                f"epochs={self.epochs:,} over {x.shape[0]:,} rows of {x.shape[1]:,} features "
                f"is {self.epochs * x.size:,} values to stream; at most "
                f"{_MAX_STREAM_DOUBLES:,} (2 GiB): lower epochs")
        targets = self._targets(target)
        program = self._program()
        live = strip_dead_code(program)
        tape = _split_tape(live, "fit")
        num_s, num_v, num_m = program.memory_needs()
        n, features = x.shape
        rows = np.tile(x, (self.epochs, 1)).reshape(1, -1, features)
        models = len(targets)
        scalars = np.zeros((num_s, models))
        vectors = np.zeros((num_v, models * features))
        matrices = np.zeros((max(num_m, 1), models * features * features))
        streams = np.zeros(models, dtype=np.uint64)
        diverged = False
        seed = _stream_root(self.random_state)
        for k, labels in enumerate(targets):  # one independent run per model
            s = np.zeros((num_s, 1))
            v = np.zeros((num_v, features))
            m = np.zeros((max(num_m, 1), features * features))
            r = np.array([stream_seed(np.uint64(seed), np.uint64(k))], dtype=np.uint64)
            steps, _ = run_tape(tape, live.constants, s, v, m, r, features,
                                np.zeros(features * features), rows,
                                np.tile(labels, self.epochs).reshape(1, -1, 1),
                                np.zeros((1, features)), np.zeros((1, 1)),
                                self._classification, True, float(self.max_abs_error),
                                np.zeros(1), np.zeros((1, 0)), 0)
            scalars[:, k] = s[:, 0]
            vectors[:, k * features:(k + 1) * features] = v
            matrices[:, k * features * features:(k + 1) * features * features] = m
            streams[k] = r[0]
            diverged = diverged or bool(steps < rows.shape[1])
        self.program_ = live
        self.scalars_, self.vectors_, self.matrices_, self.streams_ = (scalars, vectors,
                                                                       matrices, streams)
        self.n_features_in_ = features
        self.diverged_ = diverged
        return self

    # -- predict --------------------------------------------------------------------------

    def _raw_predictions(self, X: Any) -> np.ndarray:
        """s1 after Predict, shape (n_samples, n_models); every row starts from its own
        copy of the learned memory (module docstring)."""
        x = self._check_X(X)
        n, features = x.shape
        models = self.streams_.shape[0]
        num_s, num_v, num_m = (self.scalars_.shape[0], self.vectors_.shape[0],
                               self.matrices_.shape[0])
        per_row = models * (num_s + num_v * features + num_m * features * features + 2)
        batch = max(1, min(n, _BATCH_DOUBLES // max(per_row, 1)))
        tape = _split_tape(self.program_, "predict")
        vectors = self.vectors_.reshape(num_v, models, features)
        matrices = self.matrices_.reshape(num_m, models, features * features)
        out = np.empty((n, models))
        for start in range(0, n, batch):
            chunk = x[start:start + batch]
            c = chunk.shape[0]
            # task t = model * c + row: every (model, row) pair gets a fresh memory copy
            record = np.zeros((models * c, 1))
            run_tape(tape, self.program_.constants, np.repeat(self.scalars_, c, axis=1),
                     np.repeat(vectors, c, axis=1).reshape(num_v, -1),
                     np.repeat(matrices, c, axis=1).reshape(num_m, -1),
                     np.repeat(self.streams_, c), features, np.zeros(features * features),
                     np.zeros((1, 1, models * c * features)), np.zeros((1, 1, models * c)),
                     np.tile(chunk.reshape(-1), models).reshape(1, -1),
                     np.zeros((1, models * c)), False, True, float("inf"),
                     np.zeros(models * c), record, 0)
            out[start:start + c] = record[:, 0].reshape(models, c).T
        return out

    def predict(self, X: Any) -> np.ndarray:
        """The program's prediction (s1 after Predict) for every row of ``X``."""
        return self._raw_predictions(X)[:, 0]

    def score(self, X: Any, y: Any) -> float:
        """Coefficient of determination R^2 of the predictions (scikit-learn's default)."""
        truth = np.asarray(y, dtype=np.float64).ravel()
        residual = np.sum((truth - self.predict(X)) ** 2)
        total = np.sum((truth - truth.mean()) ** 2)
        return float(1.0 - residual / total) if total > 0 else float(residual == 0)


class EvolvedRegressor(RegressorMixin, EvolvedEstimator):
    """Regression flavour (the same as :class:`EvolvedEstimator`)."""


class EvolvedClassifier(ClassifierMixin, EvolvedEstimator):
    """Classification with the VM's sigmoid protocol; ``classes_`` holds the sorted
    original labels. Two classes: one model trained on 0/1 (1 = ``classes_[1]``),
    ``predict`` gives ``classes_[1]`` where s1 > 0. More classes: one-vs-rest, one model
    per class, ``predict`` gives the class with the largest s1."""

    _estimator_type = "classifier"
    _classification = True

    def _targets(self, y: np.ndarray) -> list[np.ndarray]:
        self.classes_ = np.unique(y)
        if self.classes_.size < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes in "
                             f"the data, but the data contains only one class: "
                             f"{self.classes_[0]}")
        if self.classes_.size == 2:
            return [(y == self.classes_[1]).astype(np.float64)]
        return [(y == label).astype(np.float64) for label in self.classes_]

    def decision_function(self, X: Any) -> np.ndarray:
        """The raw s1: shape (n_samples,) for two classes (> 0 means ``classes_[1]``),
        else (n_samples, n_classes), one column per one-vs-rest model."""
        raw = self._raw_predictions(X)
        return raw[:, 0] if raw.shape[1] == 1 else raw

    def predict_proba(self, X: Any) -> np.ndarray:
        """Sigmoid of s1 as the probability of ``classes_[1]`` (two classes), or each
        one-vs-rest model's sigmoid normalised over the classes; columns follow classes_."""
        raw = self._raw_predictions(X)
        p = 1.0 / (1.0 + np.exp(-np.clip(raw, -700, 700)))
        if raw.shape[1] == 1:
            return np.column_stack([1.0 - p[:, 0], p[:, 0]])
        total = p.sum(axis=1, keepdims=True)
        return np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / p.shape[1])

    def predict(self, X: Any) -> np.ndarray:
        """The predicted label of every row."""
        raw = self._raw_predictions(X)
        if raw.shape[1] == 1:
            return self.classes_[(raw[:, 0] > 0.0).astype(int)]
        return self.classes_[np.argmax(raw, axis=1)]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy of the predicted labels."""
        return float(np.mean(self.predict(X) == np.asarray(y).ravel()))
