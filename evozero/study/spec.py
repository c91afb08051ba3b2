"""The study file: what a study runs, checked completely before anything runs.

A study (README, "Studies") runs arms (an experiment config plus overrides) over paired
seeds. :func:`load_study` reads the user's YAML file with the config framework of
:mod:`evozero.config.schema` (every error ``file:line: key: problem``) and loads every
arm's config as its runs will use it (the overrides, ``seed``, ``workers: 1``), so a bad
arm fails first, naming the arm. :func:`resolved_study_text` is the study.yaml a study
directory keeps: every key filled in, paths absolute, and each arm's resolved config;
:func:`read_resolved_study` reads it back for a resume, taking the configs from it (not
from the config files, which may have changed since).
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from evozero.analysis.tuning import MAX_TRIALS
from evozero.config import Config, config_from_dict, config_to_dict, dump_config, load_config
from evozero.config.loading import _yaml_marks
from evozero.config.root import _MAX_WORKERS
from evozero.config.schema import (
    _Choice,
    _Context,
    _Float,
    _Int,
    _join,
    _Name,
    _Optional,
    _OptionalSection,
    _resolve,
    _Section,
    _setting,
    _show,
    _Spec,
    _Str,
    _unknown,
    _WordOrCount,
)
from evozero.config.yaml_file import read_yaml
from evozero.domains import domain_for
from evozero.errors import EvozeroError
from evozero.programs.reference import BUILTIN_PROGRAMS
from evozero.runs.files import json_text
from evozero.study.summary import RESOLVED_MARK
from ops.rng import SEED_MAX

#: Most seeds and arms a study may have: far beyond any sensible study, so a typo (an
#: extra 000) is caught before a directory of a million runs is planned.
_MAX_SEEDS = 100_000
#: What ``success: {at_least: X, on: ...}`` may compare X with.
SUCCESS_ON = ("search", "select", "final")
#: The key study.yaml keeps the arms' resolved configs under.
RESOLVED_CONFIGS = "resolved_configs"


class _Seeds(_Spec):
    allowed = (f"a count N in [1, {_MAX_SEEDS}] (seeds 0..N-1) or a non-empty list of "
               f"distinct integers in [0, {SEED_MAX}]")

    def parse(self, value: Any, key: str, ctx: _Context) -> tuple[int, ...]:
        if isinstance(value, int) and not isinstance(value, bool):
            if not 1 <= value <= _MAX_SEEDS:
                raise self.fail(value, key, ctx)
            return tuple(range(value))
        if not isinstance(value, list | tuple) or not value or len(value) > _MAX_SEEDS:
            raise self.fail(value, key, ctx)
        seeds = tuple(_Int(0, SEED_MAX).parse(item, f"{key}[{i}]", ctx)
                      for i, item in enumerate(value))
        if len(set(seeds)) != len(seeds):
            raise self.fail(value, key, ctx, "a seed is repeated")
        return seeds

    def dump(self, value: Any) -> Any:
        return list(value)


class _ProgramName(_Spec):
    """A built-in program's name or the path of a program file (relative to the study
    file; kept absolute)."""

    allowed = (f"a built-in program ({', '.join(BUILTIN_PROGRAMS)}) or the path of an "
               f"existing program file (relative to the study file)")

    def parse(self, value: Any, key: str, ctx: _Context) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(value, key, ctx)
        if value.strip() in BUILTIN_PROGRAMS:
            return value.strip()
        resolved = _resolve(value, ctx)
        if not os.path.isfile(resolved):
            raise ctx.error(key, f"{_show(value)} is neither a built-in program nor an "
                                 f"existing file (looked for {resolved}); must be "
                                 f"{self.allowed}")
        return resolved


class _ProgramNames(_Spec):
    allowed = f"a list of distinct programs, each {_ProgramName.allowed}"

    def parse(self, value: Any, key: str, ctx: _Context) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            raise self.fail(value, key, ctx)
        names = tuple(_ProgramName().parse(item, f"{key}[{i}]", ctx)
                      for i, item in enumerate(value))
        if len(set(names)) != len(names):
            raise self.fail(value, key, ctx, "a program is repeated")
        return names

    def dump(self, value: Any) -> Any:
        return list(value)


@dataclass(frozen=True)
class AtLeast:
    """Success: the run's best fitness on ``on``'s tasks is at least ``at_least``."""

    at_least: float = _setting(_Float(), 0.0)
    on: str = _setting(_Choice(*SUCCESS_ON), "search")


@dataclass(frozen=True)
class Baseline:
    """Success: the run's best search fitness reaches the tuned ``baseline`` program's."""

    baseline: str = _setting(_ProgramName(), "linear")
    tune_trials: int = _setting(_Int(1, MAX_TRIALS), 100)


class _Success(_Spec):
    allowed = ("solved, {at_least: X, on: search|select|final} or "
               "{baseline: NAME_OR_FILE, tune_trials: N}")

    def parse(self, value: Any, key: str, ctx: _Context) -> str | AtLeast | Baseline:
        if isinstance(value, str) and value.strip().lower() == "solved":
            return "solved"
        if isinstance(value, dict):
            # YAML 1.1 reads an unquoted key ``on`` as true.
            value = {"on" if name is True else name: item for name, item in value.items()}
        if isinstance(value, dict) and "at_least" in value:
            return _Section(AtLeast).parse(value, key, ctx)
        if isinstance(value, dict) and "baseline" in value:
            return _Section(Baseline).parse(value, key, ctx)
        raise self.fail(value, key, ctx)

    def dump(self, value: Any) -> Any:
        if isinstance(value, str):
            return value
        return _Section(type(value)).dump(value)


@dataclass(frozen=True)
class Tune:
    """After each run: its best program tuned, and these baselines tuned the same way."""

    trials: int = _setting(_Int(1, MAX_TRIALS), 100)
    baselines: tuple[str, ...] = _setting(_ProgramNames(), ())


class _ArmConfig(_Spec):
    """The path of an arm's config file: it must exist in a study file; in a resolved
    study.yaml it is a record only (the resolved config is what runs)."""

    def __init__(self, must_exist: bool) -> None:
        self.must_exist = must_exist
        self.allowed = "the path of an existing config file (relative to the study file)"

    def parse(self, value: Any, key: str, ctx: _Context) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(value, key, ctx)
        resolved = _resolve(value, ctx)
        if self.must_exist and not os.path.isfile(resolved):
            raise ctx.error(key, f"no such file {_show(value)} (looked for {resolved}); "
                                 f"must be {self.allowed}")
        return resolved


@dataclass(frozen=True)
class Arm:
    """One arm: a config file and the overrides (dotted keys, as ``--set``) it runs with."""

    name: str
    config: str
    overrides: dict[str, Any]


class _Arms(_Spec):
    allowed = ("a non-empty mapping of arm names to {config: FILE, set: {KEY: VALUE, ...}} "
               "(set optional)")

    def __init__(self, must_exist: bool) -> None:
        self.must_exist = must_exist

    def parse(self, value: Any, key: str, ctx: _Context) -> tuple[Arm, ...]:
        if not isinstance(value, dict) or not value or len(value) > _MAX_SEEDS:
            raise self.fail(value, key, ctx)
        arms = []
        for name, entry in value.items():
            where = _join(key, str(name))
            _Name().parse(name, where, ctx)
            if not isinstance(entry, dict):
                raise self.fail(entry, where, ctx)
            for part in entry:
                if part not in ("config", "set"):
                    raise ctx.error(_join(where, str(part)),
                                    _unknown("key", part, ("config", "set"), " keys of an arm"))
            if "config" not in entry:
                raise ctx.error(where, "needs config: the path of its experiment config")
            config = _ArmConfig(self.must_exist).parse(entry["config"], _join(where, "config"),
                                                       ctx)
            overrides = entry.get("set") or {}
            if not isinstance(overrides, dict) or not all(isinstance(k, str) for k in overrides):
                raise ctx.error(_join(where, "set"), f"must be a mapping of config keys "
                                                     f"(dotted, as --set) to values, got "
                                                     f"{_show(overrides)}")
            arms.append(Arm(name, config, dict(overrides)))
        return tuple(arms)

    def dump(self, value: Any) -> Any:
        return {arm.name: {"config": arm.config, "set": dict(arm.overrides)} for arm in value}


class _Compare(_Spec):
    allowed = "a list of two different arm names, or null (the first two arms)"

    def parse(self, value: Any, key: str, ctx: _Context) -> tuple[str, str] | None:
        if value is None:
            return None
        if (not isinstance(value, list | tuple) or len(value) != 2
                or not all(isinstance(v, str) for v in value) or value[0] == value[1]):
            raise self.fail(value, key, ctx)
        return (value[0], value[1])

    def dump(self, value: Any) -> Any:
        return None if value is None else list(value)


def _study_class(must_exist: bool) -> type:
    """The study dataclass, its arms' config files checked to exist or not (a resume)."""

    @dataclass(frozen=True)
    class StudyFile:
        name: str | None = _setting(_Optional(_Name()), None)
        seeds: tuple[int, ...] = _setting(_Seeds(), ())
        workers: str | int = _setting(_WordOrCount(
            f"auto (every core, or the Ray cluster's CPUs) or an integer in "
            f"[1, {_MAX_WORKERS}]", _MAX_WORKERS, "auto"), "auto")
        backend: str = _setting(_Choice("local", "ray"), "local")
        address: str | None = _setting(_Optional(_Str()), None)
        success: Any = _setting(_Success(), "solved")
        tune: Tune | None = _setting(_OptionalSection(Tune), None)
        arms: tuple[Arm, ...] = _setting(_Arms(must_exist), ())
        compare: tuple[str, str] | None = _setting(_Compare(), None)

        def _problems(self) -> Iterator[tuple[Any, str]]:
            if not self.seeds:
                yield "seeds", f"is required: {_Seeds.allowed}"
            if not self.arms:
                yield "arms", f"is required: {_Arms.allowed}"
            names = [arm.name for arm in self.arms]
            if self.compare is not None:
                for name in self.compare:
                    if name not in names:
                        yield "compare", _unknown("arm", name, names, " arms")
            if self.address is not None and self.backend != "ray":
                yield ("address", "backend"), ("is the address of a Ray cluster, used with "
                                               "backend: ray only; set backend: ray or "
                                               "remove it")

    return StudyFile


_STUDY_FILE = _Section(_study_class(must_exist=True))
_RESOLVED_FILE = _Section(_study_class(must_exist=False))


@dataclass(frozen=True)
class Study:
    """A checked study: its settings and every arm's resolved config (seed: the first)."""

    path: str                       # the study file it was read from
    name: str
    seeds: tuple[int, ...]
    workers: str | int
    backend: str
    address: str | None
    success: str | AtLeast | Baseline
    tune: Tune | None
    arms: tuple[Arm, ...]
    compare: tuple[str, str] | None
    configs: dict[str, Config]

    @property
    def arm_names(self) -> list[str]:
        """The arms' names, in the file's order."""
        return [arm.name for arm in self.arms]

    def run_config(self, arm: str, seed: int) -> Config:
        """The config of the run of ``arm`` and ``seed``."""
        return dataclasses.replace(self.configs[arm], seed=seed)

    def pairs(self) -> list[tuple[str, int]]:
        """Every (arm, seed) of the study, seeds interleaved: seed 0 of every arm, then
        seed 1, ... (a study stopped early has paired results)."""
        return [(arm.name, seed) for seed in self.seeds for arm in self.arms]


def _read(path: str, what: str) -> tuple[dict, _Context]:
    data, node = read_yaml(path, what)
    ctx = _Context(path, _yaml_marks(node, path) if node is not None else {},
                   os.path.dirname(os.path.abspath(path)))
    if not isinstance(data, dict):
        raise ctx.error("", f"must be a mapping of study settings (seeds, arms, ...), got "
                            f"{_show(data)}")
    return data, ctx


def load_study(path: str | os.PathLike) -> Study:
    """Read and check the study file ``path``, loading every arm's config as its runs use
    it (the arm's overrides, ``seed``, ``workers: 1``)."""
    path = os.fspath(path)
    data, ctx = _read(path, "study file")
    if RESOLVED_CONFIGS in data:
        raise ctx.error(RESOLVED_CONFIGS, "belongs to the study.yaml of a study directory; "
                                          "continue that study with `evozero resume DIR`")
    parsed = _STUDY_FILE.parse(data, "", ctx)
    configs = {arm.name: _arm_config(arm, parsed.seeds[0], ctx) for arm in parsed.arms}
    return _study(path, parsed, configs, Path(path).stem, ctx)


def _arm_config(arm: Arm, seed: int, ctx: _Context) -> Config:
    overrides = [f"{key}={json_text(value)}" for key, value in arm.overrides.items()]
    try:
        return load_config(arm.config, [*overrides, "workers=1"], seed=seed)
    except EvozeroError as error:
        raise ctx.error(f"arms.{arm.name}", f"its config fails: {error}") from None


def _study(path: str, parsed: Any, configs: dict[str, Config], default_name: str,
           ctx: _Context) -> Study:
    names = [arm.name for arm in parsed.arms]
    compare = parsed.compare if parsed.compare is not None else (
        (names[0], names[1]) if len(names) >= 2 else None)
    study = Study(path=path, name=parsed.name or default_name, seeds=parsed.seeds,
                  workers=parsed.workers, backend=parsed.backend, address=parsed.address,
                  success=parsed.success, tune=parsed.tune, arms=parsed.arms,
                  compare=compare, configs=configs)
    for key, problem in _arm_problems(study):
        raise ctx.error(key, problem)
    return study


def _arm_problems(study: Study) -> Iterator[tuple[str, str]]:
    """What the arms' configs rule out: tuning and baselines need programs, a baseline
    threshold needs one experiment (its search tasks are the threshold's)."""
    for arm in study.arms:
        config = study.configs[arm.name]
        cells = domain_for(config).candidates == "cells"
        if cells and isinstance(study.success, Baseline):
            yield "success", (f"a baseline program cannot judge arm {arm.name!r}: it "
                              f"searches network cells (use solved or at_least)")
        if cells and study.tune is not None:
            yield "tune", (f"tunes programs, but arm {arm.name!r} searches network cells; "
                           f"remove tune")
        if isinstance(study.success, Baseline) and config.max_experiments != 1:
            yield "success", (f"a baseline success needs one search experiment per run "
                              f"(its search tasks are the threshold's), but arm "
                              f"{arm.name!r} has max_experiments {config.max_experiments}; "
                              f"set max_experiments: 1 in its config or its set")


def study_to_dict(study: Study) -> dict[str, Any]:
    """The resolved study as plain YAML-ready data (study.yaml)."""
    data = _RESOLVED_FILE.dump(study)
    data["name"] = study.name
    data[RESOLVED_CONFIGS] = {name: config_to_dict(config)
                              for name, config in study.configs.items()}
    return data


def resolved_study_text(study: Study) -> str:
    """The text of study.yaml: the resolved study with the arms' resolved configs."""
    header = (f"{RESOLVED_MARK}: every default filled in, paths absolute, and the\n"
              "# config each arm runs with (its runs replace seed). `evozero resume DIR`\n"
              "# continues the study from this file.\n")
    data = study_to_dict(study)
    configs = data.pop(RESOLVED_CONFIGS)
    text = header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
    # The configs as `evozero run` writes config.yaml, each indented under its arm.
    text += f"{RESOLVED_CONFIGS}:\n"
    for name in configs:
        body = dump_config(study.configs[name]).split("\n", 1)[1]
        text += f"  {yaml.safe_dump(name).splitlines()[0]}:\n"
        text += "".join(f"    {line}\n" for line in body.splitlines())
    return text


def read_resolved_study(path: str | os.PathLike) -> Study:
    """The study of a study directory's study.yaml (``path``), with the arms' configs
    taken from its resolved configs; EvozeroError naming the file, key and value if it was
    edited into something that is not a study."""
    path = os.fspath(path)
    data, ctx = _read(path, "study file")
    configs_data = data.pop(RESOLVED_CONFIGS, None)
    parsed = _RESOLVED_FILE.parse(data, "", ctx)
    if not isinstance(configs_data, dict):
        raise ctx.error(RESOLVED_CONFIGS, f"must be a mapping of every arm to its resolved "
                                          f"config, got {_show(configs_data)}")
    configs = {}
    for arm in parsed.arms:
        if arm.name not in configs_data:
            raise ctx.error(RESOLVED_CONFIGS, f"has no config for arm {arm.name!r}")
        key = f"{RESOLVED_CONFIGS}.{arm.name}"
        configs[arm.name] = config_from_dict(configs_data[arm.name],
                                             f"{ctx.locate(key)}: {key}")
    return _study(path, parsed, configs, Path(path).parent.name, ctx)
