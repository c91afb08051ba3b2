"""One instruction: its fields, its checks and its text form, all read from the op table."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from evozero.errors import EvozeroError
from ops.kinds import (
    CONST_KIND,
    FRACTION_KIND,
    IN1_KIND,
    IN2_KIND,
    NO_OP,
    NONE_KIND,
    NUM_CONSTANTS,
    NUM_OPS,
    OUT_KIND,
    SCALAR_KIND,
    VECTOR_KIND,
)
from ops.table import KIND_NAMES, OPS, OpSpec

_FLOAT = r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf|nan))"
#: Every address is below this: the most addresses any memory kind may hold (the bound of
#: the config's memory.* settings), so a program's memory needs stay allocatable.
ADDRESS_LIMIT = 10_000


@dataclass(frozen=True)
class Instruction:
    """``out = op(in1, in2)`` with up to three constants; unused fields are 0."""

    op: int
    in1: int = 0
    in2: int = 0
    out: int = 0
    constants: tuple[float, ...] = field(default=(0.0, 0.0, 0.0))

    @property
    def spec(self) -> OpSpec:
        """The table entry of this instruction's op."""
        return OPS[self.op]

    def __str__(self) -> str:
        return format_instruction(self)


def check_instruction(inst: Instruction) -> None:
    """Raise EvozeroError unless ``inst`` is a well-formed instruction."""
    for slot in ("op", "in1", "in2", "out"):
        value = getattr(inst, slot)
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) \
                or not -2**63 <= value < 2**63:
            raise EvozeroError(f"instruction {slot} must be an integer (64-bit), got "
                               f"{_short(value)}")
    name = OPS[inst.op].name if 0 <= inst.op < len(OPS) else f"op {inst.op}"
    try:
        constants = np.array([inst.constants], dtype=np.float64)
    except (TypeError, ValueError):
        raise EvozeroError(f"{name}: constants must be 3 floats, got "
                           f"{_short(inst.constants)}") from None
    if constants.shape != (1, 3):
        raise EvozeroError(f"{name}: constants must be 3 floats, got {len(inst.constants)}")
    problem = first_problem(np.array([[inst.op, inst.in1, inst.in2, inst.out]], dtype=np.int64),
                            constants)
    if problem is not None:
        raise EvozeroError(problem[1])


def first_problem(code: np.ndarray, constants: np.ndarray) -> tuple[int, str] | None:
    """The first ill-formed row of int64 ``code`` (n, 4) and float64 ``constants`` (n, 3),
    as ``(row, message)``, or None. Vectorised: one pass of numpy per rule, so checking a
    whole population costs about as much as copying it."""
    ops = code[:, 0]
    known = (ops >= 0) & (ops < NUM_OPS)
    safe = np.where(known, ops, NO_OP)
    kinds = (IN1_KIND[safe], IN2_KIND[safe], OUT_KIND[safe])
    addresses = code[:, 1:]
    unused = (np.stack(kinds, axis=1) == NONE_KIND) & (addresses != 0)
    negative = (np.stack(kinds, axis=1) != NONE_KIND) & (addresses < 0)
    too_far = addresses >= ADDRESS_LIMIT
    role = ((kinds[2] == SCALAR_KIND) | (kinds[2] == VECTOR_KIND)) & (code[:, 3] == 0)
    slot = np.arange(3)[None, :]
    used = slot < NUM_CONSTANTS[safe][:, None]
    # Unused constants must be +0.0: the text form omits them, so anything else would
    # not round-trip (the bit pattern of +0.0 is all zeros).
    stray = ~used & (constants.view(np.int64) != 0)
    with np.errstate(invalid="ignore"):
        infinite = used & ~np.isfinite(constants)
        fraction = used & (CONST_KIND[safe] == FRACTION_KIND) & ~((constants >= 0.0)
                                                                   & (constants < 1.0))
    rules = (~known, unused.any(1), negative.any(1), too_far.any(1), role, stray.any(1),
             infinite.any(1), fraction.any(1))
    if not len(code):
        return None
    bad = np.flatnonzero(np.logical_or.reduce(rules))
    if not len(bad):
        return None
    row = int(bad[0])
    # numpy's stubs type ``&`` of boolean arrays as possibly a scalar; these are arrays.
    broken = [bool(rule[row]) for rule in rules]  # type: ignore[index]
    return row, _row_message(code[row], constants[row], broken,
                             unused[row], negative[row], too_far[row], stray[row],
                             infinite[row] | fraction[row])


def _row_message(code: np.ndarray, constants: np.ndarray, broken: list[bool],
                 unused: np.ndarray, negative: np.ndarray, too_far: np.ndarray,
                 stray: np.ndarray, bad_constant: np.ndarray) -> str:
    """What is wrong with one row (the first rule it breaks, in the order of the rules)."""
    op = int(code[0])
    if broken[0]:
        return f"unknown op code {op}; allowed: 0..{NUM_OPS - 1}"
    spec = OPS[op]
    slots = ("in1", "in2", "out")
    if broken[1]:
        k = int(np.argmax(unused))
        return f"{spec.name} has no {slots[k]}; got address {int(code[k + 1])}"
    if broken[2]:
        k = int(np.argmax(negative))
        return f"{spec.name}: {slots[k]} address must be >= 0, got {int(code[k + 1])}"
    if broken[3]:
        k = int(np.argmax(too_far))
        return (f"{spec.name}: {slots[k]} address {int(code[k + 1])} is too large; addresses "
                f"are below {ADDRESS_LIMIT:,} (the most any memory kind may hold)")
    if broken[4]:
        inst = Instruction(op, int(code[1]), int(code[2]), int(code[3]),
                           tuple(float(c) for c in constants))
        return (f"'{format_instruction(inst)}' writes {spec.out}0, which holds the "
                f"{'label' if spec.out == 's' else 'features'}; outputs must be "
                f"{spec.out}1 or higher")
    if broken[5]:
        k = int(np.argmax(stray))
        return (f"{spec.name} carries {len(spec.constants)} constants; constant {k} must be "
                f"0.0, got {float(constants[k])!r}")
    k = int(np.argmax(bad_constant))
    const, value = spec.constants[k], float(constants[k])
    if not math.isfinite(value):
        return f"{spec.name}: constant '{const.name}' must be finite, got {value!r}"
    return f"{spec.name}: index fraction '{const.name}' must be in [0, 1), got {value!r}"


def _short(value: object) -> str:
    """``repr(value)``, cut to a readable length (a 4,000-digit number stays one line)."""
    if isinstance(value, int) and value.bit_length() > 256:
        # repr refuses ints past 4,300 digits; their size is what matters here.
        return f"an integer of about {int(value.bit_length() * math.log10(2)):,} digits"
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def format_instruction(inst: Instruction) -> str:
    """The instruction in the readable text form, floats written with ``repr``."""
    spec = OPS[inst.op]
    values = {"out": f"{spec.out}{inst.out}" if spec.out else "",
              "in1": f"{spec.in1}{inst.in1}" if spec.in1 else "",
              "in2": f"{spec.in2}{inst.in2}" if spec.in2 else ""}
    for k in range(len(spec.constants)):
        values[f"c{k}"] = repr(float(inst.constants[k]))
    return spec.form.format(**values)


def _pattern(spec: OpSpec, kinds: dict[str, str]) -> re.Pattern[str]:
    parts = re.split(r"(\{\w+\})", spec.form)
    regex = []
    for part in parts:
        if part in ("{out}", "{in1}", "{in2}"):
            regex.append(f"({kinds[part[1:-1]]})(\\d+)")
        elif re.fullmatch(r"\{c\d\}", part):
            regex.append(_FLOAT)
        else:
            regex.append(r"\s*".join(re.escape(token) for token in part.split()))
            if part.startswith(" "):
                regex.insert(-1, r"\s*")
            if part.endswith(" "):
                regex.append(r"\s*")
    return re.compile("".join(regex) + r"\s*$")


def _exact_kinds(spec: OpSpec) -> dict[str, str]:
    return {slot: getattr(spec, slot) or "" for slot in ("out", "in1", "in2")}


_EXACT = [(spec, _pattern(spec, _exact_kinds(spec))) for spec in OPS]
_ANY_KIND = [(spec, _pattern(spec, {"out": "[svm]", "in1": "[svm]", "in2": "[svm]"})) for spec in OPS]


def _build(spec: OpSpec, match: re.Match[str]) -> Instruction:
    groups = list(match.groups())
    fields = {}
    constants = [0.0, 0.0, 0.0]
    slots = re.findall(r"\{(\w+)\}", spec.form)
    for slot in slots:
        if slot in ("out", "in1", "in2"):
            kind = groups.pop(0)
            digits = groups.pop(0)
            # Compare lengths first: int() of a few thousand digits is slow or refused.
            if len(digits) > len(str(ADDRESS_LIMIT)) or int(digits) >= ADDRESS_LIMIT:
                shown = digits if len(digits) <= 12 else f"{digits[:12]}... ({len(digits)} digits)"
                raise EvozeroError(f"address {kind}{shown} is too large; addresses are below "
                                   f"{ADDRESS_LIMIT:,}")
            fields[slot] = int(digits)
        else:
            constants[int(slot[1:])] = float(groups.pop(0))
    return Instruction(spec.code, fields.get("in1", 0), fields.get("in2", 0), fields.get("out", 0),
                       tuple(constants))


def _signature(spec: OpSpec) -> str:
    inputs = ", ".join(KIND_NAMES[k] for k in (spec.in1, spec.in2) if k)
    return f"({inputs}) -> {KIND_NAMES[spec.out]}" if spec.out else "()"


def parse_instruction(line: str) -> Instruction:
    """Parse one instruction line; EvozeroError says what was expected."""
    text = line.strip()
    for spec, pattern in _EXACT:
        match = pattern.match(text)
        if match:
            inst = _build(spec, match)
            check_instruction(inst)
            return inst
    near = [spec for spec, pattern in _ANY_KIND if pattern.match(text)]
    if near:
        allowed = "; ".join(f"{spec.form.format(out='out', in1='a', in2='b', c0='x', c1='y', c2='z')}"
                            f" with {_signature(spec)}" for spec in near)
        raise EvozeroError(f"'{text}': wrong operand kinds for this form; allowed: {allowed}")
    call = re.match(r"^[svm]\d+\s*=\s*([A-Za-z_]\w*)\s*\(", text)
    if call:
        functions = (re.match(r"\{out\} = (\w+)\(", s.form) for s in OPS)
        names = sorted({function.group(1) for function in functions if function})
        if call.group(1) not in names:
            raise EvozeroError(f"'{text}': unknown op '{call.group(1)}'; known functions: "
                               f"{', '.join(names)}")
    raise EvozeroError(f"'{text}': not an instruction; expected a form such as 's3 = s0 - s1', "
                       "'v2 = s4 * v0', 's1 = dot(v0, v1)', 's2 = 0.001' or 'NoOp()' "
                       "(see the op table in the README)")
