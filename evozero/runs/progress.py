"""What a run tells as it goes: one progress record per interval for progress.jsonl
(:func:`progress_record`, summed over the islands' latest summaries) and the lines on the
terminal (:class:`Console`: a live progress line that rewrites itself on a terminal,
messages that clear it)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TextIO

from evozero.runs.migration import IslandView


class Console:
    """Where a run prints: ``out`` (a terminal gets the live progress line)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def say(self, text: str) -> None:
        """Print one message line (clearing a live progress line first)."""
        if self.out.isatty():
            text = "\r\033[K" + text
        print(text, file=self.out, flush=True)

    def progress(self, record: dict[str, Any], final: bool = False) -> None:
        """Show a :func:`progress_record`: the live line on a terminal (a line of its own
        when ``final`` or elsewhere)."""
        shares = "/".join(f"{100 * i['share']:.0f}" for i in record["islands"])
        line = (f"exp {record['experiment']}  {record['individuals']:>11,} indiv  best "
                f"{record['best']:.6f}  mean {record['mean']:.4f}  "
                f"{record['individuals_per_second']:>9,.0f} indiv/s  cache hits "
                f"{100 * record['cache_hit_rate']:4.1f}%")
        if len(record["islands"]) > 1:
            line += f"  islands {shares}%"
        if self.out.isatty() and not final:
            self.out.write("\r" + line)
            self.out.flush()
        else:
            self.say(line)


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
