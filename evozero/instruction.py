"""One instruction: its fields, its checks and its text form, all read from the op table."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from evozero.errors import EvozeroError
from ops.table import KIND_NAMES, OPS, OpSpec

_FLOAT = r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf|nan))"
_ROLE_ADDRESSES = {"s": 0, "v": 0}


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
    if not 0 <= inst.op < len(OPS):
        raise EvozeroError(f"unknown op code {inst.op}; allowed: 0..{len(OPS) - 1}")
    spec = OPS[inst.op]
    for slot in ("in1", "in2", "out"):
        kind = getattr(spec, slot)
        address = getattr(inst, slot)
        if kind is None:
            if address != 0:
                raise EvozeroError(f"{spec.name} has no {slot}; got address {address}")
        elif address < 0:
            raise EvozeroError(f"{spec.name}: {slot} address must be >= 0, got {address}")
    if spec.out in _ROLE_ADDRESSES and inst.out == _ROLE_ADDRESSES[spec.out]:
        raise EvozeroError(f"'{format_instruction(inst)}' writes {spec.out}0, which holds the "
                           f"{'label' if spec.out == 's' else 'features'}; outputs must be "
                           f"{spec.out}1 or higher")
    if len(inst.constants) != 3:
        raise EvozeroError(f"{spec.name}: constants must be 3 floats, got {len(inst.constants)}")
    for k, value in enumerate(inst.constants):
        if k >= len(spec.constants):
            # -0.0 too: the text form omits unused constants, so it would not round-trip.
            if value != 0.0 or math.copysign(1.0, value) < 0:
                raise EvozeroError(f"{spec.name} carries {len(spec.constants)} constants; "
                                   f"constant {k} must be 0.0, got {value!r}")
            continue
        const = spec.constants[k]
        if not math.isfinite(value):
            raise EvozeroError(f"{spec.name}: constant '{const.name}' must be finite, got {value!r}")
        if const.kind == "fraction" and not 0.0 <= value < 1.0:
            raise EvozeroError(f"{spec.name}: index fraction '{const.name}' must be in [0, 1), "
                               f"got {value!r}")


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
            groups.pop(0)
            fields[slot] = int(groups.pop(0))
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
        names = sorted({re.match(r"\{out\} = (\w+)\(", s.form).group(1)
                        for s in OPS if re.match(r"\{out\} = (\w+)\(", s.form)})
        if call.group(1) not in names:
            raise EvozeroError(f"'{text}': unknown op '{call.group(1)}'; known functions: "
                               f"{', '.join(names)}")
    raise EvozeroError(f"'{text}': not an instruction; expected a form such as 's3 = s0 - s1', "
                       "'v2 = s4 * v0', 's1 = dot(v0, v1)', 's2 = 0.001' or 'NoOp()' "
                       "(see the op table in the README)")
