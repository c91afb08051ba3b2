"""The PyTorch twin of a supernet network computes what ours computes: same weights, same
architecture parameters, same logits and architecture gradients (float32), so the
benchmark's supernet rows time the same work on both sides."""
from __future__ import annotations

import numpy as np
import pytest

from evozero.bench.nas_torch import torch_twin
from evozero.nas.spaces.skeleton import Skeleton
from evozero.nas.supernet.network import (
    ALL_OPS,
    Supernet,
    edge_gradients,
    menu_of,
    set_mixing,
    softmax,
    softmax_backward,
)
from ops import neural

torch = pytest.importorskip("torch")

# The MNIST-1D supernet of the benchmark's rows.
SKELETON, SHAPE = Skeleton(8, 2, 1), (1, 40, 1)
# Edges 0 and 2 run none: mixed, they are mix layers with no inputs to weigh (zeros).
CELL = (0, 2, 0, 3, 1, 4)


def _setup(menu, mixed):
    net = Supernet(SKELETON, SHAPE, 10, seed=5)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((16,) + SHAPE).astype(np.float32)
    y = rng.integers(0, 10, 16)
    alphas = rng.standard_normal((6, 5))
    model = net.model(menu, mixed)
    set_mixing(model, softmax(alphas))
    twin = torch_twin(model, alphas, set(net.weights) - set(net.trained))
    return model, twin, alphas, x, y


def _relative(ours: np.ndarray, theirs) -> float:
    return float(np.abs(ours - theirs.detach().numpy()).max() / np.abs(ours).max())


@pytest.mark.parametrize("menu, mixed", [(ALL_OPS, True), (menu_of(CELL), True),
                                         (menu_of(CELL), False)],
                         ids=["all-ops", "mixed-with-none", "single-path"])
def test_torch_twin_of_a_supernet_gives_our_logits(menu, mixed):
    model, twin, _, x, _ = _setup(menu, mixed)
    logits = model.forward(x, training=True)
    assert np.abs(logits).max() > 0.1
    assert _relative(logits, twin(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))) < 1e-5


def test_torch_twin_of_the_mixture_gives_our_architecture_gradient():
    model, twin, alphas, x, y = _setup(ALL_OPS, True)
    _, dlogits = neural.softmax_cross_entropy(model.forward(x, training=True), y)
    model.backward(dlogits)
    ours = softmax_backward(softmax(alphas), edge_gradients(model))
    loss = torch.nn.functional.cross_entropy(
        twin(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())), torch.from_numpy(y))
    loss.backward()
    assert _relative(ours, twin.alphas.grad) < 1e-5
