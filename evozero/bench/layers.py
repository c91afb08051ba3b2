"""Training-step speed of the ops.neural layers on a small convolutional network.

The network (8x8x1 inputs, batch 64 and C = 16 channels by default; ``--size 32
--in-channels 3`` for CIFAR-sized inputs): conv3x3 -> C + BN +
ReLU, conv3x3 C->C + BN + ReLU, maxpool 3x3 stride 1, conv1x1 C->C + BN + ReLU, sum of
the last two stages, global average pooling, dense to 10 classes, softmax cross-entropy and
SGD with Nesterov momentum. Prints images/s (median step time) and where a step's time
goes. With ``--torch`` the same step in PyTorch (one thread, NCHW and channels-last) runs
in interleaved rounds and the ratio of the speeds is printed; torch is only needed then.
BLAS gets one thread (threadpoolctl), and ``retain_freed_memory`` is on (see its docstring).

    evozero bench layers [--quick]
    python -m evozero.bench.layers [--batch 64] [--channels 16] [--size 8] [--in-channels 1]
                                   [--steps 2000] [--torch] [--default-malloc]
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from ops.neural import (
    add_forward,
    bn_relu_backward,
    bn_relu_forward,
    conv_backward,
    conv_forward,
    dense_backward,
    dense_forward,
    gap_backward,
    gap_forward,
    he_normal,
    pool_backward,
    pool_forward,
    retain_freed_memory,
    sgd_step,
    softmax_cross_entropy,
)

CLASSES = 10
LR, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 1e-4


class Stopwatch:
    """Accumulates the CPU time between consecutive laps under each lap's label; when
    disabled, laps cost nothing (a lap reads a clock, a few microseconds in a VM)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.times: dict[str, float] = defaultdict(float)
        self.last = time.process_time() if enabled else 0.0

    def lap(self, label: str) -> None:
        if self.enabled:
            now = time.process_time()
            self.times[label] += now - self.last
            self.last = now


class NumpyNet:
    """The benchmark network on ops.neural, its parameters and optimiser state."""

    def __init__(self, rng: np.random.Generator, channels: int, in_channels: int) -> None:
        c = channels
        self.params = {
            "w1": he_normal(rng, (3, 3, in_channels, c), 9 * in_channels),
            "w2": he_normal(rng, (3, 3, c, c), 9 * c),
            "w3": he_normal(rng, (1, 1, c, c), c), "wd": he_normal(rng, (c, CLASSES), c),
            "bd": np.zeros(CLASSES, np.float32)}
        for k in "123":
            self.params["g" + k] = np.ones(c, np.float32)
            self.params["b" + k] = np.zeros(c, np.float32)
        self.running = {k: (np.zeros(c, np.float32), np.ones(c, np.float32)) for k in "123"}
        self.velocity = {k: np.zeros_like(v) for k, v in self.params.items()}

    def _conv_bn_relu(self, x, k, pad, watch):
        p = self.params
        y, conv_cache = conv_forward(x, p["w" + k], 1, pad, pad)
        watch.lap(f"conv{k} fwd")
        y, bn_cache = bn_relu_forward(y, p["g" + k], p["b" + k], *self.running[k], True)
        watch.lap(f"bn_relu{k} fwd")
        return y, (conv_cache, bn_cache)

    def _conv_bn_relu_backward(self, dy, k, caches, grads, watch):
        conv_cache, bn_cache = caches
        dy, grads["g" + k], grads["b" + k] = bn_relu_backward(dy, bn_cache)
        watch.lap(f"bn_relu{k} bwd")
        # The first convolution reads the images, which need no gradient.
        dx, grads["w" + k] = conv_backward(dy, conv_cache, input_gradient=k != "1")
        watch.lap(f"conv{k} bwd")
        return dx

    def step(self, x: np.ndarray, labels: np.ndarray, watch: Stopwatch) -> float:
        """One forward, backward and SGD step; returns the loss."""
        p = self.params
        a, cache1 = self._conv_bn_relu(x, "1", 1, watch)
        b, cache2 = self._conv_bn_relu(a, "2", 1, watch)
        pooled, pool_cache = pool_forward(b, "max", 3, 3, 1, 1, 1)
        watch.lap("maxpool fwd")
        c, cache3 = self._conv_bn_relu(pooled, "3", 0, watch)
        total = add_forward([b, c])
        watch.lap("add fwd")
        features, gap_cache = gap_forward(total)
        watch.lap("gap fwd")
        logits, dense_cache = dense_forward(features, p["wd"], p["bd"])
        watch.lap("dense fwd")
        loss, dlogits = softmax_cross_entropy(logits, labels)
        watch.lap("loss")
        grads = {}
        dfeatures, grads["wd"], grads["bd"] = dense_backward(dlogits, dense_cache)
        watch.lap("dense bwd")
        dtotal = gap_backward(dfeatures, gap_cache)
        watch.lap("gap bwd")
        dpooled = self._conv_bn_relu_backward(dtotal, "3", cache3, grads, watch)
        db = pool_backward(dpooled, pool_cache)
        db += dtotal  # the sum passes its gradient to b unchanged
        watch.lap("maxpool bwd")
        da = self._conv_bn_relu_backward(db, "2", cache2, grads, watch)
        self._conv_bn_relu_backward(da, "1", cache1, grads, watch)
        for name, param in p.items():
            sgd_step(param, grads[name], self.velocity[name], LR, MOMENTUM, WEIGHT_DECAY, True)
        watch.lap("sgd")
        return loss


def torch_step_factory(batch: int, channels: int, size: int, in_channels: int,
                       channels_last: bool):
    """A function running one training step of the network in PyTorch (one thread)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.set_num_threads(1)

    class TorchNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            c = channels
            self.c1 = nn.Conv2d(in_channels, c, 3, padding=1, bias=False)
            self.b1 = nn.BatchNorm2d(c)
            self.c2, self.b2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
            self.c3, self.b3 = nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c)
            self.fc = nn.Linear(c, CLASSES)

        def forward(self, x):
            a = F.relu(self.b1(self.c1(x)))
            b = F.relu(self.b2(self.c2(a)))
            c = F.relu(self.b3(self.c3(F.max_pool2d(b, 3, 1, 1))))
            return self.fc((b + c).mean((2, 3)))

    # Any: torch's stubs leave memory_format out of Module.to's overloads.
    net: Any = TorchNet()
    x = torch.randn(batch, in_channels, size, size)
    labels = torch.randint(0, CLASSES, (batch,))
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    optimiser = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM,
                                weight_decay=WEIGHT_DECAY, nesterov=True)

    def step() -> None:
        optimiser.zero_grad()
        F.cross_entropy(net(x), labels).backward()
        optimiser.step()

    return step


def time_steps(step, count: int) -> tuple[list[float], list[float]]:
    """CPU and wall time of each of ``count`` calls of ``step``. CPU time leaves out the
    time other processes hold the core, so it is the steadier measure on a busy machine."""
    cpu, wall = [], []
    for _ in range(count):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        step()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return cpu, wall


def main(argv: Sequence[str] | None = None) -> None:
    """Measure and print, with the options in ``argv`` (the command line by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--size", type=int, default=8, help="input height and width")
    parser.add_argument("--in-channels", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds with --torch")
    parser.add_argument("--torch", action="store_true", help="compare with PyTorch on one thread")
    parser.add_argument("--default-malloc", action="store_true",
                        help="skip retain_freed_memory, to see what it buys")
    args = parser.parse_args(argv)
    # The process may have started BLAS's thread pool already (the CLI imports numpy first).
    with threadpool_limits(1):
        _measure(args)


def _measure(args: argparse.Namespace) -> None:
    if not args.default_malloc:
        # Process-wide, so the PyTorch steps of the same process profit from it as well.
        retain_freed_memory()

    rng = np.random.default_rng(0)
    net = NumpyNet(rng, args.channels, args.in_channels)
    x = rng.standard_normal((args.batch, args.size, args.size, args.in_channels),
                            dtype=np.float32)
    labels = rng.integers(0, CLASSES, args.batch)
    contenders = {"ops.neural": lambda: net.step(x, labels, Stopwatch(enabled=False))}
    if args.torch:
        try:
            shape = (args.batch, args.channels, args.size, args.in_channels)
            contenders["torch NCHW"] = torch_step_factory(*shape, False)
            contenders["torch channels-last"] = torch_step_factory(*shape, True)
        except ImportError:
            raise SystemExit("--torch needs PyTorch installed (pip install torch); "
                             "ops.neural itself never imports it") from None
    for step in contenders.values():
        time_steps(step, 50)  # compile or load kernels, warm caches and allocators
    rounds = args.rounds if args.torch else 1
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    wall: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, step in contenders.items():
            round_cpu, round_wall = time_steps(step, max(args.steps // rounds, 1))
            cpu[name] += round_cpu
            wall[name] += round_wall

    print(f"batch {args.batch}, {args.size}x{args.size}x{args.in_channels} inputs, "
          f"{args.channels} channels, "
          f"{len(cpu['ops.neural'])} steps each, images/s from the median step")
    speeds = {name: args.batch / float(np.median(times)) for name, times in cpu.items()}
    for name in contenders:
        print(f"{name:>22}: {speeds[name]:9.0f} images/s CPU time, "
              f"{args.batch / float(np.median(wall[name])):9.0f} wall")
    if args.torch:
        best = max(speeds["torch NCHW"], speeds["torch channels-last"])
        print(f"ratio ops.neural / best torch (CPU time): {speeds['ops.neural'] / best:.2f}")

    laps = defaultdict(list)
    for _ in range(max(args.steps // 4, 1)):
        watch = Stopwatch(enabled=True)
        net.step(x, labels, watch)
        for label, seconds in watch.times.items():
            laps[label].append(seconds)
    step_time = float(np.median(cpu["ops.neural"]))
    print("\nops.neural step breakdown (median CPU time per layer):")
    for label, lap_seconds in laps.items():
        median = float(np.median(lap_seconds))
        print(f"{label:>14}: {median * 1e6:7.1f} us  {100 * median / step_time:5.1f} %")


if __name__ == "__main__":
    main()
