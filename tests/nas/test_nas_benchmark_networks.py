"""Networks as the benchmarks build them: the parameters and FLOPs of all 15,625
NAS-Bench-201 cells against the benchmark's rule, edges from nodes no live edge reaches,
downsampling of odd sizes and skeletons too deep for their input."""
from __future__ import annotations

import importlib.util
import itertools
from dataclasses import replace

import numpy as np
import pytest
from helpers import nas_config, run_quietly
from hypothesis import example, given, settings
from hypothesis import strategies as st

from evozero.cli import main
from evozero.config import load_config
from evozero.config.cell_search import DATASET_SHAPES
from evozero.errors import EvozeroError
from evozero.nas.devices.cost import layer_step, nb201_flops
from evozero.nas.evaluate import Evaluator
from evozero.nas.reports.export import export_network
from evozero.nas.reports.export_runtime import _avgpool, _bn, _conv
from evozero.nas.reports.results import save_network
from evozero.nas.spaces.cells import NB201_OPS, Nb101Cell, Nb201Cell
from evozero.nas.spaces.skeleton import Skeleton, compile_cell
from evozero.nas.training.data import load_dataset
from evozero.nas.training.model import WEIGHTED, Model
from ops import neural

pytestmark = pytest.mark.nas

CIFAR = (32, 32, 3)
_KERNELS = {"nor_conv_3x3": 3, "nor_conv_1x1": 1}
UNREACHED = Nb201Cell.parse("|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
                            "|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")


def benchmark_counts(ops: tuple[str, ...], channels: int, per_stage: int,
                     shape: tuple[int, int, int], classes: int) -> tuple[int, int]:
    """(params, FLOPs) of NAS-Bench-201's TinyNetwork, worked out from its definition
    (stem conv3x3 + bn; three stages of cells joined by residual reduction blocks; bn,
    pooling, linear): the parameter-free cell's network plus each conv edge's share, every
    edge counted whatever its source or its use. FLOPs count conv and linear
    multiply-adds and the linear bias, as the benchmark's counter does."""
    height, width, in_channels = shape
    params = 9 * in_channels * channels + 2 * channels
    flops = height * width * 9 * in_channels * channels
    for stage in (1, 2):
        c_in, c_out = channels << (stage - 1), channels << stage
        area = (height >> stage) * (width >> stage)
        params += 9 * c_in * c_out + 9 * c_out * c_out + c_in * c_out + 4 * c_out
        flops += area * (9 * c_in * c_out + 9 * c_out * c_out + c_in * c_out)
    last = channels << 2
    params += 2 * last + last * classes + classes
    flops += last * classes + classes
    for stage in range(3):
        area, width_ = (height >> stage) * (width >> stage), channels << stage
        for op in ops:
            if op in _KERNELS:
                k = _KERNELS[op]
                params += per_stage * (k * k * width_ * width_ + 2 * width_)
                flops += per_stage * area * k * k * width_ * width_
    return params, flops


def our_counts(cell: Nb201Cell, skeleton: Skeleton, shape=CIFAR, classes=10) -> tuple[int, int]:
    arch = compile_cell(cell, skeleton, shape, classes)
    # Only weighted layers have parameters (skipping the others keeps 15,625 cells fast).
    return (sum(layer_step(arch, i).params for i, layer in enumerate(arch.layers)
                if layer.kind in WEIGHTED), nb201_flops(arch))


def test_the_rule_reproduces_the_benchmarks_parameter_free_network():
    # The benchmark's figures for any cell without convolutions (C=16, N=5, CIFAR-10).
    assert benchmark_counts(("skip_connect",) * 6, 16, 5, CIFAR, 10) == (73_306, 7_783_050)


def test_every_nb201_cell_has_the_benchmarks_params_and_flops():
    """All 15,625 cells, with one cell per stage to stay fast (a stage's cells are the same
    cell in series, so N scales every conv edge's share alike; N = 5 is sampled below)."""
    one_per_stage = Skeleton(stem_channels=16, stacks=3, cells_per_stack=1)
    counts_by_hash: dict[str, tuple[int, int]] = {}
    wrong = []
    for ops in itertools.product(NB201_OPS, repeat=6):
        cell = Nb201Cell(ops)
        ours = our_counts(cell, one_per_stage)
        if ours != benchmark_counts(ops, 16, 1, CIFAR, 10):
            wrong.append(str(cell))
        # Cells sharing a cache key must compile to networks with the same counts.
        assert counts_by_hash.setdefault(cell.hash(), ours) == ours, str(cell)
    assert wrong == []
    # Keys merge exactly the cells that swapping nodes 1 and 2 maps onto each other, which
    # is possible only when edge 1->2 is none: its 5**5 cells form (5**5 + 5**3) / 2
    # classes (5**3 are their own swap), so 15,625 - 3,125 + 1,625 keys.
    assert len(counts_by_hash) == 14_125


def test_sampled_nb201_cells_match_the_benchmark_at_its_full_depth():
    benchmark = Skeleton(stem_channels=16, stacks=3, cells_per_stack=5)
    cells = list(itertools.product(NB201_OPS, repeat=6))
    for ops in cells[::211] + [UNREACHED.edge_ops]:
        assert our_counts(Nb201Cell(ops), benchmark) == benchmark_counts(ops, 16, 5, CIFAR, 10)


def test_an_edge_from_an_unreached_node_learns_a_constant_and_trains():
    arch = compile_cell(UNREACHED, Skeleton(4, 2, 1), (8, 8, 1), 10)
    names = {layer.name: index for index, layer in enumerate(arch.layers)}
    # Edge 2 (node 1 -> node 2) reads node 1, which no live edge reaches: a zero layer.
    conv = names["s0.c0.e2"]
    relu = arch.layers[conv].inputs[0]
    assert arch.layers[arch.layers[relu].inputs[0]].kind == "zero"
    model = Model(arch, seed=3, dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(5, 8, 8, 1))
    logits = model.forward(x, training=True)
    _, dlogits = neural.softmax_cross_entropy(logits, np.array([0, 1, 2, 3, 4]))
    model.backward(dlogits)
    assert np.all(np.isfinite(model.forward(x, training=False)))
    for grads in model.grads.values():
        assert all(np.all(np.isfinite(g)) for g in grads)
    # The conv sees zeros (no weight gradient), its bn's scale multiplies zeros, and its
    # shift is the edge's output, so it is what learns.
    dgamma, dbeta = model.grads[names["s0.c0.e2.bn"]]
    assert not model.grads[conv][0].any() and not dgamma.any() and dbeta.any()


def test_batch_norm_of_a_constant_zero_input_gives_its_shift():
    beta = np.array([0.5, -2.0, 3.0])
    for training in (True, False):
        y, _ = neural.batchnorm_forward(np.zeros((4, 3, 3, 3)), np.array([2.0, 1.0, 7.0]), beta,
                                        np.zeros(3), np.ones(3), training)
        np.testing.assert_array_equal(y, np.broadcast_to(beta, y.shape))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 13), st.integers(1, 13), st.integers(1, 3))
def test_same_max_pooling_matches_tensorflow_padding(height, width, channels):
    x = np.random.default_rng(height * 100 + width).normal(size=(2, height, width, channels))
    y, cache = neural.max_pool_same_forward(x, 2, 2, 2)
    rows, cols = -(-height // 2), -(-width // 2)
    padded = np.pad(x, ((0, 0), (0, 2 * rows - height), (0, 2 * cols - width), (0, 0)),
                    constant_values=-np.inf)
    expected = padded.reshape(2, rows, 2, cols, 2, channels).max(axis=(2, 4))
    np.testing.assert_array_equal(y, expected)
    dx = neural.pool_backward(np.ones_like(y), cache)
    assert dx.shape == x.shape and dx.sum() == y.size   # each output's gradient lands once


def test_nb101_downsamples_odd_sizes_as_the_benchmark():
    cell = Nb101Cell.make([[0, 1, 0], [0, 0, 1], [0, 0, 0]],
                          ["input", "conv3x3-bn-relu", "output"])
    for shape, pooled in (((7, 7, 1), [(4, 4), (2, 2)]), ((1, 41, 1), [(1, 21), (1, 11)]),
                          ((8, 8, 1), [(4, 4), (2, 2), (1, 1), (1, 1)])):
        arch = compile_cell(cell, Skeleton(4, len(pooled) + 1, 1), shape, 10)
        pools = [layer.shape[:2] for layer in arch.layers if layer.kind == "maxpool"]
        assert pools == pooled
        model = Model(arch, seed=0)
        x = np.random.default_rng(1).normal(size=(2,) + shape).astype(np.float32)
        logits = model.forward(x, training=True)
        model.backward(neural.softmax_cross_entropy(logits, np.array([0, 1]))[1])
        assert logits.shape == (2, 10) and np.all(np.isfinite(logits))


def test_nb201_skeletons_too_deep_for_their_input_fail_before_building():
    # The reference's reduction block adds a stride-2 conv (7 -> 4) to a 2x2 average-pool
    # shortcut (7 -> 3): odd sizes cannot be halved.
    for shape, stacks, reported in (((7, 7, 1), 2, "7x7 before reduction block 1"),
                                    ((8, 8, 1), 5, "1x1 before reduction block 4"),
                                    ((1, 20, 1), 4, "5 before reduction block 3")):
        with pytest.raises(EvozeroError, match=reported):
            compile_cell(UNREACHED, Skeleton(4, stacks, 1), shape, 10)
    arch = compile_cell(UNREACHED, Skeleton(4, 4, 1), (8, 8, 1), 10)
    assert arch.layers[arch.layers[-2].inputs[0]].shape == (1, 1, 32)


def test_evozero_run_refuses_a_skeleton_too_deep_for_its_data(tmp_path, capsys):
    out = tmp_path / "runs"
    # NAS-Bench-201 cells on MNIST-1D: 40 -> 20 -> 10 -> 5, which cannot be halved.
    assert main(["run", "experiments/nas_mnist1d_pareto.yaml", "--set", "nas.stacks=5",
                 "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "nas.stacks" in error and "mnist1d (1x40x1)" in error and "at most 4 stacks" in error
    assert not out.exists()


def test_a_config_too_deep_for_its_data_set_fails_naming_the_keys():
    with pytest.raises(EvozeroError) as error:
        load_config("experiments/nas_digits_nb201.yaml", ["nas.stacks=5"])
    message = str(error.value)
    assert "nas.stacks" in message and "digits (8x8x1)" in message and "at most 4" in message
    # The same depth is fine in NAS-Bench-101 ('same' pooling keeps 1x1 at 1x1).
    load_config("experiments/nas_digits_nb101.yaml", ["nas.stacks=5"])


@pytest.mark.parametrize("name", sorted(DATASET_SHAPES))
def test_config_knows_each_data_sets_input_shape(name):
    assert load_dataset(name, seed=0).input_shape == DATASET_SHAPES[name]


def test_an_exported_network_pools_odd_sizes_as_the_model(tmp_path):
    cell = Nb101Cell.make([[0, 1, 1], [0, 0, 1], [0, 0, 0]],
                          ["input", "conv3x3-bn-relu", "output"])
    model = Model(compile_cell(cell, Skeleton(4, 3, 1), (7, 7, 1), 10), seed=2)
    x = np.random.default_rng(3).normal(size=(4, 7, 7, 1)).astype(np.float32)
    model.forward(x, training=True)           # running statistics move off their start
    path, _ = export_network(model, "digits", 0.0, 1.0, str(tmp_path / "odd.py"), "Odd.")
    spec = importlib.util.spec_from_file_location("odd_net", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    np.testing.assert_allclose(module.logits(x * 16.0), model.forward(x, training=False),
                               rtol=1e-4, atol=1e-5)


def test_a_network_saved_by_the_earlier_compile_rule_still_exports(tmp_path):
    """Earlier versions left out edges from unreached nodes; a run directory they wrote
    keeps its best network's weights, which export rebuilds with that rule."""
    config = nas_config()
    run, _ = run_quietly(config, tmp_path)
    run.rundir.write_best(str(UNREACHED))
    evaluator = Evaluator(config.nas, config.seed)
    earlier = compile_cell(UNREACHED, replace(evaluator.skeleton, unreached_edges=False),
                           evaluator.data.input_shape, evaluator.data.classes)
    now = evaluator.architecture(UNREACHED)
    convs = [sum(layer.kind == "conv" for layer in arch.layers) for arch in (earlier, now)]
    assert convs[0] < convs[1]
    save_network(run.rundir, Model(earlier, seed=5).named_state())
    module = tmp_path / "earlier.py"
    assert main(["export", str(run.rundir.path), "--python", str(module)]) == 0
    assert module.read_text().count("('conv',") == convs[0]


def tiny_network_logits(model: Model, cell: Nb201Cell, skeleton: Skeleton,
                        x: np.ndarray) -> np.ndarray:
    """Inference logits of NAS-Bench-201's TinyNetwork written from its definition, with
    ``model``'s weights by layer name: every edge runs (``none`` as zeros times its
    input), a node sums all its incoming edges, reduction blocks add a ReLU-conv-BN pair
    to an average-pooled, 1x1-convolved shortcut."""
    weights = {layer.name: model.weights[i] + model.stats.get(i, [])
               for i, layer in enumerate(model.arch.layers) if layer.name}

    def relu_conv_bn(a, name, size, stride=1):
        pad = (size // 2, size // 2)
        a = _conv(np.maximum(a, 0.0), weights[name][0], (size, size), stride, pad)
        return _bn(a, *weights[name + ".bn"])

    a = _bn(_conv(x, weights["stem"][0], (3, 3), 1, (1, 1)), *weights["stem.bn"])
    for stage in range(skeleton.stacks):
        if stage:
            scope = f"r{stage}"
            branch = relu_conv_bn(relu_conv_bn(a, scope + ".a", 3, 2), scope + ".b", 3)
            shortcut = _conv(_avgpool(a, (2, 2), 2, (0, 0)), weights[scope + ".shortcut"][0],
                             (1, 1), 1, (0, 0))
            a = branch + shortcut
        for index in range(skeleton.cells_per_stack):
            nodes, edges = [a], iter(enumerate(cell.edge_ops))
            for node in range(1, 4):
                total = np.zeros_like(a)
                for source in range(node):
                    number, op = next(edges)
                    value = nodes[source]
                    if op == "none":
                        total = total + value * 0.0
                    elif op == "skip_connect":
                        total = total + value
                    elif op == "avg_pool_3x3":
                        total = total + _avgpool(value, (3, 3), 1, (1, 1))
                    else:
                        total = total + relu_conv_bn(value, f"s{stage}.c{index}.e{number}",
                                                     _KERNELS[op])
                nodes.append(total)
            a = nodes[-1]
    a = np.maximum(_bn(a, *weights["head.bn"]), 0.0).mean(axis=(1, 2))
    return a @ weights["classifier"][0] + weights["classifier"][1]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(NB201_OPS), min_size=6, max_size=6))
@example(list(UNREACHED.edge_ops))
def test_nb201_networks_compute_what_the_benchmarks_network_computes(ops):
    cell, skeleton = Nb201Cell(tuple(ops)), Skeleton(4, 2, 2)
    model = Model(compile_cell(cell, skeleton, (8, 8, 1), 10), seed=4, dtype=np.float64)
    x = np.random.default_rng(5).normal(size=(6, 8, 8, 1))
    model.forward(x, training=True)            # running statistics move off their start
    np.testing.assert_allclose(model.forward(x, training=False),
                               tiny_network_logits(model, cell, skeleton, x),
                               rtol=1e-9, atol=1e-12)
