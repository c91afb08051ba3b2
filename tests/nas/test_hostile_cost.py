"""Hostile input to `evozero cost`: malformed cells, matrices and ops, JSON nested too
deeply, bad shapes and option values, bad profile files. Each is one `error:` line and exit
code 2, never a traceback."""
from __future__ import annotations

import json

import pytest

from evozero.cli import main

pytestmark = pytest.mark.nas

CELL = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def _error(capsys, *argv: str) -> str:
    """The one error line of `evozero cost ARGV`, which must exit 2 without a traceback."""
    code = main(["cost", *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


@pytest.mark.parametrize("cell, expected", [
    ('{"matrix": 5, "ops": ["input", "output"]}', "must be a list of rows"),
    ('{"matrix": null, "ops": ["input", "output"]}', "must be a list of rows"),
    ('{"matrix": {"a": 1}, "ops": ["input", "output"]}', "must be a list of rows"),
    ('{"matrix": [[0, 1], [0]], "ops": ["input", "output"]}', "must be square"),
    ('{"matrix": [[0, 1], 7], "ops": ["input", "output"]}', "must be a list of rows"),
    ('{"matrix": [[0, 1], [0, 0]], "ops": "input,output"}', "ops must be a list of op names"),
    ('{"matrix": [[0, 1], [0, 0]], "ops": [1, 2]}', "ops must be a list of op names"),
    ('{"matrix": [[0, 1], [0, 0]], "ops": ["input", "output"], "x": 1}', "keys matrix and ops"),
    ('{"matrix": [[NaN, 1], [0, 0]], "ops": ["input", "output"]}', "entries must be 0 or 1"),
    ('{"matrix": ' + "[" * 100_000 + "]" * 100_000 + ', "ops": []}', "one line of JSON"),
    ("|foo~0|", "3 groups separated by '+'"),
    ("hello", "a cell is a NAS-Bench-201 string"),
])
def test_a_malformed_cell_is_one_error_line(capsys, cell, expected):
    assert expected in _error(capsys, cell)


@pytest.mark.parametrize("matrix, expected", [
    ("null", "must be a list of rows"),
    ("[[0, 1], [0]]", "must be square"),
    ("[" * 100_000, "not JSON"),
    ("[[0, 1], [0, 0]", "not JSON"),
])
def test_a_malformed_matrix_option_is_one_error_line(capsys, matrix, expected):
    assert expected in _error(capsys, "--matrix", matrix, "--ops", "input,output")


@pytest.mark.parametrize("option, value, expected", [
    ("--input", "-1x32x3", "argument --input: must be HxWxC with three whole numbers >= 1"),
    ("--input", "32x32", "argument --input: must be HxWxC"),
    ("--batch", "-5", "argument --batch: must be an integer >= 1, got '-5'"),
    ("--classes", "-1e3", "argument --classes: must be an integer >= 1, got '-1e3'"),
])
def test_a_bad_option_value_names_the_option(capsys, option, value, expected):
    with pytest.raises(SystemExit) as stop:
        main(["cost", CELL, option, value])
    assert stop.value.code == 2
    assert expected in capsys.readouterr().err


def test_a_skeleton_number_outside_its_range_names_the_option(capsys):
    assert "--stem: stem_channels: must be an integer in [1, 4096]" in _error(
        capsys, CELL, "--stem", "100000")


def test_a_profile_file_that_is_not_yaml_names_the_file(tmp_path, capsys):
    profile = tmp_path / "host.yaml"
    profile.write_bytes(b"PK\x03\x04 binary")
    line = _error(capsys, CELL, "--profiles", str(profile))
    assert str(profile) in line and "invalid YAML" in line


def test_a_huge_network_is_counted_without_allocating_it(capsys):
    # The cost record is arithmetic on shapes: an enormous input is counted, not built.
    assert main(["cost", CELL, "--input", "4096x4096x3", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cost"]["peak_activation_bytes"] > 2**30
