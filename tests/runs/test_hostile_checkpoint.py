"""Hostile checkpoint contents: a checkpoint whose JSON was edited (its npz hash still
matches, so it loads) is checked for range before a run resumes from it: fitnesses,
counters, experiment numbers and times, unknown keys. A refused checkpoint changes
nothing in the run directory."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import nas_config, small_config

from evozero.cli import main
from evozero.domains import domain_for, start_run
from evozero.errors import EvozeroError
from evozero.runs.checkpointing import checked_state
from evozero.runs.rundir import RunDir

NAN = {"__float__": "nan"}
INF = {"__float__": "inf"}
PROGRAM = "def Setup():\ndef Predict():\ndef Learn():\n"
CELL = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def _experiment(number: int, **changes) -> dict:
    record = {"experiment": number, "search_fitness": 0.5, "select_fitness": 0.5,
              "individuals": 100, "train_steps": 1000, "islands": 1, "seconds": 1.0}
    record.update(changes)
    return record


def _one_done(**kept) -> dict:
    """The driver of a run that finished its first of two experiments."""
    return {"experiment": 1, "experiments": [_experiment(1)],
            "kept": {"program": PROGRAM, "search_fitness": 0.5, "select_fitness": 0.5,
                     "experiment": 1, **kept}}


def _entry(**changes) -> dict:
    """A checkpoint's entry of an island that has no snapshot yet."""
    return {"snapshot": None, "result": None, "summary": {}, "events": [], **changes}


def _islands(state: dict, islands: dict) -> None:
    state["driver"]["islands"] = 1
    state["islands"] = islands


@pytest.fixture
def stopped(tmp_path) -> Path:
    """A run of two experiments as `evozero run` leaves it after set-up, its lock free."""
    run = start_run(small_config(max_experiments=2), str(tmp_path / "runs"),
                    out=open(os.devnull, "w"))
    run.rundir.release()
    return run.rundir.path


def _edit_driver(run: Path, change) -> None:
    folder = run / RunDir.CHECKPOINTS
    newest = sorted(folder.glob("*.json"))[-1]
    data = json.loads(newest.read_text())
    change(data["state"])
    newest.write_text(json.dumps(data))


def _files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.name != RunDir.LOCK}


@pytest.mark.parametrize("change, expected", [
    (lambda s: s["driver"].update(experiment=-1), "driver.experiment: must be a whole number >= 0"),
    (lambda s: s["driver"].update(bogus=1), "driver: unknown key 'bogus'"),
    (lambda s: s["driver"].update(islands=-3), "driver.islands: must be a whole number >= 0"),
    (lambda s: s["driver"].update(seconds=INF), "driver.seconds: must be a finite number"),
    (lambda s: s["driver"].update(solved="yes"), "driver.solved: must be true or false"),
    (lambda s: s["driver"].update(experiment=1), "driver.experiments: must list the 1"),
    (lambda s: s["driver"].update(solved=True), "driver.kept: missing"),
    (lambda s: s.update(driver=[1]), "driver: must be a mapping"),
    (lambda s: s.pop("islands"), "the checkpoint has no 'islands'"),
    (lambda s: s["driver"].update(_one_done(search_fitness=NAN)),
     "driver.kept.search_fitness: must be a finite number in [0, 1], got nan"),
    (lambda s: s["driver"].update(_one_done(select_fitness=1.5)),
     "driver.kept.select_fitness: must be a finite number in [0, 1]"),
    (lambda s: _islands(s, {"completed_round": -1, "islands": [_entry()]}),
     "the checkpoint's islands are not 1 island entries with a completed round"),
    (lambda s: _islands(s, {"completed_round": 0, "islands": [_entry(events=None)]}),
     "island 1: its entry needs a summary (a mapping) and its events"),
    (lambda s: _islands(s, {"completed_round": 0, "islands": [_entry(summary=[])]}),
     "island 1: its entry needs a summary"),
    (lambda s: _islands(s, {"completed_round": 0, "islands": [_entry(result={
        "program": PROGRAM, "search_fitness": NAN, "select_fitness": 0.5})]}),
     "island 1: result.search_fitness: must be a finite number in [0, 1], got nan"),
    (lambda s: s["driver"].update(_one_done(program="def Setup():\n  s1 = s9999")),
     "driver.kept.program: not a valid program of this run"),
    (lambda s: s["driver"].update(_one_done(program=5)),
     "driver.kept.program: must be a program's text"),
    (lambda s: s["driver"].update(_one_done(experiment=7)),
     "driver.kept.experiment: must be a whole number in [1, 2]"),
    (lambda s: s["driver"].update(_one_done(), experiments=[_experiment(1, search_fitness=2.0)]),
     "driver.experiments[0].search_fitness: must be a finite number in [0, 1]"),
    (lambda s: s["driver"].update(_one_done(), experiments=[_experiment(2)]),
     "driver.experiments[0]: must be the record of experiment 1"),
    (lambda s: s["driver"].update(_one_done(), experiments=[_experiment(1, individuals=-5)]),
     "driver.experiments[0].individuals: must be a whole number >= 0"),
])
def test_an_edited_checkpoint_is_refused_naming_the_key(stopped, capsys, change, expected):
    _edit_driver(stopped, change)
    before = _files(stopped)
    assert main(["resume", str(stopped)]) == 2
    err = capsys.readouterr().err
    assert f"error: {stopped / RunDir.CHECKPOINTS}: " in err and expected in err, err
    assert "Traceback" not in err
    assert _files(stopped) == before


def test_a_good_edit_of_the_state_is_still_a_state(stopped):
    # The check accepts what a run writes after an experiment: it is not refusing all.
    domain = domain_for(small_config(max_experiments=2))
    state = checked_state(_one_done(), domain, "here")
    assert (state.experiment, state.kept["experiment"]) == (1, 1)


def test_a_network_fitness_may_be_nan_or_above_one_but_not_negative():
    # A diverged network's fitness is NaN, and MnasNet's objective may exceed 1.
    domain = domain_for(nas_config())
    for fitness in (float("nan"), 1.3):
        checked_state(_one_done(program=CELL, search_fitness=fitness, select_fitness=fitness),
                      domain, "x")
    with pytest.raises(EvozeroError, match="kept.search_fitness: must be NaN"):
        checked_state(_one_done(program=CELL, search_fitness=-0.5), domain, "x")
    with pytest.raises(EvozeroError, match=r"kept.program: not a cell of this run's space"):
        checked_state(_one_done(), domain, "x")
