"""`evozero show --history` on a hand-made discoveries.jsonl: each new best is compared
with the previous best of its own island (simplified), an island's first best with the
previous best overall, and the line says so."""
from __future__ import annotations

import json
import os

import pytest

from evozero.analysis.show import format_history, history
from evozero.cli import main
from evozero.domains import start_run
from evozero.programs.program import Program
from evozero.programs.reference import LINEAR_TEXT
from evozero.programs.simplify import program_changes, simplify
from evozero.runs.rundir import RunDir
from tests.helpers import small_config

# Another island's lineage: nothing in common with the regressor but its shape.
OTHER = """def Setup():
  s3 = 0.5
  v2 = v0 + v0
  s2 = dot(v2, v2)
def Predict():
  s2 = dot(v0, v2)
  s1 = s2 * s3
  s1 = s1 + s3
def Learn():
  s2 = s0 - s1
  s2 = s2 * s3
  v1 = s2 * v0
  v2 = v2 + v1
  s3 = s3 - s2
{extra}"""
DEAD = "  s3 = s3 * s3\n"   # dead code at Learn's end: simplified away


def _gradient(rate: float, extra: str = "") -> str:
    """The reference's gradient-descent linear regressor, ``extra`` lines after Learn."""
    return LINEAR_TEXT.format(learning_rate=rate) + extra


def _other(extra: str = "") -> str:
    return OTHER.format(extra=extra)


# (experiment, island, individual, fitness, program)
DISCOVERIES = [
    (1, 1, 10, 0.50, _gradient(0.01)),
    (1, 1, 20, 0.60, _gradient(0.02, DEAD)),
    (1, 2, 30, 0.70, _other()),
    (1, 1, 40, 0.80, _gradient(0.02, "  v1 = v1 + v2\n")),
    (1, 2, 50, 0.90, _other("  s3 = s3 + s2\n")),
    (2, 1, 60, 0.40, _gradient(0.03)),
]


@pytest.fixture
def run(tmp_path):
    started = start_run(small_config(), str(tmp_path), out=open(os.devnull, "w"))
    started.rundir.release()
    lines = [json.dumps({"experiment": e, "island": i, "island_individual": n,
                         "individual": n, "seconds": n / 10, "train_steps": n * 100,
                         "fitness": f, "program": p})
             for e, i, n, f, p in DISCOVERIES]
    (started.rundir.path / RunDir.DISCOVERIES).write_text("\n".join(lines) + "\n")
    return started.rundir.path


def _changes(old: str, new: str) -> list[str]:
    memory = small_config().memory.sizes
    return program_changes(simplify(Program.parse(old), memory),
                           simplify(Program.parse(new), memory))


def test_each_best_is_compared_with_its_own_islands_previous_best(run):
    events = history(RunDir.open(run))
    assert [e["individual"] for e in events] == [10, 20, 30, 40, 50, 60]
    assert events[0]["against"] is None and events[0]["change"] == "first program"
    # Same lineage: one readable change (the dead line is simplified away).
    assert events[1]["changes"] == ["~ s2 = 0.01 -> s2 = 0.02 (setup)"]
    assert events[1]["against"] == {"experiment": 1, "island": 1, "individual": 10,
                                    "same_lineage": True}
    # Island 2's first best: against the previous best overall, flagged as such.
    assert events[2]["against"] == {"experiment": 1, "island": 1, "individual": 20,
                                    "same_lineage": False}
    assert events[2]["changes"] == _changes(DISCOVERIES[1][4], DISCOVERIES[2][4])
    # Back on island 1: compared with island 1's best (20), not with island 2's (30).
    assert events[3]["against"]["individual"] == 20 and events[3]["against"]["same_lineage"]
    assert events[3]["changes"] == ["+ v1 = v1 + v2 (learn)"]
    assert events[4]["against"]["individual"] == 30
    assert events[4]["changes"] == _changes(DISCOVERIES[2][4], DISCOVERIES[4][4])
    assert len(events[4]["changes"]) <= 2
    # A new experiment starts new lineages: its first best falls back to the last best.
    assert events[5]["against"] == {"experiment": 1, "island": 2, "individual": 50,
                                    "same_lineage": False}
    assert all(e["change"] == "; ".join(e["changes"]) for e in events[1:])


def test_the_text_form_lists_a_few_changes_and_says_when_it_falls_back(run):
    events = history(RunDir.open(run))
    lines = format_history(events).splitlines()
    assert len(lines) == len(events) + 1
    assert lines[2].endswith("~ s2 = 0.01 -> s2 = 0.02 (setup)")
    many = len(events[2]["changes"])
    assert many > 6
    assert f"[first best of this island; {many} changes from the best of island 1]" in \
        lines[3]
    assert lines[3].count(" (setup)") + lines[3].count(" (predict)") + \
        lines[3].count(" (learn)") == 6
    assert lines[3].endswith(f"; ... {many - 6} more")
    assert "[" not in lines[4] and "[" not in lines[5]
    assert "from the best of experiment 1 island 2]" in lines[6]


def test_the_cli_prints_both_forms(run, capsys):
    assert main(["show", str(run), "--history", "--format", "json"]) == 0
    events = json.loads(capsys.readouterr().out)
    assert events == json.loads(json.dumps(history(RunDir.open(run))))
    assert main(["show", str(run), "--history"]) == 0
    assert "first best of this island" in capsys.readouterr().out
