"""The configs of experiments/paper/ load, and the learning-only ones freeze what they say."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from evozero.analysis.tuning import tune
from evozero.config import load_config
from evozero.config.program import named_program
from evozero.evaluation.vm import evaluate
from evozero.programs.reference import builtin_program
from evozero.study.spec import Baseline, load_study

PAPER = Path(__file__).resolve().parents[2] / "experiments" / "paper"


def _is_study(path: Path) -> bool:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return isinstance(data, dict) and "arms" in data


STUDIES = sorted(p for p in PAPER.glob("*.yaml") if _is_study(p))
RUN_CONFIGS = sorted(set(PAPER.glob("*.yaml")) - set(STUDIES))


def test_the_fig4_and_mnist1d_configs_and_studies_are_there():
    names = {p.name for p in PAPER.glob("*.yaml")}
    for stem in ("fig4_linear_learn", "fig4_linear_whole", "fig4_affine_learn",
                 "fig4_affine_whole", "mnist1d_from_scratch"):
        assert {f"{stem}.yaml", f"{stem}.study.yaml"} <= names


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=[p.name for p in RUN_CONFIGS])
def test_run_config_loads(path):
    load_config(path)


@pytest.mark.parametrize("path", STUDIES, ids=[p.name for p in STUDIES])
def test_study_file_validates(path):
    study = load_study(path)
    for arm in study.arms:
        assert study.configs[arm.name].workers == 1


@pytest.mark.parametrize("name", ["fig4_linear_learn", "fig4_linear_whole",
                                  "fig4_affine_learn", "fig4_affine_whole"])
def test_fig4_arms_differ_only_in_strategy_at_equal_evaluations(name):
    study = load_study(PAPER / f"{name}.study.yaml")
    evolution, random = (study.configs[arm] for arm in ("evolution", "random"))
    assert (evolution.strategy, random.strategy) == ("evolution", "random")
    assert dataclasses.replace(random, strategy="evolution") == evolution
    assert evolution.budget.individuals is not None and evolution.budget.train_steps is None
    assert isinstance(study.success, Baseline)


@pytest.mark.parametrize("name", ["fig4_linear_learn", "fig4_affine_learn"])
def test_learning_only_configs_freeze_a_learner_as_good_as_the_tuned_baseline(name):
    config = load_config(PAPER / f"{name}.yaml")
    study = load_study(PAPER / f"{name}.study.yaml")
    assert config.ops.frozen == ("setup", "predict") and config.ops.learn
    learner = named_program(config.frozen_program)
    tasks = config.search_tasks.make()
    # The fixed rate reaches the fitness where the tuned baseline ends (the float64 floor),
    # so a learning-only search can succeed by finding gradient descent's Learn.
    fitness = evaluate(learner, tasks, memory=config.memory.sizes)
    baseline = tune(builtin_program(study.success.baseline), tasks,
                    trials=study.success.tune_trials, seed=0, memory=config.memory.sizes)
    assert fitness >= baseline.fitness > 1 - 1e-12
