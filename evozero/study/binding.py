"""A study is one configuration, as a run is: what binds it, and the checks of a resume.

When a study is made, ``binding.json`` keeps its resolved study (every arm's resolved
config included) without the keys a resume may change (:data:`STUDY_CHANGEABLE`), and
that content's sha256, which every record of runs.jsonl carries (``study_sha256``). A
resume compares study.yaml with it and refuses an edit, listing ``key: old -> new``, so
runs made under other settings (an arm's config or ``set``, the success criterion, the
tuning) are never pooled into one summary; a record carrying another hash was made under
another study. A run of the study is checked against its arm's config before it is
resumed or recorded, so a run edited on its own is never recorded as the arm's.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evozero.config import Config, config_to_dict
from evozero.errors import EvozeroError
from evozero.runs.checkpointing import changed_keys
from evozero.runs.files import atomic_write_text, json_text, numbered_json_lines
from evozero.study.spec import RESOLVED_CONFIGS, Study, study_to_dict
from evozero.study.summary import (
    BINDING_FILE,
    BINDING_FORMAT,
    RUNS_FILE,
    STUDY_FILE,
    read_binding,
)

#: Study keys a resume may change (README, "Studies"): none changes what a run computes
#: or how it is judged. ``seeds`` may change only by keeping every recorded seed.
STUDY_CHANGEABLE = ("name", "workers", "backend", "address", "seeds", "compare")
#: Keys of an arm's config that say where and how often a run works and reports, not
#: what it computes: a run may differ from its arm in these.
RUN_LABELS = ("name", "workers", "backend", "address", "checkpoint_every", "progress_every")


def bound_study(study: Study) -> dict[str, Any]:
    """The part of ``study`` its runs depend on, as plain JSON data."""
    data = {key: value for key, value in study_to_dict(study).items()
            if key not in STUDY_CHANGEABLE}
    data[RESOLVED_CONFIGS] = {name: bound_config(config)
                              for name, config in study.configs.items()}
    return json.loads(json.dumps(data, default=str))


def bound_config(config: Config) -> dict[str, Any]:
    """The part of a run's config that says what it computes, as plain JSON data."""
    data = {key: value for key, value in config_to_dict(config).items()
            if key not in RUN_LABELS}
    return json.loads(json.dumps(data, default=str))


def study_hash(study: Study) -> str:
    """sha256 of :func:`bound_study`, in canonical JSON."""
    text = json.dumps(bound_study(study), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_binding(folder: Path, study: Study) -> None:
    """Bind the study directory ``folder`` to ``study`` (binding.json)."""
    atomic_write_text(folder / BINDING_FILE, json_text(
        {"format": BINDING_FORMAT, "study": bound_study(study),
         "study_sha256": study_hash(study)}, indent=1) + "\n")


def check_binding(folder: Path, study: Study, say: Callable[[str], None]) -> None:
    """Refuse to resume the study in ``folder`` as ``study`` (its study.yaml now) if that
    differs from what it was made with outside :data:`STUDY_CHANGEABLE`, if runs.jsonl
    holds a run of another study, or if ``seeds`` lost a recorded seed. A study made
    before binding is bound now, with a warning."""
    path = folder / BINDING_FILE
    current = study_hash(study)
    records = numbered_json_lines(folder / RUNS_FILE)
    if not path.exists():
        if any("study_sha256" in record for _, record in records):
            raise EvozeroError(f"{path}: missing, but runs.jsonl records runs of a bound "
                               f"study; put it back to resume the study")
        say(f"warning: {folder}: this study predates binding ({BINDING_FILE}), so changes "
            f"to {STUDY_FILE} since it started cannot be detected; it is bound to "
            f"{STUDY_FILE} as it is now")
        write_binding(folder, study)
        return
    stored = read_binding(path)
    if stored["study_sha256"] != current:
        changes = changed_keys(stored["study"], bound_study(study)) or [
            "(the change is in a value the binding does not show)"]
        raise EvozeroError(
            f"{folder / STUDY_FILE}: changed since the study started, in keys a resume "
            f"may not change (runs made before and after would be pooled into one "
            f"summary):\n  " + "\n  ".join(changes) + f"\nput the old values back, or make "
            f"a new study of the changed file; a resume may change only "
            f"{', '.join(STUDY_CHANGEABLE)} (seeds: keeping every recorded seed)")
    for number, record in records:
        where = f"{folder / RUNS_FILE}:{number}"
        recorded = record.get("study_sha256", current)
        if recorded != current:
            raise EvozeroError(f"{where}: recorded under another study (study_sha256 "
                               f"{str(recorded)[:16]}..., this study's is {current[:16]}...); "
                               f"a study's records are all made under its one configuration")
        if record.get("seed") not in study.seeds:
            raise EvozeroError(f"{folder / STUDY_FILE}: seeds: drops seed "
                               f"{record.get('seed')!r}, which {where} records; a resume "
                               f"may add seeds but keeps every recorded one")


def check_run_config(run_config: Config, arm_config: Config, where: Path, arm: str) -> None:
    """Refuse a run of ``arm`` whose config (``run_config``, read from ``where``) differs
    from the one the arm gives it (``arm_config``) in what it computes."""
    changes = changed_keys(bound_config(arm_config), bound_config(run_config))
    if changes:
        raise EvozeroError(
            f"{where}: differs from the config arm {arm!r} gives this run, so its result "
            f"is not the arm's:\n  " + "\n  ".join(changes) + "\nput the arm's values "
            "back (see the study's study.yaml), or remove the run directory to run it "
            "again")
