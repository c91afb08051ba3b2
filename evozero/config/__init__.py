"""Experiment configs: a frozen dataclass tree loaded from YAML, checked before anything runs.

The dataclasses below *are* the schema: every field carries a small checker object in its
metadata (``_Int``, ``_Float``, ``_Choice``, ...). One walker (``_Section.parse``) visits the
fields of a section, hands each raw value to its checker and then runs the section's
cross-field ``_problems``; nothing is checked anywhere else, so every error has the same
shape::

    experiments/demo.yaml:12: search_tasks.num_tasks: must be an integer >= 1, got -3

(``file:line: dotted.key: problem``), and values given with ``--set`` are located as
``file: --set key=value`` instead of a line. Every problem raises :class:`EvozeroError`.

Sequences are stored as tuples so a loaded config cannot be changed by accident;
``mutations`` is a plain ``dict`` (so :class:`Config` is comparable but not hashable).
Paths in a loaded config are absolute, which is why the resolved config written into a run
directory loads back to an equal config from anywhere.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import yaml

from evozero.errors import EvozeroError
from evozero.nas.cells import NB101_OPS
from evozero.nas.data import DATASETS as NAS_DATASETS
from evozero.evaluation.tasks import KINDS, Task, make_tasks
from evozero.config.yaml_file import parse_yaml, read_yaml
from ops.rng import SEED_MAX
from ops.table import MATRIX, OPS, OPS_BY_NAME, VECTOR

__all__ = [
    "COMPONENTS", "DEMO_OPS", "INITIAL_POPULATIONS", "ISLAND_KEYS", "MUTATIONS", "Budget",
    "ComputeBudget",
    "Config", "Fec", "Hurdles", "Memory", "Nas", "NasConstraints", "NasHurdle", "NasObjective",
    "NasTraining", "OpLists", "SEED_MAX", "SizeBounds", "Sizes", "TaskSpec",
    "config_from_dict", "config_to_dict", "default_config", "dump_config", "island_config",
    "island_count", "load_config", "load_task_spec",
]

#: The three component functions of a program, in execution order.
COMPONENTS = ("setup", "predict", "learn")
#: The op list of AutoML-Zero's demo (codes 56, 27, 2, 3, 18, 23), used for all components.
DEMO_OPS = ("SCALAR_CONST_SET", "VECTOR_INNER_PRODUCT", "SCALAR_DIFF", "SCALAR_PRODUCT",
            "SCALAR_VECTOR_PRODUCT", "VECTOR_SUM")
#: Built-in initial populations; any other value is the path of a file of programs.
INITIAL_POPULATIONS = ("noop", "random", "linear", "neural_net", "damaged_neural_net")
#: Mutation operators a config may weight.
MUTATIONS = ("alter_param", "randomize_instruction", "randomize_component", "identity",
             "insert_instruction", "remove_instruction", "trade_instruction",
             "randomize_algorithm")
#: Memory each hand-written initial algorithm addresses (AutoML-Zero spec 5.1).
_INIT_MEMORY = {"linear": (4, 3, 0), "neural_net": (5, 9, 2), "damaged_neural_net": (5, 9, 2)}
#: Settings an entry of the ``islands`` list may change for its island. Memory, sizes and
#: ops stay shared: migrants must run and mutate on every island.
ISLAND_KEYS = ("search_tasks", "population_size", "tournament_size", "mutate_prob",
               "mutations", "constant_mutation", "strategy", "fec", "hurdles")
_OP_NAMES_BY_CODE = {op.code: op.name for op in OPS}
_PAIR_NAMES = ("all", "search", "held_out")
# PyYAML follows YAML 1.1, where 1e8 (no dot) is a string; users mean a number.
_EXPONENT_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
# Upper bounds of integer settings (seeds: ops.rng.SEED_MAX); counters and budgets live
# in int64 kernel arrays. The other bounds are far beyond any
# sensible experiment but keep a typo (an extra 000) from reaching an allocation; whether
# a run fits this machine's memory is checked as a whole by evozero.runs.preflight.
_COUNT_MAX = 2**62
_SIZE_MAX = 10**9
_MAX_ISLANDS = 10_000
_MAX_WORKERS = 4096


# --- where a value came from, and the one error format --------------------------------


@dataclass
class _Context:
    """The source of the raw data: file name, key locations, directory for relative paths."""

    source: str
    marks: dict[str, str]
    base_dir: str

    def locate(self, key: str) -> str:
        """``file:line`` (or ``--set ...``) of ``key`` or of its closest located parent."""
        while key:
            if key in self.marks:
                return self.marks[key]
            cut = max(key.rfind("."), key.rfind("["))
            key = key[:cut] if cut > 0 else ""
        return self.source

    def error(self, key: str, problem: str) -> EvozeroError:
        where = self.locate(key)
        return EvozeroError(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML terms (true, null, "text"), kept short."""
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _did_you_mean(word: Any, choices: Iterable[str]) -> str:
    """``did you mean "x"?`` for the closest of ``choices``, or "" if none is close."""
    close = (difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
             if isinstance(word, str) else [])
    return f"did you mean {_show(close[0])}?" if close else ""


def _unknown(what: str, word: Any, choices: Sequence[str], scope: str = "") -> str:
    """The one wording of "unknown key/mutation": the name, a suggestion, every choice."""
    hint = _did_you_mean(word, choices)
    return (f"unknown {what} {_show(word)}; {hint + ' ' if hint else ''}"
            f"allowed{scope}: {', '.join(choices)}")


def _join(key: str, name: str) -> str:
    if not name:
        return key
    return f"{key}.{name}" if key else name


# --- checkers: one per kind of value --------------------------------------------------


class _Spec:
    """Checks and normalises one raw value; ``allowed`` says what is accepted."""

    allowed = "a value"

    def parse(self, value: Any, key: str, ctx: _Context) -> Any:
        raise NotImplementedError

    def dump(self, value: Any) -> Any:
        return value

    def fail(self, value: Any, key: str, ctx: _Context, note: str = "") -> EvozeroError:
        note = f"; {note}" if note else ""
        return ctx.error(key, f"must be {self.allowed}, got {_show(value)}{note}")

    # Support for dotted --set keys below this value (None: no sub-keys).
    def subkeys(self) -> Sequence[str] | None:
        return None

    def expand(self, raw: Any, key: str, ctx: _Context) -> dict:
        raise NotImplementedError


def _number_text(value: float) -> str:
    # Integers in full: a rounded bound such as 1.84467e+19 would not say what is allowed.
    return str(value) if isinstance(value, int) else f"{value:g}"


def _range_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return (f"in {'(' if low_open else '['}{_number_text(low)}, {_number_text(high)}"
                f"{')' if high_open else ']'}")
    if low is not None:
        return f"{'>' if low_open else '>='} {_number_text(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {_number_text(high)}"
    return ""


class _Int(_Spec):
    def __init__(self, minimum: int | None = None, maximum: int | None = None,
                 whole_floats: bool = False) -> None:
        self.minimum, self.maximum, self.whole_floats = minimum, maximum, whole_floats
        bounds = _range_text(minimum, maximum, False, False)
        self.allowed = f"an integer {bounds}".rstrip()
        if whole_floats:
            self.allowed += " (a whole number such as 2.0e8 is accepted)"

    def parse(self, value: Any, key: str, ctx: _Context) -> int:
        number = value
        if self.whole_floats:
            if isinstance(number, str) and _EXPONENT_NUMBER.match(number.strip()):
                number = float(number)
            if isinstance(number, float) and math.isfinite(number) and number.is_integer():
                number = int(number)
        if isinstance(number, bool) or not isinstance(number, int):
            raise self.fail(value, key, ctx)
        if ((self.minimum is not None and number < self.minimum)
                or (self.maximum is not None and number > self.maximum)):
            raise self.fail(value, key, ctx)
        return number


class _Float(_Spec):
    def __init__(self, minimum: float | None = None, maximum: float | None = None,
                 min_open: bool = False, max_open: bool = False) -> None:
        self.minimum, self.maximum = minimum, maximum
        self.min_open, self.max_open = min_open, max_open
        self.allowed = f"a number {_range_text(minimum, maximum, min_open, max_open)}".rstrip()

    def parse(self, value: Any, key: str, ctx: _Context) -> float:
        number = value
        if isinstance(number, str) and _EXPONENT_NUMBER.match(number.strip()):
            number = float(number)
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise self.fail(value, key, ctx)
        try:
            number = float(number)
        except OverflowError:  # an integer literal too large for a float
            raise self.fail(value, key, ctx, "it is not finite") from None
        if not math.isfinite(number):
            raise self.fail(value, key, ctx, "it is not finite")
        low, high = self.minimum, self.maximum
        if low is not None and (number < low or (self.min_open and number == low)):
            raise self.fail(value, key, ctx)
        if high is not None and (number > high or (self.max_open and number == high)):
            raise self.fail(value, key, ctx)
        return number


class _Bool(_Spec):
    allowed = "true or false"

    def parse(self, value: Any, key: str, ctx: _Context) -> bool:
        if not isinstance(value, bool):
            raise self.fail(value, key, ctx)
        return value


class _Str(_Spec):
    allowed = "a non-empty string"

    def parse(self, value: Any, key: str, ctx: _Context) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(value, key, ctx)
        return value


class _Name(_Spec):
    allowed = "a run name usable as a directory name (no '/' or '\\', not '.' or '..')"

    def parse(self, value: Any, key: str, ctx: _Context) -> str:
        if (not isinstance(value, str) or not value.strip() or value in (".", "..")
                or any(c in value for c in "/\\\0")):
            raise self.fail(value, key, ctx)
        return value


class _Choice(_Spec):
    def __init__(self, *choices: str) -> None:
        self.choices = choices
        self.allowed = "one of " + ", ".join(choices)

    def parse(self, value: Any, key: str, ctx: _Context) -> str:
        text = value.strip().lower() if isinstance(value, str) else None
        if text not in self.choices:
            raise self.fail(value, key, ctx, _did_you_mean(text, self.choices))
        return text


class _Optional(_Spec):
    """``None`` (YAML ``null``) or a value of ``inner``."""

    def __init__(self, inner: _Spec) -> None:
        self.inner = inner
        self.allowed = f"{inner.allowed} or null"

    def parse(self, value: Any, key: str, ctx: _Context) -> Any:
        if value is None:
            return None
        try:
            return self.inner.parse(value, key, ctx)
        except EvozeroError:
            raise self.fail(value, key, ctx) from None

    def dump(self, value: Any) -> Any:
        return None if value is None else self.inner.dump(value)


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


def _resolve(path: str, ctx: _Context) -> str:
    return os.path.abspath(os.path.join(ctx.base_dir, os.path.expanduser(path)))


class _FilePath(_Spec):
    """A path to an existing file, resolved relative to the config file's directory."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.allowed = f"the path of an existing {what} (relative to the config file) or null"

    def parse(self, value: Any, key: str, ctx: _Context) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(value, key, ctx)
        resolved = _resolve(value, ctx)
        if not os.path.isfile(resolved):
            raise ctx.error(key, f"no such file {_show(value)} (looked for {resolved}); "
                                 f"must be {self.allowed}")
        return resolved


class _InitialPopulation(_Spec):
    allowed = (f"one of {', '.join(INITIAL_POPULATIONS)} or the path of an existing file of "
               f"programs (relative to the config file)")

    def parse(self, value: Any, key: str, ctx: _Context) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(value, key, ctx)
        if value.strip().lower() in INITIAL_POPULATIONS:
            return value.strip().lower()
        resolved = _resolve(value, ctx)
        if not os.path.isfile(resolved):
            hint = _did_you_mean(value.strip().lower(), INITIAL_POPULATIONS)
            raise ctx.error(key, f"{_show(value)} is neither a built-in population nor an "
                                 f"existing file (looked for {resolved}); must be "
                                 f"{self.allowed}{'; ' + hint if hint else ''}")
        return resolved


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
               f"names (repeats add weight); names: {', '.join(MUTATIONS)}")

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
        if text not in MUTATIONS:
            raise ctx.error(key, _unknown("mutation", name if text is None else text,
                                          MUTATIONS, " mutations"))
        return text

    def dump(self, value: Any) -> Any:
        return dict(value)

    def subkeys(self) -> Sequence[str]:
        return MUTATIONS

    def expand(self, raw: Any, key: str, ctx: _Context) -> dict:
        if raw is None:
            return dict(self.default)
        if isinstance(raw, list):
            return dict(self.parse(raw, key, ctx))
        if isinstance(raw, dict):
            return raw
        raise self.fail(raw, key, ctx)


class _Section(_Spec):
    """A nested dataclass: walks its fields' checkers, then its cross-field ``_problems``.

    ``defaults`` overrides the class defaults of some fields (the three task sections
    differ only in their defaults).
    """

    def __init__(self, cls: type, defaults: Mapping[str, Any] | None = None) -> None:
        self.cls = cls
        self.defaults = dict(defaults or {})
        self.fields = {f.name: f for f in dataclasses.fields(cls)}
        self.allowed = f"a mapping with keys {', '.join(self.fields)}"

    def spec(self, name: str) -> _Spec:
        return self.fields[name].metadata["spec"]

    def default_value(self, name: str) -> Any:
        if name in self.defaults:
            return self.defaults[name]
        f = self.fields[name]
        return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default

    def parse(self, value: Any, key: str, ctx: _Context) -> Any:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.fail(value, key, ctx)
        for name in value:
            if name not in self.fields:
                raise ctx.error(_join(key, str(name)),
                                _unknown("key", name, tuple(self.fields),
                                         f" keys in {key}" if key else " keys"))
        value = self.cls._fill(dict(value)) if hasattr(self.cls, "_fill") else value
        kwargs = {}
        for name in self.fields:
            spec = self.spec(name)
            if name in value:
                kwargs[name] = spec.parse(value[name], _join(key, name), ctx)
            elif isinstance(spec, _Section) and not getattr(spec, "optional", False):
                kwargs[name] = spec.parse({}, _join(key, name), ctx)
            else:
                kwargs[name] = self.default_value(name)
        result = self.cls(**kwargs)
        for names, problem in result._problems() if hasattr(result, "_problems") else ():
            names = (names,) if isinstance(names, str) else names
            # Point at the first involved key the user actually wrote.
            where = next((n for n in names if n in value), names[0])
            raise ctx.error(_join(key, where), problem)
        return result

    def dump(self, value: Any) -> dict:
        return {name: self.spec(name).dump(getattr(value, name)) for name in self.fields}

    def subkeys(self) -> Sequence[str]:
        return tuple(self.fields)

    def expand(self, raw: Any, key: str, ctx: _Context) -> dict:
        if raw is None:
            return {}
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


class _OptionalSection(_Section):
    """A section that is absent (null) unless the file gives it; ``{}`` means defaults."""

    optional = True

    def __init__(self, cls: type) -> None:
        super().__init__(cls)
        self.allowed = f"null or {self.allowed}"

    def parse(self, value: Any, key: str, ctx: _Context) -> Any:
        return None if value is None else super().parse(value, key, ctx)

    def dump(self, value: Any) -> Any:
        return None if value is None else super().dump(value)


class _ChoiceList(_Spec):
    """A non-empty list of distinct names from ``choices``."""

    def __init__(self, *choices: str) -> None:
        self.choices = choices
        self.allowed = f"a non-empty list of distinct names from: {', '.join(choices)}"

    def parse(self, value: Any, key: str, ctx: _Context) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not value:
            raise self.fail(value, key, ctx)
        names = tuple(_Choice(*self.choices).parse(v, f"{key}[{i}]", ctx)
                      for i, v in enumerate(value))
        if len(set(names)) != len(names):
            raise self.fail(value, key, ctx, "a name is repeated")
        return names

    def dump(self, value: Any) -> Any:
        return list(value)


class _WordOrCount(_Spec):
    """One of a few words, or an integer >= 1."""

    def __init__(self, allowed: str, maximum: int, *words: str) -> None:
        self.allowed, self.maximum, self.words = allowed, maximum, words

    def parse(self, value: Any, key: str, ctx: _Context) -> str | int:
        if isinstance(value, str) and value.strip().lower() in self.words:
            return value.strip().lower()
        try:
            return _Int(1, self.maximum).parse(value, key, ctx)
        except EvozeroError:
            raise self.fail(value, key, ctx) from None


class _Islands(_Spec):
    allowed = (f"null (one island per worker), an integer in [1, {_MAX_ISLANDS}] (that many "
               f"islands), or a list (at most {_MAX_ISLANDS} long) with one mapping per island "
               f"of settings it changes (allowed keys: {', '.join(ISLAND_KEYS)}; an empty "
               f"mapping keeps every setting)")

    def parse(self, value: Any, key: str, ctx: _Context) -> int | tuple[dict, ...] | None:
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return _Int(1, _MAX_ISLANDS).parse(value, key, ctx)
        if not isinstance(value, (list, tuple)) or not value or len(value) > _MAX_ISLANDS:
            raise self.fail(value, key, ctx)
        entries = []
        for i, entry in enumerate(value):
            where = f"{key}[{i}]"
            if entry is None:
                entry = {}
            if not isinstance(entry, dict):
                raise ctx.error(where, f"must be a mapping of settings for island {i + 1}, "
                                       f"got {_show(entry)}")
            for name, setting in entry.items():
                if name not in ISLAND_KEYS:
                    shared = name in _CONFIG.fields
                    raise ctx.error(_join(where, str(name)), (
                        f"cannot differ between islands (programs migrate, so they must "
                        f"run and mutate on every island); allowed per island: "
                        f"{', '.join(ISLAND_KEYS)}") if shared else _unknown(
                        "key", name, ISLAND_KEYS, " per island"))
                # Checked on its own here; merged with the shared settings by island_config.
                _CONFIG.spec(name).parse(setting, _join(where, str(name)), ctx)
            entries.append(dict(entry))
        return tuple(entries)

    def dump(self, value: Any) -> Any:
        return list(value) if isinstance(value, tuple) else value


def _setting(spec: _Spec, default: Any = dataclasses.MISSING, *, factory: Any = None) -> Any:
    """A dataclass field whose metadata holds its checker (the schema entry)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"spec": spec})
    return field(default=default, metadata={"spec": spec})


def _section(cls: type, **defaults: Any) -> Any:
    spec = _Section(cls, defaults)
    return field(default_factory=lambda: spec.parse({}, "", _Context("<defaults>", {}, ".")),
                 metadata={"spec": spec})


# --- the schema --------------------------------------------------------------------


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

    ``pairs`` is an option of "digits" tasks, ``path`` and ``classification`` of "npz"
    tasks; ``features`` is null for npz tasks unless given (it is then read from the file).
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
    path: str | None = _setting(_FilePath(".npz file"), None)
    classification: bool | None = _setting(_Optional(_Bool()), None)

    @staticmethod
    def _fill(raw: dict) -> dict:
        kind = raw.get("kind")
        if isinstance(kind, str) and kind.strip().lower() == "npz":
            raw.setdefault("features", None)
        if isinstance(kind, str) and kind.strip().lower() == "digits":
            raw.setdefault("pairs", "all")
        return raw

    def _problems(self) -> Iterator[tuple[Any, str]]:
        options = {"pairs": "digits", "path": "npz", "classification": "npz"}
        for option, kind in options.items():
            if getattr(self, option) is not None and self.kind != kind:
                yield option, (f"is an option of {kind!r} tasks only, but kind is "
                               f"{self.kind!r}; remove it or set kind: {kind}")
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
class Nas:
    """A neural architecture search: cells of ``space`` trained on ``dataset``."""

    space: str = _setting(_Choice("nb101", "nb201"), "nb201")
    dataset: str = _setting(_Choice(*NAS_DATASETS), "digits")
    data_seed: int = _setting(_Int(0, SEED_MAX), 0)
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

    def _problems(self) -> Iterator[tuple[Any, str]]:
        if self.space == "nb201" and (self.max_vertices, self.max_edges, self.nb101_ops) != (
                7, 9, NB101_OPS):
            yield ("space", "max_vertices", "max_edges", "nb101_ops"), (
                "max_vertices, max_edges and nb101_ops are settings of the nb101 space; "
                "nb201 cells have 4 nodes and 6 edges")


@dataclass(frozen=True)
class Config:
    """A complete, validated experiment (see the module docstring and docs/design.md)."""

    name: str | None = _setting(_Optional(_Name()), None)
    seed: int = _setting(_Int(0, SEED_MAX), 0)
    memory: Memory = _section(Memory)
    search_tasks: TaskSpec = _section(TaskSpec)
    select_tasks: TaskSpec = _section(TaskSpec, num_tasks=100, train=1000, seed=1_000_000)
    final_tasks: TaskSpec = _section(TaskSpec, num_tasks=100, train=1000, seed=2_000_000)
    ops: OpLists = _section(OpLists)
    sizes: Sizes = _section(Sizes)
    initial_population: str = _setting(_InitialPopulation(), "random")
    strategy: str = _setting(_Choice("evolution", "random"), "evolution")
    population_size: int = _setting(_Int(2, _SIZE_MAX), 1000)
    tournament_size: int = _setting(_Int(1, _SIZE_MAX), 10)
    mutate_prob: float = _setting(_Float(0.0, 1.0), 0.9)
    mutations: dict[str, float] = _setting(
        _Mutations({"alter_param": 1.0, "randomize_instruction": 1.0,
                    "randomize_component": 1.0}),
        factory=lambda: {"alter_param": 1.0, "randomize_instruction": 1.0,
                         "randomize_component": 1.0})
    constant_mutation: str = _setting(_Choice("lognormal", "uniform_scale"), "lognormal")
    fitness_combine: str = _setting(_Choice("mean", "median"), "mean")
    max_abs_error: float = _setting(_Float(0.0, min_open=True), 100.0)
    fec: Fec = _section(Fec)
    hurdles: Hurdles = _section(Hurdles)
    compute_budget: ComputeBudget = _section(ComputeBudget)
    budget: Budget = _section(Budget)
    sufficient_fitness: float | None = _setting(_Optional(_Float()), 0.9999)
    max_experiments: int = _setting(_Int(0, _SIZE_MAX), 0)
    randomize_task_seeds: bool = _setting(_Bool(), True)
    progress_every: float = _setting(_Float(0.0, min_open=True), 1.0)
    checkpoint_every: float = _setting(_Float(0.0, min_open=True), 60.0)
    workers: str | int = _setting(
        _WordOrCount(f"auto (every core of this machine) or an integer in [1, {_MAX_WORKERS}]",
                     _MAX_WORKERS, "auto"), "auto")
    islands: int | tuple[dict, ...] | None = _setting(_Islands(), None)
    migrate_every: int = _setting(_Int(1, _COUNT_MAX, whole_floats=True), 1_000_000)
    migration: str | int = _setting(
        _WordOrCount(f"half (a random half of the population), none, or the integer number of "
                     f"programs (in [1, {_SIZE_MAX}]) each island sends and receives", _SIZE_MAX,
                     "half", "none"), "half")
    deterministic: bool = _setting(_Bool(), False)
    backend: str = _setting(_Choice("local", "ray"), "local")
    address: str | None = _setting(_Optional(_Str()), None)
    nas: Nas | None = _setting(_OptionalSection(Nas), None)

    def _problems(self) -> Iterator[tuple[Any, str]]:
        if self.tournament_size > self.population_size:
            yield ("tournament_size", "population_size"), (
                f"must be <= population_size ({self.population_size}), "
                f"got {self.tournament_size}")
        if self.max_experiments == 0 and self.sufficient_fitness is None:
            yield ("max_experiments", "sufficient_fitness"), (
                "max_experiments 0 (unlimited) needs sufficient_fitness to stop; set "
                "max_experiments to an integer >= 1 or sufficient_fitness to a number")
        if not any(getattr(self.ops, c) for c in COMPONENTS):
            yield "ops", ("all three op lists are empty, so nothing can evolve; give at "
                          "least one of ops.setup, ops.predict, ops.learn an op")
        yield from self._memory_problems()
        if self.address is not None and self.backend != "ray":
            yield ("address", "backend"), ("is the address of a Ray cluster, used with "
                                           "backend: ray only; set backend: ray or remove it")
        if isinstance(self.islands, tuple):
            for i in range(len(self.islands)):
                try:
                    island_config(self, i)
                except EvozeroError as error:
                    yield "islands", str(error)
        need = _INIT_MEMORY.get(self.initial_population)
        have = self.memory.sizes
        if need and any(h < n for h, n in zip(have, need)):
            yield ("initial_population", "memory"), (
                f"the {self.initial_population!r} initial population needs memory "
                f"scalars >= {need[0]}, vectors >= {need[1]}, matrices >= {need[2]}; "
                f"the config has {have[0]}, {have[1]}, {have[2]}")

    def _memory_problems(self) -> Iterator[tuple[Any, str]]:
        # The randomizer draws output addresses from v1.. and any address from m0..; with
        # no such address it would produce an out-of-range index inside numba, which
        # corrupts memory silently instead of failing.
        for component in COMPONENTS:
            for name in getattr(self.ops, component):
                op = OPS_BY_NAME[name]
                if MATRIX in (op.in1, op.in2, op.out) and self.memory.matrices < 1:
                    yield ("memory.matrices", f"ops.{component}"), (
                        f"op {name} in ops.{component} uses a matrix but memory.matrices "
                        f"is 0; set memory.matrices >= 1 or remove the op")
                    return
                if op.out == VECTOR and self.memory.vectors < 2:
                    yield ("memory.vectors", f"ops.{component}"), (
                        f"op {name} in ops.{component} writes a vector but memory.vectors "
                        f"is {self.memory.vectors} (v0 holds the features); set "
                        f"memory.vectors >= 2 or remove the op")
                    return


_CONFIG = _Section(Config)


# --- public API ----------------------------------------------------------------------


def island_count(config: Config, workers: int) -> int:
    """How many islands a run of ``config`` has when it starts on ``workers`` workers."""
    if config.islands is None:
        return workers
    return config.islands if isinstance(config.islands, int) else len(config.islands)


def island_config(config: Config, island: int) -> Config:
    """The config island number ``island`` (from 0) searches with: its ``islands`` entry
    (if any) merged into the shared settings, sections key by key."""
    if not isinstance(config.islands, tuple):
        return config
    entry = config.islands[island % len(config.islands)]
    if not entry:
        return config
    data = config_to_dict(config)
    for name, value in entry.items():
        if isinstance(data[name], dict) and isinstance(value, dict) and name != "mutations":
            data[name] = {**data[name], **value}
        else:
            data[name] = value
    data["islands"] = None
    return config_from_dict(data, f"island {island + 1}")


def default_config() -> Config:
    """The config of an empty file: AutoML-Zero's demo (rediscover linear regression)."""
    return Config()


def config_from_dict(data: Mapping[str, Any] | None, source: str = "<config>", *,
                     base_dir: str | os.PathLike | None = None) -> Config:
    """Validate plain data (as loaded from YAML) into a :class:`Config`.

    ``source`` names the data in error messages; relative paths resolve against
    ``base_dir`` (default: the current directory).
    """
    ctx = _Context(source, {}, os.fspath(base_dir) if base_dir is not None else os.getcwd())
    if data is not None and not isinstance(data, Mapping):
        raise ctx.error("", f"the config must be a mapping of keys to values, got {_show(data)}")
    return _CONFIG.parse(dict(data or {}), "", ctx)


def load_task_spec(path: str | os.PathLike) -> TaskSpec:
    """The tasks a YAML file describes: one task spec (the keys of a task section, with
    ``kind``; defaults as for ``final_tasks``) or a whole experiment config (its
    ``final_tasks``). Relative paths resolve against the file's directory."""
    path = os.fspath(path)
    data, node = read_yaml(path, "task spec or config")
    ctx = _Context(path, _yaml_marks(node, path) if node is not None else {},
                   os.path.dirname(os.path.abspath(path)))
    if data is not None and not isinstance(data, dict):
        raise ctx.error("", f"must be a task spec (a mapping with kind, num_tasks, ...) or an "
                            f"experiment config, got {_show(data)}")
    if data and "kind" in data:  # a config has no top-level kind: this is a task spec
        return _CONFIG.spec("final_tasks").parse(data, "", ctx)
    return _CONFIG.parse(dict(data or {}), "", ctx).final_tasks


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain YAML-ready data with every field present; config_from_dict reverses it."""
    return _CONFIG.dump(config)


def dump_config(config: Config) -> str:
    """YAML text of the resolved config (every default written out)."""
    header = "# evozero resolved config: every default filled in, paths absolute.\n"
    return header + yaml.dump(config_to_dict(config), Dumper=_Dumper, sort_keys=False,
                              default_flow_style=False, width=120, allow_unicode=True)


class _Dumper(yaml.SafeDumper):
    """Block-style mappings, one-line lists: ``setup: [SCALAR_SUM, VECTOR_SUM]``."""


_Dumper.add_representer(list, lambda dumper, data: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", data, flow_style=True))


def load_config(path: str | os.PathLike, overrides: Sequence[str] = (),
                seed: int | None = None) -> Config:
    """Read a YAML config, apply ``--set key=value`` overrides and ``seed``, validate.

    Override values are parsed as YAML (``ops.setup=[scalar_sum, vector_sum]``,
    ``budget.seconds=null``). A null ``name`` becomes the file's stem.
    """
    path = os.fspath(path)
    data, marks = _read_yaml(path)
    ctx = _Context(path, marks, os.path.dirname(os.path.abspath(path)))
    for item in overrides:
        _apply_override(data, item, ctx)
    if seed is not None:
        _set_value(data, "seed", seed, f"{path}: --seed {seed}", ctx)
    config = _CONFIG.parse(data, "", ctx)
    if config.name is None:
        config = dataclasses.replace(config, name=Path(path).stem)
    return config


# --- YAML with line numbers ------------------------------------------------------------


def _read_yaml(path: str) -> tuple[dict, dict[str, str]]:
    """The top-level mapping of a YAML file and ``path:line`` of every key in it."""
    data, node = read_yaml(path, "config file")
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        line = node.start_mark.line + 1 if node is not None else 1
        raise EvozeroError(f"{path}:{line}: the config must be a mapping of keys (such as "
                           f"population_size) to values, got {_show(data)}")
    return data, _yaml_marks(node, path)


def _yaml_marks(node: yaml.Node, path: str) -> dict[str, str]:
    """``path:line`` of every dotted key and list item under the root ``node``."""
    marks: dict[str, str] = {}
    _mark_nodes(node, "", path, marks)
    return marks


def _mark_nodes(node: yaml.Node, key: str, path: str, marks: dict[str, str]) -> None:
    """Record ``path:line`` for every dotted key and list item under ``node``."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            name = str(key_node.value)
            child = _join(key, name)
            if name in seen:
                raise EvozeroError(f"{path}:{key_node.start_mark.line + 1}: {child}: "
                                   f"duplicate key; give each key once")
            seen.add(name)
            marks[child] = f"{path}:{key_node.start_mark.line + 1}"
            _mark_nodes(value_node, child, path, marks)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = f"{key}[{i}]"
            marks[child] = f"{path}:{item.start_mark.line + 1}"
            _mark_nodes(item, child, path, marks)


# --- --set overrides -----------------------------------------------------------------


def _apply_override(data: dict, item: str, ctx: _Context) -> None:
    """Apply one ``key=value`` override (value parsed as YAML) to the raw data."""
    where = f"{ctx.source}: --set {item}"
    if not isinstance(item, str) or "=" not in item:
        raise EvozeroError(f"{where}: an override must look like key=value (for example "
                           f"population_size=100 or search_tasks.num_tasks=5)")
    key, text = item.split("=", 1)
    key = key.strip()
    value, _ = parse_yaml(text, f"{where}: cannot parse the value {text!r}", lines=False)
    _set_value(data, key, value, where, ctx)


def _set_value(data: dict, key: str, value: Any, where: str, ctx: _Context) -> None:
    """Set dotted ``key`` in the raw data, checking each part against the schema."""
    parts = key.split(".")
    spec: _Spec = _CONFIG
    target = data
    for depth, part in enumerate(parts):
        allowed = spec.subkeys()
        prefix = ".".join(parts[:depth])
        if allowed is None:
            raise EvozeroError(f"{where}: {key}: unknown key; {prefix} is a single value "
                               f"and has no sub-keys; use --set {prefix}=VALUE")
        if part not in allowed:
            scope = f" keys under {prefix}" if prefix else " keys"
            raise EvozeroError(f"{where}: {key}: "
                               + _unknown("key", part, tuple(allowed), scope))
        if depth == len(parts) - 1:
            target[part] = value
            break
        spec = spec.spec(part) if isinstance(spec, _Section) else _Spec()
        if spec.subkeys() is not None:
            target[part] = spec.expand(target.get(part), _join(prefix, part), ctx)
            target = target[part]
    # Later errors about this key (or anything below it) point at the override.
    stale = [k for k in ctx.marks if k == key or k.startswith((key + ".", key + "["))]
    for k in stale:
        del ctx.marks[k]
    ctx.marks[key] = where
