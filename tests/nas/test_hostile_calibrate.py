"""Hostile input to `evozero calibrate`: a measuring budget that is not a finite number of
seconds (infinity measured forever), and outputs that cannot be written, each refused
before anything is measured. (An unwritable output: tests/config/test_hostile_inputs.py.)"""
from __future__ import annotations

import pytest

from evozero.cli import main

pytestmark = pytest.mark.nas


@pytest.mark.parametrize("seconds", ["inf", "nan", "0", "-1", "1e9", "-inf", "soon"])
def test_a_budget_that_is_not_a_finite_number_of_seconds_is_refused(capsys, tmp_path,
                                                                    seconds):
    with pytest.raises(SystemExit) as stop:
        main(["calibrate", "--seconds", seconds, "--output", str(tmp_path / "host.yaml")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --seconds: must be a number of seconds in (0, 86400], got " \
           f"{seconds!r}" in err
    assert list(tmp_path.iterdir()) == []


def test_an_output_that_is_a_folder_is_refused_before_measuring(capsys, tmp_path):
    assert main(["calibrate", "--output", str(tmp_path), "--seconds", "1"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path}: is a folder; give the path of the profile YAML file to write")
