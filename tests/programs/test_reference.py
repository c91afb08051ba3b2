"""Built-in programs: names, errors, and each learner's predictions against a plain-Python
rewrite of its math."""
from __future__ import annotations

import math

import numpy as np
import pytest

from evozero.bench import vm_sizes
from evozero.errors import EvozeroError
from evozero.evaluation.tasks import make_tasks
from evozero.evaluation.vm import evaluate, evaluate_group, group_tasks
from evozero.programs.liveness import strip_dead_code
from evozero.programs.reference import (
    BUILTIN_PROGRAMS,
    builtin_program,
    neural_net_program,
)


def vm_predictions(program, task):
    """Every prediction the VM reads from s1 on one task: training steps, then validation."""
    group = group_tasks([task])[0]
    epochs, n_train = group.y_train.shape[:2]
    record = np.zeros((1, epochs * (n_train + group.y_valid.shape[0])))
    sizes = program.memory_needs()
    evaluate_group(strip_dead_code(program, sizes), group, sizes, 0, math.inf, record)
    return record[0], group


def sgd_predictions(group, rate, with_bias):
    """SGD on squared error, in plain Python; on classification tasks training squashes
    the prediction with a sigmoid and validation reads the logit."""
    epochs, n_train, n = group.x_train.shape
    weights, bias, out = [0.0] * n, 0.0, []

    def predict(x, squash=False):
        value = sum(w * f for w, f in zip(weights, x)) + (bias if with_bias else 0.0)
        return 1.0 / (1.0 + math.exp(-value)) if squash else value

    for epoch in range(epochs):
        for step in range(n_train):
            x = list(group.x_train[epoch, step])
            prediction = predict(x, squash=group.classification)
            out.append(prediction)
            delta = (group.y_train[epoch, step, 0] - prediction) * rate
            weights = [w + delta * f for w, f in zip(weights, x)]
            bias += delta
        out.extend(predict(list(x)) for x in group.x_valid)
    return np.array(out)


def test_the_names_and_their_memory():
    assert list(BUILTIN_PROGRAMS) == ["linear", "logistic", "affine", "neural_net"]
    assert builtin_program("affine").memory_needs() == (5, 3, 0)
    assert builtin_program(" Neural_Net ") == neural_net_program()
    with pytest.raises(EvozeroError, match="linear, logistic, affine, neural_net"):
        builtin_program("logistics")


@pytest.mark.parametrize("name, kind, rate, with_bias", [
    ("linear", "linear", 0.01, False), ("logistic", "digits", 0.1, False),
    ("affine", "affine", 0.01, True), ("affine", "linear", 0.05, True)])
def test_sgd_learners_match_their_math(name, kind, rate, with_bias):
    program = BUILTIN_PROGRAMS[name](rate)
    task = make_tasks(kind, 1, 4, 60, 20, seed=3, epochs=2)[0]
    vm, group = vm_predictions(program, task)
    np.testing.assert_allclose(vm, sgd_predictions(group, rate, with_bias), rtol=0, atol=1e-12)


def test_the_neural_net_computes_the_hand_written_network():
    tasks = make_tasks("nonlinear", 4, 6, 40, 30, seed=5)
    fitness = np.zeros(len(tasks))
    vm_sizes.two_layer_reference(*vm_sizes._per_task(group_tasks(tasks)[0]), 0.01, 100.0,
                                 np.uint64(0), fitness)
    np.testing.assert_array_equal(fitness, evaluate(builtin_program("neural_net"), tasks,
                                                    combine=None, memory=vm_sizes.NEURAL_MEMORY))
