"""The settings of program search: memory, tasks, op lists, sizes, caches, budgets.

Each section is a frozen dataclass checked by the framework in ``schema``; the checkers
here know the program-search vocabularies, taken from their owners (mutation names from
``evozero.programs.mutation``, the memory the hand-written initial algorithms address from
``evozero.programs.reference``, op names and codes from ``ops.table``, task kinds from
``evozero.evaluation.tasks``).
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evozero.config.schema import (
    _COUNT_MAX,
    _SIZE_MAX,
    _Bool,
    _Choice,
    _Context,
    _did_you_mean,
    _FilePath,
    _Float,
    _Int,
    _join,
    _Optional,
    _resolve,
    _Section,
    _setting,
    _show,
    _Spec,
    _unknown,
)
from evozero.errors import EvozeroError
from evozero.evaluation.tasks import KINDS, VALID_SPLITS, Task, make_tasks
from evozero.programs.mutation import MUTATION_NAMES
from evozero.programs.program import COMPONENTS, Program
from evozero.programs.reference import BUILTIN_PROGRAMS, builtin_program, neural_net_program
from ops.rng import SEED_MAX
from ops.table import OPS, OPS_BY_NAME

#: The op list of AutoML-Zero's demo (codes 56, 27, 2, 3, 18, 23), used for all components.
DEMO_OPS = ("SCALAR_CONST_SET", "VECTOR_INNER_PRODUCT", "SCALAR_DIFF", "SCALAR_PRODUCT",
            "SCALAR_VECTOR_PRODUCT", "VECTOR_SUM")
#: Built-in initial populations; any other value is the path of a file of programs.
INITIAL_POPULATIONS = ("noop", "random", *BUILTIN_PROGRAMS, "damaged_neural_net")


@functools.cache
def initial_memory(population: str) -> tuple[int, int, int] | None:
    """Memory (scalars, vectors, matrices) a hand-written initial population addresses, or
    None for populations that fit any memory (AutoML-Zero spec 5.1)."""
    if population == "damaged_neural_net":
        return neural_net_program(damaged=True).memory_needs()
    return builtin_program(population).memory_needs() if population in BUILTIN_PROGRAMS \
        else None


def named_program(value: str) -> Program:
    """A built-in program (by name) or the one program of the text file at path ``value``."""
    if value in BUILTIN_PROGRAMS:
        return builtin_program(value)
    try:
        text = Path(value).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise EvozeroError(f"{value}: cannot read the program ({error})") from None
    try:
        return Program.parse(text)
    except EvozeroError as error:
        raise EvozeroError(f"{value}: {error} (the file must hold exactly one program)") from None


_OP_NAMES_BY_CODE = {op.code: op.name for op in OPS}
_PAIR_NAMES = ("all", "search", "held_out")


# --- checkers of program-search values -----------------------------------------------


class _SeedList(_Spec):
    allowed = "a list of integers >= 0 (one per task) or null"

    def parse(self, value: Any, key: str, ctx: _Context) -> tuple[int, ...] | None:
        if value is None:
            return None
        if not isinstance(value, (list, tuple)):
            raise self.fail(value, key, ctx)
        item = _Int(0, SEED_MAX)
        return tuple(item.parse(v, f"{key}[{i}]", ctx) for i, v in enumerate(value))

    def dump(self, value: Any) -> Any:
        return None if value is None else list(value)


class _Pairs(_Spec):
    allowed = ("one of all, search, held_out, a non-empty list of [i, j] digit class pairs "
               "with 0 <= i < j <= 9, or null")

    def parse(self, value: Any, key: str, ctx: _Context) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            return _Choice(*_PAIR_NAMES).parse(value, key, ctx)
        if not isinstance(value, (list, tuple)) or not value:
            raise self.fail(value, key, ctx)
        pairs = []
        for i, pair in enumerate(value):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2
                    and all(isinstance(c, int) and not isinstance(c, bool) for c in pair)
                    and 0 <= pair[0] < pair[1] <= 9):
                raise ctx.error(f"{key}[{i}]", f"must be a pair [i, j] of digit classes with "
                                               f"0 <= i < j <= 9, got {_show(pair)}")
            pairs.append((pair[0], pair[1]))
        return tuple(pairs)

    def dump(self, value: Any) -> Any:
        return value if value is None or isinstance(value, str) else [list(p) for p in value]


class _BuiltinOrFile(_Spec):
    """A built-in name (case-insensitive) or the path of an existing file, resolved
    relative to the config file."""

    names: Any = ()
    what = ""

    def parse(self, value: Any, key: str, ctx: _Context) -> str | None:
        return self.name_or_path(value, key, ctx)

    def name_or_path(self, value: Any, key: str, ctx: _Context) -> str:
        """The lower-case built-in name or the absolute path ``value`` gives."""
        if not isinstance(value, str) or not value.strip():
            raise self.fail(value, key, ctx)
        if value.strip().lower() in self.names:
            return value.strip().lower()
        resolved = _resolve(value, ctx)
        if not os.path.isfile(resolved):
            hint = _did_you_mean(value.strip().lower(), self.names)
            raise ctx.error(key, f"{_show(value)} is neither a built-in {self.what} nor an "
                                 f"existing file (looked for {resolved}); must be "
                                 f"{self.allowed}{'; ' + hint if hint else ''}")
        return resolved


class _InitialPopulation(_BuiltinOrFile):
    names = INITIAL_POPULATIONS
    what = "population"
    allowed = (f"one of {', '.join(INITIAL_POPULATIONS)} or the path of an existing file of "
               f"programs (relative to the config file)")


class _ProgramName(_BuiltinOrFile):
    names = BUILTIN_PROGRAMS
    what = "program"
    allowed = (f"null, a built-in program ({', '.join(BUILTIN_PROGRAMS)}) or the path of a "
               f"file holding one program (relative to the config file)")

    def parse(self, value: Any, key: str, ctx: _Context) -> str | None:
        return None if value is None else self.name_or_path(value, key, ctx)


class _OpList(_Spec):
    allowed = ("a list of op names (see `evozero ops`) or integer op codes "
               f"0..{max(_OP_NAMES_BY_CODE)}; an empty list freezes the component")

    def parse(self, value: Any, key: str, ctx: _Context) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)):
            raise self.fail(value, key, ctx)
        names = []
        for i, item in enumerate(value):
            item_key = f"{key}[{i}]"
            if isinstance(item, int) and not isinstance(item, bool):
                if item not in _OP_NAMES_BY_CODE:
                    raise ctx.error(item_key, f"unknown op code {item}; allowed codes: "
                                              f"0..{max(_OP_NAMES_BY_CODE)}")
                names.append(_OP_NAMES_BY_CODE[item])
            elif isinstance(item, str) and item.strip().upper() in OPS_BY_NAME:
                names.append(item.strip().upper())
            elif isinstance(item, str):
                close = difflib.get_close_matches(item.strip().upper(), list(OPS_BY_NAME),
                                                  n=3, cutoff=0.5)
                hint = (f"closest names: {', '.join(close)}; " if close else "")
                raise ctx.error(item_key, f"unknown op {_show(item)}; {hint}allowed: the op "
                                          f"names listed by `evozero ops` or their codes")
            else:
                raise ctx.error(item_key, f"must be an op name or code, got {_show(item)}")
        return tuple(names)

    def dump(self, value: Any) -> Any:
        return list(value)


class _Mutations(_Spec):
    allowed = (f"a mapping of mutation names to weights >= 0 (at least one > 0), or a list of "
               f"names (repeats add weight); names: {', '.join(MUTATION_NAMES)}")

    def __init__(self, default: Mapping[str, float]) -> None:
        self.default = dict(default)

    def parse(self, value: Any, key: str, ctx: _Context) -> dict[str, float]:
        if isinstance(value, (list, tuple)):
            weights: dict[str, float] = {}
            for i, name in enumerate(value):
                name = self._name(name, f"{key}[{i}]", ctx)
                weights[name] = weights.get(name, 0.0) + 1.0
        elif isinstance(value, dict):
            weights = {}
            weight = _Float(0.0)
            for name, w in value.items():
                where = _join(key, str(name))
                name = self._name(name, where, ctx)
                if name in weights:  # e.g. Identity and identity: one would silently win
                    raise ctx.error(where, f"mutation {name!r} is given twice; give each "
                                           f"mutation once")
                weights[name] = weight.parse(w, where, ctx)
        else:
            raise self.fail(value, key, ctx)
        if not any(w > 0 for w in weights.values()):
            raise self.fail(value, key, ctx, "no weight is > 0")
        return weights

    def _name(self, name: Any, key: str, ctx: _Context) -> str:
        text = name.strip().lower() if isinstance(name, str) else None
        if text not in MUTATION_NAMES:
            raise ctx.error(key, _unknown("mutation", name if text is None else text,
                                          MUTATION_NAMES, " mutations"))
        return text

    def dump(self, value: Any) -> Any:
        return dict(value)

    def subkeys(self) -> Sequence[str]:
        return tuple(MUTATION_NAMES)

    def expand(self, raw: Any, key: str, ctx: _Context) -> dict:
        if raw is None:
            return dict(self.default)
        if isinstance(raw, list):
            return dict(self.parse(raw, key, ctx))
        if isinstance(raw, dict):
            return raw
        raise self.fail(raw, key, ctx)


class _SizeSection(_Section):
    """A component's size bounds: a mapping init/min/max, or one integer n = n/n/n.

    Missing keys of a mapping are filled from the component's defaults, widened so that the
    given values fit: init falls back to the default clipped into [min, max], min to
    min(default min, init), max to max(default max, init).
    """

    def __init__(self, default: SizeBounds) -> None:
        super().__init__(SizeBounds)
        self.default = default
        self.allowed = (f"{self.spec('init').allowed} (init = min = max) or a mapping with "
                        f"keys init, min, max")

    def parse(self, value: Any, key: str, ctx: _Context) -> SizeBounds:
        value = self.expand(value, key, ctx)
        if not isinstance(value, dict):
            raise self.fail(value, key, ctx)
        for name in ("init", "min", "max"):
            if name in value:
                value[name] = self.spec(name).parse(value[name], _join(key, name), ctx)
        given = dict(value)
        default = self.default
        if "init" not in given:
            init = default.init
            if "min" in given:
                init = max(init, given["min"])
            if "max" in given:
                init = min(init, given["max"])
            value["init"] = init
        value.setdefault("min", min(default.min, value["init"]))
        value.setdefault("max", max(default.max, value["init"]))
        return super().parse(value, key, ctx) if given else default

    def expand(self, raw: Any, key: str, ctx: _Context) -> dict:
        if raw is None:
            return {}
        if isinstance(raw, int) and not isinstance(raw, bool):
            n = self.spec("init").parse(raw, key, ctx)
            return {"init": n, "min": n, "max": n}
        if isinstance(raw, dict):
            return dict(raw)
        raise self.fail(raw, key, ctx)


# --- the sections ----------------------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    """Number of scalar, vector and matrix addresses (s0 label, s1 prediction, v0 features)."""

    scalars: int = _setting(_Int(2, 10_000), 4)
    vectors: int = _setting(_Int(1, 10_000), 3)
    matrices: int = _setting(_Int(0, 10_000), 1)

    @property
    def sizes(self) -> tuple[int, int, int]:
        """(scalars, vectors, matrices), the form the VM takes."""
        return (self.scalars, self.vectors, self.matrices)


@dataclass(frozen=True)
class TaskSpec:
    """How to generate one set of tasks (the arguments of :func:`evozero.evaluation.tasks.make_tasks`).

    ``pairs`` is an option of "digits" and "mnist1d" tasks, ``valid_split`` of "mnist1d"
    tasks, ``path`` and ``classification`` of "npz" tasks; ``features`` is null for npz
    tasks unless given (it is then read from the file).
    """

    kind: str = _setting(_Choice(*KINDS), "linear")
    num_tasks: int = _setting(_Int(1, 1_000_000), 10)
    features: int | None = _setting(_Optional(_Int(1, 10_000)), 4)
    train: int = _setting(_Int(1, _SIZE_MAX), 100)
    valid: int = _setting(_Int(1, _SIZE_MAX), 100)
    epochs: int = _setting(_Int(1, 1_000_000), 1)
    seed: int = _setting(_Int(0, SEED_MAX), 0)
    data_seeds: tuple[int, ...] | None = _setting(_SeedList(), None)
    param_seeds: tuple[int, ...] | None = _setting(_SeedList(), None)
    pairs: str | tuple[tuple[int, int], ...] | None = _setting(_Pairs(), None)
    valid_split: str | None = _setting(_Optional(_Choice(*VALID_SPLITS)), None)
    path: str | None = _setting(_FilePath(".npz file"), None)
    classification: bool | None = _setting(_Optional(_Bool()), None)

    @staticmethod
    def _fill(raw: dict) -> dict:
        kind = raw.get("kind")
        if isinstance(kind, str) and kind.strip().lower() == "npz":
            raw.setdefault("features", None)
        if isinstance(kind, str) and kind.strip().lower() in ("digits", "mnist1d"):
            raw.setdefault("pairs", "all")
        if isinstance(kind, str) and kind.strip().lower() == "mnist1d":
            raw.setdefault("valid_split", "train")
        return raw

    def _problems(self) -> Iterator[tuple[Any, str]]:
        options = {"pairs": ("digits", "mnist1d"), "valid_split": ("mnist1d",),
                   "path": ("npz",), "classification": ("npz",)}
        for option, kinds in options.items():
            if getattr(self, option) is not None and self.kind not in kinds:
                names = " and ".join(repr(kind) for kind in kinds)
                yield option, (f"is an option of {names} tasks only, but kind is "
                               f"{self.kind!r}; remove it or set kind: {kinds[0]}")
        if self.kind == "npz" and self.path is None:
            yield ("path", "kind"), "npz tasks need path: the .npz file with arrays x and y"
        if self.features is None and self.kind != "npz":
            yield "features", f"must be an integer >= 1 for {self.kind!r} tasks, got null"
        for name in ("data_seeds", "param_seeds"):
            seeds = getattr(self, name)
            if seeds is not None and len(seeds) != self.num_tasks:
                yield (name, "num_tasks"), (f"must list one seed per task: num_tasks is "
                                            f"{self.num_tasks} but {len(seeds)} seeds are given")

    def options(self) -> dict[str, Any]:
        """The kind-specific keyword options for make_tasks."""
        if self.kind == "digits":
            return {"pairs": "all" if self.pairs is None else self.pairs}
        if self.kind == "mnist1d":
            return {"pairs": "all" if self.pairs is None else self.pairs,
                    "valid_split": self.valid_split or "train"}
        if self.kind == "npz":
            return {"path": self.path, "classification": self.classification}
        return {}

    def make(self) -> list[Task]:
        """Generate the tasks (may raise EvozeroError for data problems, e.g. a bad .npz)."""
        return make_tasks(self.kind, self.num_tasks, self.features, self.train, self.valid,
                          self.seed, epochs=self.epochs, data_seeds=self.data_seeds,
                          param_seeds=self.param_seeds, **self.options())

    def with_seed(self, seed: int) -> TaskSpec:
        """A copy with another root seed (explicit data_seeds/param_seeds still win)."""
        return dataclasses.replace(self, seed=int(seed))


@dataclass(frozen=True)
class OpLists:
    """Op names allowed in each component; an empty tuple freezes that component."""

    setup: tuple[str, ...] = _setting(_OpList(), DEMO_OPS)
    predict: tuple[str, ...] = _setting(_OpList(), DEMO_OPS)
    learn: tuple[str, ...] = _setting(_OpList(), DEMO_OPS)

    @property
    def frozen(self) -> tuple[str, ...]:
        """The frozen components: those whose op list is empty."""
        return tuple(c for c in COMPONENTS if not getattr(self, c))

    def codes(self, component: str) -> np.ndarray:
        """The int64 op codes of ``component`` ("setup", "predict" or "learn")."""
        return np.array([OPS_BY_NAME[name].code for name in getattr(self, component)],
                        dtype=np.int64)


@dataclass(frozen=True)
class SizeBounds:
    """Instruction count of one component: initial length and the bounds mutations keep."""

    init: int = _setting(_Int(0, 10_000), 0)
    min: int = _setting(_Int(0, 10_000), 0)
    max: int = _setting(_Int(0, 10_000), 0)

    def _problems(self) -> Iterator[tuple[Any, str]]:
        if self.min > self.max:
            yield ("min", "max"), f"must be <= max ({self.max}), got {self.min}"
        elif not self.min <= self.init <= self.max:
            yield "init", (f"must lie in [min, max] = [{self.min}, {self.max}], "
                           f"got {self.init}")


_DEFAULT_SIZES = {"setup": SizeBounds(10, 10, 10), "predict": SizeBounds(2, 2, 2),
                  "learn": SizeBounds(8, 8, 8)}


@dataclass(frozen=True)
class Sizes:
    """Size bounds of the three components (a single integer in the file means fixed)."""

    setup: SizeBounds = _setting(_SizeSection(_DEFAULT_SIZES["setup"]), _DEFAULT_SIZES["setup"])
    predict: SizeBounds = _setting(_SizeSection(_DEFAULT_SIZES["predict"]),
                                   _DEFAULT_SIZES["predict"])
    learn: SizeBounds = _setting(_SizeSection(_DEFAULT_SIZES["learn"]), _DEFAULT_SIZES["learn"])


@dataclass(frozen=True)
class Fec:
    """Functional-equivalence cache: fingerprint = rounded predictions on a few examples.

    ``forget_every``: a cached entry is re-evaluated after this many hits (0 = never).
    """

    enabled: bool = _setting(_Bool(), True)
    train: int = _setting(_Int(1, _SIZE_MAX), 10)
    valid: int = _setting(_Int(1, _SIZE_MAX), 10)
    cache_size: int = _setting(_Int(1, _SIZE_MAX, whole_floats=True), 100_000)
    forget_every: int = _setting(_Int(0, _COUNT_MAX), 100)
    # Fingerprints round to 10 ** -decimals; float64 holds about 15 significant digits.
    decimals: int = _setting(_Int(0, 15), 6)


@dataclass(frozen=True)
class Hurdles:
    """Stop weak children after the first task; ``window`` 0 = the current population."""

    enabled: bool = _setting(_Bool(), False)
    percentile: float = _setting(_Float(0.0, 100.0, min_open=True, max_open=True), 75.0)
    window: int = _setting(_Int(0, _SIZE_MAX), 0)


@dataclass(frozen=True)
class ComputeBudget:
    """Give 0 training steps to programs costlier than ``factor`` x the baseline algorithm."""

    enabled: bool = _setting(_Bool(), False)
    baseline: str = _setting(_Choice("neural_net", "linear"), "neural_net")
    factor: float = _setting(_Float(0.0, min_open=True), 2.0)


@dataclass(frozen=True)
class Budget:
    """Limits of one search experiment; it stops at whichever set limit is reached first."""

    individuals: int | None = _setting(_Optional(_Int(1, _COUNT_MAX, whole_floats=True)), None)
    train_steps: int | None = _setting(_Optional(_Int(1, _COUNT_MAX, whole_floats=True)),
                                       200_000_000)
    seconds: float | None = _setting(_Optional(_Float(0.0, min_open=True)), None)

    def _problems(self) -> Iterator[tuple[Any, str]]:
        if self.individuals is None and self.train_steps is None and self.seconds is None:
            yield ("individuals", "train_steps", "seconds", ""), \
                "at least one of budget.individuals, budget.train_steps, budget.seconds must be set"
