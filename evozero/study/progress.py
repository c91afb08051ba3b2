"""What a study prints as it goes: on a terminal one live line (a bar, runs done of all,
successes per arm, an ETA from the finished runs' times); elsewhere (a log) that line at
most every :data:`LOG_EVERY` seconds, and one short line per finished run."""
from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any, TextIO

#: Seconds between progress lines written to a file or pipe.
LOG_EVERY = 10.0
_BAR = 20


def duration(seconds: float) -> str:
    """``seconds`` as 45s, 3m10s or 2h05m."""
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class StudyProgress:
    """The progress of one study on ``out`` (see the module docstring)."""

    def __init__(self, out: TextIO, arms: Sequence[str], total: int, workers: int) -> None:
        self.out = out
        self.live = out.isatty()
        self.arms = list(arms)
        self.total = total
        self.workers = workers
        self._last_line = -float("inf")
        self._shown = False

    def say(self, text: str) -> None:
        """Print a message line (clearing the live line first)."""
        print(("\r\033[K" if self.live else "") + text, file=self.out, flush=True)
        self._shown = False

    def finished(self, record: dict[str, Any]) -> None:
        """A line for a run just recorded (off a terminal only: the live line says it)."""
        if self.live:
            return
        outcome = {True: "success", False: "no success", None: "done"}[record["success"]]
        fitness = record.get("final_fitness")
        seconds = record.get("seconds")
        self.say(f"  {record['arm']} seed {record['seed']}: {outcome}"
                 + (f", final fitness {fitness:.4f}" if isinstance(fitness, float) else "")
                 + (f", {seconds:.1f} s" if isinstance(seconds, int | float) else ""))

    def show(self, records: Sequence[dict[str, Any]], busy: int, force: bool = False) -> None:
        """The progress line for ``records`` (every recorded run) with ``busy`` runs under
        way: rewritten in place on a terminal, else printed at most every LOG_EVERY s."""
        now = time.monotonic()
        if not self.live and not force and now - self._last_line < LOG_EVERY:
            return
        self._last_line = now
        done = len(records)
        filled = round(_BAR * done / self.total) if self.total else _BAR
        per_arm = []
        for arm in self.arms:
            mine = [r for r in records if r["arm"] == arm]
            wins = sum(1 for r in mine if r["success"])
            per_arm.append(f"{arm} {wins}/{len(mine)}")
        line = (f"[{'#' * filled}{'-' * (_BAR - filled)}] {done}/{self.total} runs, "
                f"{busy} running  successes: {', '.join(per_arm)}")
        times = [r["seconds"] for r in records if isinstance(r.get("seconds"), int | float)]
        left = self.total - done
        if times and left:
            eta = left * statistics.mean(times) / max(min(self.workers, left), 1)
            line += f"  ETA {duration(eta)}"
        if self.live:
            self.out.write("\r\033[K" + line)
            self.out.flush()
            self._shown = True
        else:
            print(line, file=self.out, flush=True)

    def close(self) -> None:
        """End the live line."""
        if self.live and self._shown:
            print(file=self.out, flush=True)
            self._shown = False
