"""What a run tells as it goes: one progress record per interval for progress.jsonl
(:func:`progress_record`, summed over the islands' latest summaries) and the lines on the
terminal (:class:`Console`: a live progress line that rewrites itself on a terminal, with
the share of the budget used and an ETA (:func:`budget_used`, :func:`eta_seconds`); a line
every :data:`QUIET_EVERY` seconds elsewhere; messages that clear it)."""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from evozero.config import Budget
from evozero.runs.migration import IslandView

#: Seconds between two progress lines where no terminal shows them (a log file, a pipe):
#: a long run's log stays readable; progress.jsonl keeps its own cadence.
QUIET_EVERY = 10.0
# The islands' best fitness before any evaluation.
_NO_BEST = -1.0


class Console:
    """Where a run prints: ``out`` (a terminal gets the live progress line; elsewhere one
    progress line per ``quiet_every`` seconds of ``clock``)."""

    def __init__(self, out: TextIO, clock: Callable[[], float] = time.monotonic,
                 quiet_every: float | None = None) -> None:
        self.out = out
        self.live = out.isatty()
        self._clock = clock
        self._quiet_every = QUIET_EVERY if quiet_every is None else quiet_every
        self._last_line: float | None = None

    def say(self, text: str) -> None:
        """Print one message line (clearing a live progress line first)."""
        if self.live:
            text = "\r\033[K" + text
        print(text, file=self.out, flush=True)

    def progress(self, record: dict[str, Any], final: bool = False,
                 used: float | None = None, eta: float | None = None,
                 experiments: int = 0) -> None:
        """Show a :func:`progress_record` with the share of the budget ``used`` and the
        ``eta`` in seconds (None: unknown) of a run of ``experiments`` experiments (0: until
        solved): the live line on a terminal, a line of its own when ``final``; elsewhere
        at most one line per interval (and every final one)."""
        line = progress_line(record, None if final else used, eta, experiments)
        if self.live and not final:
            self.out.write("\r\033[K" + line)
            self.out.flush()
            return
        now = self._clock()
        if final or self._last_line is None or now - self._last_line >= self._quiet_every:
            self._last_line = now
            self.say(line)


def progress_line(record: dict[str, Any], used: float | None = None,
                  eta: float | None = None, experiments: int = 0) -> str:
    """One line of a :func:`progress_record` of a run of ``experiments`` experiments (0:
    until solved), with the share of the budget ``used`` and the ``eta`` in seconds when
    ``used`` is given."""
    line = f"exp {record['experiment']}" + (f"/{experiments}" if experiments > 0 else "")
    if used is not None:
        line += f"  budget {100 * used:3.0f}%  ETA {'—' if eta is None else clock_text(eta)}"
    best = record["best"]
    best_text = "—" if best == _NO_BEST else f"{best:.6f}"
    rate = record["individuals_per_second"]
    # A network search evaluates a few individuals per second, a program search thousands.
    rate_text = f"{rate:>9,.1f}" if rate < 10 else f"{rate:>9,.0f}"
    line += (f"  {record['individuals']:>11,} indiv  best {best_text}  mean "
             f"{record['mean']:.4f}  {rate_text} indiv/s  "
             f"cache hits {100 * record['cache_hit_rate']:4.1f}%")
    if len(record["islands"]) > 1:
        shares = "/".join(f"{100 * i['share']:.0f}" for i in record["islands"])
        line += f"  islands {shares}%"
    return line


def clock_text(seconds: float) -> str:
    """``seconds`` as m:ss, or h:mm:ss from an hour on."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def budget_used(views: Sequence[IslandView], budget: Budget, seconds: float) -> float:
    """The share (0..1) of one experiment's budget used after ``seconds`` of it: each
    island has the whole budget and is as far as the nearer of its individual and train
    step limits (a finished island all the way, one that reports its own ``progress`` at
    least that far); the experiment is as far as its islands on average, or as its time
    limit, whichever is nearer."""
    shares = []
    for view in views:
        share = 1.0 if view.done else view.summary.get("progress", 0.0)
        for limit, counter in ((budget.individuals, "individuals"),
                               (budget.train_steps, "train_steps")):
            if limit is not None:
                share = max(share, view.summary.get(counter, 0) / limit)
        shares.append(min(share, 1.0))
    used = sum(shares) / len(shares) if shares else 0.0
    if budget.seconds is not None:
        used = max(used, seconds / budget.seconds)
    return min(used, 1.0)


def eta_seconds(used: float, seconds: float, experiments_after: int = 0) -> float | None:
    """Seconds until the run ends when the current experiment has used the share ``used``
    of its budget in ``seconds`` and ``experiments_after`` more follow, each as long as
    this one promises to be (None before anything is measured). A run that stops once
    solved may end sooner."""
    if used <= 0.0:
        return None
    whole = seconds / used
    return whole * (1.0 - used) + experiments_after * whole


def progress_record(views: Sequence[IslandView], seconds: float) -> dict[str, Any]:
    """One progress record for the whole experiment from the islands' latest summaries."""
    summaries = [v.summary for v in views if v.summary]
    total = sum(s["individuals"] for s in summaries)
    record: dict[str, Any] = {
        "individuals": total, "train_steps": sum(s["train_steps"] for s in summaries),
        "best": max((s["best"] for s in summaries), default=-1.0)}
    filled = sum(s["filled"] for s in summaries)
    if filled:
        mean = sum(s["mean"] * s["filled"] for s in summaries) / filled
        second = sum((s["stdev"] ** 2 + s["mean"] ** 2) * s["filled"] for s in summaries)
        record["mean"] = mean
        record["stdev"] = math.sqrt(max(second / filled - mean ** 2, 0.0))
    else:
        record["mean"] = record["stdev"] = 0.0
    record["individuals_per_second"] = total / max(seconds, 1e-9)
    hits = sum(s["structure_hits"] + s["fingerprint_hits"] for s in summaries)
    record["cache_hit_rate"] = hits / total if total else 0.0
    for name in ("structure_hits", "fingerprint_hits", "full_evaluations", "hurdle_stops",
                 "budget_rejects", "saved_train_steps"):
        record[name] = sum(s[name] for s in summaries)
    record["islands"] = [
        {"island": v.index + 1, "individuals": v.summary.get("individuals", 0),
         "best": v.summary.get("best", -1.0),
         "individuals_per_second": v.summary.get("individuals", 0) / max(seconds, 1e-9),
         "share": v.summary.get("individuals", 0) / total if total else 0.0,
         "migrants": v.summary.get("migrants", 0),
         "status": "done" if v.done else v.status}
        for v in views]
    return record
