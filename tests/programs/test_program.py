"""Programs: exact text and JSON round trips over all 65 ops, and clear errors on bad input."""
from __future__ import annotations

import json
import math
import re
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evozero import EvozeroError, Instruction, Program
from evozero.programs.instruction import (
    ADDRESS_LIMIT,
    check_instruction,
    format_instruction,
    parse_instruction,
)
from ops.table import OPS, OPS_BY_NAME

EXTREME_VALUES = (0.0, -0.0, 1e-310, -1e-310, 5e-324, -5e-324, 2.2250738585072014e-308,
                  1.7976931348623157e308, -1.7976931348623157e308, 1e16, 1e-5, 0.1, 1 / 3,
                  -2.5, 123456789.125)
EXTREME_FRACTIONS = (0.0, -0.0, 5e-324, 1e-310, 0.1, 0.5, 1 / 3, 0.9999999999999999)

values = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(EXTREME_VALUES))
fractions = st.one_of(st.floats(0.0, 1.0, exclude_max=True), st.sampled_from(EXTREME_FRACTIONS))
CONSTANTS = {"value": values, "fraction": fractions, "spread": values}


def addresses(lowest: int) -> st.SearchStrategy[int]:
    return st.one_of(st.integers(lowest, 9), st.integers(lowest, ADDRESS_LIMIT - 1))


ANY_OP = st.sampled_from(OPS)


@st.composite
def instructions(draw, ops=ANY_OP):
    """A random valid instruction: any op, any legal addresses, any legal constants."""
    spec = draw(ops)
    fields = {}
    for slot in ("in1", "in2", "out"):
        kind = getattr(spec, slot)
        if kind is None:
            fields[slot] = 0
        else:
            # s0 (label) and v0 (features) are read-only; m0 is an ordinary matrix.
            fields[slot] = draw(addresses(1 if slot == "out" and kind in ("s", "v") else 0))
    constants = [draw(CONSTANTS[c.kind]) for c in spec.constants]
    constants += [0.0] * (3 - len(constants))
    return Instruction(spec.code, fields["in1"], fields["in2"], fields["out"], tuple(constants))


@st.composite
def programs(draw, max_size=8):
    parts = [draw(st.lists(instructions(), max_size=max_size)) for _ in range(3)]
    return Program.from_instructions(*parts)


def _float_bits(value: float) -> int:
    return struct.unpack("<q", struct.pack("<d", value))[0]


# --- round trips ---------------------------------------------------------------------


@settings(max_examples=300)
@given(programs())
def test_text_round_trip(program):
    text = str(program)
    assert Program.parse(text) == program
    assert str(Program.parse(text)) == text


@settings(max_examples=300)
@given(programs())
def test_json_round_trip(program):
    assert Program.from_json(program.to_json()) == program
    assert Program.from_json(json.loads(program.to_json())) == program
    assert Program.from_json(program.to_dict()) == program


@pytest.mark.parametrize("spec", OPS, ids=[op.name for op in OPS])
@settings(max_examples=30)
@given(data=st.data())
def test_every_op_round_trips_exactly(spec, data):
    inst = data.draw(instructions(st.just(spec)))
    line = format_instruction(inst)
    parsed = parse_instruction(line)
    assert (parsed.op, parsed.in1, parsed.in2, parsed.out) == (inst.op, inst.in1, inst.in2, inst.out)
    # Bit-exact: -0.0 stays -0.0 and subnormals keep every bit.
    assert [_float_bits(c) for c in parsed.constants] == [_float_bits(c) for c in inst.constants]
    program = Program.from_instructions([inst], [inst], [inst])
    assert Program.parse(str(program)) == program
    assert Program.from_json(program.to_json()) == program


def test_round_trip_covers_all_65_ops():
    assert len(OPS) == 65
    assert [op.code for op in OPS] == list(range(65))


def test_text_form_layout():
    from evozero.programs.reference import LINEAR_TEXT, linear_program

    program = linear_program(0.01)
    text = str(program)
    assert text == LINEAR_TEXT.format(learning_rate=0.01)
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("def ")] == [
        "def Setup():", "def Predict():", "def Learn():"]
    assert all(line.startswith("  ") and not line.startswith("   ")
               for line in lines if not line.startswith("def "))


def test_extreme_constants_print_exactly():
    program = Program.parse("def Setup():\n"
                            "  s1 = 1e-310\n"
                            "  s2 = -0.0\n"
                            "  s3 = 1.7976931348623157e+308\n"
                            "  v1[0.9999999999999999] = 5e-324\n"
                            "  m0[0.0, 0.5] = -1.7976931348623157e+308\n"
                            "def Predict():\n"
                            "def Learn():\n")
    constants = [inst.constants for inst in program.instructions("setup")]
    assert constants[0][0] == 1e-310
    assert math.copysign(1.0, constants[1][0]) == -1.0
    assert constants[2][0] == 1.7976931348623157e308
    assert constants[3][:2] == (0.9999999999999999, 5e-324)
    assert constants[4] == (0.0, 0.5, -1.7976931348623157e308)
    assert Program.parse(str(program)) == program


def test_parse_accepts_comments_blank_lines_and_lowercase_headers():
    text = ("# a comment\n\ndef setup():\n  s2 = 0.5  # learning rate\n\n"
            "def predict():\n  s1 = dot(v0, v1)\ndef learn():\n")
    program = Program.parse(text)
    assert program.sizes == (1, 1, 0)
    assert program.instructions("setup")[0].constants[0] == 0.5


# --- parse errors ----------------------------------------------------------------------

SETUP = "def Setup():\n"


def _parse_error(text: str) -> str:
    with pytest.raises(EvozeroError) as info:
        Program.parse(text)
    return str(info.value)


def test_unknown_op_names_line_and_known_functions():
    message = _parse_error(SETUP + "  s2 = 0.1\n  s1 = foo(s2)\ndef Predict():\ndef Learn():\n")
    assert message.startswith("line 3:")
    assert "unknown op 'foo'" in message
    assert "dot" in message and "gaussian" in message


def test_wrong_operand_kind_names_line_and_allowed_kinds():
    message = _parse_error(SETUP + "def Predict():\n  s1 = dot(v0, s1)\ndef Learn():\n")
    assert message.startswith("line 3:")
    assert "wrong operand kinds" in message
    assert "(vector, vector) -> scalar" in message

    message = _parse_error(SETUP + "def Predict():\ndef Learn():\n  s1 = sin(v1)\n")
    assert message.startswith("line 4:")
    assert "(scalar) -> scalar" in message


@pytest.mark.parametrize("line, address, role", [
    ("s0 = s1 + s2", "s0", "label"),
    ("s0 = 0.5", "s0", "label"),
    ("v0 = v1 + v2", "v0", "features"),
    ("v0 = gaussian(0.0, 0.1, n_features)", "v0", "features"),
    ("v0[0.5] = 1.0", "v0", "features"),
])
def test_writing_a_role_address_is_rejected(line, address, role):
    message = _parse_error(SETUP + "def Predict():\n  " + line + "\ndef Learn():\n")
    assert message.startswith("line 3:")
    assert f"writes {address}" in message and role in message
    assert f"{address[0]}1 or higher" in message


def test_fraction_out_of_range_names_line():
    message = _parse_error(SETUP + "  v1[1.5] = 2.0\ndef Predict():\ndef Learn():\n")
    assert message.startswith("line 2:") and "[0, 1)" in message and "1.5" in message
    message = _parse_error(SETUP + "  m1[0.5, -0.25] = 2.0\ndef Predict():\ndef Learn():\n")
    assert message.startswith("line 2:") and "[0, 1)" in message and "-0.25" in message


@pytest.mark.parametrize("literal", ["nan", "inf", "1e400"])
def test_non_finite_constant_names_line(literal):
    message = _parse_error(SETUP + f"  s2 = {literal}\ndef Predict():\ndef Learn():\n")
    assert message.startswith("line 2:") and "finite" in message


def test_instruction_before_any_header():
    message = _parse_error("  s1 = s2 + s3\ndef Setup():\ndef Predict():\ndef Learn():\n")
    assert message.startswith("line 1:") and "def Setup():" in message


@pytest.mark.parametrize("text, missing", [
    ("", "def Setup():, def Predict():, def Learn():"),
    (SETUP + "def Predict():\n", "def Learn():"),
])
def test_missing_headers_are_named(text, missing):
    message = _parse_error(text)
    assert "missing" in message and missing in message


def test_headers_out_of_order():
    message = _parse_error(SETUP + "def Learn():\n")
    assert message.startswith("line 2:") and "expected 'def Predict():'" in message
    message = _parse_error(SETUP + "def Predict():\ndef Learn():\ndef Setup():\n")
    assert message.startswith("line 4:") and "no more functions after Learn" in message


@pytest.mark.parametrize("garbage", ["hello world", "s1 = s2 +", "s1 = norm(q1)", "v1 = = v2",
                                     "s1 == s2"])
def test_garbage_line_names_line_and_expected_forms(garbage):
    message = _parse_error(SETUP + "def Predict():\n  s1 = dot(v0, v1)\n  " + garbage
                           + "\ndef Learn():\n")
    assert message.startswith("line 4:")
    assert "not an instruction" in message and "expected" in message


# --- check_instruction ------------------------------------------------------------------


def _check_error(inst: Instruction) -> str:
    with pytest.raises(EvozeroError) as info:
        check_instruction(inst)
    return str(info.value)


def _op(name: str) -> int:
    return OPS_BY_NAME[name].code


@pytest.mark.parametrize("name", ["SCALAR_SUM", "SCALAR_CONST_SET", "VECTOR_NORM",
                                  "SCALAR_GAUSSIAN_SET", "MATRIX_MEAN"])
def test_check_rejects_scalar_writes_to_s0(name):
    spec = OPS_BY_NAME[name]
    inst = Instruction(spec.code, 1 if spec.in1 else 0, 1 if spec.in2 else 0, 0,
                       tuple(0.5 if k < len(spec.constants) else 0.0 for k in range(3)))
    assert "s0" in _check_error(inst)


@pytest.mark.parametrize("name", ["VECTOR_SUM", "SCALAR_BROADCAST", "VECTOR_CONST_SET",
                                  "MATRIX_VECTOR_PRODUCT", "VECTOR_UNIFORM_SET"])
def test_check_rejects_vector_writes_to_v0(name):
    spec = OPS_BY_NAME[name]
    inst = Instruction(spec.code, 1 if spec.in1 else 0, 1 if spec.in2 else 0, 0,
                       tuple(0.5 if k < len(spec.constants) else 0.0 for k in range(3)))
    assert "v0" in _check_error(inst)


def test_check_accepts_matrix_writes_to_m0_and_reads_of_roles():
    check_instruction(Instruction(_op("MATRIX_SUM"), 0, 0, 0))
    check_instruction(Instruction(_op("VECTOR_INNER_PRODUCT"), 0, 0, 1))
    check_instruction(Instruction(_op("SCALAR_DIFF"), 0, 1, 3))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name, slot", [("SCALAR_CONST_SET", 0), ("VECTOR_CONST_SET", 1),
                                        ("MATRIX_CONST_SET", 2), ("SCALAR_UNIFORM_SET", 0),
                                        ("VECTOR_GAUSSIAN_SET", 1), ("MATRIX_GAUSSIAN_SET", 0)])
def test_check_rejects_non_finite_constants(bad, name, slot):
    spec = OPS_BY_NAME[name]
    constants = [0.25 if k < len(spec.constants) else 0.0 for k in range(3)]
    constants[slot] = bad
    message = _check_error(Instruction(spec.code, 0, 0, 1, tuple(constants)))
    assert "finite" in message and spec.constants[slot].name in message


@pytest.mark.parametrize("bad", [-1e-300, -0.5, 1.0, 1.5, 1e300])
@pytest.mark.parametrize("name, slot", [("VECTOR_CONST_SET", 0), ("MATRIX_CONST_SET", 0),
                                        ("MATRIX_CONST_SET", 1)])
def test_check_rejects_fractions_outside_unit_interval(bad, name, slot):
    spec = OPS_BY_NAME[name]
    constants = [0.25 if k < len(spec.constants) else 0.0 for k in range(3)]
    constants[slot] = bad
    message = _check_error(Instruction(spec.code, 0, 0, 1, tuple(constants)))
    assert "[0, 1)" in message and repr(bad) in message


def test_check_rejects_malformed_instructions():
    assert "unknown op code 65" in _check_error(Instruction(65, 0, 0, 1))
    assert "unknown op code -1" in _check_error(Instruction(-1, 0, 0, 1))
    assert "no in2" in _check_error(Instruction(_op("SCALAR_ABS"), 1, 3, 1))
    assert "no in1" in _check_error(Instruction(_op("SCALAR_CONST_SET"), 2, 0, 1))
    assert ">= 0" in _check_error(Instruction(_op("SCALAR_SUM"), -1, 0, 1))
    assert "constant 1 must be 0" in _check_error(
        Instruction(_op("SCALAR_CONST_SET"), 0, 0, 1, (0.5, 0.25, 0.0)))
    assert "3 floats" in _check_error(Instruction(_op("SCALAR_CONST_SET"), 0, 0, 1, (0.5,)))


def test_from_instructions_checks_every_instruction():
    with pytest.raises(EvozeroError, match="s0"):
        Program.from_instructions([], [Instruction(_op("SCALAR_SUM"), 1, 2, 0)], [])


# --- JSON errors ---------------------------------------------------------------------------


def test_json_errors_name_component_and_index():
    good = json.loads(Program.from_instructions([], [Instruction(_op("VECTOR_INNER_PRODUCT"), 0, 1, 1)],
                                                []).to_json())
    with pytest.raises(EvozeroError, match="format"):
        Program.from_json({"setup": [], "predict": [], "learn": []})
    bad = dict(good, predict=[{"op": "NOT_AN_OP"}])
    with pytest.raises(EvozeroError, match=re.escape("predict[0]") + ".*unknown op"):
        Program.from_json(bad)
    bad = dict(good, learn=[{"op": "SCALAR_CONST_SET", "out": 2, "constants": []}])
    with pytest.raises(EvozeroError, match=re.escape("learn[0]") + ".*1 constants, got 0"):
        Program.from_json(bad)
    bad = dict(good, setup=[{"op": "SCALAR_SUM", "in1": 1, "in2": 2, "out": 0}])
    with pytest.raises(EvozeroError, match=re.escape("setup[0]") + ".*s0"):
        Program.from_json(bad)
    bad = dict(good, setup=[{"op": "SCALAR_SUM", "in1": -3, "in2": 2, "out": 1}])
    with pytest.raises(EvozeroError, match=re.escape("setup[0]") + ".*>= 0"):
        Program.from_json(bad)
    bad = dict(good, setup="s1 = s2")
    with pytest.raises(EvozeroError, match="'setup' must be a list"):
        Program.from_json(bad)
