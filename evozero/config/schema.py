"""The checker framework every config section is built from.

A section is a frozen dataclass whose fields carry a checker object in their metadata
(``_Int``, ``_Float``, ``_Choice``, ... made with :func:`_setting`). One walker
(``_Section.parse``) visits the fields of a section, hands each raw value to its checker
and then runs the section's cross-field ``_problems``; nothing is checked anywhere else, so
every error has the same shape (``file:line: dotted.key: problem``, built by
:class:`_Context`). The sections themselves live in ``program``, ``cell_search`` and ``root``;
reading files and ``--set`` overrides in ``loading``.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from evozero.errors import EvozeroError

# PyYAML follows YAML 1.1, where 1e8 (no dot) is a string; users mean a number.
_EXPONENT_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
# Upper bounds of integer settings (seeds: ops.rng.SEED_MAX); counters and budgets live
# in int64 kernel arrays. The other bounds are far beyond any
# sensible experiment but keep a typo (an extra 000) from reaching an allocation; whether
# a run fits this machine's memory is checked as a whole by evozero.runs.preflight.
_COUNT_MAX = 2**62
_SIZE_MAX = 10**9


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


def _unknown(what: str, word: Any, choices: Collection[str], scope: str = "") -> str:
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


def check_setting(section: type, name: str, value: Any, source: str) -> Any:
    """``value`` checked as the setting ``name`` of config section ``section`` (the same
    rule a config file meets), an error located at ``source`` (e.g. a command-line option)."""
    spec = next(f for f in dataclasses.fields(section) if f.name == name).metadata["spec"]
    return spec.parse(value, name, _Context(source, {}, "."))


def _setting(spec: _Spec, default: Any = dataclasses.MISSING, *, factory: Any = None) -> Any:
    """A dataclass field whose metadata holds its checker (the schema entry)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"spec": spec})
    return field(default=default, metadata={"spec": spec})


def _section(cls: type, **defaults: Any) -> Any:
    spec = _Section(cls, defaults)
    return field(default_factory=lambda: spec.parse({}, "", _Context("<defaults>", {}, ".")),
                 metadata={"spec": spec})

