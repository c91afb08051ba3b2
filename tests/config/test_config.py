"""Behaviour of evozero.config: defaults, YAML round trips, --set overrides, error messages."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from evozero.config import (
    DEMO_OPS,
    Config,
    SizeBounds,
    config_from_dict,
    config_to_dict,
    default_config,
    dump_config,
    island_config,
    island_count,
    load_config,
)
from evozero.errors import EvozeroError
from evozero.programs.reference import linear_program
from ops.table import OPS_BY_NAME

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
FAST = settings(max_examples=40)


def write(directory: Path, text: str, name: str = "exp.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(directory: Path, text: str, overrides: tuple[str, ...] = ()) -> Config:
    return load_config(write(directory, text), overrides)


def error_of(directory: Path, text: str, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(EvozeroError) as caught:
        load_text(directory, text, overrides)
    return str(caught.value)


def reload(config: Config, directory: Path) -> Config:
    """dump_config -> file -> load_config, the path a resolved config takes in a run."""
    return load_config(write(directory, dump_config(config), "resolved.yaml"))


# --- defaults -------------------------------------------------------------------------


def test_default_config_is_the_automl_zero_linear_demo():
    config = default_config()
    assert (config.memory.scalars, config.memory.vectors, config.memory.matrices) == (4, 3, 1)
    search = config.search_tasks
    assert (search.kind, search.num_tasks, search.features, search.train, search.valid) == (
        "linear", 10, 4, 100, 100)
    assert config.ops.setup == config.ops.predict == config.ops.learn == DEMO_OPS
    assert config.sizes.setup == SizeBounds(10, 10, 10)
    assert config.sizes.predict == SizeBounds(2, 2, 2)
    assert config.sizes.learn == SizeBounds(8, 8, 8)
    assert (config.population_size, config.tournament_size) == (1000, 10)
    assert config.sufficient_fitness == 0.9999
    assert config.max_experiments == 0
    assert config.budget.train_steps == 200_000_000
    assert (config.select_tasks.num_tasks, config.select_tasks.train) == (100, 1000)
    assert config.final_tasks.seed != config.select_tasks.seed != config.search_tasks.seed


def test_an_empty_file_gives_the_defaults_named_after_the_file(tmp_path):
    config = load_text(tmp_path, "")
    assert config == dataclasses.replace(default_config(), name="exp")
    assert config_from_dict({}) == config_from_dict(None) == default_config()


def test_a_comment_only_file_is_empty(tmp_path):
    assert load_text(tmp_path, "# nothing yet\n") == load_text(tmp_path, "")


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        default_config().population_size = 5  # type: ignore[misc]


def test_op_lists_give_int64_codes_in_order():
    codes = default_config().ops.codes("learn")
    assert codes.dtype == np.int64
    assert codes.tolist() == [OPS_BY_NAME[name].code for name in DEMO_OPS]


def test_default_search_tasks_can_be_generated():
    tasks = default_config().search_tasks.make()
    assert len(tasks) == 10


# --- the demo experiment file ---------------------------------------------------------


def test_linear_demo_experiment_loads_and_is_the_demo():
    config = load_config(EXPERIMENTS / "linear_demo.yaml")
    assert config.name == "linear_demo"
    assert config == dataclasses.replace(default_config(), name="linear_demo")


# --- round trips -----------------------------------------------------------------------


def every_section_changed(directory: Path) -> dict:
    """Raw data with a non-default value in every section and every kind of value."""
    np.savez(directory / "data.npz", x=np.zeros((4, 3)), y=np.zeros(4))
    (directory / "programs.txt").write_text("def setup():\n", encoding="utf-8")
    (directory / "frozen.txt").write_text(str(linear_program(0.1)), encoding="utf-8")
    return {
        "name": "everything",
        "seed": 12345,
        "memory": {"scalars": 6, "vectors": 5, "matrices": 2},
        "search_tasks": {"kind": "nonlinear", "num_tasks": 3, "features": 8, "train": 50,
                         "valid": 20, "epochs": 2, "seed": 7, "data_seeds": [1, 2, 3],
                         "param_seeds": [4, 5, 6]},
        "select_tasks": {"kind": "digits", "pairs": [[0, 1], [2, 3]], "num_tasks": 2},
        "final_tasks": {"kind": "npz", "path": "data.npz", "classification": True,
                        "num_tasks": 1},
        "ops": {"setup": ["SCALAR_GAUSSIAN_SET", "MATRIX_GAUSSIAN_SET"],
                "predict": ["MATRIX_VECTOR_PRODUCT", 27], "learn": []},
        "sizes": {"setup": {"init": 3, "min": 1, "max": 7}, "predict": 4,
                  "learn": {"min": 2, "max": 20}},
        "initial_population": "programs.txt",
        "frozen_program": "frozen.txt",
        "strategy": "random",
        "population_size": 100,
        "tournament_size": 100,
        "mutate_prob": 1.0,
        "mutations": {"identity": 2, "insert_instruction": 0.5, "remove_instruction": 1},
        "constant_mutation": "uniform_scale",
        "fitness_combine": "median",
        "max_abs_error": 1e-3,
        "fec": {"enabled": False, "train": 5, "valid": 7, "cache_size": 1000,
                "forget_every": 0, "decimals": 3},
        "hurdles": {"enabled": True, "percentile": 50.5, "window": 300},
        "compute_budget": {"enabled": True, "baseline": "linear", "factor": 4.0},
        "budget": {"individuals": 5000, "train_steps": None, "seconds": 30.5},
        "sufficient_fitness": None,
        "max_experiments": 3,
        "randomize_task_seeds": False,
        "progress_every": 0.25,
        "checkpoint_every": 600,
        "workers": 3,
        "islands": [{"search_tasks": {"features": 5}, "tournament_size": 2}, {}],
        "migrate_every": 500,
        "migration": 7,
        "deterministic": True,
        "backend": "ray",
        "address": "auto",
        "nas": {"space": "nb101", "dataset": "mnist1d", "max_vertices": 6, "max_edges": 8,
                "nb101_ops": ["conv1x1-bn-relu", "maxpool3x3"], "mutation": "single",
                "training": {"epochs": 2, "schedule": "constant"},
                "hurdle": {"percentile": 25},
                "constraints": {"max_params": 1e5, "max_latency_ms": 2.5},
                "objective": {"kind": "mnasnet_hard", "target": 1.5},
                "profiles_file": "data.npz", "weight_inheritance": True},
    }


def test_every_section_differs_from_the_default(tmp_path):
    data = every_section_changed(tmp_path)
    config = config_from_dict(data, base_dir=tmp_path)
    default = default_config()
    for field in dataclasses.fields(Config):
        assert getattr(config, field.name) != getattr(default, field.name), field.name


def test_every_section_round_trips_through_dump_and_load(tmp_path):
    config = config_from_dict(every_section_changed(tmp_path), base_dir=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = reload(config, elsewhere)
    assert again == config
    for field in dataclasses.fields(Config):
        assert getattr(again, field.name) == getattr(config, field.name), field.name
    assert dump_config(again) == dump_config(config)


def test_loaded_paths_are_absolute(tmp_path):
    config = config_from_dict(every_section_changed(tmp_path), base_dir=tmp_path)
    assert config.final_tasks.path == str(tmp_path / "data.npz")
    assert config.initial_population == str(tmp_path / "programs.txt")
    assert config.frozen_program == str(tmp_path / "frozen.txt")


def test_default_round_trips_and_dump_is_plain_yaml(tmp_path):
    text = dump_config(default_config())
    assert isinstance(yaml.safe_load(text), dict)
    # A null name becomes the file's stem, so only a named config reloads equal.
    assert reload(default_config(), tmp_path).name == "resolved"
    named = dataclasses.replace(default_config(), name="demo")
    assert reload(named, tmp_path) == named
    assert config_from_dict(config_to_dict(default_config())) == default_config()


def test_dump_writes_every_field(tmp_path):
    data = yaml.safe_load(dump_config(default_config()))
    assert list(data) == [field.name for field in dataclasses.fields(Config)]
    assert data["sizes"]["learn"] == {"init": 8, "min": 8, "max": 8}


@st.composite
def numeric_settings(draw) -> dict:
    """Valid values for every numeric setting, as a user could write them."""
    population = draw(st.integers(2, 10_000))
    finite = {"allow_nan": False, "allow_infinity": False}
    positive = st.floats(min_value=0.0, exclude_min=True, **finite)
    return {
        "name": "numbers",
        "seed": draw(st.integers(0, 2**63)),
        "memory": {"scalars": draw(st.integers(2, 50)), "vectors": draw(st.integers(2, 50)),
                   "matrices": draw(st.integers(1, 50))},
        "search_tasks": {"num_tasks": draw(st.integers(1, 10**6)),
                         "features": draw(st.integers(1, 4096)),
                         "train": draw(st.integers(1, 10**9)),
                         "valid": draw(st.integers(1, 10**9)),
                         "epochs": draw(st.integers(1, 100)),
                         "seed": draw(st.integers(0, 2**64 - 1))},
        "population_size": population,
        "tournament_size": draw(st.integers(1, population)),
        "mutate_prob": draw(st.floats(0.0, 1.0)),
        "max_abs_error": draw(positive),
        "fec": {"train": draw(st.integers(1, 1000)), "valid": draw(st.integers(1, 1000)),
                "cache_size": draw(st.integers(1, 10**9)),
                "forget_every": draw(st.integers(0, 10**6)),
                "decimals": draw(st.integers(0, 15))},
        "hurdles": {"percentile": draw(st.floats(0.0, 100.0, exclude_min=True,
                                                 exclude_max=True)),
                    "window": draw(st.integers(0, 10**6))},
        "compute_budget": {"factor": draw(positive)},
        "budget": {"individuals": draw(st.none() | st.integers(1, 10**12)),
                   "train_steps": draw(st.integers(1, 10**15)),
                   "seconds": draw(st.none() | positive)},
        "sufficient_fitness": draw(st.floats(**finite)),
        "max_experiments": draw(st.integers(0, 1000)),
        "progress_every": draw(positive),
        "checkpoint_every": draw(positive),
    }


@FAST
@given(data=numeric_settings())
def test_random_valid_numbers_round_trip_exactly(data):
    config = config_from_dict(data)
    with tempfile.TemporaryDirectory() as directory:
        assert reload(config, Path(directory)) == config
    assert config.population_size == data["population_size"]
    assert config.mutate_prob == data["mutate_prob"]
    assert config.search_tasks.seed == data["search_tasks"]["seed"]


@FAST
@given(steps=st.integers(1, 10**15))
def test_whole_number_floats_are_accepted_for_counts(tmp_path_factory, steps):
    directory = tmp_path_factory.mktemp("floats")
    entries = min(steps, 10**9)  # the cache's upper bound
    text = f"budget:\n  train_steps: {float(steps):e}\nfec:\n  cache_size: {float(entries)!r}\n"
    config = load_text(directory, text)
    assert config.budget.train_steps == int(float(f"{float(steps):e}"))
    assert config.fec.cache_size == int(float(entries))


def test_yaml_1_1_exponent_without_dot_is_a_number(tmp_path):
    config = load_text(tmp_path, "budget: {train_steps: 2e8}\nmax_abs_error: 1e-3\n")
    assert config.budget.train_steps == 200_000_000
    assert config.max_abs_error == 1e-3


# --- sizes and spelling conveniences -----------------------------------------------------


@pytest.mark.parametrize("given_sizes, expected", [
    ("5", SizeBounds(5, 5, 5)),
    ("{max: 20}", SizeBounds(8, 8, 20)),
    ("{max: 5}", SizeBounds(5, 5, 5)),
    ("{min: 2}", SizeBounds(8, 2, 8)),
    ("{min: 12}", SizeBounds(12, 12, 12)),
    ("{init: 3}", SizeBounds(3, 3, 8)),
    ("{min: 1, max: 30}", SizeBounds(8, 1, 30)),
])
def test_partial_size_bounds_are_widened_around_the_given_values(tmp_path, given_sizes,
                                                                   expected):
    assert load_text(tmp_path, f"sizes:\n  learn: {given_sizes}\n").sizes.learn == expected


def test_names_are_case_insensitive_and_codes_become_names(tmp_path):
    config = load_text(tmp_path, "strategy: Random\nops:\n  setup: [scalar_sum, 56]\n"
                                 "mutations: [Identity, identity, alter_param]\n")
    assert config.strategy == "random"
    assert config.ops.setup == ("SCALAR_SUM", "SCALAR_CONST_SET")
    assert config.mutations == {"identity": 2.0, "alter_param": 1.0}


def test_yaml_anchors_and_aliases_work(tmp_path):
    config = load_text(tmp_path, "ops:\n  setup: &o [SCALAR_SUM]\n  predict: *o\n"
                                 "  learn: *o\n")
    assert config.ops.setup == config.ops.predict == config.ops.learn == ("SCALAR_SUM",)


# --- overrides -------------------------------------------------------------------------


def test_overrides_set_top_level_and_dotted_keys(tmp_path):
    config = load_text(tmp_path, "population_size: 200\n",
                       ("population_size=50", "search_tasks.num_tasks=3"))
    assert config.population_size == 50
    assert config.search_tasks.num_tasks == 3
    assert config.search_tasks.train == 100


def test_override_values_are_yaml(tmp_path):
    config = load_text(tmp_path, "", (
        "ops.setup=[scalar_sum, vector_sum]", "budget.seconds=null", "budget.seconds=12.5",
        "mutations.identity=2", "sizes.learn.max=20", "sizes.predict=3", "name=my run",
        "fec.enabled=false"))
    assert config.ops.setup == ("SCALAR_SUM", "VECTOR_SUM")
    assert config.budget.seconds == 12.5
    assert config.mutations["identity"] == 2.0
    assert config.mutations["alter_param"] == 1.0
    assert config.sizes.learn == SizeBounds(8, 8, 20)
    assert config.sizes.predict == SizeBounds(3, 3, 3)
    assert config.name == "my run"
    assert config.fec.enabled is False


def test_override_expands_a_single_number_size_from_the_file(tmp_path):
    config = load_text(tmp_path, "sizes:\n  learn: 6\n", ("sizes.learn.max=9",))
    assert config.sizes.learn == SizeBounds(6, 6, 9)


def test_seed_argument_overrides_the_file(tmp_path):
    assert load_config(write(tmp_path, "seed: 3\n"), seed=11).seed == 11


def test_override_errors_name_the_file_the_override_and_what_is_allowed(tmp_path):
    path = write(tmp_path, "")
    message = error_of(tmp_path, "", ("population_size=-1",))
    assert message.startswith(f"{path}: --set population_size=-1: population_size:")
    assert "got -1" in message and "an integer in [2, 1000000000]" in message


@pytest.mark.parametrize("override, fragments", [
    ("populaton_size=50", ["--set populaton_size=50", "populaton_size",
                           'did you mean "population_size"?', "allowed keys:"]),
    ("search_tasks.num_taks=3", ["search_tasks.num_taks", 'did you mean "num_tasks"?',
                                 "allowed keys under search_tasks:"]),
    ("seed.value=3", ["seed.value", "seed is a single value"]),
    ("population_size", ["--set population_size", "key=value"]),
    ("population_size=[1, 2", ["cannot parse the value", "[1, 2"]),
    ("mutations.identty=1", ['did you mean "identity"?']),
    ("search_tasks.num_tasks=zero", ["search_tasks.num_tasks", 'got "zero"', "in [1, 1000000]"]),
])
def test_bad_overrides_are_explained(tmp_path, override, fragments):
    message = error_of(tmp_path, "", (override,))
    assert message.startswith(str(tmp_path / "exp.yaml"))
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_a_later_error_in_an_overridden_value_points_at_the_override(tmp_path):
    message = error_of(tmp_path, "tournament_size: 10\npopulation_size: 100\n",
                       ("tournament_size=500",))
    assert "--set tournament_size=500" in message
    assert "500" in message and "population_size (100)" in message


# --- bad input: one clear message each -------------------------------------------------


BAD = [
    # (id, yaml text, line, dotted key, value as shown, what is allowed)
    ("unknown key", "seed: 1\npopulaton_size: 50\n", 2, "populaton_size",
     '"populaton_size"', 'did you mean "population_size"? allowed keys: name, seed'),
    ("unknown nested key", "fec:\n  enabeld: true\n", 2, "fec.enabeld", '"enabeld"',
     'did you mean "enabled"? allowed keys in fec: enabled, train'),
    ("unknown key, no suggestion", "zzzqqq: 1\n", 1, "zzzqqq", '"zzzqqq"',
     "unknown key \"zzzqqq\"; allowed keys: name"),
    ("wrong type", "population_size: lots\n", 1, "population_size", '"lots"',
     "must be an integer in [2, 1000000000]"),
    ("bool for int", "population_size: true\n", 1, "population_size", "true",
     "must be an integer in [2, 1000000000]"),
    ("wrong type bool", "fec:\n  enabled: maybe\n", 2, "fec.enabled", '"maybe"',
     "must be true or false"),
    ("list for number", "mutate_prob: [1]\n", 1, "mutate_prob", "[1]",
     "must be a number in [0, 1]"),
    ("out of range", "mutate_prob: 1.5\n", 1, "mutate_prob", "1.5", "in [0, 1]"),
    ("negative size", "search_tasks:\n  num_tasks: -3\n", 2, "search_tasks.num_tasks", "-3",
     "must be an integer in [1, 1000000]"),
    ("open bound", "hurdles:\n  percentile: 100\n", 2, "hurdles.percentile", "100",
     "in (0, 100)"),
    ("zero positive float", "max_abs_error: 0\n", 1, "max_abs_error", "0", "> 0"),
    ("not finite", "max_abs_error: .inf\n", 1, "max_abs_error", "Infinity", "not finite"),
    ("huge integer", "max_abs_error: " + "9" * 400 + "\n", 1, "max_abs_error", "999",
     "not finite"),
    ("unknown op", "ops:\n  learn: [SCALAR_DIFF, VECTR_SUM]\n", 2, "ops.learn[1]",
     '"VECTR_SUM"', "closest names: VECTOR_SUM"),
    ("unknown op in block list", "ops:\n  learn:\n    - SCALAR_DIFF\n    - VECTR_SUM\n", 4,
     "ops.learn[1]", '"VECTR_SUM"', "VECTOR_SUM"),
    ("unknown op code", "ops:\n  setup: [9999]\n", 2, "ops.setup[0]", "9999",
     "allowed codes: 0..64"),
    ("op list not a list", "ops:\n  setup: SCALAR_SUM\n", 2, "ops.setup", '"SCALAR_SUM"',
     "a list of op names"),
    ("unknown choice", "strategy: evolutoin\n", 1, "strategy", '"evolutoin"',
     'one of evolution, random, reinforce, asha, bohb, local, predictor, rsps, spos, enas, '
     'darts, darts2, gdas, proxyless, got "evolutoin"; did you mean "evolution"?'),
    ("unknown task kind", "select_tasks:\n  kind: linaer\n", 2, "select_tasks.kind",
     '"linaer"', "one of linear, affine, nonlinear, digits, mnist1d, npz"),
    ("unknown mutation", "mutations:\n  identty: 1\n", 2, "mutations.identty", '"identty"',
     'did you mean "identity"? allowed mutations: alter_param'),
    ("negative mutation weight", "mutations:\n  identity: -1\n", 2, "mutations.identity",
     "-1", "a number >= 0"),
    ("no positive mutation weight", "mutations: {identity: 0}\n", 1, "mutations",
     '{"identity": 0}', "no weight is > 0"),
    ("bad run name", "name: a/b\n", 1, "name", '"a/b"', "no '/'"),
    ("bad class pair", "search_tasks:\n  kind: digits\n  pairs: [[3, 3]]\n", 3,
     "search_tasks.pairs[0]", "[3, 3]", "0 <= i < j <= 9"),
    ("bad seed in list", "search_tasks:\n  data_seeds: [1, -2]\n", 2,
     "search_tasks.data_seeds[1]", "-2", "an integer in [0, 18446744073709551615]"),
    ("missing npz file", "search_tasks:\n  kind: npz\n  path: nothere.npz\n", 3,
     "search_tasks.path", '"nothere.npz"', "the path of an existing .npz file"),
    ("unknown initial population", "initial_population: linaer\n", 1, "initial_population",
     '"linaer"', 'did you mean "linear"?'),
    ("section not a mapping", "fec: 5\n", 1, "fec", "5", "a mapping with keys enabled"),
    ("size not a number", "sizes:\n  learn: many\n", 2, "sizes.learn", '"many"',
     "an integer in [0, 10000] (init = min = max) or a mapping"),
    # Cross-field problems point at the first key the user wrote.
    ("tournament too big", "population_size: 50\ntournament_size: 60\n", 2,
     "tournament_size", "60", "must be <= population_size (50)"),
    ("tournament too big for default", "tournament_size: 2000\n", 1,
     "tournament_size", "2000", "must be <= population_size (1000)"),
    ("size min above max", "sizes:\n  setup: {min: 5, max: 3}\n", 2, "sizes.setup.min",
     "5", "must be <= max (3)"),
    ("size init outside bounds", "sizes:\n  setup: {init: 9, min: 1, max: 3}\n", 2,
     "sizes.setup.init", "9", "must lie in [min, max] = [1, 3]"),
    ("matrix op without matrices", "memory:\n  matrices: 0\nops:\n  setup: [MATRIX_SUM]\n",
     2, "memory.matrices", "MATRIX_SUM", "set memory.matrices >= 1"),
    ("vector output without v1", "memory:\n  vectors: 1\n", 2, "memory.vectors",
     "memory.vectors is 1", "set memory.vectors >= 2"),
    ("population needs memory", "initial_population: neural_net\n", 1,
     "initial_population", "'neural_net'", "scalars >= 5, vectors >= 9, matrices >= 2"),
    ("unknown frozen program", "frozen_program: linaer\n", 1, "frozen_program", '"linaer"',
     'did you mean "linear"?'),
    ("frozen program without a frozen component", "frozen_program: linear\n", 1,
     "frozen_program", "no op list is empty", "ops.setup: [] and ops.predict: []"),
    ("frozen program too long", "ops: {setup: [], predict: []}\nsizes: {predict: 1}\n"
     "frozen_program: affine\n", 3, "frozen_program", "its predict has 2 instructions",
     "raise sizes.predict.max to >= 2"),
    ("frozen program needs memory", "memory: {scalars: 4, vectors: 3, matrices: 0}\n"
     "ops: {setup: [], learn: [SCALAR_SUM]}\nfrozen_program: neural_net\n", 3,
     "frozen_program", "frozen components (setup) need memory", "scalars >= 4, vectors >= 3, matrices >= 1"),
    ("no budget", "budget:\n  train_steps: null\n", 2, "budget.train_steps", "",
     "at least one of budget.individuals, budget.train_steps, budget.seconds"),
    ("no stop", "sufficient_fitness: null\n", 1, "sufficient_fitness", "0 (unlimited)",
     "max_experiments to an integer >= 1"),
    ("option of another kind", "final_tasks:\n  pairs: all\n", 2, "final_tasks.pairs",
     "'linear'", "an option of 'digits' and 'mnist1d' tasks only"),
    ("seed count", "search_tasks:\n  num_tasks: 2\n  param_seeds: [1, 2, 3]\n", 3,
     "search_tasks.param_seeds", "3 seeds", "one seed per task"),
    ("duplicate key", "seed: 1\nseed: 2\n", 2, "seed", "seed", "give each key once"),
]


@pytest.mark.parametrize("text, line, key, value, allowed",
                         [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_input_names_file_line_key_value_and_what_is_allowed(tmp_path, text, line, key,
                                                                   value, allowed):
    message = error_of(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'exp.yaml'}:{line}: {key}: "), message
    assert value in message, (value, message)
    assert allowed in message, (allowed, message)
    assert "Traceback" not in message and "\n" not in message


@pytest.mark.parametrize("text, line, fragment", [
    ("population_size: [1, 2\n", 2, "invalid YAML"),
    ("a:\n\tb: 1\n", 2, "invalid YAML"),
    ("seed: 1\n  bad indent: 2\n", 2, "invalid YAML"),
    ("seed: !!python/object/apply:os.system ['echo hacked']\n", 1, "invalid YAML"),
    ("- 1\n- 2\n", 1, "the config must be a mapping of keys (such as population_size) to "
                      "values, got [1, 2]"),
    ("just a sentence\n", 1, 'must be a mapping of keys (such as population_size) to '
                             'values, got "just a sentence"'),
])
def test_unreadable_yaml_names_file_and_line(tmp_path, text, line, fragment):
    message = error_of(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'exp.yaml'}:{line}: ")
    assert fragment in message


def test_unconvertible_scalar_is_invalid_yaml_not_a_traceback(tmp_path):
    message = error_of(tmp_path, "seed: " + "9" * 5000 + "\n")
    assert message.startswith(f"{tmp_path / 'exp.yaml'}: invalid YAML")


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(EvozeroError, match="no such config file") as caught:
        load_config(missing)
    assert str(missing) in str(caught.value)


def test_a_directory_is_not_a_config(tmp_path):
    with pytest.raises(EvozeroError, match="not a file") as caught:
        load_config(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_undecodable_file_is_named(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"seed: \xff\xfe\n")
    with pytest.raises(EvozeroError, match="cannot read the config") as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_config_from_dict_names_its_source():
    with pytest.raises(EvozeroError) as caught:
        config_from_dict([1, 2], source="inline")  # type: ignore[arg-type]
    assert str(caught.value).startswith("inline: the config must be a mapping")
    with pytest.raises(EvozeroError) as caught:
        config_from_dict({"memory": {"scalars": 1}}, source="inline")
    assert str(caught.value) == "inline: memory.scalars: must be an integer in [2, 10000], got 1"


@FAST
@given(value=st.integers(max_value=1))
def test_every_population_below_two_is_rejected(value):
    with pytest.raises(EvozeroError, match=rf"population_size: must be an integer in \[2, 1000000000\], "
                                           rf"got {value}$"):
        config_from_dict({"population_size": value})


@FAST
@given(value=st.floats(allow_nan=False).filter(lambda v: not 0.0 <= v <= 1.0))
def test_every_probability_outside_0_1_is_rejected(value):
    with pytest.raises(EvozeroError, match=r"mutate_prob: must be a number in \[0, 1\]"):
        config_from_dict({"mutate_prob": value})


@FAST
@given(word=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=20))
def test_any_unknown_top_level_key_is_rejected_with_the_allowed_list(word):
    names = {field.name for field in dataclasses.fields(Config)}
    if word in names:
        assert config_from_dict({word: config_to_dict(default_config())[word]}) is not None
        return
    with pytest.raises(EvozeroError, match="allowed keys: name, seed, memory") as caught:
        config_from_dict({word: 1})
    assert f'<config>: {word}: unknown key "{word}"' in str(caught.value)


def test_config_file_in_another_directory_resolves_paths_there(tmp_path, monkeypatch):
    data_dir = tmp_path / "exp"
    data_dir.mkdir()
    np.savez(data_dir / "d.npz", x=np.zeros((2, 2)), y=np.zeros(2))
    path = write(data_dir, "search_tasks:\n  kind: npz\n  path: d.npz\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(os.path.relpath(path))
    assert config.search_tasks.path == str(data_dir / "d.npz")
    assert config.search_tasks.features is None


@pytest.mark.parametrize("data, expected", [
    ({"workers": 0}, ["workers", "auto", "got 0"]),
    ({"workers": "all"}, ["workers", "auto"]),
    ({"migration": "all"}, ["migration", "half", "none"]),
    ({"migrate_every": 0}, ["migrate_every", "in [1, 4611686018427387904]"]),
    ({"backend": "dask"}, ["backend", "local, ray"]),
    ({"address": "auto"}, ["address", "backend: ray"]),
    ({"islands": []}, ["islands", "one mapping per island"]),
    ({"islands": [{"memory": {"scalars": 5}}]}, ["islands[0].memory", "cannot differ"]),
    ({"islands": [{}, {"populaton_size": 5}]}, ["islands[1].populaton_size",
                                                 "did you mean \"population_size\""]),
    ({"islands": [{"population_size": 4}]}, ["island 1", "tournament_size",
                                              "population_size (4)"]),
    ({"islands": [{"search_tasks": {"kind": "spiral"}}]}, ["islands[0].search_tasks.kind",
                                                          "spiral"]),
])
def test_island_settings_errors_are_precise(data, expected):
    with pytest.raises(EvozeroError) as error:
        config_from_dict(data)
    for text in expected:
        assert text in str(error.value)


def test_island_config_merges_sections_key_by_key():
    config = config_from_dict({"search_tasks": {"num_tasks": 7},
                               "islands": [{"search_tasks": {"features": 8}},
                                           {"population_size": 50, "hurdles": {"enabled": True}}]})
    first, second = island_config(config, 0), island_config(config, 1)
    assert (first.search_tasks.features, first.search_tasks.num_tasks) == (8, 7)
    assert first.population_size == config.population_size
    assert second.population_size == 50 and second.hurdles.enabled
    assert second.hurdles.percentile == config.hurdles.percentile
    assert second.search_tasks == config.search_tasks
    assert island_count(config, 5) == 2
    assert island_count(config_from_dict({"islands": 3}), 5) == 3
    assert island_count(config_from_dict({}), 5) == 5


def test_config_stays_below_the_layers_that_use_it():
    # Config is read by search, runs, analysis and nas; importing it must not pull them in
    # (a cycle would appear as soon as one of them imports config at module level).
    code = ("import sys, evozero.config; print(sorted({m.split('.')[1] for m in sys.modules "
            "if m.startswith('evozero.') and m.count('.') >= 1}))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    for above in ("search", "runs", "analysis", "nas", "bench"):
        assert f"'{above}'" not in loaded, loaded


def test_frozen_program_file_must_hold_one_readable_program(tmp_path):
    (tmp_path / "two.txt").write_text(str(linear_program()) * 2, encoding="utf-8")
    message = error_of(tmp_path, "ops: {setup: []}\nfrozen_program: two.txt\n")
    assert message.startswith(f"{tmp_path / 'exp.yaml'}:2: frozen_program: ")
    assert "no more functions after Learn" in message and "exactly one program" in message
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe")
    message = error_of(tmp_path, "ops: {setup: []}\nfrozen_program: bad.txt\n")
    assert "cannot read the program" in message and str(tmp_path / "bad.txt") in message


def test_frozen_program_checks_only_the_frozen_components(tmp_path):
    # neural_net's Predict and Learn need 5/9/2, its Setup only 4/3/1.
    config = load_text(tmp_path, "memory: {scalars: 4, vectors: 3, matrices: 1}\n"
                                 "ops: {setup: []}\nsizes: {setup: 3}\n"
                                 "frozen_program: neural_net\n")
    assert config.frozen_program == "neural_net"
    assert config.ops.frozen == ("setup",)


def test_initial_population_memory_comes_from_the_programs():
    # The memory a hand-written population needs is the reference program's own count.
    from evozero.programs.reference import neural_net_program
    need = neural_net_program().memory_needs()
    short = {"scalars": need[0], "vectors": need[1] - 1, "matrices": need[2]}
    with pytest.raises(EvozeroError, match="needs memory scalars >= 5, vectors >= 9"):
        config_from_dict({"initial_population": "neural_net", "memory": short})
    config_from_dict({"initial_population": "neural_net",
                      "memory": dict(zip(("scalars", "vectors", "matrices"), need))})


@pytest.mark.parametrize("name", ["linear", "logistic", "affine", "neural_net"])
def test_every_built_in_program_is_an_initial_population(name):
    from evozero.programs.reference import builtin_program
    from evozero.search.settings import initial_programs
    need = builtin_program(name).memory_needs()
    config = config_from_dict({"initial_population": name,
                               "memory": dict(zip(("scalars", "vectors", "matrices"), need))})
    assert initial_programs(config) == [builtin_program(name)]
    with pytest.raises(EvozeroError, match=f"needs memory scalars >= {need[0]}"):
        config_from_dict({"initial_population": name,
                          "memory": {"scalars": need[0] - 1, "vectors": need[1],
                                     "matrices": need[2]}})


def test_mnist1d_task_sections_and_their_options():
    config = config_from_dict({"final_tasks": {"kind": "mnist1d", "pairs": "held_out",
                                               "valid_split": "test", "num_tasks": 2,
                                               "features": 4, "train": 20, "valid": 10}})
    assert config.final_tasks.options() == {"pairs": "held_out", "valid_split": "test"}
    assert [t.name.split(" (")[0] for t in config.final_tasks.make()] == [
        "mnist1d 0 vs 5", "mnist1d 0 vs 9"]
    defaults = config_from_dict({"search_tasks": {"kind": "mnist1d"}}).search_tasks
    assert (defaults.pairs, defaults.valid_split) == ("all", "train")
    with pytest.raises(EvozeroError, match="search_tasks.valid_split: is an option of "
                                           "'mnist1d' tasks only, but kind is 'digits'"):
        config_from_dict({"search_tasks": {"kind": "digits", "valid_split": "test"}})
    with pytest.raises(EvozeroError, match="must be one of train, test"):
        config_from_dict({"search_tasks": {"kind": "mnist1d", "valid_split": "final"}})


def test_a_checkpoint_from_before_valid_split_still_binds_its_config():
    # Resolved configs written before the key existed lack it in every task section; the
    # run's config, read today, has it as null: the same settings.
    from types import SimpleNamespace

    from evozero.config.root import config_to_dict
    from evozero.runs.checkpointing import _bound, _hash, check_config

    config = config_from_dict({"final_tasks": {"seed": 7}})
    stored = config_to_dict(config)
    for section in ("search_tasks", "select_tasks", "final_tasks"):
        del stored[section]["valid_split"]
    saved = {"config_sha256": _hash(_bound(stored)), "config": stored}
    notes: list[str] = []
    check_config(saved, config, SimpleNamespace(), notes.append)
    assert notes == []
    changed = config_from_dict({"final_tasks": {"seed": 8}})
    with pytest.raises(EvozeroError, match="final_tasks.seed: 7 -> 8"):
        check_config(saved, changed, SimpleNamespace(config_path="config.yaml"), notes.append)
