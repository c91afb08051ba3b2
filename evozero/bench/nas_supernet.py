"""Section 6 of ``evozero bench nas``: one training step of the MNIST-1D supernet of
``experiments/nas_supernet/supernet_search.yaml`` (stem 8, 2 stacks of 1 cell, inputs
1x40x1, 10 classes, batch 64, the page's SGD and Adam settings) against the same supernet
in PyTorch (:func:`~evozero.bench.nas_torch.torch_twin`, same weights and architecture
parameters), one thread each, steps interleaved, median CPU time per step.

- **DARTS, first order**: ours is :meth:`Darts.step` (a weight step on the soft mixture
  of a training batch: SGD with Nesterov momentum, weight decay, the gradient's norm
  clipped; then an architecture step on a validation batch: Adam on the alphas); the
  twin makes the same two forward and backward passes and the same two updates.
- **RSPS**: the weight step of one uniformly drawn cell (the single-path network), ours
  through :meth:`SupernetSearch.train_on`, the twin on the same cell's network.

Images/s counts the training batch of a step (a DARTS step also reads a validation batch
of the same size); the ratio is ours / torch.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from evozero.bench.nas_torch import torch_twin
from evozero.config import Nas, load_config
from evozero.nas.devices.calibrate import interleaved_median_seconds
from evozero.nas.spaces.cells import NB201_OPS
from evozero.nas.supernet.differentiable import Darts
from evozero.nas.supernet.network import ALL_OPS, menu_of
from evozero.nas.supernet.search import SupernetSearch
from evozero.nas.supernet.uniform import Rsps
from evozero.nas.training.data import Dataset
from evozero.nas.training.model import Model
from ops import neural

PAGE = (Path(__file__).resolve().parent.parent.parent / "experiments" / "nas_supernet"
        / "supernet_search.yaml")
SHAPE, CLASSES = (1, 40, 1), 10     # the published MNIST-1D's sequences and classes


def _page_nas(overrides: list[str]) -> Nas:
    nas = load_config(PAGE, overrides).nas
    assert nas is not None     # the page is a cell search
    return nas


def _data(batch: int) -> Dataset:
    # Random inputs of MNIST-1D's shape: a step's cost does not depend on the values.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2 * batch,) + SHAPE, dtype=np.float32)
    y = rng.integers(0, CLASSES, 2 * batch)
    return Dataset("mnist1d-shaped", x[:batch], y[:batch], x[batch:], y[batch:],
                   x[:0], y[:0], CLASSES, 0.0, 1.0)


def _nchw(torch: Any, x: np.ndarray) -> Any:
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


def _twin_training(torch: Any, search: SupernetSearch, model: Model,
                   alphas: np.ndarray | None) -> tuple[Any, Callable[[Any, Any], None]]:
    """The twin of ``model`` and its weight step on a batch: SGD as the search's optimizer
    (decay on convolution and dense weights only), the gradient's norm clipped."""
    s = search.settings
    net = search.supernet
    twin = torch_twin(model, alphas, set(net.weights) - set(net.trained))
    named = list(twin.ops.named_parameters())
    weights = [p for _, p in named]
    decayed = [p for name, p in named if name.endswith("weight") and p.ndim > 1]
    plain = [p for name, p in named if not (name.endswith("weight") and p.ndim > 1)]
    optimizer = torch.optim.SGD([{"params": decayed, "weight_decay": s.weight_decay},
                                 {"params": plain, "weight_decay": 0.0}],
                                lr=s.learning_rate, momentum=s.momentum, nesterov=s.nesterov)

    def weight_step(x: Any, y: Any) -> None:
        twin.zero_grad()
        torch.nn.functional.cross_entropy(twin(x), y).backward()
        torch.nn.utils.clip_grad_norm_(weights, s.grad_clip)
        optimizer.step()

    return twin, weight_step


def darts_steps(torch: Any) -> dict[str, Callable[[], object]]:
    """Ours and (when ``torch`` is the module) the twin's DARTS first-order step."""
    nas = _page_nas([])
    data = _data(nas.supernet.batch_size)
    search = Darts(nas, data, seed=0, second_order=False)
    x, y, lr = data.train_x, data.train_y, search.settings.learning_rate
    steps: dict[str, Callable[[], object]] = {"ours": lambda: search.step(x, y, lr, None)}
    if torch is None:
        return steps
    twin, weight_step = _twin_training(torch, search, search.supernet.model(ALL_OPS, True),
                                       search.alphas)
    adam = torch.optim.Adam([twin.alphas], lr=search.arch_lr, betas=search.betas,
                            eps=search.eps, weight_decay=search.arch_decay)
    tx, ty = _nchw(torch, x), torch.from_numpy(y)
    vx, vy = _nchw(torch, data.valid_x), torch.from_numpy(data.valid_y)

    def step() -> None:
        weight_step(tx, ty)
        twin.zero_grad()
        torch.nn.functional.cross_entropy(twin(vx), vy).backward()
        adam.step()

    steps["torch"] = step
    return steps


def rsps_steps(torch: Any) -> tuple[str, dict[str, Callable[[], object]]]:
    """The cell RSPS draws first, ours and (with ``torch``) the twin's weight step on it."""
    nas = _page_nas(["strategy=rsps"])
    data = _data(nas.supernet.batch_size)
    search = Rsps(nas, data, seed=0)
    ops = search.uniform_ops(None)
    menu = menu_of(ops)
    x, y, lr = data.train_x, data.train_y, search.settings.learning_rate
    steps: dict[str, Callable[[], object]] = {"ours": lambda: search.train_on(menu, x, y, lr)}
    if torch is not None:
        _, weight_step = _twin_training(torch, search, search.supernet.model(menu, False),
                                        None)
        tx, ty = _nchw(torch, x), torch.from_numpy(y)
        steps["torch"] = lambda: weight_step(tx, ty)
    return "|".join(NB201_OPS[op] for op in ops), steps


def supernet_speed(repeats: int, torch: Any = None) -> list[dict[str, Any]]:
    """Training images/s of a DARTS and an RSPS step, ours and (when ``torch`` is the
    imported module) the twin's, steps interleaved; call it with BLAS limited to one
    thread."""
    if torch is not None:
        torch.set_num_threads(1)
    neural.retain_freed_memory()
    batch = _page_nas([]).supernet.batch_size
    cell, rsps = rsps_steps(torch)
    rows = []
    for label, steps, extra in (
            (f"DARTS 1st order step, batch {batch} (+ valid {batch})", darts_steps(torch), {}),
            (f"RSPS step, batch {batch}", rsps, {"cell": cell})):
        for step in steps.values():    # compile or load kernels, warm the allocators
            step()
        # CPU time of the process, as section 1 measures (see training_speed there).
        seconds = dict(zip(steps, interleaved_median_seconds(
            list(steps.values()), [1] * len(steps), repeats, clock=time.process_time)))
        row = {"case": label, "ours": batch / seconds["ours"], **extra}
        if torch is not None:
            row.update(torch=batch / seconds["torch"], ratio=seconds["torch"] / seconds["ours"])
        rows.append(row)
    return rows
