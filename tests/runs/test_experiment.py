"""The experiment flow end to end: search, select, final, run directory, resume, CLI."""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from helpers import cli, run_quietly, small_config

from evozero.cli import main
from evozero.config import load_config
from evozero.evaluation.tasks import make_tasks
from evozero.evaluation.vm import evaluate
from evozero.programs.program import Program
from evozero.runs.rundir import RunDir

REPO = Path(__file__).resolve().parents[2]
NARROW = REPO / "experiments" / "linear_narrow.yaml"


def test_narrow_linear_config_rediscovers_linear_regression(tmp_path):
    # Seed 2 solves the reference's narrow linear space within 1.8M individuals;
    # stopping at the first candidate above 0.999 keeps the test short.
    config = load_config(NARROW, ["workers=1", "budget.train_steps=null",
                                  "budget.individuals=1800000",
                                  "sufficient_fitness=0.999", "progress_every=3600"], seed=2)
    run, result = run_quietly(config, tmp_path)
    assert result["solved"]
    assert result["select_fitness"] > 0.9999
    assert result["final_fitness"] > 0.9999
    program = Program.parse(result["program"])
    # The discovered learner really is a learner: it fits fresh linear tasks.
    fresh = make_tasks("linear", 5, 4, 1000, 100, seed=77)
    assert evaluate(program, fresh, memory=(4, 3, 1)) > 0.999


def test_run_directory_holds_every_record(tmp_path):
    run, result = run_quietly(small_config(), tmp_path)
    rundir = RunDir.open(run.rundir.path)
    final = rundir.read_final()
    for key in ("search_fitness", "select_fitness", "final_fitness", "individuals", "seconds",
                "solved"):
        assert key in final
    assert final["individuals"] == 3000
    assert load_config(rundir.config_path) == run.config
    discoveries = rundir.read_discoveries()
    assert discoveries, "every improvement of the best is logged"
    fitness = [d["fitness"] for d in discoveries]
    assert fitness == sorted(fitness) and len(set(fitness)) == len(fitness)
    assert discoveries[-1]["fitness"] == final["search_fitness"]
    assert Program.parse(rundir.read_best()) == Program.parse(final["program"])
    # The kept program's select and final fitness are what evaluate() reports.
    assert rundir.read_progress()[-1]["individuals"] == 3000


def test_flow_repeats_experiments_until_max(tmp_path):
    run, result = run_quietly(small_config(max_experiments=3, sufficient_fitness=2.0), tmp_path)
    assert result["experiments"] == 3
    assert not result["solved"]
    assert [r["experiment"] for r in result["per_experiment"]] == [1, 2, 3]
    # randomized task seeds: experiments search different tasks
    assert len({r["search_fitness"] for r in result["per_experiment"]}) > 1
    best_select = max(r["select_fitness"] for r in result["per_experiment"])
    assert result["select_fitness"] == best_select


def test_flow_stops_once_sufficient(tmp_path):
    run, result = run_quietly(small_config(max_experiments=0, sufficient_fitness=0.05), tmp_path)
    assert result["solved"]
    assert result["experiments"] == 1
    assert result["select_fitness"] > 0.05
    # stopped at the first candidate passing selection, before the individual budget
    assert result["individuals"] < 3000


def test_same_seed_same_discoveries(tmp_path):
    first, a = run_quietly(small_config(), tmp_path / "a")
    second, b = run_quietly(small_config(), tmp_path / "b")
    def strip(records):
        return [(r["individual"], r["fitness"], r["program"]) for r in records]

    assert strip(first.rundir.read_discoveries()) == strip(second.rundir.read_discoveries())
    assert a["program"] == b["program"] and a["final_fitness"] == b["final_fitness"]
    other, c = run_quietly(small_config(seed=4), tmp_path / "c")
    assert strip(other.rundir.read_discoveries()) != strip(first.rundir.read_discoveries())


def test_hurdles_and_budget_savings_are_logged(tmp_path):
    run, _ = run_quietly(small_config(hurdles={"enabled": True}), tmp_path)
    last = run.rundir.read_progress()[-1]
    assert last["hurdle_stops"] > 0
    assert last["saved_train_steps"] > 0
    run, _ = run_quietly(small_config(compute_budget={"enabled": True, "factor": 0.001}),
                         tmp_path)
    assert run.rundir.read_progress()[-1]["budget_rejects"] == 3000


# --- checkpoints and resume --------------------------------------------------------------

def _write_config(path: Path, **changes) -> Path:
    data = {"name": "resumable", "seed": 5, "population_size": 100,
            "search_tasks": {"num_tasks": 3, "train": 30, "valid": 30},
            "select_tasks": {"num_tasks": 5, "train": 50, "valid": 20},
            "final_tasks": {"num_tasks": 5, "train": 50, "valid": 20},
            "budget": {"individuals": 400_000, "train_steps": None},
            "max_experiments": 2, "sufficient_fitness": 2.0, "checkpoint_every": 0.2,
            "progress_every": 0.5, "workers": 1}
    data.update(changes)
    import yaml
    path.write_text(yaml.safe_dump(data))
    return path


def _wait_for_checkpoints(rundir: Path, count: int, process, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        checkpoints = list((rundir / "checkpoint").glob("*.json")) \
            if (rundir / "checkpoint").is_dir() else []
        if len(checkpoints) >= 1 and _sequence(rundir) >= count:
            return
        if process.poll() is not None:
            raise AssertionError(f"run ended early: {process.communicate()}")
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def _sequence(rundir: Path) -> int:
    numbers = [int(p.stem) for p in (rundir / "checkpoint").glob("*.json")]
    return max(numbers, default=0)


# Resume must equal an uninterrupted run with one island, and with several islands when
# migration is deterministic.
MODES = {"one-island": {},
         "two-deterministic-islands": {"workers": 2, "deterministic": True,
                                       "migrate_every": 10_000,
                                       "budget": {"individuals": 200_000,
                                                  "train_steps": None}}}


@pytest.fixture(scope="module", params=list(MODES))
def mode(request):
    return MODES[request.param]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, mode):
    root = tmp_path_factory.mktemp("uninterrupted")
    config = _write_config(root / "c.yaml", **mode)
    process = cli("run", str(config), "--out", str(root / "runs"))
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    run = RunDir.open(root / "runs" / "resumable")
    return run.read_final(), run.read_discoveries()


def _discovery_keys(records):
    return [(r["experiment"], r["individual"], r["fitness"], r["program"]) for r in records]


def _killed_run(tmp_path: Path, mode: dict) -> Path:
    """A run directory whose process was SIGKILLed after its third checkpoint."""
    config = _write_config(tmp_path / "c.yaml", **mode)
    process = cli("run", str(config), "--out", str(tmp_path / "runs"))
    rundir = tmp_path / "runs" / "resumable"
    _wait_for_checkpoints(rundir, 3, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return rundir


def _resume(rundir: Path, *options: str) -> str:
    """Resume a run to its end; returns what it printed."""
    resumed = cli("resume", str(rundir), *options)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    return out


@pytest.mark.slow
def test_kill_and_resume_equals_uninterrupted(tmp_path, mode, uninterrupted):
    rundir = _killed_run(tmp_path, mode)
    assert not (rundir / "final.json").exists()
    _resume(rundir)
    final, discoveries = uninterrupted
    got = RunDir.open(rundir).read_final()
    for key in ("program", "search_fitness", "select_fitness", "final_fitness", "individuals",
                "solved", "experiments"):
        assert got[key] == final[key], key
    assert _discovery_keys(RunDir.open(rundir).read_discoveries()) == _discovery_keys(discoveries)


@pytest.mark.slow
def test_resume_on_another_worker_count_equals_uninterrupted(tmp_path, mode, uninterrupted):
    rundir = _killed_run(tmp_path, mode)
    workers = 1 if mode.get("workers", 1) > 1 else 2
    out = _resume(rundir, "--workers", str(workers))
    got = RunDir.open(rundir).read_final()
    final, discoveries = uninterrupted
    for key in ("program", "search_fitness", "select_fitness", "final_fitness", "individuals"):
        assert got[key] == final[key], key
    assert _discovery_keys(RunDir.open(rundir).read_discoveries()) == _discovery_keys(discoveries)
    islands = mode.get("workers", 1)
    assert f"{islands} island{'s' if islands > 1 else ''} on {min(workers, islands)} worker" in out


@pytest.mark.slow
def test_ctrl_c_leaves_a_valid_resumable_run(tmp_path, mode, uninterrupted):
    config = _write_config(tmp_path / "c.yaml", checkpoint_every=3600.0, **mode)
    process = cli("run", str(config), "--out", str(tmp_path / "runs"))
    rundir = tmp_path / "runs" / "resumable"
    deadline = time.monotonic() + 120
    while not (rundir / "progress.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "evozero resume" in err
    assert RunDir.open(rundir).load_checkpoint() is not None
    _resume(rundir)
    assert RunDir.open(rundir).read_final()["program"] == uninterrupted[0]["program"]


@pytest.mark.slow
def test_corrupt_checkpoint_falls_back_to_the_previous_one(tmp_path, mode, uninterrupted):
    rundir = _killed_run(tmp_path, mode)
    newest = max((rundir / "checkpoint").glob("*.npz"))
    newest.write_bytes(newest.read_bytes()[:100])
    out = _resume(rundir)
    assert "warning" in out and newest.stem in out
    assert RunDir.open(rundir).read_final()["program"] == uninterrupted[0]["program"]


def test_resume_of_a_finished_run_is_a_clear_error(tmp_path, capsys):
    run, _ = run_quietly(small_config(), tmp_path)
    assert main(["resume", str(run.rundir.path)]) == 2
    assert "finished" in capsys.readouterr().err


# --- the CLI -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("populaton_size: 10\n", ["populaton_size", "population_size"]),
    ("population_size: many\n", ["population_size", "many"]),
    ("ops:\n  setup: [SCALAR_SUMM]\n", ["ops.setup", "SCALAR_SUMM"]),
    ("sizes:\n  learn: {init: 9, min: 1, max: 4}\n", ["sizes.learn", "init"]),
    ("population_size: [\n", ["invalid YAML", "bad.yaml:2"]),
])
def test_bad_config_exits_2_without_a_run_directory(tmp_path, capsys, text, expected):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    code = main(["run", str(config), "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "Traceback" not in err
    assert str(config) in err
    for word in expected:
        assert word in err
    assert not (tmp_path / "runs").exists()


def test_bad_override_and_missing_run(tmp_path, capsys):
    assert main(["run", str(NARROW), "--set", "tournament_size=0",
                 "--out", str(tmp_path / "runs")]) == 2
    assert "tournament_size" in capsys.readouterr().err
    assert main(["show", str(tmp_path / "nowhere")]) == 2
    assert "no such run directory" in capsys.readouterr().err


def test_run_and_show_through_the_cli(tmp_path, capsys):
    config = _write_config(tmp_path / "c.yaml", max_experiments=1,
                           budget={"individuals": 2000, "train_steps": None})
    assert main(["run", str(config), "--out", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "final fitness" in out and "def Predict():" in out
    rundir = tmp_path / "runs" / "resumable"
    assert main(["show", str(rundir)]) == 0
    shown = capsys.readouterr().out
    final = json.loads((rundir / "final.json").read_text())
    assert f"{final['final_fitness']:.6f}" in shown
    assert "def Setup():" in shown and "population_size 100" in shown


def test_ops_lists_the_whole_instruction_set(capsys):
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    assert "MATRIX_GAUSSIAN_SET" in out and "SCALAR_SUM" in out


def _without_noops(program: Program) -> list:
    return [[inst for inst in program.instructions(c) if inst.op != 0]
            for c in ("setup", "predict", "learn")]


@pytest.mark.parametrize("choice", ["file", "linear", "noop"])
def test_initial_population_choices(tmp_path, choice):
    from evozero.programs.reference import linear_program
    source = tmp_path / "start.txt"
    source.write_text(str(linear_program(0.05)) + str(linear_program(0.02)))
    value = str(source) if choice == "file" else choice
    run, _ = run_quietly(small_config(initial_population=value, mutate_prob=0.0,
                                      budget={"individuals": 50, "train_steps": None}),
                         tmp_path)
    first = Program.parse(run.rundir.read_discoveries()[0]["program"])
    # Shorter programs are padded with no-ops up to the initial sizes (10/2/8).
    assert first.sizes == (10, 2, 8)
    expected = {"file": linear_program(0.05), "linear": linear_program(),
                "noop": Program.from_instructions()}[choice]
    assert _without_noops(first) == _without_noops(expected)


def test_learning_only_run_keeps_the_frozen_components_across_islands(tmp_path):
    from evozero.programs.reference import linear_program
    config = small_config(
        memory={"scalars": 4, "vectors": 3, "matrices": 1}, frozen_program="linear",
        ops={"setup": [], "predict": [],
             "learn": ["SCALAR_DIFF", "SCALAR_PRODUCT", "SCALAR_VECTOR_PRODUCT", "VECTOR_SUM"]},
        sizes={"setup": 5, "predict": 1, "learn": 4}, islands=2, migrate_every=200,
        deterministic=True)
    run, result = run_quietly(config, tmp_path)
    linear = linear_program()
    # Migrants passed the islands' checks, and every discovery kept Setup and Predict.
    programs = [Program.parse(record["program"]) for record in run.rundir.read_discoveries()]
    programs.append(Program.parse(result["program"]))
    for program in programs:
        assert _without_noops(program)[:2] == _without_noops(linear)[:2]
