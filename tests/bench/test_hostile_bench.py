"""Hostile input to `evozero bench`: feature sizes out of range or misplaced, and a failing
measured command, each one `error:` line and exit code 2 (argparse's usage line first for
a bad option value), never a traceback."""
from __future__ import annotations

import subprocess

import pytest

from evozero.bench import study as bench_study
from evozero.cli import main


@pytest.mark.parametrize("sizes, expected", [
    ("0", "must be feature sizes F in 1..1024"),
    ("99999", "must be feature sizes F in 1..1024"),
    ("4,,8", "must be feature sizes F in 1..1024"),
    ("-4", "separated by commas, got '-4'"),
    ("four", "separated by commas, got 'four'"),
])
def test_bad_feature_sizes_name_the_option(capsys, sizes, expected):
    with pytest.raises(SystemExit) as stop:
        main(["bench", "vm", "--sizes", sizes])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "argument --sizes: must be feature sizes" in err and expected in err
    assert "Traceback" not in err


def test_sizes_for_another_benchmark_are_refused(capsys):
    assert main(["bench", "search", "--sizes", "4"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --sizes applies to 'evozero bench vm' only, not 'search'")


@pytest.mark.parametrize("code, expected", [(2, 2), (1, 1)])
def test_a_measured_command_that_fails_is_one_line_not_a_traceback(capsys, monkeypatch,
                                                                   code, expected):
    # `evozero bench study` times `evozero study` and `evozero run` processes: one that
    # fails (say, refused for memory: exit 2) is reported with its own message.
    def fails(command, **kwargs):
        return subprocess.CompletedProcess(command, code, "", "error: not enough memory\n")

    monkeypatch.setattr(bench_study.subprocess, "run", fails)
    assert main(["bench", "study", "--quick"]) == expected
    err = capsys.readouterr().err
    assert err.startswith("error: `evozero study study.yaml --out study-0` failed with exit "
                          f"code {code}: error: not enough memory")
    assert "Traceback" not in err
