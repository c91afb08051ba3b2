"""The study file: every bad value is an EvozeroError naming the file, the key, the value
and what is allowed; good files resolve to a complete study.yaml that reads back equal."""
from __future__ import annotations

import pytest
import yaml
from study_helpers import write_study

from evozero.errors import EvozeroError
from evozero.study.spec import (
    AtLeast,
    Baseline,
    load_study,
    read_resolved_study,
    resolved_study_text,
)


@pytest.mark.parametrize("changes, expected", [
    ({"seeds": 0}, ["seeds", "must be a count N in [1,", "got 0"]),
    ({"seeds": [1, 1]}, ["seeds", "a seed is repeated"]),
    ({"seeds": [-1]}, ["seeds[0]", "must be an integer in [0,", "got -1"]),
    ({"seeds": "many"}, ["seeds", "got \"many\""]),
    ({"workers": 0}, ["workers", "auto", "got 0"]),
    ({"backend": "slurm"}, ["backend", "one of local, ray", "got \"slurm\""]),
    ({"address": "auto"}, ["address", "backend: ray"]),
    ({"success": "always"}, ["success", "solved, {at_least: X", "got \"always\""]),
    ({"success": {"at_least": "high"}}, ["success.at_least", "must be a number",
                                         "got \"high\""]),
    ({"success": {"at_least": 0.9, "on": "test"}}, ["success.on", "one of search, select, "
                                                    "final", "got \"test\""]),
    ({"success": {"baseline": "ridge"}}, ["success.baseline", "neither a built-in program "
                                          "nor an existing file", "linear"]),
    ({"success": {"baseline": "linear", "tune_trials": 0}}, ["success.tune_trials",
                                                             "got 0"]),
    ({"success": {"baseline": "linear"},
      "arms": {"evolution": {"config": "tiny.yaml", "set": {"max_experiments": 0}}}},
     ["success", "max_experiments: 1", "'evolution'", "max_experiments 0"]),
    ({"tune": {"trials": -5}}, ["tune.trials", "got -5"]),
    ({"tune": {"baselines": ["linear", "linear"]}}, ["tune.baselines", "repeated"]),
    ({"compare": ["evolution", "random-search"]}, ["compare", "unknown arm \"random-search\"",
                                                   "did you mean \"random\"?"]),
    ({"compare": ["evolution", "evolution"]}, ["compare", "two different arm names"]),
    ({"arms": {}}, ["arms", "non-empty mapping"]),
    ({"arms": {"a/b": {"config": "tiny.yaml"}}}, ["arms.a/b", "directory name"]),
    ({"arms": {"evo": {"config": "missing.yaml"}}}, ["arms.evo.config", "no such file",
                                                      "missing.yaml"]),
    ({"arms": {"evo": {"file": "tiny.yaml"}}}, ["arms.evo.file", "unknown key"]),
    ({"arms": {"evo": {"config": "tiny.yaml", "set": ["strategy=random"]}}},
     ["arms.evo.set", "must be a mapping of config keys"]),
    ({"arms": {"evo": {"config": "tiny.yaml", "set": {"population_size": -1}}}},
     ["arms.evo: its config fails", "--set population_size=-1", "population_size",
      "got -1"]),
    ({"arms": {"evo": {"config": "tiny.yaml", "set": {"populaton_size": 10}}}},
     ["arms.evo", "unknown key \"populaton_size\"", "did you mean \"population_size\"?"]),
    ({"seed": 3}, ["seed", "unknown key", "did you mean \"seeds\"?"]),
])
def test_a_bad_value_names_file_key_value_and_what_is_allowed(tmp_path, changes, expected):
    path = write_study(tmp_path, **changes)
    with pytest.raises(EvozeroError) as error:
        load_study(path)
    message = str(error.value)
    assert message.startswith(str(path)), message
    for part in expected:
        assert part in message, message


def test_the_line_of_a_bad_value_is_named(tmp_path):
    path = write_study(tmp_path, seeds=[0, 1, 1])
    lines = path.read_text().splitlines()
    with pytest.raises(EvozeroError, match=rf"{path}:{lines.index('seeds:') + 1}: seeds: "):
        load_study(path)


@pytest.mark.parametrize("text", ["- a list\n", "just text\n", "arms: [1, 2\n"])
def test_a_file_that_is_not_a_study_is_an_error(tmp_path, text):
    path = tmp_path / "study.yaml"
    path.write_text(text)
    with pytest.raises(EvozeroError, match=str(path)):
        load_study(path)


def test_defaults_and_the_arms_configs(tmp_path):
    path = write_study(tmp_path, seeds=[5, 2], name=None)
    study = load_study(path)
    assert study.name == "study" and study.seeds == (5, 2) and study.success == "solved"
    assert study.compare == ("evolution", "random") and study.tune is None
    assert study.pairs() == [("evolution", 5), ("random", 5), ("evolution", 2), ("random", 2)]
    evolution, random = study.configs["evolution"], study.configs["random"]
    assert (evolution.strategy, random.strategy) == ("evolution", "random")
    assert evolution.workers == random.workers == 1
    run = study.run_config("random", 2)
    assert run.seed == 2 and run.strategy == "random" and run.population_size == 50


def test_success_forms_and_the_yaml_on_key(tmp_path):
    # Unquoted `on` is the boolean true in YAML 1.1: it still means the key on.
    path = write_study(tmp_path)
    text = path.read_text() + "success: {at_least: 0.5, on: final}\n"
    path.write_text(text)
    assert load_study(path).success == AtLeast(0.5, "final")
    path = write_study(tmp_path, success={"baseline": "logistic", "tune_trials": 7},
                       tune={"trials": 3, "baselines": ["linear"]})
    study = load_study(path)
    assert study.success == Baseline("logistic", 7)
    assert study.tune is not None and study.tune.baselines == ("linear",)


def test_the_resolved_study_reads_back_equal_and_needs_no_config_file(tmp_path):
    path = write_study(tmp_path, success={"at_least": 0.4, "on": "select"}, seeds=3,
                       tune={"trials": 2})
    study = load_study(path)
    resolved = tmp_path / "out" / "study.yaml"
    resolved.parent.mkdir()
    resolved.write_text(resolved_study_text(study))
    (tmp_path / "tiny.yaml").unlink()     # the resolved configs are what runs
    again = read_resolved_study(resolved)
    for field in ("name", "seeds", "success", "tune", "arms", "compare", "configs"):
        assert getattr(again, field) == getattr(study, field), field
    data = yaml.safe_load(resolved.read_text())
    assert data["seeds"] == [0, 1, 2] and data["compare"] == ["evolution", "random"]
    assert data["arms"]["evolution"]["config"] == str(tmp_path / "tiny.yaml")
    assert data["resolved_configs"]["random"]["strategy"] == "random"


def test_a_study_file_with_resolved_configs_is_a_study_directory_file(tmp_path):
    path = write_study(tmp_path, resolved_configs={})
    with pytest.raises(EvozeroError, match="evozero resume"):
        load_study(path)


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d.update(seeds="x"), "seeds"),
    (lambda d: d.pop("resolved_configs"), "resolved_configs"),
    (lambda d: d["resolved_configs"].pop("random"), "no config for arm 'random'"),
    (lambda d: d["resolved_configs"]["random"].update(population_size="big"),
     "resolved_configs.random: population_size"),
])
def test_an_edited_resolved_study_is_a_clear_error(tmp_path, edit, expected):
    study = load_study(write_study(tmp_path))
    resolved = tmp_path / "resolved.yaml"
    data = yaml.safe_load(resolved_study_text(study))
    edit(data)
    resolved.write_text(yaml.safe_dump(data))
    with pytest.raises(EvozeroError, match=str(resolved)) as error:
        read_resolved_study(resolved)
    assert expected in str(error.value)
