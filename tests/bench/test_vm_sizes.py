"""``evozero bench vm --sizes``: its hand-written references compute what the VM computes,
its work counts follow the op table, and the command line takes and refuses sizes."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import cli

from evozero.bench import vm_sizes
from evozero.evaluation.tasks import make_tasks
from evozero.evaluation.vm import evaluate, group_tasks
from evozero.programs.reference import linear_program, neural_net_program
from ops.table import OPS_BY_NAME


@pytest.mark.parametrize("features", [1, 4, 16, 32])
@pytest.mark.parametrize("learning_rate", [0.01, 0.3])
def test_the_hand_written_programs_compute_the_vms_fitness(features, learning_rate):
    # At F = 32 and rate 0.3 most tasks diverge, so the early stops are compared too.
    for kind, program, memory, reference in (
            ("linear", linear_program(learning_rate), vm_sizes.LINEAR_MEMORY,
             lambda data, out: vm_sizes.linear_reference(*data, learning_rate, 100.0, out)),
            ("nonlinear", neural_net_program(learning_rate), vm_sizes.NEURAL_MEMORY,
             lambda data, out: vm_sizes.two_layer_reference(*data, learning_rate, 100.0,
                                                            np.uint64(0), out))):
        tasks = make_tasks(kind, 6, features, 40, 30, seed=5)
        expected = evaluate(program, tasks, combine=None, memory=memory)
        fitness = np.zeros(len(tasks))
        reference(vm_sizes._per_task(group_tasks(tasks)[0]), fitness)
        np.testing.assert_array_equal(fitness, expected)


def test_useful_flops_count_multiply_adds_twice():
    flops = vm_sizes.useful_flops(8)
    assert flops[OPS_BY_NAME["SCALAR_SUM"].code] == 1
    assert flops[OPS_BY_NAME["VECTOR_SUM"].code] == 8
    assert flops[OPS_BY_NAME["VECTOR_INNER_PRODUCT"].code] == 16
    assert flops[OPS_BY_NAME["MATRIX_VECTOR_PRODUCT"].code] == 128
    assert flops[OPS_BY_NAME["MATRIX_MATRIX_PRODUCT"].code] == 2 * 8 ** 3
    assert flops[OPS_BY_NAME["VECTOR_OUTER_PRODUCT"].code] == 64
    assert flops[OPS_BY_NAME["NO_OP"].code] == 0


def test_executed_work_counts_live_rows_on_every_step():
    group = group_tasks(make_tasks("linear", 3, 4, 10, 5, seed=1))[0]
    batch = vm_sizes._copies(linear_program(0.01), 2, vm_sizes.LINEAR_MEMORY, 3)
    batch.steps[:] = (10, 5)
    instructions, flops = vm_sizes.executed_work(batch, group.num_tasks, 4)
    # setup 1 row once; predict (dot) on 15 steps; learn 4 rows on 10 steps; 3 tasks, 2 copies
    assert instructions == 2 * 3 * (1 + 15 * 1 + 10 * 4)
    assert flops == 2 * 3 * (1 + 15 * 8 + 10 * (1 + 1 + 4 + 4))


def test_the_command_prints_a_row_per_workload_and_size():
    process = cli("bench", "vm", "--sizes", "2", "--quick")
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in
            (["linear"], ["two-layer"], ["random"])]
    assert [(row[0], row[1]) for row in rows] == [("linear", "2"), ("two-layer", "2"),
                                                   ("random", "2")]


@pytest.mark.parametrize("args, message", [
    (("bench", "search", "--sizes", "4"), "--sizes applies to 'evozero bench vm' only"),
    (("bench", "vm", "--sizes", "4,x"), "must be feature sizes F in 1..1024"),
    (("bench", "vm", "--sizes", "0"), "must be feature sizes F in 1..1024"),
])
def test_bad_sizes_are_refused(args, message):
    process = cli(*args)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2
    assert message in err
