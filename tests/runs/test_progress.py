"""The lines a run prints as it goes: the live line on a terminal (budget used and ETA),
one line per interval elsewhere, and the share of the budget the ETA rests on."""
from __future__ import annotations

import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evozero.config import Budget
from evozero.domains import start_run
from evozero.runs import progress
from evozero.runs.island import IslandSpec
from evozero.runs.migration import IslandView
from evozero.runs.progress import (
    Console,
    budget_used,
    clock_text,
    eta_seconds,
    progress_line,
)
from tests.helpers import nas_config, small_config


class Terminal(io.StringIO):
    """An output stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(individuals: int = 100, best: float = 0.5, islands: int = 1) -> dict:
    return {"experiment": 1, "individuals": individuals, "best": best, "mean": 0.25,
            "individuals_per_second": 10.0, "cache_hit_rate": 0.0,
            "islands": [{"share": 1 / islands} for _ in range(islands)]}


_CONFIG = small_config()


def _view(island: int, individuals: int = 0, train_steps: int = 0, done: bool = False
          ) -> IslandView:
    spec = IslandSpec(island=island, experiment=0, config=_CONFIG, individuals=-1,
                      train_steps=-1, island_class=object)
    view = IslandView(spec, worker=0)
    view.summary = {"individuals": individuals, "train_steps": train_steps}
    if done:
        view.result = {}   # type: ignore[typeddict-item]
    return view


def test_off_a_terminal_one_line_per_interval_and_every_final_one():
    out, clock = io.StringIO(), FakeClock()
    console = Console(out, clock=clock)
    for second in range(300):            # a 5-minute run, a record every second
        clock.now = float(second)
        console.progress(_record(individuals=second), used=second / 300, eta=300 - second)
    console.progress(_record(individuals=300), final=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 31               # seconds 0, 10, ..., 290 and the final line
    assert [line.split()[6] for line in lines[:3]] == ["0", "10", "20"]   # individuals
    assert "\r" not in out.getvalue()


def test_on_a_terminal_the_live_line_shows_budget_used_and_eta():
    out = Terminal()
    console = Console(out)
    console.progress(_record(), used=0.25, eta=100.0, experiments=2)
    console.progress(_record(), used=0.5, eta=3725.0, experiments=2)
    text = out.getvalue()
    assert "\n" not in text                # one line, rewritten in place
    assert text.count("\r\033[K") == 2
    assert "exp 1/2  budget  25%  ETA 1:40" in text
    assert "budget  50%  ETA 1:02:05" in text
    console.say("a message")
    assert out.getvalue().endswith("\r\033[Ka message\n")


def test_before_any_evaluation_the_best_is_a_dash():
    assert "best —" in progress_line(_record(individuals=0, best=-1.0))
    assert "best 0.000000" in progress_line(_record(best=0.0))
    assert "ETA —" in progress_line(_record(individuals=0), used=0.0, eta=None)
    assert "budget" not in progress_line(_record(), used=None, eta=50.0)


def test_a_few_individuals_per_second_keep_a_decimal():
    assert "      0.4 indiv/s" in progress_line(dict(_record(), individuals_per_second=0.44))
    assert "   12,346 indiv/s" in progress_line(dict(_record(), individuals_per_second=12345.6))


def test_budget_used_is_the_nearest_limit_averaged_over_islands():
    budget = Budget(individuals=1000, train_steps=10_000, seconds=None)
    views = [_view(0, individuals=500, train_steps=1000),     # individuals nearer: 0.5
             _view(1, individuals=100, train_steps=9000),     # train steps nearer: 0.9
             _view(2, individuals=10, done=True)]              # finished (solved): 1
    assert budget_used(views, budget, seconds=5.0) == pytest.approx((0.5 + 0.9 + 1.0) / 3)
    timed = Budget(individuals=1000, train_steps=None, seconds=20.0)
    assert budget_used([_view(0, individuals=100)], timed, seconds=5.0) == 0.25
    assert budget_used([_view(0, individuals=900)], timed, seconds=5.0) == 0.9
    assert budget_used([_view(0, individuals=5000)], timed, seconds=50.0) == 1.0


@given(st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 10**9), st.booleans()),
                min_size=1, max_size=5),
       st.floats(0.0, 1e5), st.one_of(st.none(), st.integers(1, 10**6)),
       st.one_of(st.none(), st.integers(1, 10**8)))
def test_budget_used_stays_a_share(islands, seconds, individuals, train_steps):
    budget = Budget(individuals=individuals, train_steps=train_steps,
                    seconds=None if individuals or train_steps else 60.0)
    views = [_view(i, n, s, done) for i, (n, s, done) in enumerate(islands)]
    used = budget_used(views, budget, seconds)
    assert 0.0 <= used <= 1.0
    assert used == 1.0 or not all(done for *_, done in islands)


def test_eta_extrapolates_this_experiment_and_those_after_it():
    assert eta_seconds(0.0, 10.0) is None
    assert eta_seconds(0.25, 10.0) == pytest.approx(30.0)
    assert eta_seconds(0.25, 10.0, experiments_after=2) == pytest.approx(110.0)
    assert eta_seconds(1.0, 10.0) == 0.0
    assert [clock_text(s) for s in (0, 59.6, 61, 3600, 86399)] == [
        "0:00", "1:00", "1:01", "1:00:00", "23:59:59"]


def test_a_logged_run_writes_few_lines_while_progress_jsonl_keeps_its_cadence(
        tmp_path, monkeypatch):
    monkeypatch.setattr(progress, "QUIET_EVERY", 0.5)
    config = small_config(progress_every=0.05,
                          budget={"individuals": None, "train_steps": None, "seconds": 2.0})
    out = io.StringIO()
    run = start_run(config, str(tmp_path), out=out)
    run.execute()
    lines = [line for line in out.getvalue().splitlines() if line.startswith("exp ")]
    records = (tmp_path / "small" / "progress.jsonl").read_text().splitlines()
    assert len(records) >= 15
    # At most one line per 0.5 s of the 2-second experiment (its start included), plus
    # the final line; a little slack for the experiment's own overrun of its budget.
    assert 2 <= len(lines) <= 7
    assert "budget" in lines[0] and "ETA" in lines[0]
    assert json.loads(records[-1])["individuals"] > 0


def test_a_nas_run_on_a_terminal_never_shows_best_minus_one(tmp_path):
    out = Terminal()
    run = start_run(nas_config(progress_every=0.02, budget={"individuals": 6,
                                                            "train_steps": None}),
                    str(tmp_path), out=out)
    run.execute()
    text = out.getvalue()
    assert "-1.000000" not in text
    assert "ETA" in text and "budget" in text
