"""evozero: evolve machine-learning algorithms from scratch (AutoML-Zero style).

The public API::

    import evozero as ez
    prog = ez.Program.parse(text)
    tasks = ez.make_tasks("linear", num_tasks=10, features=4, train=100, valid=100, seed=0)
    fitness = ez.evaluate(prog, tasks)
    baseline = ez.builtin_program("linear")        # also logistic, affine, neural_net
    tuned = ez.tune(baseline, tasks, trials=100, seed=0)   # tuned.program, tuned.fitness
"""
from evozero.errors import EvozeroError
from evozero.evaluation.tasks import KINDS as TASK_KINDS
from evozero.evaluation.tasks import Task, make_tasks
from evozero.evaluation.vm import evaluate
from evozero.programs.instruction import Instruction
from evozero.programs.liveness import strip_dead_code
from evozero.programs.program import COMPONENTS, Program
from evozero.programs.reference import BUILTIN_PROGRAMS, builtin_program

__version__ = "0.1.0"
__all__ = ["BUILTIN_PROGRAMS", "COMPONENTS", "EvolvedClassifier", "EvolvedEstimator",
           "EvolvedRegressor", "EvozeroError", "Instruction", "Program", "TASK_KINDS", "Task",
           "Tuned", "builtin_program", "evaluate", "make_tasks", "run_study", "strip_dead_code",
           "tune"]
# Imported on first use: the estimators need scikit-learn (the `data` extra), and the
# analysis layer sits above the config layer, which imports this package.
_ESTIMATORS = ("EvolvedClassifier", "EvolvedEstimator", "EvolvedRegressor")
_TUNING = ("Tuned", "tune")


def __getattr__(name: str):
    """The estimator classes, tuning (:func:`evozero.analysis.tuning.tune`) and
    :func:`evozero.study.command.run_study`, loaded on first access."""
    if name in _ESTIMATORS:
        from evozero.analysis import estimator
        return getattr(estimator, name)
    if name in _TUNING:
        from evozero.analysis import tuning
        return getattr(tuning, name)
    if name == "run_study":   # imported on first use: it brings in every search domain
        from evozero.study.command import run_study
        return run_study
    raise AttributeError(f"module 'evozero' has no attribute {name!r}")
