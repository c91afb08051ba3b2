"""The README stays true: its op table is the generated one, its commands are the ones CI runs."""
from __future__ import annotations

import re
from pathlib import Path

from ops.table import BEGIN_MARK, END_MARK, markdown, readme_with_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CI_SCRIPT = (ROOT / ".ci" / "run").read_text(encoding="utf-8")

INSTALL_AND_RUN = ("python3 -m venv .venv && . .venv/bin/activate && pip install -e . "
                   "&& evozero run experiments/linear_demo.yaml")


def _code_lines(markdown: str) -> list[str]:
    """The lines inside fenced code blocks."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", markdown, flags=re.M | re.S)
    return [line.strip() for block in blocks for line in block.splitlines()]


def _ci_test_command() -> str:
    """The install-and-test command of .ci/run: its one line that runs pytest."""
    lines = [line.strip() for line in CI_SCRIPT.splitlines()
             if "pytest" in line and not line.lstrip().startswith("#")]
    assert len(lines) == 1, f".ci/run should run pytest on exactly one line, found {lines}"
    return lines[0]


def test_op_table_is_the_generated_one():
    assert README.count(BEGIN_MARK) == 1 and README.count(END_MARK) == 1
    start = README.index(BEGIN_MARK) + len(BEGIN_MARK)
    table = README[start:README.index(END_MARK)]
    assert table.strip() == markdown().strip(), (
        "README op table is stale; regenerate it with ops.table.readme_with_table")
    assert readme_with_table(README) == README


def test_op_table_lists_every_op():
    from ops.table import OPS

    rows = [line for line in markdown().splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == len(OPS) == 65


def test_ci_runs_the_readme_test_command():
    command = _ci_test_command()
    assert command.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install -e")
    assert command in _code_lines(README)


def test_readme_has_the_install_and_run_command():
    assert INSTALL_AND_RUN in _code_lines(README)


def test_ci_script_is_strict_and_runs_from_the_repo_root():
    assert CI_SCRIPT.startswith("#!/usr/bin/env bash") or CI_SCRIPT.startswith("#!/bin/bash")
    assert "set -euo pipefail" in CI_SCRIPT
    assert 'cd "$(dirname "$0")/.."' in CI_SCRIPT
    assert (ROOT / ".ci" / "run").stat().st_mode & 0o111, ".ci/run must be executable"


def test_readme_linear_example_is_the_shipped_program():
    from evozero.programs.reference import linear_program

    text = str(linear_program(0.01))
    assert "```\n" + text + "```" in README


def test_every_experiment_has_its_page():
    page = (ROOT / "experiments" / "README.md").read_text()
    for config in sorted((ROOT / "experiments").glob("*.yaml")):
        assert f"## {config.name}" in page, config.name
