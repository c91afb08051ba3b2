"""Hostile and careless use of a study directory: study.yaml edited between resumes, records
of another study, a binding lost, a run of the study edited and resumed on its own, the
record of runs lost. A study is one configuration, as a run is: an edit is refused with
`key: old -> new`, except the changes README lists, and nothing recorded is lost."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from study_helpers import write_study

from evozero.cli import main
from evozero.study.binding import BINDING_FILE, STUDY_CHANGEABLE, study_hash
from evozero.study.command import run_study
from evozero.study.directory import StudyDir

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished study of two arms and two seeds on one worker."""
    folder = tmp_path_factory.mktemp("study")
    path = write_study(folder, success={"at_least": 0.3, "on": "search"})
    run_study(str(path), out=str(folder / "out"), stream=open(os.devnull, "w"))
    return folder / "out"


def _copy(finished: Path, tmp_path: Path) -> Path:
    directory = tmp_path / "copy"
    shutil.copytree(finished, directory, ignore=shutil.ignore_patterns("*.lock"))
    return directory


def _edit(directory: Path, change) -> None:
    path = directory / "study.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _records(directory: Path) -> list[dict]:
    return [json.loads(line) for line in (directory / "runs.jsonl").read_text().splitlines()]


def _resume(directory: Path, capsys) -> tuple[int, str]:
    code = main(["resume", str(directory)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _refused(directory: Path, capsys) -> str:
    """The error of resuming ``directory``, which must exit 2 and record nothing."""
    before = (directory / "runs.jsonl").read_bytes()
    code, output = _resume(directory, capsys)
    assert code == 2, output
    assert "error: " in output and "Traceback" not in output
    assert (directory / "runs.jsonl").read_bytes() == before
    return output


def test_every_record_carries_the_hash_of_the_study(finished):
    study = StudyDir.open(finished).study()
    assert {record["study_sha256"] for record in _records(finished)} == {study_hash(study)}
    binding = json.loads((finished / BINDING_FILE).read_text())
    assert binding["study_sha256"] == study_hash(study)


@pytest.mark.parametrize("change, shown", [
    (lambda s: s.update(success="solved"),
     'success: {"at_least": 0.3, "on": "search"} -> "solved"'),
    (lambda s: s["success"].update(at_least=0.9), "success.at_least: 0.3 -> 0.9"),
    (lambda s: s["arms"]["random"].update(set={"strategy": "evolution"}),
     'arms.random.set.strategy: "random" -> "evolution"'),
    (lambda s: s["resolved_configs"]["evolution"].update(population_size=60),
     "resolved_configs.evolution.population_size: 50 -> 60"),
    (lambda s: s["resolved_configs"]["random"]["budget"].update(individuals=9000),
     "resolved_configs.random.budget.individuals: 3000 -> 9000"),
    (lambda s: s.update(tune={"trials": 2, "baselines": []}), "tune: null -> "),
])
def test_an_edit_of_what_the_runs_depend_on_is_refused(finished, tmp_path, capsys, change,
                                                      shown):
    directory = _copy(finished, tmp_path)
    _edit(directory, change)
    output = _refused(directory, capsys)
    assert f"error: {directory / 'study.yaml'}: changed since the study started" in output
    assert shown in output


def test_where_and_how_it_runs_may_change(finished, tmp_path, capsys):
    directory = _copy(finished, tmp_path)
    _edit(directory, lambda s: s.update(workers=2, name="renamed",
                                        compare=["random", "evolution"]))
    before = (directory / "runs.jsonl").read_bytes()
    code, output = _resume(directory, capsys)
    assert code == 0, output
    assert (directory / "runs.jsonl").read_bytes() == before
    assert json.loads((directory / "summary.json").read_text())["compare"]["arms"] == [
        "random", "evolution"]


def test_more_seeds_run_under_the_same_binding(finished, tmp_path, capsys):
    directory = _copy(finished, tmp_path)
    _edit(directory, lambda s: s.update(seeds=[0, 1, 2]))
    code, output = _resume(directory, capsys)
    assert code == 0, output
    records = _records(directory)
    assert sorted((r["arm"], r["seed"]) for r in records)[-2:] == [("random", 1),
                                                                     ("random", 2)]
    assert len({r["study_sha256"] for r in records}) == 1 and len(records) == 6


def test_dropping_a_recorded_seed_is_refused(finished, tmp_path, capsys):
    directory = _copy(finished, tmp_path)
    _edit(directory, lambda s: s.update(seeds=[0]))
    assert "seeds: drops seed 1, which" in _refused(directory, capsys)


def test_a_record_of_another_study_is_refused_naming_its_line(finished, tmp_path, capsys):
    directory = _copy(finished, tmp_path)
    records = _records(directory)
    records[2]["study_sha256"] = "0" * 64
    (directory / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert f"{directory / 'runs.jsonl'}:3: recorded under another study" in _refused(
        directory, capsys)


def test_a_lost_binding_is_refused_when_records_carry_one(finished, tmp_path, capsys):
    directory = _copy(finished, tmp_path)
    (directory / BINDING_FILE).unlink()
    assert f"{directory / BINDING_FILE}: missing" in _refused(directory, capsys)


def test_a_study_made_before_binding_is_bound_as_it_is(finished, tmp_path, capsys):
    directory = _copy(finished, tmp_path)
    (directory / BINDING_FILE).unlink()
    records = [{k: v for k, v in r.items() if k != "study_sha256"}
               for r in _records(directory)]
    (directory / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    code, output = _resume(directory, capsys)
    assert code == 0 and "this study predates binding" in output
    _edit(directory, lambda s: s.update(success="solved"))
    assert "success: " in _refused(directory, capsys)


def test_a_run_edited_on_its_own_is_refused_when_the_study_records_it(finished, tmp_path,
                                                                     capsys):
    directory = _copy(finished, tmp_path)
    records = _records(directory)
    unrecorded = records.pop()
    (directory / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    config = directory / unrecorded["run"] / "config.yaml"
    data = yaml.safe_load(config.read_text())
    data["budget"]["individuals"] = 2000   # a change a resume of the run alone may make
    config.write_text(yaml.safe_dump(data))
    output = _refused(directory, capsys)
    assert f"{config}: differs from the config arm {unrecorded['arm']!r}" in output
    assert "budget.individuals: 3000 -> 2000" in output


def test_a_lost_runs_jsonl_is_named_and_recorded_again(finished, tmp_path, capsys):
    directory = _copy(finished, tmp_path)
    records = _records(directory)
    (directory / "runs.jsonl").unlink()
    assert main(["show", str(directory)]) == 2
    err = capsys.readouterr().err
    assert "runs.jsonl (its record of finished runs) is missing" in err
    assert "not a run directory" not in err
    code, output = _resume(directory, capsys)
    assert code == 0, output
    key = lambda r: (r["arm"], r["seed"])  # noqa: E731
    assert sorted(_records(directory), key=key) == sorted(records, key=key)


def test_the_changes_a_resume_may_make_are_in_the_readme():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("A resume of a study may change"):][:600]
    for key in STUDY_CHANGEABLE:
        assert f"`{key}`" in section, key


@pytest.mark.parametrize("command", ["show", "plot"])
def test_show_and_plot_refuse_a_success_the_records_were_not_judged_by(finished, tmp_path,
                                                                       capsys, command):
    directory = _copy(finished, tmp_path)
    _edit(directory, lambda s: s["success"].update(at_least=0.9))
    argv = [command, str(directory)] + (["-o", str(tmp_path / "s.png")] if command == "plot"
                                        else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{directory / 'study.yaml'}: changed since the study started" in err
    assert "success.at_least: 0.3 -> 0.9" in err


def test_an_arm_whose_runs_cannot_start_is_refused_before_the_study_exists(tmp_path, capsys):
    path = write_study(tmp_path, config={"search_tasks": {
        "kind": "digits", "num_tasks": 2, "features": 16, "train": 5000, "valid": 20}})
    out = tmp_path / "out"
    assert main(["study", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: arms.evolution: its runs cannot start: "
                          f"search_tasks: train + valid = 5020 exceeds"), err
    assert not out.exists()
