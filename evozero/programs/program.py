"""Programs: the three component functions as arrays ready for numba, text and JSON forms."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from evozero.errors import EvozeroError
from evozero.programs.instruction import (
    Instruction,
    check_instruction,
    first_problem,
    format_instruction,
    parse_instruction,
)
from ops.kinds import IN1_KIND, IN2_KIND, MATRIX_KIND, OUT_KIND, SCALAR_KIND, VECTOR_KIND
from ops.table import OPS, OPS_BY_NAME

COMPONENTS = ("setup", "predict", "learn")
_HEADERS = {"setup": "Setup", "predict": "Predict", "learn": "Learn"}
JSON_FORMAT = "evozero.program/1"


class Program:
    """An evolved algorithm: ``setup``, ``predict`` and ``learn`` instruction lists.

    ``code`` is an int64 array (n, 4) of rows ``(op, in1, in2, out)`` for all three
    components in order, ``constants`` a float64 array (n, 3), and ``bounds`` the four
    row offsets where setup, predict and learn start and learn ends.
    """

    __slots__ = ("code", "constants", "bounds")

    def __init__(self, code: np.ndarray, constants: np.ndarray, sizes: Sequence[int]) -> None:
        """Check and hold the arrays (see the class docstring); any ill-formed input is an
        EvozeroError naming the row, since the kernels trust every field."""
        self.code = _integer_rows(code, 4, "code")
        self.constants = _float_rows(constants, 3, "constants")
        sizes = _sizes(sizes)
        self.bounds = np.array([0, sizes[0], sizes[0] + sizes[1], sum(sizes)], dtype=np.int64)
        if self.bounds[-1] != len(self.code) or len(self.code) != len(self.constants):
            raise EvozeroError(f"program arrays disagree: sizes {sizes} but "
                               f"{len(self.code)} code rows and {len(self.constants)} constant rows")
        problem = first_problem(self.code, self.constants)
        if problem is not None:
            row, message = problem
            component = int(np.searchsorted(self.bounds[1:], row, side="right"))
            raise EvozeroError(f"program {COMPONENTS[component]}[{row - self.bounds[component]}] "
                               f"(row {row}): {message}")

    # --- construction -------------------------------------------------------------

    @classmethod
    def from_instructions(cls, setup: Iterable[Instruction] = (), predict: Iterable[Instruction] = (),
                          learn: Iterable[Instruction] = ()) -> Program:
        """Build a program from instruction lists, checking every instruction."""
        parts = [list(setup), list(predict), list(learn)]
        rows, consts = [], []
        for component, part in zip(COMPONENTS, parts):
            for index, inst in enumerate(part):
                if not isinstance(inst, Instruction):
                    raise EvozeroError(f"{component}[{index}]: expected an Instruction, got "
                                       f"{type(inst).__name__}")
                try:
                    check_instruction(inst)
                except EvozeroError as error:
                    raise EvozeroError(f"{component}[{index}]: {error}") from None
                rows.append((inst.op, inst.in1, inst.in2, inst.out))
                consts.append(tuple(inst.constants))
        return cls(np.array(rows, dtype=np.int64).reshape(-1, 4),
                   np.array(consts, dtype=np.float64).reshape(-1, 3), [len(p) for p in parts])

    @classmethod
    def parse(cls, text: str) -> Program:
        """Parse the text form; an error names the line and what was expected."""
        if not isinstance(text, str):
            raise EvozeroError(f"Program.parse takes the program text as a str, got "
                               f"{type(text).__name__}" + (" (decode bytes first, e.g. "
                                                          "data.decode('utf-8'))"
                                                          if isinstance(text, bytes) else ""))
        parts: dict[str, list[Instruction]] = {}
        current = None
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].rstrip()
            if not line.strip():
                continue
            header = _header(line)
            if header:
                expected = COMPONENTS[len(parts)] if len(parts) < 3 else None
                if header != expected:
                    raise EvozeroError(f"line {number}: '{line.strip()}': expected "
                                       + (f"'def {_HEADERS[expected]}():'" if expected
                                          else "no more functions after Learn"))
                parts[header] = []
                current = header
                continue
            if current is None:
                raise EvozeroError(f"line {number}: '{line.strip()}': expected 'def Setup():' "
                                   "before any instruction")
            try:
                parts[current].append(parse_instruction(line))
            except EvozeroError as error:
                raise EvozeroError(f"line {number}: {error}") from None
        if len(parts) < 3:
            missing = ", ".join(f"def {_HEADERS[c]}():" for c in COMPONENTS if c not in parts)
            raise EvozeroError(f"program text is missing {missing}")
        return cls.from_instructions(parts["setup"], parts["predict"], parts["learn"])

    @classmethod
    def from_json(cls, data: str | Mapping[str, Any]) -> Program:
        """Read a program from its JSON form (a string or an already-loaded dict)."""
        if isinstance(data, str):
            try:
                obj = json.loads(data)
            except (ValueError, RecursionError) as error:
                raise EvozeroError(f"program JSON is not valid JSON: {error}") from None
        elif isinstance(data, Mapping):
            obj = data
        else:
            raise EvozeroError(f"Program.from_json takes a JSON str or a dict, got "
                               f"{type(data).__name__}" + (" (decode bytes first)"
                                                          if isinstance(data, bytes) else ""))
        if not isinstance(obj, Mapping) or obj.get("format") != JSON_FORMAT:
            raise EvozeroError(f"not an evozero program: expected a JSON object with "
                               f"\"format\": \"{JSON_FORMAT}\"")
        parts = []
        for component in COMPONENTS:
            items = obj.get(component)
            if not isinstance(items, list):
                raise EvozeroError(f"program JSON: '{component}' must be a list of instructions")
            parts.append([_instruction_from_json(item, component, i) for i, item in enumerate(items)])
        return cls.from_instructions(*parts)

    # --- views --------------------------------------------------------------------

    @property
    def sizes(self) -> tuple[int, int, int]:
        """Number of instructions of setup, predict and learn."""
        return tuple(int(x) for x in np.diff(self.bounds))  # type: ignore[return-value]

    def instructions(self, component: str) -> list[Instruction]:
        """The instructions of one component, as :class:`Instruction` objects."""
        index = COMPONENTS.index(component)
        start, stop = self.bounds[index], self.bounds[index + 1]
        return [Instruction(int(r[0]), int(r[1]), int(r[2]), int(r[3]), tuple(float(c) for c in k))
                for r, k in zip(self.code[start:stop], self.constants[start:stop])]

    def with_components(self, source: Program, components: Iterable[str]) -> Program:
        """A copy of this program whose ``components`` (names of :data:`COMPONENTS`) are
        those of ``source``."""
        taken = set(components)
        unknown = taken - set(COMPONENTS)
        if unknown:
            raise EvozeroError(f"unknown component(s) {', '.join(sorted(unknown))}; "
                               f"components: {', '.join(COMPONENTS)}")
        return Program.from_instructions(*((source if c in taken else self).instructions(c)
                                           for c in COMPONENTS))

    def memory_needs(self) -> tuple[int, int, int]:
        """Smallest (scalars, vectors, matrices) sizes that hold every address used.

        Scalars are at least 2 (s0 label, s1 prediction) and vectors at least 1 (v0).
        """
        ops = self.code[:, 0]
        kinds = np.stack([IN1_KIND[ops], IN2_KIND[ops], OUT_KIND[ops]], axis=1)
        addresses = self.code[:, 1:]

        def need(kind: int, least: int) -> int:
            used = addresses[kinds == kind]
            return max(least, int(used.max()) + 1 if used.size else 0)

        return need(SCALAR_KIND, 2), need(VECTOR_KIND, 1), need(MATRIX_KIND, 0)

    def to_json(self) -> str:
        """The program as a JSON string (floats exact)."""
        return json.dumps(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The program as plain JSON-ready data."""
        data: dict[str, Any] = {"format": JSON_FORMAT}
        for component in COMPONENTS:
            data[component] = [_instruction_to_json(inst) for inst in self.instructions(component)]
        return data

    def __str__(self) -> str:
        lines = []
        for component in COMPONENTS:
            lines.append(f"def {_HEADERS[component]}():")
            lines.extend(f"  {format_instruction(inst)}" for inst in self.instructions(component))
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return f"Program(sizes={self.sizes})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Program):
            return NotImplemented
        return (np.array_equal(self.bounds, other.bounds) and np.array_equal(self.code, other.code)
                and np.array_equal(self.constants.view(np.int64), other.constants.view(np.int64)))

    def __hash__(self) -> int:
        return hash((self.bounds.tobytes(), self.code.tobytes(), self.constants.tobytes()))


def _header(line: str) -> str | None:
    text = line.strip()
    for component, name in _HEADERS.items():
        if text.replace(" ", "") in (f"def{name}():", f"def{component}():"):
            return component
    return None


def _instruction_to_json(inst: Instruction) -> dict[str, Any]:
    spec = OPS[inst.op]
    item: dict[str, Any] = {"op": spec.name}
    for slot in ("in1", "in2", "out"):
        if getattr(spec, slot):
            item[slot] = getattr(inst, slot)
    if spec.constants:
        item["constants"] = list(inst.constants[:len(spec.constants)])
    return item


def _instruction_from_json(item: Any, component: str, index: int) -> Instruction:
    where = f"program JSON: {component}[{index}]"
    if not isinstance(item, Mapping) or "op" not in item:
        raise EvozeroError(f"{where}: expected an object with an 'op' name")
    spec = OPS_BY_NAME.get(str(item["op"]).upper())
    if spec is None:
        raise EvozeroError(f"{where}: unknown op {item['op']!r}; allowed: {', '.join(OPS_BY_NAME)}")
    unknown = set(item) - {"op", "in1", "in2", "out", "constants"}
    if unknown:
        raise EvozeroError(f"{where}: unknown keys {sorted(unknown)}")
    constants = item.get("constants", [])
    if not isinstance(constants, list):
        raise EvozeroError(f"{where}: constants must be a list of numbers, got "
                           f"{json.dumps(constants, default=str)[:40]}")
    if len(constants) != len(spec.constants):
        raise EvozeroError(f"{where}: {spec.name} takes {len(spec.constants)} constants, "
                           f"got {len(constants)}")
    fields = {}
    for slot in ("in1", "in2", "out"):
        value = item.get(slot, 0)
        # bool is an int to Python, 1.0 a float to JSON: both would be silently changed.
        if not isinstance(value, int) or isinstance(value, bool):
            raise EvozeroError(f"{where}: {slot} must be a whole-number address, got "
                               f"{json.dumps(value)[:40]}")
        fields[slot] = value
    if any(not isinstance(c, (int, float)) or isinstance(c, bool) for c in constants):
        raise EvozeroError(f"{where}: constants must be numbers, got {json.dumps(constants)[:60]}")
    values = tuple(float(c) for c in constants) + (0.0,) * (3 - len(constants))
    try:
        inst = Instruction(spec.code, fields["in1"], fields["in2"], fields["out"], values)
        check_instruction(inst)
    except EvozeroError as error:
        raise EvozeroError(f"{where}: {error}") from None
    return inst


def _integer_rows(array: Any, width: int, name: str) -> np.ndarray:
    """``array`` as a C-contiguous int64 (n, width) array; refuses floats (1.7 would be
    truncated), values past int64 and any other shape."""
    values = _rows(array, width, name, "iu", "an integer")
    if values.dtype.kind == "u" and values.size and values.max() > np.iinfo(np.int64).max:
        raise EvozeroError(f"program {name} holds {values.max()}, past the 64-bit integer range")
    return np.ascontiguousarray(values, dtype=np.int64)


def _float_rows(array: Any, width: int, name: str) -> np.ndarray:
    """``array`` as a C-contiguous float64 (n, width) array of real numbers."""
    return np.ascontiguousarray(_rows(array, width, name, "iuf", "a real-valued"),
                                dtype=np.float64)


def _rows(array: Any, width: int, name: str, kinds: str, what: str) -> np.ndarray:
    """``array`` as a 2-D numpy array of ``width`` columns and a dtype kind in ``kinds``
    (an empty input gives no rows, whatever its shape)."""
    try:
        values = np.asarray(array)
    except (TypeError, ValueError, OverflowError) as error:
        raise EvozeroError(f"program {name} must be {what} array (n, {width}): {error}") from None
    if values.size == 0:
        return np.zeros((0, width), dtype=np.int64)
    if values.dtype.kind not in kinds or values.ndim != 2 or values.shape[1] != width:
        raise EvozeroError(f"program {name} must be {what} array of shape (n, {width}), "
                           f"got {values.dtype} {values.shape}")
    return values


def _sizes(sizes: Any) -> tuple[int, int, int]:
    """Three non-negative whole numbers: the lengths of setup, predict and learn."""
    try:
        values = tuple(sizes)
    except TypeError:
        values = ()
    if len(values) != 3 or any(not isinstance(v, (int, np.integer)) or isinstance(v, bool)
                               or v < 0 for v in values):
        raise EvozeroError(f"program sizes must be three whole numbers >= 0 (setup, predict, "
                           f"learn), got {sizes!r}"[:200])
    return tuple(int(v) for v in values)  # type: ignore[return-value]
