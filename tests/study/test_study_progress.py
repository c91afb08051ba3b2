"""The study's progress: one live line on a terminal; in a log, a line at most every
10 s and a short line per finished run."""
from __future__ import annotations

import io

from evozero.study import progress
from evozero.study.progress import StudyProgress, duration


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _record(arm: str, seed: int, success: bool, seconds: float) -> dict:
    return {"arm": arm, "seed": seed, "success": success, "final_fitness": 0.5,
            "seconds": seconds}


def test_a_log_gets_a_line_at_most_every_ten_seconds(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    shown = StudyProgress(out, ["evo", "rand"], total=4, workers=2)
    records = [_record("evo", 0, True, 6.0)]
    shown.show(records, busy=2)
    now[0] += 9.9
    shown.show(records, busy=2)
    assert out.getvalue().count("\n") == 1
    now[0] += 0.2
    shown.show(records, busy=2)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in out.getvalue()
    # 3 runs left at 6 s each on 2 workers.
    assert lines[-1] == ("[#####---------------] 1/4 runs, 2 running  successes: evo 1/1, "
                         "rand 0/0  ETA 9s")
    shown.finished(_record("rand", 0, False, 2.5))
    assert out.getvalue().splitlines()[-1] == ("  rand seed 0: no success, final fitness "
                                               "0.5000, 2.5 s")


def test_a_terminal_gets_one_live_line():
    out = _Terminal()
    shown = StudyProgress(out, ["evo"], total=2, workers=1)
    shown.show([], busy=1)
    shown.show([_record("evo", 0, True, 1.0)], busy=1)
    shown.finished(_record("evo", 0, True, 1.0))   # the live line says it
    shown.close()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.count("\r\033[K") == 2
    assert text.endswith("1/2 runs, 1 running  successes: evo 1/1  ETA 1s\n")


def test_durations():
    assert [duration(s) for s in (4.4, 190, 7500)] == ["4s", "3m10s", "2h05m"]
