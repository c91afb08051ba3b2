"""The settings of cell search (the ``nas`` section) and the vocabularies it names.

This module owns the NAS-Bench-101 op names and the data-set names: ``evozero.nas.spaces.cells``
and ``evozero.nas.training.data`` import them from here, so config stays below the NAS layer.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from evozero.config.schema import (
    _COUNT_MAX,
    _Bool,
    _Choice,
    _ChoiceList,
    _Context,
    _did_you_mean,
    _FilePath,
    _Float,
    _Int,
    _Optional,
    _resolve,
    _section,
    _setting,
    _Spec,
    _Str,
)
from evozero.errors import EvozeroError
from evozero.evaluation.class_npz import check_unchanged, read_class_npz
from ops.rng import SEED_MAX

#: The ops a NAS-Bench-101 cell's inner vertices may carry.
NB101_OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
#: The data set names evozero.nas.training.data.load_dataset knows.
DATASETS = ("digits", "mnist1d")
#: The (H, W, C) shape of one example of each data set (1-D sequences have H = 1).
DATASET_SHAPES = {"digits": (8, 8, 1), "mnist1d": (1, 40, 1)}


def dataset_is_file(dataset: str) -> bool:
    """Whether ``nas.dataset`` is the path of the user's data file, not a built-in set."""
    return dataset not in DATASETS


class _Dataset(_FilePath):
    """A built-in data set's name, or the path of the user's .npz file, resolved relative
    to the config file (its contents are checked with the whole section: see Nas)."""

    def __init__(self) -> None:
        super().__init__(".npz file")
        self.allowed = (f"{', '.join(DATASETS)} or the path of a .npz file of images or "
                        f"sequences x and integer labels y (relative to the config file)")

    def parse(self, value: Any, key: str, ctx: _Context) -> str:
        if value in DATASETS:
            return value
        hint = _did_you_mean(value, DATASETS)
        if value is None or hint and not os.path.isfile(_resolve(value, ctx)):
            raise self.fail(value, key, ctx, hint)
        path = super().parse(value, key, ctx)
        assert path is not None   # None was refused above
        return path


def skeleton_problem(space: str, input_shape: tuple[int, int, int], stacks: int) -> str | None:
    """Why the ``space`` skeleton of ``stacks`` stacks cannot take inputs of
    ``input_shape`` (None when it can).

    Between stacks, NAS-Bench-101 max-pools 2x2 at stride 2 with TensorFlow's 'same'
    padding, which takes any size (7 -> 4, and 1 stays 1). NAS-Bench-201's reduction block
    adds a stride-2 3x3 conv (padding 1: 7 -> 4) to a shortcut through a 2x2 average pool
    (no padding: 7 -> 3), so its reference network only runs where every size it halves
    is even; the same rule holds here.
    """
    if space != "nb201" or stacks <= 1:
        return None
    height, width, _ = input_shape
    sizes = [width] if height == 1 else [height, width]
    for reduction in range(1, stacks):
        odd = [size for size in sizes if size % 2]
        if odd:
            shape = "x".join(str(s) for s in sizes)
            return (f"{stacks} stacks halve the input {_times(stacks - 1)}, but it is "
                    f"{shape} before reduction block {reduction}, and the NAS-Bench-201 "
                    f"reduction block (a stride-2 conv beside a 2x2 average-pool shortcut) "
                    f"needs even sizes; at most {reduction} stack{'s' * (reduction > 1)} "
                    f"fit{'s' * (reduction == 1)} {_shape_text(input_shape)} inputs")
        sizes = [size // 2 for size in sizes]
    return None


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def _shape_text(shape: tuple[int, int, int]) -> str:
    return "x".join(str(d) for d in shape)


#: Table names that resolve to a table shipped with evozero: the names of
#: evozero.nas.table.store.SHIPPED (a layer above, so not imported from there).
SHIPPED_TABLES = ("nb201-mnist1d",)
#: Cell-search strategies beside evolution and random (one module each in
#: evozero.nas.search), all over NAS-Bench-201 cells.
CELL_STRATEGIES = ("reinforce", "asha", "bohb", "local", "predictor")
#: Weight-sharing and differentiable strategies over the NAS-Bench-201 supernet
#: (evozero.nas.supernet): each trains one supernet and derives a cell from it.
SUPERNET_STRATEGIES = ("rsps", "spos", "enas", "darts", "darts2", "gdas", "proxyless")


class _TableName(_Spec):
    """null, the name of a shipped table, or the path of a table file (relative to the
    config file; whether it exists and what it holds is checked before a run starts, so
    the message can name what is wrong with it)."""

    allowed = (f"null (train every network), the name of a shipped table "
               f"({', '.join(SHIPPED_TABLES)}), or the path of a table .npz file")

    def parse(self, value: Any, key: str, ctx: _Context) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(value, key, ctx)
        return value if value in SHIPPED_TABLES else _resolve(value, ctx)


#: The MNIST-1D data sets evozero.nas.training.data.load_dataset can make (see NasMnist1d).
MNIST1D_RECIPES = ("published", "shuffled", "legacy")
#: The generator seed of the published MNIST-1D data set.
MNIST1D_PUBLISHED_SEED = 42
# The legacy recipe seeds numpy's Generator, the others its legacy RandomState (< 2**32).
_MNIST1D_SEED_MAX = 2**32 - 1


class _LatencyDrift(_Spec):
    """``measure``, ``none``, or factors per batch size, kept as sorted (batch, factor)
    pairs (hashable, like the rest of the section)."""

    allowed = ("measure, none, or a mapping of batch sizes (whole numbers >= 1) to "
               "factors (numbers > 0), such as {1: 0.65, 64: 0.8}")

    def parse(self, value: Any, key: str, ctx: _Context) -> str | tuple[tuple[int, float], ...]:
        if isinstance(value, str):
            return _Choice("measure", "none").parse(value, key, ctx)
        if not isinstance(value, dict) or not value:
            raise self.fail(value, key, ctx)
        factors = {}
        for batch, factor in value.items():
            size = int(batch) if isinstance(batch, str) and batch.strip().isdigit() else batch
            where = f"{key}.{batch}"
            factors[_Int(1, 65_536).parse(size, where, ctx)] = _Float(
                0.0, min_open=True).parse(factor, where, ctx)
        return tuple(sorted(factors.items()))

    def dump(self, value: Any) -> Any:
        # String keys: the config also goes into JSON (checkpoints), whose keys are strings.
        return value if isinstance(value, str) else {str(b): f for b, f in value}


@dataclass(frozen=True)
class NasTraining:
    """How each candidate network is trained (brief training, the search's fidelity)."""

    epochs: int = _setting(_Int(1, 100_000), 4)
    batch_size: int = _setting(_Int(1, 65_536), 64)
    learning_rate: float = _setting(_Float(0.0, min_open=True), 0.05)
    momentum: float = _setting(_Float(0.0, 1.0, max_open=True), 0.9)
    weight_decay: float = _setting(_Float(0.0), 5e-4)
    schedule: str = _setting(_Choice("cosine", "constant"), "cosine")
    nesterov: bool = _setting(_Bool(), False)


@dataclass(frozen=True)
class NasConstraints:
    """Caps checked on the compiled network before any training (null: no cap); a
    child over a cap is rejected and another drawn."""

    max_params: int | None = _setting(_Optional(_Int(1, _COUNT_MAX, whole_floats=True)), None)
    max_macs: int | None = _setting(_Optional(_Int(1, _COUNT_MAX, whole_floats=True)), None)
    max_latency_ms: float | None = _setting(_Optional(_Float(0.0, min_open=True)), None)
    max_peak_activation_bytes: int | None = _setting(_Optional(_Int(1, _COUNT_MAX,
                                                                   whole_floats=True)),
                                                     None)


@dataclass(frozen=True)
class NasHurdle:
    """Stop a child after its first epoch when its validation accuracy is below
    ``accuracy`` or below the ``percentile`` of its population's first-epoch accuracies."""

    accuracy: float | None = _setting(_Optional(_Float(0.0, 1.0)), None)
    percentile: float | None = _setting(
        _Optional(_Float(0.0, 100.0, min_open=True, max_open=True)), None)


@dataclass(frozen=True)
class NasObjective:
    """What the search maximises: validation accuracy, MnasNet's reward
    acc * (cost / target) ** w (soft: w = exponent always; hard: w = 0 at or under the
    target, -1 above), or the Pareto front of accuracy against ``cost``."""

    kind: str = _setting(_Choice("accuracy", "mnasnet_soft", "mnasnet_hard", "pareto"),
                         "accuracy")
    cost: str = _setting(_Choice("latency_ms", "macs", "params", "peak_activation_bytes"),
                         "latency_ms")
    target: float | None = _setting(_Optional(_Float(0.0, min_open=True)), None)
    exponent: float = _setting(_Float(maximum=0.0), -0.07)

    def _problems(self) -> Iterator[tuple[Any, str]]:
        if self.kind.startswith("mnasnet") and self.target is None:
            yield ("target", "kind"), (f"the {self.kind} objective needs target: the cost "
                                       f"({self.cost}) a network should not exceed")


@dataclass(frozen=True)
class NasLookup:
    """How a search reads the table (``nas.table``): ``epoch`` is the epoch whose
    validation accuracy is the search signal (null: the recipe's last, what real training
    reports; NAS-Bench-201 searches with epoch 12 of 200), ``seed`` which trained seed
    answers a query (``random``: one of the row's trained seeds drawn per query, as
    NAS-Bench-201's ``is_random``; ``mean``: their mean), ``seconds`` the budget of
    simulated search time per island (null: none)."""

    epoch: int | None = _setting(_Optional(_Int(1, 100_000)), None)
    seed: str = _setting(_Choice("random", "mean"), "random")
    seconds: float | None = _setting(_Optional(_Float(0.0, min_open=True)), None)


@dataclass(frozen=True)
class NasReinforce:
    """REINFORCE (NAS-Bench-201's baseline): a softmax policy per edge trained with Adam
    at ``learning_rate`` on the reward in percent, against a bias-corrected moving average
    of the rewards with ``momentum``."""

    learning_rate: float = _setting(_Float(0.0, min_open=True), 0.5)
    momentum: float = _setting(_Float(0.0, 1.0, max_open=True), 0.9)


@dataclass(frozen=True)
class NasAsha:
    """Asynchronous successive halving: rungs of ``min_epochs`` x ``eta``^k epochs up to
    the recipe's epochs, the top 1/``eta`` of a rung promoted to the next."""

    eta: int = _setting(_Int(2, 100), 3)
    min_epochs: int = _setting(_Int(1, 100_000), 1)


@dataclass(frozen=True)
class NasBohb:
    """BOHB: Hyperband's brackets over rungs of epochs (``eta``, from ``min_epochs``; null:
    the recipe's epochs x 12 / 200, NAS-Bench-201's 12 of 200) with a TPE-style model per
    rung: the best ``top_percent`` % against the rest, ``samples`` draws from the good
    kernels, bandwidths at least ``min_bandwidth``, and a ``random_fraction`` of random
    cells. Defaults: NAS-Bench-201's BOHB settings (its bandwidth factor widens continuous
    parameters only; a cell has none)."""

    eta: int = _setting(_Int(2, 100), 3)
    min_epochs: int | None = _setting(_Optional(_Int(1, 100_000)), None)
    top_percent: int = _setting(_Int(1, 99), 15)
    samples: int = _setting(_Int(1, 100_000), 4)
    random_fraction: float = _setting(_Float(0.0, 1.0), 0.0)
    min_bandwidth: float = _setting(_Float(0.0, 0.8), 0.3)


@dataclass(frozen=True)
class NasPredictor:
    """Predictor-guided search (BANANAS): ``initial`` random cells, then rounds that fit an
    ensemble of ``members`` nets (``epochs`` epochs each) on the cells evaluated, rank
    ``mutations`` mutants of the best cells plus ``random`` random cells by Thompson
    sampling, and evaluate the best ``batch``."""

    initial: int = _setting(_Int(2, 100_000), 10)
    batch: int = _setting(_Int(1, 100_000), 10)
    mutations: int = _setting(_Int(0, 1_000_000), 100)
    random: int = _setting(_Int(0, 1_000_000), 0)
    members: int = _setting(_Int(1, 100), 5)
    epochs: int = _setting(_Int(1, 100_000), 200)

    def _problems(self) -> Iterator[tuple[Any, str]]:
        if self.mutations + self.random < self.batch:
            yield ("mutations", "random", "batch"), (
                f"a round proposes mutations + random = {self.mutations + self.random} "
                f"cells, fewer than the batch of {self.batch} it evaluates")


@dataclass(frozen=True)
class NasSpos:
    """SPOS's evolution over the trained supernet: a ``population`` of random cells, then
    ``generations`` of the best ``parents`` making ``mutations`` mutants (each edge
    redrawn with ``mutation_probability``) and ``crossovers`` uniform crossovers."""

    population: int = _setting(_Int(2, 100_000), 50)
    generations: int = _setting(_Int(1, 100_000), 20)
    parents: int = _setting(_Int(1, 100_000), 10)
    mutations: int = _setting(_Int(0, 100_000), 25)
    crossovers: int = _setting(_Int(0, 100_000), 25)
    mutation_probability: float = _setting(_Float(0.0, 1.0, min_open=True), 0.1)


@dataclass(frozen=True)
class NasEnas:
    """ENAS's controller: an LSTM of ``hidden`` units, after each epoch of shared weights
    trained for ``steps`` Adam steps (``learning_rate``) of ``samples`` cells each, the
    reward a cell's accuracy on one validation batch plus ``entropy_weight`` x its
    entropy, against a baseline decaying by ``baseline_decay``."""

    hidden: int = _setting(_Int(1, 1024), 32)   # 1024: about 400 MB with Adam moments
    steps: int = _setting(_Int(1, 100_000), 50)
    samples: int = _setting(_Int(1, 100_000), 20)
    learning_rate: float = _setting(_Float(0.0, min_open=True), 1e-3)
    entropy_weight: float = _setting(_Float(0.0), 1e-4)
    baseline_decay: float = _setting(_Float(0.0, 1.0), 0.99)


@dataclass(frozen=True)
class NasFewShot:
    """Few-shot NAS: after the one-shot epochs, one sub-supernet per op of ``edge`` (0-5;
    null: none), each starting from the one-shot weights with that edge fixed to its op
    and trained ``epochs`` more epochs; a cell is scored by the sub-supernet of its op."""

    edge: int | None = _setting(_Optional(_Int(0, 5)), None)
    epochs: int = _setting(_Int(1, 100_000), 10)


@dataclass(frozen=True)
class NasSupernet:
    """How a weight-sharing or differentiable strategy trains its supernet and derives a
    cell. Weights: ``epochs`` epochs of batches of ``batch_size`` of the training split,
    SGD (``momentum``, ``nesterov``, ``weight_decay``) from ``learning_rate`` down a
    cosine to ``min_learning_rate``, the gradient's norm clipped at ``grad_clip``, ops a
    step did not use left alone or decayed (``unused_ops``). Architecture parameters
    (darts, darts2, gdas, proxyless): Adam on validation batches (null settings: the
    method's reference values). ``derive``: argmax over all five ops of an edge
    (NAS-Bench-201's code) or over all but ``none`` (DARTS'). ``candidates``: the cells
    RSPS and ENAS score at the end. GDAS's temperature falls linearly from ``tau_max`` to
    ``tau_min``. ProxylessNAS trains ``warmup_epochs`` (null: a third of the epochs) before
    its binarised architecture steps, one every ``arch_every`` weight steps, with the
    latency term ``latency_weight`` x (E[latency] - target) / target on the run's
    profile."""

    epochs: int = _setting(_Int(1, 100_000), 50)
    batch_size: int = _setting(_Int(1, 65_536), 64)
    learning_rate: float = _setting(_Float(0.0, min_open=True), 0.025)
    min_learning_rate: float = _setting(_Float(0.0), 0.001)
    momentum: float = _setting(_Float(0.0, 1.0, max_open=True), 0.9)
    nesterov: bool = _setting(_Bool(), True)
    weight_decay: float = _setting(_Float(0.0), 5e-4)
    grad_clip: float = _setting(_Float(0.0, min_open=True), 5.0)
    unused_ops: str = _setting(_Choice("skip", "decay_and_momentum"), "skip")
    arch_learning_rate: float | None = _setting(_Optional(_Float(0.0, min_open=True)), None)
    arch_weight_decay: float | None = _setting(_Optional(_Float(0.0)), None)
    derive: str = _setting(_Choice("with_none", "without_none"), "with_none")
    candidates: int = _setting(_Int(1, 15_625), 100)
    eval_batch_size: int = _setting(_Int(1, 65_536), 512)
    tau_max: float = _setting(_Float(0.0, min_open=True), 10.0)
    tau_min: float = _setting(_Float(0.0, min_open=True), 0.1)
    warmup_epochs: int | None = _setting(_Optional(_Int(0, 100_000)), None)
    arch_every: int = _setting(_Int(1, 100_000), 5)
    latency_target_ms: float | None = _setting(_Optional(_Float(0.0, min_open=True)), None)
    latency_weight: float = _setting(_Float(0.0), 0.1)
    spos: NasSpos = _section(NasSpos)
    enas: NasEnas = _section(NasEnas)
    few_shot: NasFewShot = _section(NasFewShot)

    def _problems(self) -> Iterator[tuple[Any, str]]:
        if self.min_learning_rate > self.learning_rate:
            yield ("min_learning_rate", "learning_rate"), (
                f"{self.min_learning_rate:g} is above the learning rate "
                f"{self.learning_rate:g} the cosine starts from")
        if self.tau_min > self.tau_max:
            yield ("tau_min", "tau_max"), (f"{self.tau_min:g} is above tau_max "
                                           f"{self.tau_max:g}; the temperature falls")
        if self.warmup_epochs is not None and self.warmup_epochs >= self.epochs:
            yield ("warmup_epochs", "epochs"), (
                f"{self.warmup_epochs} warm-up epochs leave none of the {self.epochs} for "
                f"the architecture steps")
        if self.spos.parents > self.spos.population:
            yield ("spos.parents", "spos.population"), (
                f"{self.spos.parents} parents out of a population of {self.spos.population}")


@dataclass(frozen=True)
class NasMnist1d:
    """Which MNIST-1D data ``dataset: mnist1d`` is: ``published`` (the mnist1d package's
    ``make_dataset``, bit for bit: 4,000 training and 1,000 test sequences), ``shuffled``
    (the same with the 40 positions of every sequence permuted, the package's
    ``shuffle_seq``), or ``legacy`` (the sample evozero generated before these recipes,
    split 3,000/1,000/1,000 by class); ``seed`` seeds the generator (42: the published
    data)."""

    recipe: str = _setting(_Choice(*MNIST1D_RECIPES), "published")
    seed: int = _setting(_Int(0, _MNIST1D_SEED_MAX), MNIST1D_PUBLISHED_SEED)


@dataclass(frozen=True)
class Nas:
    """A neural architecture search: cells of ``space`` trained on ``dataset``."""

    space: str = _setting(_Choice("nb101", "nb201"), "nb201")
    dataset: str = _setting(_Dataset(), "digits")
    # The sha256 of a data file's contents, recorded when a run is created
    # (evozero.nas.training.data.record_dataset): a run is bound to the data it was made on.
    dataset_sha256: str | None = _setting(_Optional(_Str()), None)
    data_seed: int = _setting(_Int(0, SEED_MAX), 0)
    mnist1d: NasMnist1d = _section(NasMnist1d)
    max_vertices: int = _setting(_Int(2, 12), 7)
    max_edges: int = _setting(_Int(1, 66), 9)
    nb101_ops: tuple[str, ...] = _setting(_ChoiceList(*NB101_OPS), NB101_OPS)
    mutation: str = _setting(_Choice("bitwise", "single"), "bitwise")
    mutation_rate: float = _setting(_Float(0.0, min_open=True), 1.0)
    stem_channels: int = _setting(_Int(1, 4096), 16)
    stacks: int = _setting(_Int(1, 8), 2)
    cells_per_stack: int = _setting(_Int(1, 64), 1)
    training: NasTraining = _section(NasTraining)
    hurdle: NasHurdle = _section(NasHurdle)
    constraints: NasConstraints = _section(NasConstraints)
    objective: NasObjective = _section(NasObjective)
    profile: str = _setting(_Str(), "host")
    profiles_file: str | None = _setting(_FilePath("device profile YAML file"), None)
    weight_inheritance: bool = _setting(_Bool(), False)
    table: str | None = _setting(_TableName(), None)
    lookup: NasLookup = _section(NasLookup)
    reinforce: NasReinforce = _section(NasReinforce)
    asha: NasAsha = _section(NasAsha)
    bohb: NasBohb = _section(NasBohb)
    predictor: NasPredictor = _section(NasPredictor)
    supernet: NasSupernet = _section(NasSupernet)
    # How much faster or slower this machine runs than at calibration, as factors of the
    # host profile's latency estimates (evozero.nas.devices.drift): measured when a run is created.
    latency_drift: str | tuple[tuple[int, float], ...] = _setting(_LatencyDrift(), "measure")

    def _problems(self) -> Iterator[tuple[Any, str]]:
        if self.space == "nb201" and (self.max_vertices, self.max_edges, self.nb101_ops) != (
                7, 9, NB101_OPS):
            yield ("space", "max_vertices", "max_edges", "nb101_ops"), (
                "max_vertices, max_edges and nb101_ops are settings of the nb101 space; "
                "nb201 cells have 4 nodes and 6 edges")
        yield from self._table_problems()
        try:
            shape = self._data_shape()
        except EvozeroError as error:
            yield ("dataset", "dataset_sha256"), str(error)
            return
        problem = skeleton_problem(self.space, shape, self.stacks)
        if problem is not None:
            yield ("stacks", "dataset", "space"), (
                f"too deep for data set {self.dataset} ({_shape_text(shape)}): {problem}")

    def _data_shape(self) -> tuple[int, int, int]:
        """The (H, W, C) shape of the data set's examples; a data file is checked whole
        here, and against the sha256 a run recorded, so a bad or changed file is refused
        when the config is loaded."""
        if not dataset_is_file(self.dataset):
            if self.dataset_sha256 is not None:
                raise EvozeroError(f"dataset_sha256 records a data file's contents, but "
                                   f"{self.dataset} is built in; remove dataset_sha256")
            return DATASET_SHAPES[self.dataset]
        if self.dataset_sha256 is not None:
            check_unchanged(self.dataset, self.dataset_sha256)
        return read_class_npz(self.dataset, self.data_seed).train[0].shape[1:]


    def _table_problems(self) -> Iterator[tuple[Any, str]]:
        # A table records accuracy and seconds of whole trainings of NAS-Bench-201 cells:
        # nothing a hurdle, inherited weights or a cost other than its own could change.
        if self.table is None:
            if self.lookup != NasLookup():
                yield ("lookup", "table"), ("sets how a table is read, but nas.table is "
                                            "null; set nas.table or remove nas.lookup")
            return
        if self.space != "nb201":
            yield ("table", "space"), (f"a table holds NAS-Bench-201 cells, but the space "
                                       f"is {self.space}; set space: nb201 or table: null")
        for key, used in (("hurdle", self.hurdle != NasHurdle()),
                          ("weight_inheritance", self.weight_inheritance),
                          ("constraints", self.constraints != NasConstraints())):
            if used:
                yield (key, "table"), ("is a setting of real training; a table search "
                                       "looks every network up (remove it or set "
                                       "table: null)")
        if self.objective.kind != "accuracy" or self.objective.cost not in (
                "latency_ms", "params"):
            yield ("objective", "table"), ("a table search maximises validation accuracy "
                                           "and reports the front against params or "
                                           "latency_ms (the table's costs)")
        if self.lookup.epoch is not None and self.lookup.epoch > self.training.epochs:
            yield ("lookup.epoch", "training.epochs"), (
                f"epoch {self.lookup.epoch} is past the recipe's last "
                f"({self.training.epochs})")


def keys_added_since(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The values, by dotted key, of the keys a resolved config (a run's config.yaml or a
    checkpoint's copy of it) lacks because it was written before they existed, each the
    value that means what that run did: a nas section without ``mnist1d`` was trained on
    the legacy MNIST-1D sample, one without ``latency_drift`` estimated latency
    uncorrected, and one without ``dataset_sha256`` used a built-in data set; a task
    section without ``valid_split`` (an option of kinds added later) had none."""
    nas = resolved.get("nas")
    added: dict[str, Any] = {}
    for section in ("search_tasks", "select_tasks", "final_tasks"):
        tasks = resolved.get(section)
        if isinstance(tasks, Mapping) and "valid_split" not in tasks:
            added[f"{section}.valid_split"] = None
    if isinstance(nas, Mapping) and "mnist1d" not in nas:
        added["nas.mnist1d"] = {"recipe": "legacy", "seed": MNIST1D_PUBLISHED_SEED}
    if isinstance(nas, Mapping) and "latency_drift" not in nas:
        added["nas.latency_drift"] = "none"
    if isinstance(nas, Mapping) and "dataset_sha256" not in nas:
        added["nas.dataset_sha256"] = None
    return added
