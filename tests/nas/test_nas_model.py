"""Compiled networks: channel rules, shapes, training, weight inheritance, export."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from evozero.nas.reports.export import export_network
from evozero.nas.spaces.cells import NB201_OPS, Nb101Cell, Nb201Cell
from evozero.nas.spaces.skeleton import Skeleton, compile_cell, vertex_channels
from evozero.nas.training.data import load_dataset
from evozero.nas.training.model import Model
from evozero.nas.training.train import TrainSettings, accuracy, train
from ops import neural

pytestmark = pytest.mark.nas

CHAIN = Nb101Cell.make([[0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]],
                       ["input", "conv3x3-bn-relu", "maxpool3x3", "output"])
TINY = Skeleton(stem_channels=4, stacks=2, cells_per_stack=1)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def test_output_channels_split_over_feeders_as_in_nasbench101():
    # 3 vertices feed the output: 128 = 43 + 43 + 42; vertex 1 feeds only vertex 2 and
    # takes its count.
    matrix = np.zeros((6, 6), dtype=int)
    for i, j in [(0, 1), (1, 2), (0, 3), (0, 4), (2, 5), (3, 5), (4, 5)]:
        matrix[i, j] = 1
    assert vertex_channels(matrix, 64, 128) == [64, 43, 43, 43, 42, 128]


def test_nb101_cell_layers_project_truncate_concat_and_add():
    # 0->1->2->out plus 0->out: vertex 1 is projected from the input, the output is
    # vertex 2 (only feeder) plus a projection of the input.
    arch = compile_cell(CHAIN, Skeleton(8, 1, 1), (8, 8, 1), 10)
    kinds = [layer.kind for layer in arch.layers]
    assert kinds == ["input", "conv", "bn", "relu",          # stem
                     "conv", "bn", "relu",                   # projection into vertex 1
                     "conv", "bn", "relu",                   # vertex 1: conv3x3
                     "maxpool",                              # vertex 2
                     "conv", "bn", "relu", "add",            # input projection + output
                     "gap", "dense"]
    assert arch.layers[7].kernel == (3, 3) and arch.layers[4].kernel == (1, 1)
    assert arch.layers[-1].shape == (1, 1, 10)


def test_skeletons_reduce_and_double_channels_in_2d_and_1d():
    cell = Nb201Cell.parse("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|"
                           "none~1|nor_conv_1x1~2|")
    for shape, final in (((8, 8, 1), (2, 2, 16)), ((1, 40, 1), (1, 10, 16))):
        arch = compile_cell(cell, Skeleton(4, 3, 1), shape, 10)
        gap = arch.layers[-2]
        assert arch.layers[gap.inputs[0]].shape == final
    nb101 = compile_cell(CHAIN, Skeleton(4, 2, 1), (1, 40, 1), 10)
    assert all(layer.kernel[0] == 1 for layer in nb101.layers)


@settings(max_examples=20)
@given(st.lists(st.sampled_from(NB201_OPS), min_size=6, max_size=6))
def test_every_nb201_cell_runs_forward_and_backward(ops):
    arch = compile_cell(Nb201Cell(tuple(ops)), TINY, (8, 8, 1), 10)
    model = Model(arch, seed=1)
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 1)).astype(np.float32)
    logits = model.forward(x, training=True)
    assert logits.shape == (3, 10) and np.all(np.isfinite(logits))
    _, dlogits = neural.softmax_cross_entropy(logits, np.array([0, 1, 2]))
    model.backward(dlogits)
    grads = model.gradients()
    assert [g.shape for g in grads] == [p.shape for p in model.parameters()]


# Every NB-201 op: ReLU-conv-BN edges, average pooling, skip and none, and the residual
# reduction block between the stages.
NB201_ALL_OPS = Nb201Cell.parse("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|"
                                "+|skip_connect~0|nor_conv_3x3~1|none~2|")


# Two 3x3 convolutions leave node 0 (one group); in the second cell node 1 is dead, so one
# member of the group reaches no loss.
NB201_SIBLINGS = Nb201Cell.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
                                 "+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")
NB201_DEAD_SIBLING = Nb201Cell.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|"
                                     "+|skip_connect~0|none~1|nor_conv_3x3~2|")


@pytest.mark.parametrize("cell, skeleton", [(CHAIN, Skeleton(3, 1, 1)),
                                            (NB201_ALL_OPS, Skeleton(2, 2, 1)),
                                            (NB201_SIBLINGS, Skeleton(2, 2, 1)),
                                            (NB201_DEAD_SIBLING, Skeleton(2, 2, 1))])
def test_network_gradient_matches_finite_differences(cell, skeleton):
    # The whole graph (projections, add, pooling, gap, dense, batch statistics) against
    # central differences on a few weights of every layer, in float64.
    arch = compile_cell(cell, skeleton, (4, 4, 1), 3)
    model = Model(arch, seed=2, dtype=np.float64)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 4, 4, 1))
    y = np.array([0, 1, 2, 1, 0])

    def loss() -> float:
        # Batch statistics, but the running averages must not drift between probes.
        saved = [s.copy() for stats in model.stats.values() for s in stats]
        value = neural.softmax_cross_entropy(model.forward(x, training=True), y)[0]
        for target, source in zip([s for stats in model.stats.values() for s in stats], saved):
            target[...] = source
        return float(value)

    logits = model.forward(x, training=True)
    model.backward(neural.softmax_cross_entropy(logits, y)[1])
    for param, grad in zip(model.parameters(), model.gradients()):
        flat, gflat = param.reshape(-1), grad.reshape(-1)
        for k in rng.choice(flat.size, size=min(3, flat.size), replace=False):
            keep = flat[k]
            flat[k] = keep + 1e-6
            up = loss()
            flat[k] = keep - 1e-6
            down = loss()
            flat[k] = keep
            numeric = (up - down) / 2e-6
            assert abs(numeric - gflat[k]) <= 1e-4 * max(abs(numeric), abs(gflat[k])) + 1e-8


@settings(max_examples=15)
@given(st.lists(st.sampled_from(NB201_OPS), min_size=6, max_size=6).map(tuple))
@example(NB201_SIBLINGS.edge_ops)
@example(NB201_DEAD_SIBLING.edge_ops)
def test_sibling_convolutions_and_duplicate_relus_change_no_result(ops):
    arch = compile_cell(Nb201Cell(ops), Skeleton(3, 2, 2), (6, 6, 2), 4)
    if ops in (NB201_SIBLINGS.edge_ops, NB201_DEAD_SIBLING.edge_ops):
        assert arch.sibling_convs() and arch.duplicate_relus()
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(5, 6, 6, 2)), np.array([0, 1, 2, 3, 1])
    merged = Model(arch, seed=1, dtype=np.float64)
    plain = Model(arch, seed=1, dtype=np.float64, merge=False)
    for model in (merged, plain):
        model.backward(neural.softmax_cross_entropy(model.forward(x, training=True), y)[1])
    np.testing.assert_allclose(merged.forward(x, training=False),
                               plain.forward(x, training=False), rtol=1e-12, atol=1e-12)
    for got, expected in zip(merged.gradients(), plain.gradients()):
        assert got.shape == expected.shape and got.flags.c_contiguous
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_loss_falls_and_accuracy_rises_on_digits(digits):
    arch = compile_cell(CHAIN, Skeleton(8, 2, 1), digits.input_shape, digits.classes)
    model = Model(arch, seed=0)
    before = accuracy(model, digits.valid_x, digits.valid_y)
    result = train(model, digits, TrainSettings(epochs=3, learning_rate=0.05), seed=0)
    assert result.losses[-1] < 0.6 * result.losses[0]
    assert result.valid_accuracy > max(0.6, before + 0.3)
    assert result.steps == 3 * -(-len(digits.train_y) // 64)


def test_training_is_a_function_of_its_seed(digits):
    arch = compile_cell(CHAIN, TINY, digits.input_shape, digits.classes)
    settings_ = TrainSettings(epochs=1)
    first = train(Model(arch, seed=4), digits, settings_, seed=9)
    second = train(Model(arch, seed=4), digits, settings_, seed=9)
    assert first.losses == second.losses and first.valid_accuracy == second.valid_accuracy


def test_hurdle_stops_after_the_first_epoch(digits):
    arch = compile_cell(CHAIN, TINY, digits.input_shape, digits.classes)
    seen = []
    result = train(Model(arch, seed=0), digits, TrainSettings(epochs=3), seed=0,
                   hurdle=lambda acc: seen.append(acc) or True)
    assert result.stopped and result.epochs == 1 and len(seen) == 1
    assert result.first_epoch_accuracy == seen[0]


def test_child_inherits_the_weights_of_unchanged_layers():
    parent_cell = Nb201Cell.parse("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|"
                                  "none~1|nor_conv_3x3~2|")
    child_cell = Nb201Cell.parse("|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|"
                                 "none~1|nor_conv_3x3~2|")
    parent = Model(compile_cell(parent_cell, TINY, (8, 8, 1), 10), seed=1)
    child = Model(compile_cell(child_cell, TINY, (8, 8, 1), 10), seed=2)
    state = parent.named_state()
    taken = child.inherit(state)
    child_state = child.named_state()
    # Edge 1 changed op (its conv is gone); everything the child has, it took.
    assert taken == len(child_state)
    assert not any(name.endswith(".e1") for name in child_state)
    for name, arrays in child_state.items():
        for mine, theirs in zip(arrays, state[name]):
            np.testing.assert_array_equal(mine, theirs)


def test_exported_module_reproduces_the_predictions(tmp_path, digits):
    arch = compile_cell(CHAIN, TINY, digits.input_shape, digits.classes)
    model = Model(arch, seed=0)
    train(model, digits, TrainSettings(epochs=1), seed=0)
    path, weights = export_network(model, "digits", digits.mean, digits.std,
                                   str(tmp_path / "net.py"), "A test network.")
    spec = importlib.util.spec_from_file_location("exported_net", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    raw = (digits.test_x.astype(np.float64) * digits.std + digits.mean) * 16.0
    np.testing.assert_allclose(module.logits(raw), model.predict(digits.test_x), rtol=1e-3,
                               atol=1e-3)
    assert np.array_equal(module.predict(raw), model.predict(digits.test_x).argmax(axis=1))


def test_export_runtime_network_matches_the_model(digits):
    """The runtime module itself (not only its copy in a generated file) runs the network."""
    from evozero.nas.reports.export_runtime import Network
    arch = compile_cell(CHAIN, TINY, digits.input_shape, digits.classes)
    model = Model(arch, seed=0)
    train(model, digits, TrainSettings(epochs=1), seed=0)
    layers = [(layer.kind, layer.inputs, layer.shape[2], layer.kernel, layer.stride, layer.pad)
              for layer in arch.layers]
    weights = {index: [np.asarray(a, dtype=np.float64)
                       for a in model.weights[index] + model.stats.get(index, [])]
               for index in model.weights}
    network = Network(arch.input_shape, 1.0, 0.0, 1.0, layers, weights)
    np.testing.assert_allclose(network.logits(digits.test_x), model.predict(digits.test_x),
                               rtol=1e-3, atol=1e-3)
