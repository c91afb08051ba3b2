"""The summary of a study directory: per arm and for the compared pair, every figure that
``evozero show STUDY`` prints, written to ``summary.json``.

It reads what the study wrote (``study.yaml``, ``runs.jsonl``; a torn last line is a run
still being recorded and is skipped), so it works on a study that is still running. The
statistics and their methods are :mod:`evozero.study.stats`'s.

The summary: ``study``, ``domain``, ``success``, ``seeds``, ``planned_runs``,
``finished_runs``, ``methods`` (what each interval is); ``arms``, per arm: ``runs``,
``judged`` (runs with a verdict), ``successes``, ``success_rate`` {value, low, high},
``to_success`` per effort {value (median), low, high, n}, ``fitness`` per search, select,
final, tuned_final {mean, se, n}, ``evaluations`` and ``density_bound`` (no success),
``baselines`` per name {final_fitness {mean, se, n}, versus (the arm's tuned-or-final
fitness against the baseline's, paired by seed)}; ``compare``: ``arms`` (the pair),
``success_ratio`` and the paired ``final_fitness``, ``search_fitness`` and ``tuned_final``
{n, mean, low, high, wins, ties, losses}; ``best_run``. Undefined values are null.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evozero.config.yaml_file import read_yaml
from evozero.errors import EvozeroError
from evozero.runs.checkpointing import changed_keys
from evozero.runs.files import atomic_write_text, json_text, numbered_json_lines
from evozero.study import stats

STUDY_FILE = "study.yaml"
RUNS_FILE = "runs.jsonl"
SUMMARY_FILE = "summary.json"
#: What a study is bound to (:mod:`evozero.study.binding`), in this format.
BINDING_FILE = "binding.json"
BINDING_FORMAT = "evozero.study-binding/1"
#: The fitnesses of a run record, in the order a best run is chosen by (the first with a
#: value in some record ranks the runs).
FITNESS_KEYS = ("final_fitness", "select_fitness", "search_fitness")
#: The efforts of a run record (totals, and ``to_success`` at the first success).
EFFORT_KEYS = ("individuals", "train_steps", "seconds")
#: What each interval of the summary is, as ``evozero show`` and summary.json say it.
METHODS = {
    "success_rate": "Wilson score interval, 95 %",
    "median": f"percentile bootstrap, {stats.BOOTSTRAP_RESAMPLES} resamples, seed "
              f"{stats.BOOTSTRAP_SEED}, 95 %",
    "mean": "mean and standard error (s / sqrt(n))",
    "success_ratio": "Katz log interval, 95 %; when one arm has no success, the one-sided "
                     "bound from the arms' Wilson bounds",
    "paired": f"mean difference over the seeds both arms ran, Student t interval, 95 %; a "
              f"tie is a difference within {stats.TIE_TOLERANCE:g}",
    "density_bound": "exact one-sided 95 % bound 1 - 0.05^(1/N) (about 3/N) on the chance "
                     "that one evaluation succeeds, after N evaluations without a success",
}


#: The first line of the study.yaml a study directory holds (a study file has none).
RESOLVED_MARK = "# evozero resolved study"


def is_study(path: str | Path) -> bool:
    """Whether ``path`` is a study directory: it holds study.yaml and runs.jsonl, or the
    study.yaml a study writes (whose runs.jsonl was lost)."""
    path = Path(path)
    study = path / STUDY_FILE
    if not study.is_file():
        return False
    if (path / RUNS_FILE).is_file():
        return True
    try:
        with open(study, encoding="utf-8", errors="replace") as handle:
            return handle.read(len(RESOLVED_MARK)) == RESOLVED_MARK
    except OSError:
        return False


def write_summary(study_dir: str) -> dict:
    """Summarize the study in ``study_dir`` (:func:`summarize`), write it to summary.json
    (strict JSON, replaced atomically) and return it."""
    summary = summarize(study_dir)
    atomic_write_text(Path(study_dir) / SUMMARY_FILE, json_text(summary, indent=2) + "\n")
    return summary


def summarize(study_dir: str | Path) -> dict:
    """The summary of the study in ``study_dir`` as plain JSON data, without writing it.

    EvozeroError if the directory is not a study or its files are not what a study writes.
    """
    study = read_study(study_dir)
    return summary_of(study, read_records(study_dir, study["arms"]))


def summary_of(study: dict, records: list[dict]) -> dict:
    """The summary of ``records`` (:func:`read_records`) of ``study`` (:func:`read_study`)."""
    by_arm: dict[str, list[dict]] = {arm: [] for arm in study["arms"]}
    for record in records:
        by_arm[record["arm"]].append(record)
    domains = sorted({record["domain"] for record in records if record["domain"]})
    summary: dict[str, Any] = {
        "study": study["name"],
        # "programs" or "cells"; None before the first run or if the arms differ.
        "domain": domains[0] if len(domains) == 1 else None,
        "success": study["success"],
        "seeds": len(study["seeds"]),
        "planned_runs": len(study["seeds"]) * len(study["arms"]),
        "finished_runs": len(records),
        "methods": METHODS,
        "arms": {arm: _arm_summary(by_arm[arm], len(study["seeds"])) for arm in study["arms"]},
        "compare": None,
        "best_run": _best_run(records),
    }
    if study["compare"] is not None:
        first, second = study["compare"]
        summary["compare"] = _compare(first, second, by_arm[first], by_arm[second])
    return summary


# --- reading ----------------------------------------------------------------------------


def read_study(study_dir: str | Path) -> dict:
    """The parts of study.yaml the summary needs: name, seeds (a list), arms (in order),
    compare (a pair of arms, or None with fewer than two arms) and success."""
    directory = Path(study_dir)
    if not directory.is_dir():
        raise EvozeroError(f"{directory}: no such study directory")
    if not is_study(directory):
        raise EvozeroError(f"{directory}: not a study directory (a study holds {STUDY_FILE} "
                           f"and {RUNS_FILE}; `evozero study FILE` makes one)")
    if not (directory / RUNS_FILE).is_file():
        raise EvozeroError(f"{directory}: the study's {RUNS_FILE} (its record of finished "
                           f"runs) is missing; `evozero resume {directory}` records the "
                           f"finished runs again from their run directories")
    path = str(directory / STUDY_FILE)
    data, _ = read_yaml(path, "study file")
    if not isinstance(data, dict):
        raise EvozeroError(f"{path}: expected a mapping of study settings, got "
                           f"{type(data).__name__}; is this a study written by evozero?")
    arms = data.get("arms")
    if not isinstance(arms, dict) or not arms or not all(isinstance(a, str) for a in arms):
        raise EvozeroError(f"{path}: 'arms' must be a mapping of arm names to configs, got "
                           f"{arms!r}")
    seeds = data.get("seeds")
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1:
        seeds = list(range(seeds))
    if not (isinstance(seeds, list) and seeds
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise EvozeroError(f"{path}: 'seeds' must be a count >= 1 or a list of integers "
                           f">= 0, got {data.get('seeds')!r}")
    names = list(arms)
    compare = data.get("compare")
    if compare is None and len(names) >= 2:
        compare = names[:2]
    if compare is not None and not (isinstance(compare, list) and len(compare) == 2
                                    and all(arm in arms for arm in compare)):
        raise EvozeroError(f"{path}: 'compare' must name two of the arms "
                           f"({', '.join(names)}), got {compare!r}")
    _check_bound(directory, data)
    name = data.get("name")
    return {"name": name if isinstance(name, str) else directory.name, "seeds": seeds,
            "arms": names, "compare": compare, "success": data.get("success", "solved")}


def _check_bound(directory: Path, data: dict) -> None:
    """Refuse a study.yaml (its ``data``) whose success criterion or arms differ from what
    the study is bound to: its records were judged and run under those, and a summary
    would label them with settings they were not made under."""
    path = directory / BINDING_FILE
    if not path.exists():
        return
    bound = read_binding(path)["study"]
    for key in ("success", "arms"):
        now = json.loads(json.dumps(data.get(key), default=str))
        if key in bound and bound[key] != now:
            raise EvozeroError(
                f"{directory / STUDY_FILE}: changed since the study started, which its "
                f"records were made under: {'; '.join(changed_keys(bound[key], now, key))}; "
                f"put the old values back")


def read_binding(path: Path) -> dict[str, Any]:
    """The content of a study's binding.json at ``path``; EvozeroError naming it if it is
    not one a study writes."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise EvozeroError(f"{path}: unreadable ({error})") from None
    if not isinstance(data, dict) or data.get("format") != BINDING_FORMAT \
            or not isinstance(data.get("study"), dict) \
            or not isinstance(data.get("study_sha256"), str):
        raise EvozeroError(f"{path}: not an {BINDING_FORMAT} file (the binding a study "
                           f"writes when it starts)")
    return data


def read_records(study_dir: str | Path, arms: list[str]) -> list[dict]:
    """The finished runs of runs.jsonl, checked (a torn last line is skipped); EvozeroError
    naming the line for a record that is not a run of this study, or a run recorded twice."""
    path = Path(study_dir) / RUNS_FILE
    records: list[dict] = []
    seen: dict[tuple[str, int], int] = {}
    for number, record in numbered_json_lines(path):
        where = f"{path}:{number}"
        checked = _check_record(record, arms, where)
        key = (checked["arm"], checked["seed"])
        if key in seen:
            raise EvozeroError(f"{where}: arm {key[0]!r} seed {key[1]} is already recorded "
                               f"on line {seen[key]}; a run is recorded once")
        seen[key] = number
        records.append(checked)
    return records


def _check_record(record: dict, arms: list[str], where: str) -> dict:
    """``record`` with every field the summary reads checked and present (None if absent)."""
    arm = record.get("arm")
    if arm not in arms:
        raise EvozeroError(f"{where}: arm {arm!r} is not an arm of the study (arms: "
                           f"{', '.join(arms)})")
    seed = record.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise EvozeroError(f"{where}: 'seed' must be an integer >= 0, got {seed!r}")
    success = record.get("success")
    if success is not None and not isinstance(success, bool):
        raise EvozeroError(f"{where}: 'success' must be true, false or null, got {success!r}")
    checked: dict[str, Any] = {"arm": arm, "seed": seed, "success": success}
    for key in ("run", "domain", "program"):
        checked[key] = _optional(record, key, str, where)
    for key in (*FITNESS_KEYS, *EFFORT_KEYS, "threshold"):
        checked[key] = _number(record, key, where)
    to_success = _optional(record, "to_success", dict, where) or {}
    checked["to_success"] = {key: _number(to_success, key, f"{where}: to_success")
                             for key in EFFORT_KEYS}
    tuned = _optional(record, "tuned", dict, where)
    checked["tuned_final"] = _number(tuned, "final_fitness", f"{where}: tuned") \
        if tuned is not None else None
    baselines = _optional(record, "baselines", dict, where) or {}
    checked["baselines"] = {}
    for name, result in baselines.items():
        if not isinstance(result, dict):
            raise EvozeroError(f"{where}: baseline {name!r} must be a mapping with "
                               f"'final_fitness', got {result!r}")
        checked["baselines"][name] = _number(result, "final_fitness",
                                             f"{where}: baseline {name!r}")
    return checked


def _optional(record: Mapping, key: str, kind: type, where: str) -> Any:
    value = record.get(key)
    if value is not None and not isinstance(value, kind):
        raise EvozeroError(f"{where}: {key!r} must be a {kind.__name__} or null, got "
                           f"{value!r}")
    return value


def _number(record: Mapping, key: str, where: str) -> float | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EvozeroError(f"{where}: {key!r} must be a number or null, got {value!r}")
    return float(value)


# --- figures ----------------------------------------------------------------------------


def _arm_summary(records: list[dict], seeds: int) -> dict:
    judged = [r for r in records if r["success"] is not None]
    successes = [r for r in judged if r["success"]]
    evaluations = sum(r["individuals"] or 0.0 for r in records)
    summary: dict[str, Any] = {
        "seeds": seeds,
        "runs": len(records),
        "judged": len(judged),
        "successes": len(successes),
        "success_rate": _plain(stats.wilson_interval(len(successes), len(judged))),
        "to_success": {},
        "fitness": {key.removesuffix("_fitness"): _plain(stats.mean_se(
            [r[key] for r in records if r[key] is not None])) for key in FITNESS_KEYS},
        "evaluations": evaluations,
        "density_bound": (stats.zero_success_density_bound(evaluations)
                          if judged and not successes and evaluations > 0 else None),
        "baselines": {},
    }
    tuned = [r["tuned_final"] for r in records if r["tuned_final"] is not None]
    summary["fitness"]["tuned_final"] = _plain(stats.mean_se(tuned)) if tuned else None
    for key in EFFORT_KEYS:
        values = [r["to_success"][key] for r in successes if r["to_success"][key] is not None]
        summary["to_success"][key] = {**_plain(stats.bootstrap_median(values)),
                                      "n": len(values)}
    names = sorted({name for r in records for name in r["baselines"]})
    held_out = {r["seed"]: r["tuned_final"] if r["tuned_final"] is not None
                else r["final_fitness"] for r in records}
    for name in names:
        baseline = {r["seed"]: r["baselines"].get(name) for r in records}
        values = [v for v in baseline.values() if v is not None]
        summary["baselines"][name] = {
            "final_fitness": _plain(stats.mean_se(values)),
            "versus": _plain(stats.paired_difference(held_out, baseline)),
        }
    return summary


def _compare(first: str, second: str, a: list[dict], b: list[dict]) -> dict:
    """``first`` against ``second``: the ratio of success rates and paired differences."""
    judged_a = [r for r in a if r["success"] is not None]
    judged_b = [r for r in b if r["success"] is not None]
    ratio = stats.success_ratio(sum(bool(r["success"]) for r in judged_a), len(judged_a),
                                sum(bool(r["success"]) for r in judged_b), len(judged_b))
    comparison: dict[str, Any] = {"arms": [first, second], "success_ratio": _plain(ratio)}
    for key in ("final_fitness", "search_fitness", "tuned_final"):
        comparison[key] = _plain(stats.paired_difference(
            {r["seed"]: r[key] for r in a}, {r["seed"]: r[key] for r in b}))
    return comparison


def _best_run(records: list[dict]) -> dict | None:
    """The run with the highest fitness on the first of FITNESS_KEYS that any run has."""
    for key in FITNESS_KEYS:
        ranked = [r for r in records if r[key] is not None]
        if ranked:
            best = max(ranked, key=lambda r: r[key])
            return {"arm": best["arm"], "seed": best["seed"], "run": best["run"],
                    "ranked_by": key, "fitness": best[key], "success": best["success"],
                    "program": best["program"]}
    return None


def _plain(value: Any) -> dict:
    return dataclasses.asdict(value)
