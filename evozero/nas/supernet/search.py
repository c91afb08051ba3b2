"""What every supernet strategy shares: the supernet and its optimizer, the data order, an
epoch of weight steps, scoring a cell with the shared weights, few-shot sub-supernets,
and the whole state as plain data.

Weights train on the training split; architecture parameters, controllers and every
score use the validation split (NAS-Bench-201 searches CIFAR-10 the same way, with two
halves of its training set); the test split is never read. Three random streams, all
from the run's seed: the weights' initialisation, the order of the batches, and the
architecture draws (so one can change without the others).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from evozero.config import Nas
from evozero.errors import EvozeroError
from evozero.nas.spaces.skeleton import Skeleton
from evozero.nas.supernet.network import (
    EDGES,
    OPS,
    Menu,
    Supernet,
    WeightOptimizer,
    batch_accuracy,
    epoch_learning_rate,
    loss_and_gradients,
    menu_of,
)
from evozero.nas.table.store import cell_ops, ops_index
from evozero.nas.training.data import Dataset
from evozero.runs import stopflag


class SupernetSearch(ABC):
    """One strategy's supernet training and derivation (see the module docstring). A
    subclass gives one training step (:meth:`step`), the cell it derives
    (:meth:`derive`) and its own state; ``history`` gets one record per epoch."""

    def __init__(self, nas: Nas, data: Dataset, seed: int) -> None:
        self.nas = nas
        self.settings = nas.supernet
        self.data = data
        streams = np.random.SeedSequence([seed, 201]).spawn(3)
        skeleton = Skeleton(nas.stem_channels, nas.stacks, nas.cells_per_stack)
        self.supernet = Supernet(skeleton, data.input_shape, data.classes,
                                 int(streams[0].generate_state(1)[0]))
        s = self.settings
        self.optimizer = WeightOptimizer(self.supernet, s.momentum, s.weight_decay,
                                         s.nesterov, s.grad_clip, s.unused_ops)
        self.batches = np.random.default_rng(streams[1])
        self.sampler = np.random.default_rng(streams[2])
        self.epoch = 0                  # epochs trained (one-shot, then few-shot ones)
        self.steps = 0
        self.history: list[dict[str, Any]] = []
        self._valid_order = np.zeros(0, dtype=np.int64)
        self._valid_at = 0
        # Few-shot: the weights (and momentum) of each op's sub-supernet once split, and
        # the one-shot weights they started from.
        self.shots: list[dict[str, Any]] = []
        self.one_shot: dict[str, list[np.ndarray]] | None = None

    # -- training -----------------------------------------------------------------------

    @property
    def total_epochs(self) -> int:
        """One-shot epochs plus, with few-shot NAS, every sub-supernet's."""
        few = self.settings.few_shot
        return self.settings.epochs + (OPS * few.epochs if few.edge is not None else 0)

    def train_epoch(self) -> dict[str, Any]:
        """One epoch of weight steps (and the method's architecture steps); returns and
        keeps its history record. A few-shot epoch trains one sub-supernet."""
        s = self.settings
        shot = None
        if self.epoch >= s.epochs:       # few-shot: sub-supernet k trains its epochs
            shot, epoch = divmod(self.epoch - s.epochs, s.few_shot.epochs)
            epochs = s.few_shot.epochs
            self._enter_shot(shot)
        else:
            epoch, epochs = self.epoch, s.epochs
        lr = epoch_learning_rate(epoch, epochs, s.learning_rate, s.min_learning_rate)
        train_x, train_y = self.data.train_x, self.data.train_y
        order = self.batches.permutation(len(train_y))
        losses, rights = [], []
        for start in range(0, len(order), s.batch_size):
            stopflag.check()
            chosen = order[start:start + s.batch_size]
            loss, right = self.step(train_x[chosen], train_y[chosen], lr, shot)
            losses.append(loss)
            rights.append(right)
            self.steps += 1
        if shot is not None:
            self._leave_shot(shot)
        self.after_epoch()
        self.epoch += 1
        record = {"epoch": self.epoch, "learning_rate": lr, "train_loss": float(np.mean(losses)),
                  "train_accuracy": float(np.mean(rights)), "shot": shot}
        record.update(self.epoch_record())
        self.history.append(record)
        return record

    @abstractmethod
    def step(self, x: np.ndarray, y: np.ndarray, lr: float, shot: int | None
             ) -> tuple[float, float]:
        """One training step on a training batch; the loss and share right of its weight
        step. ``shot``: the few-shot sub-supernet being trained (its edge's op fixed)."""

    def after_epoch(self) -> None:  # noqa: B027 (a hook: most methods need none)
        """What the method does once an epoch's weight steps are done (ENAS trains its
        controller); nothing by default."""

    def epoch_record(self) -> dict[str, Any]:
        """What the method adds to an epoch's history record (its architecture
        parameters' probabilities)."""
        return {}

    def epoch_cell(self) -> np.ndarray | None:
        """The cell the method would derive now, cheaply (reported after each epoch), or
        None when deriving one is a search of its own."""
        return None

    def train_on(self, menu: Menu, x: np.ndarray, y: np.ndarray, lr: float
                 ) -> tuple[float, float]:
        """A weight step on the single-path network of ``menu``."""
        loss, right, grads = loss_and_gradients(self.supernet.model(menu, False), x, y)
        self.optimizer.step(grads, lr)
        return loss, right

    def uniform_ops(self, shot: int | None) -> np.ndarray:
        """A cell drawn uniformly (one op per edge), the few-shot edge fixed to ``shot``."""
        ops = self.sampler.integers(0, OPS, EDGES)
        if shot is not None:
            ops[self.settings.few_shot.edge] = shot
        return ops

    def valid_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """The next batch of the validation split (reshuffled after each pass)."""
        size = min(self.settings.batch_size, len(self.data.valid_y))
        if self._valid_at + size > len(self._valid_order):
            self._valid_order = self.batches.permutation(len(self.data.valid_y))
            self._valid_at = 0
        chosen = self._valid_order[self._valid_at:self._valid_at + size]
        self._valid_at += size
        return self.data.valid_x[chosen], self.data.valid_y[chosen]

    # -- scores and the derived cell ----------------------------------------------------

    def score(self, ops: np.ndarray, x: np.ndarray | None = None,
              y: np.ndarray | None = None) -> float:
        """Accuracy of cell ``ops`` with the shared weights (its few-shot sub-supernet's,
        once split) on ``x``, ``y`` (default: the whole validation split)."""
        if x is None or y is None:
            x, y = self.data.valid_x, self.data.valid_y
        if self.shots:
            self.supernet.load_weights(self.shots[int(ops[self.settings.few_shot.edge])]
                                       ["weights"])
        return batch_accuracy(self.supernet.model(menu_of(ops), False), x, y,
                              self.settings.eval_batch_size)

    def scores(self, cells: np.ndarray) -> np.ndarray:
        """:meth:`score` of each cell index (grouped by sub-supernet, so each loads once)."""
        ops = cell_ops(cells)
        order = (np.argsort(ops[:, self.settings.few_shot.edge], kind="stable")
                 if self.shots else np.arange(len(cells)))
        result = np.zeros(len(cells))
        for position in order:
            stopflag.check()
            result[position] = self.score(ops[position])
        return result

    @abstractmethod
    def derive(self) -> np.ndarray:
        """The ops (EDGES,) of the cell the method derives from its trained supernet."""

    def best_of(self, cells: np.ndarray) -> np.ndarray:
        """The ops of the best-scoring of ``cells`` (indices; the first on a tie)."""
        return cell_ops([int(cells[int(np.argmax(self.scores(cells)))])])[0]

    # -- few-shot -----------------------------------------------------------------------

    def _enter_shot(self, shot: int) -> None:
        if not self.shots:     # the split: every sub-supernet starts from the one-shot one
            self.one_shot = self.supernet.copy_weights()
            self.shots = [{"weights": self.supernet.copy_weights(),
                           "velocity": _copied(self.optimizer.velocity)} for _ in range(OPS)]
        self.supernet.load_weights(self.shots[shot]["weights"])
        self.optimizer.velocity = _copied(self.shots[shot]["velocity"])

    def _leave_shot(self, shot: int) -> None:
        self.shots[shot] = {"weights": self.supernet.copy_weights(),
                            "velocity": _copied(self.optimizer.velocity)}

    # -- state --------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The whole search as plain data (arrays, lists, numbers)."""
        return {"weights": self.supernet.copy_weights(),
                "velocity": _copied(self.optimizer.velocity),
                "used": sorted(self.optimizer.used),
                "batches": self.batches.bit_generator.state,
                "sampler": self.sampler.bit_generator.state,
                "epoch": self.epoch, "steps": self.steps, "history": list(self.history),
                "valid_order": self._valid_order.copy(), "valid_at": self._valid_at,
                "shots": [{"weights": _copied(s["weights"]), "velocity": _copied(s["velocity"])}
                          for s in self.shots],
                "one_shot": None if self.one_shot is None else _copied(self.one_shot),
                "method": self.method_state()}

    def restore(self, state: Any, where: str) -> None:
        """Continue from :meth:`state`, checked: EvozeroError naming ``where`` when it is
        not one a search of this config wrote."""
        keys = ("weights", "velocity", "used", "batches", "sampler", "epoch", "steps",
                "history", "valid_order", "valid_at", "shots", "one_shot", "method")
        if not isinstance(state, dict) or set(state) != set(keys):
            raise EvozeroError(f"{where}: not a supernet search's state (expected "
                               f"{', '.join(keys)})")
        self._check_weights(state["weights"], f"{where}: weights")
        self._check_weights(state["velocity"], f"{where}: velocity")
        shots = state["shots"]
        if not isinstance(shots, list) or len(shots) not in (0, OPS) or any(
                not isinstance(s, dict) or set(s) != {"weights", "velocity"} for s in shots):
            raise EvozeroError(f"{where}: shots must be none or {OPS} sub-supernets")
        for k, shot in enumerate(shots):
            self._check_weights(shot["weights"], f"{where}: shots[{k}].weights")
            self._check_weights(shot["velocity"], f"{where}: shots[{k}].velocity")
        if (state["one_shot"] is None) != (not shots):
            raise EvozeroError(f"{where}: one_shot must hold the weights the sub-supernets "
                               f"started from exactly when there are sub-supernets")
        if shots:
            self._check_weights(state["one_shot"], f"{where}: one_shot")
        used = state["used"]
        if not isinstance(used, list) or not set(used) <= set(self.supernet.trained):
            raise EvozeroError(f"{where}: used must list trained layer names")
        epoch, steps, at = state["epoch"], state["steps"], state["valid_at"]
        order = state["valid_order"]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                   for v in (epoch, steps, at)) or epoch > self.total_epochs \
                or not isinstance(order, np.ndarray) or order.dtype.kind != "i" \
                or order.ndim != 1 or at > len(order) \
                or (len(order) and sorted(order.tolist()) != list(range(len(self.data.valid_y)))):
            raise EvozeroError(f"{where}: epoch, steps, valid_order or valid_at is out of "
                               f"range for this config")
        if not isinstance(state["history"], list) or not all(
                isinstance(r, dict) for r in state["history"]):
            raise EvozeroError(f"{where}: history must be a list of epoch records")
        for name in ("batches", "sampler"):
            try:
                getattr(self, name).bit_generator.state = state[name]
            except (TypeError, ValueError, KeyError) as error:
                raise EvozeroError(f"{where}: {name} is not a random generator state "
                                   f"({error})") from None
        self.restore_method(state["method"], f"{where}: method")
        self.supernet.load_weights(state["weights"])
        self.optimizer.velocity = _copied(state["velocity"])
        self.optimizer.used = set(used)
        self.epoch, self.steps, self._valid_at = epoch, steps, at
        self._valid_order = order.astype(np.int64)
        self.history = list(state["history"])
        self.shots = [{"weights": _copied(s["weights"]), "velocity": _copied(s["velocity"])}
                      for s in shots]
        self.one_shot = None if state["one_shot"] is None else _copied(state["one_shot"])

    def weight_groups(self) -> dict[str, dict[str, list[np.ndarray]]]:
        """The trained weights a finished search keeps: ``supernet`` (the one-shot
        weights), and with few-shot NAS ``shot0`` .. ``shot4`` (each op's sub-supernet)."""
        groups = {"supernet": _copied(self.one_shot if self.one_shot is not None
                                      else self.supernet.copy_weights())}
        groups.update({f"shot{k}": _copied(shot["weights"])
                       for k, shot in enumerate(self.shots)})
        return groups

    def use_groups(self, groups: dict[str, dict[str, list[np.ndarray]]], one_shot: bool,
                   where: str) -> None:
        """Score with ``groups`` (from :meth:`weight_groups`, checked): the sub-supernets
        when there are and ``one_shot`` is False, else the one-shot weights."""
        shots = sorted(name for name in groups if name != "supernet")
        if "supernet" not in groups or shots not in ([], [f"shot{k}" for k in range(OPS)]):
            raise EvozeroError(f"{where}: must hold the supernet's weights and none or "
                               f"{OPS} sub-supernets (shot0 .. shot{OPS - 1})")
        for name, weights in groups.items():
            self._check_weights(weights, f"{where}: {name}")
        self.supernet.load_weights(groups["supernet"])
        self.shots = [] if one_shot else [{"weights": groups[name], "velocity": {}}
                                          for name in shots]

    def _check_weights(self, weights: Any, where: str) -> None:
        trained = self.supernet.trained
        if not isinstance(weights, dict) or sorted(weights) != trained:
            raise EvozeroError(f"{where}: must hold the arrays of the supernet's "
                               f"{len(trained)} trained layers")
        for name in trained:
            arrays, mine = weights[name], self.supernet.weights[name]
            if not isinstance(arrays, list) or len(arrays) != len(mine) or not all(
                    isinstance(a, np.ndarray) and a.shape == b.shape and a.dtype == b.dtype
                    and np.all(np.isfinite(a)) for a, b in zip(arrays, mine)):
                raise EvozeroError(f"{where}: layer {name}'s arrays must be finite "
                                   f"{mine[0].dtype} of shapes "
                                   f"{[tuple(b.shape) for b in mine]}")

    def method_state(self) -> dict[str, Any]:
        """The method's own state as plain data (none by default)."""
        return {}

    def restore_method(self, state: Any, where: str) -> None:
        """Take the method's own state (see :meth:`method_state`), checked."""
        if state != {}:
            raise EvozeroError(f"{where}: this method keeps no state of its own")


def _copied(weights: dict[str, list[np.ndarray]]) -> dict[str, list[np.ndarray]]:
    return {name: [a.copy() for a in arrays] for name, arrays in weights.items()}


def random_cells(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` distinct cell indices drawn uniformly (at most every cell)."""
    return rng.choice(OPS ** EDGES, size=min(count, OPS ** EDGES), replace=False)


def index_of(ops: np.ndarray) -> int:
    """The cell index of ``ops``."""
    return int(ops_index(np.asarray(ops)[None])[0])
