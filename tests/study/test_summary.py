"""summary.json of synthetic studies, checked against figures computed by hand."""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from study_fixtures import BASELINE, effort_record, hand_records, run_record, write_study

from evozero.errors import EvozeroError
from evozero.study import stats
from evozero.study.summary import read_study, summarize, write_summary


@pytest.fixture
def hand_study(tmp_path):
    return write_study(tmp_path / "study", hand_records())


def test_per_arm_figures_match_hand_computations(hand_study):
    summary = summarize(hand_study)
    assert (summary["study"], summary["planned_runs"], summary["finished_runs"]) == \
        ("synthetic", 10, 10)
    evolution, random = summary["arms"]["evolution"], summary["arms"]["random"]
    assert (evolution["runs"], evolution["successes"], random["successes"]) == (5, 4, 1)
    # Wilson for 4 of 5: centre (0.8 + z^2/10) / (1 + z^2/5), half width
    # z sqrt(0.8 * 0.2 / 5 + z^2 / 100) / (1 + z^2/5).
    z2 = 1.959963984540054 ** 2
    centre = (0.8 + z2 / 10) / (1 + z2 / 5)
    half = math.sqrt(z2) * math.sqrt(0.032 + z2 / 100) / (1 + z2 / 5)
    assert evolution["success_rate"]["value"] == 0.8
    assert evolution["success_rate"]["low"] == pytest.approx(centre - half)
    assert evolution["success_rate"]["high"] == pytest.approx(centre + half)
    # Median of 100, 200, 300, 400; random search's one success has no interval.
    individuals = evolution["to_success"]["individuals"]
    assert (individuals["value"], individuals["n"]) == (250, 4)
    assert 100 <= individuals["low"] <= 250 <= individuals["high"] <= 400
    assert evolution["to_success"]["seconds"]["value"] == 2.5
    assert random["to_success"]["individuals"] == {"value": 1000, "low": None, "high": None,
                                                   "n": 1}
    # Mean final 0.7; sample sd sqrt((0.04 + 0.01 + 0 + 0.01 + 0.04) / 4) = sqrt(0.025).
    final = evolution["fitness"]["final"]
    assert final["mean"] == pytest.approx(0.7)
    assert final["se"] == pytest.approx(math.sqrt(0.025 / 5))
    assert evolution["fitness"]["search"]["mean"] == pytest.approx(0.75)
    assert evolution["fitness"]["tuned_final"] == {"mean": 0.66, "se": None, "n": 1}
    assert random["fitness"]["tuned_final"] is None
    # Beating 0.65: evolution on seeds 0, 1, 2 and seed 4 through its tuned 0.66; random
    # search on all but seed 4.
    versus = evolution["baselines"]["logistic"]["versus"]
    assert (versus["wins"], versus["ties"], versus["losses"], versus["n"]) == (4, 0, 1, 5)
    assert random["baselines"]["logistic"]["versus"]["wins"] == 4
    assert random["baselines"]["logistic"]["final_fitness"]["mean"] == BASELINE
    assert evolution["density_bound"] is None and random["density_bound"] is None


def test_the_compared_pair_matches_hand_computations(hand_study):
    compare = summarize(hand_study)["compare"]
    assert compare["arms"] == ["evolution", "random"]
    # Katz: ratio 4, log standard error sqrt(1/4 - 1/5 + 1/1 - 1/5) = sqrt(0.85).
    ratio = compare["success_ratio"]
    spread = 1.959963984540054 * math.sqrt(0.85)
    assert ratio["value"] == pytest.approx(4)
    assert ratio["low"] == pytest.approx(4 * math.exp(-spread))
    assert ratio["high"] == pytest.approx(4 * math.exp(spread))
    # Differences 0.1, 0, 0, -0.1, 0.1: mean 0.02, sd sqrt(0.028 / 4), t(0.975, 4) 2.776445.
    final = compare["final_fitness"]
    half = 2.776445105 * math.sqrt(0.028 / 4) / math.sqrt(5)
    assert (final["n"], final["wins"], final["ties"], final["losses"]) == (5, 2, 2, 1)
    assert final["mean"] == pytest.approx(0.02)
    assert final["low"] == pytest.approx(0.02 - half, abs=1e-7)
    assert final["high"] == pytest.approx(0.02 + half, abs=1e-7)
    assert compare["search_fitness"]["mean"] == pytest.approx(0.02)
    assert compare["tuned_final"]["n"] == 0


def test_the_best_run_is_the_highest_final_fitness(hand_study):
    best = summarize(hand_study)["best_run"]
    assert (best["arm"], best["seed"], best["fitness"], best["ranked_by"]) == \
        ("evolution", 0, 0.9, "final_fitness")
    assert best["program"].startswith("def Setup():") and best["run"] == "runs/evolution/seed-0"


def test_write_summary_writes_strict_json_equal_to_what_it_returns(hand_study):
    summary = write_summary(str(hand_study))

    def refuse(constant: str) -> None:
        raise AssertionError(f"summary.json holds {constant}")

    assert json.loads((hand_study / "summary.json").read_text(), parse_constant=refuse) \
        == summary


def test_an_arm_without_success_gets_the_density_bound_and_a_one_sided_ratio(tmp_path):
    records = [run_record("evolution", 0, success=True, to_success=effort_record(50)),
               run_record("evolution", 1, success=True, to_success=effort_record(70)),
               run_record("random", 0, individuals=3000), run_record("random", 1,
                                                                     individuals=7000)]
    summary = summarize(write_study(tmp_path, records, seeds=2))
    assert summary["arms"]["random"]["evaluations"] == 10_000
    assert summary["arms"]["random"]["density_bound"] == pytest.approx(1 - 0.05 ** (1e-4))
    ratio = summary["compare"]["success_ratio"]
    assert ratio["value"] is None and ratio["high"] is None
    assert ratio["low"] == pytest.approx(stats.wilson_interval(2, 2).low
                                         / stats.wilson_interval(0, 2).high)


def test_a_running_study_with_a_torn_last_line(tmp_path):
    records = hand_records()[:3]
    study = write_study(tmp_path, records, torn='{"arm": "random", "seed": 0, "succ')
    summary = summarize(study)
    assert summary["finished_runs"] == 3 and summary["arms"]["random"]["runs"] == 0
    assert summary["compare"]["final_fitness"]["n"] == 0


def test_a_study_without_finished_runs(tmp_path):
    summary = summarize(write_study(tmp_path, []))
    assert summary["finished_runs"] == 0 and summary["best_run"] is None
    assert summary["domain"] is None
    arm = summary["arms"]["evolution"]
    assert arm["success_rate"] == {"value": None, "low": None, "high": None}
    assert arm["fitness"]["final"] == {"mean": None, "se": None, "n": 0}
    assert summary["compare"]["success_ratio"] == {"value": None, "low": None, "high": None}


def test_seeds_as_a_list_one_arm_and_a_default_comparison(tmp_path):
    study = write_study(tmp_path / "a", [run_record("only", 7)], arms=("only",),
                        seeds=[7, 11], compare=[])
    (study / "study.yaml").write_text((study / "study.yaml").read_text()
                                      .replace("compare: []", "compare: null"))
    summary = summarize(study)
    assert summary["planned_runs"] == 2 and summary["compare"] is None
    three = write_study(tmp_path / "b", [], arms=("a", "b", "c"))
    text = (three / "study.yaml").read_text()
    (three / "study.yaml").write_text(text[:text.index("compare:")])
    assert read_study(three)["compare"] == ["a", "b"]


@pytest.mark.parametrize("change, message", [
    (lambda d: (d / "runs.jsonl").unlink(), "not a study directory"),
    (lambda d: (d / "study.yaml").write_text("- just\n- a list\n"), "mapping of study"),
    (lambda d: (d / "study.yaml").write_text("arms: [1, 2\n"), "invalid YAML"),
    (lambda d: (d / "study.yaml").write_text("arms: 5\nseeds: 3\n"), "'arms'"),
    (lambda d: (d / "study.yaml").write_text("arms: {a: {}}\nseeds: -2\n"), "'seeds'"),
    (lambda d: (d / "study.yaml").write_text("arms: {a: {}, b: {}}\nseeds: 2\n"
                                             "compare: [a, zz]\n"), "'compare'"),
    (lambda d: (d / "runs.jsonl").write_text('{"arm": "evolution", "seed": 0}\nnot json\n'),
     "runs.jsonl:2"),
    (lambda d: (d / "runs.jsonl").write_text("[1, 2]\n"), "expected a JSON object"),
])
def test_what_is_not_a_study_is_a_clear_error(tmp_path, change, message):
    study = write_study(tmp_path, hand_records()[:2])
    change(study)
    with pytest.raises(EvozeroError, match=message):
        summarize(study)


def test_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(EvozeroError, match="no such study directory"):
        summarize(tmp_path / "nowhere")


@pytest.mark.parametrize("fields, message", [
    ({"arm": "hillclimb"}, "arm 'hillclimb' is not an arm of the study"),
    ({"seed": -1}, "'seed' must be an integer"),
    ({"seed": True}, "'seed' must be an integer"),
    ({"success": "yes"}, "'success' must be true, false or null"),
    ({"final_fitness": "high"}, "'final_fitness' must be a number or null"),
    ({"individuals": [3]}, "'individuals' must be a number or null"),
    ({"to_success": {"individuals": "many"}}, "to_success: 'individuals'"),
    ({"tuned": 0.9}, "'tuned' must be a dict or null"),
    ({"baselines": {"logistic": 0.9}}, "baseline 'logistic' must be a mapping"),
    ({"program": 5}, "'program' must be a str or null"),
])
def test_a_record_that_is_not_a_run_names_its_line(tmp_path, fields, message):
    records = [run_record("evolution", 0), {**run_record("random", 0), **fields}]
    with pytest.raises(EvozeroError, match=message) as error:
        summarize(write_study(tmp_path, records))
    assert "runs.jsonl:2" in str(error.value)


def test_a_run_recorded_twice_is_an_error(tmp_path):
    records = [run_record("evolution", 3), run_record("random", 3), run_record("evolution", 3)]
    with pytest.raises(EvozeroError, match=r"runs.jsonl:3: arm 'evolution' seed 3 is "
                                           r"already recorded on line 1"):
        summarize(write_study(tmp_path, records))


fitness = st.one_of(st.none(), st.floats(0, 1))
record = st.fixed_dictionaries({
    "arm": st.sampled_from(["evolution", "random"]), "seed": st.integers(0, 7),
    "success": st.one_of(st.none(), st.booleans()), "final_fitness": fitness,
    "search_fitness": fitness, "individuals": st.one_of(st.none(), st.integers(0, 10**9)),
    "to_success": st.one_of(st.none(), st.fixed_dictionaries(
        {"individuals": st.one_of(st.none(), st.integers(1, 10**9))})),
    "baselines": st.one_of(st.none(), st.fixed_dictionaries({"lr": st.fixed_dictionaries(
        {"final_fitness": fitness})}))})


def _floats(value):
    if isinstance(value, dict):
        return [f for item in value.values() for f in _floats(item)]
    if isinstance(value, list):
        return [f for item in value for f in _floats(item)]
    return [value] if isinstance(value, float) else []


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(record, max_size=16, unique_by=lambda r: (r["arm"], r["seed"])))
def test_any_study_summarizes_without_nan(tmp_path, records):
    summary = summarize(write_study(tmp_path, [run_record(**r) for r in records], seeds=8))
    assert all(math.isfinite(value) for value in _floats(summary))
    for arm in ("evolution", "random"):
        mine = [r for r in records if r["arm"] == arm]
        figures = summary["arms"][arm]
        assert figures["runs"] == len(mine)
        assert figures["successes"] == sum(r["success"] is True for r in mine)
        rate = figures["success_rate"]
        assert rate["value"] is None or rate["low"] <= rate["value"] <= rate["high"]
    paired = summary["compare"]["final_fitness"]
    assert paired["wins"] + paired["ties"] + paired["losses"] == paired["n"]
