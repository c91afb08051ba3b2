"""Islands in worker processes and on Ray: migration, determinism, faults, task mixes."""
from __future__ import annotations

import dataclasses
import math
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import child_pids, cli, is_running, run_quietly, small_config

from evozero.config import load_config
from evozero.domains import domain_for
from evozero.evaluation.vm import evaluate, group_tasks
from evozero.programs.program import Program
from evozero.programs.slots import program_slots
from evozero.runs.migration import IslandView, draw_arrivals, round_arrivals
from evozero.runs.rundir import RunDir
from evozero.runs.workers import LocalBackend
from evozero.search.evolution import FILLED, INDIVIDUALS, OLDEST
from evozero.search.runner import SearchRunner
from evozero.search.settings import build_settings
from evozero.search.state import SearchState

REPO = Path(__file__).resolve().parents[2]
NARROW = REPO / "experiments" / "linear_narrow.yaml"
# A seed whose two deterministic islands solve the narrow space within 1.2M individuals each.
NARROW_SEED = 5


def island_config(**overrides):
    """The small experiment on two islands that migrate often."""
    data = {"name": "islands", "budget": {"individuals": 10_000, "train_steps": None},
            "sufficient_fitness": 2.0, "progress_every": 0.2, "workers": 2,
            "migrate_every": 1000}
    data.update(overrides)
    return small_config(**data)


def discovery_keys(rundir):
    return [(r["experiment"], r["island"], r["island_individual"], r["individual"],
             r["fitness"], r["program"]) for r in RunDir.open(rundir).read_discoveries()]


# --- whole runs --------------------------------------------------------------------------


def test_two_workers_with_migration_discover_linear_regression(tmp_path):
    config = load_config(NARROW, ["workers=2", "deterministic=true", "migrate_every=20000",
                                  "budget.train_steps=null",
                                  "budget.individuals=1500000", "sufficient_fitness=0.999",
                                  "progress_every=3600"], seed=NARROW_SEED)
    run, result = run_quietly(config, tmp_path)
    assert result["solved"] and result["islands"] == 2
    assert result["select_fitness"] > 0.9999 and result["final_fitness"] > 0.9999
    fresh_tasks = config.search_tasks.with_seed(77).make()
    assert evaluate(Program.parse(result["program"]), fresh_tasks, memory=(4, 3, 1)) > 0.999
    islands = {r["island"] for r in run.rundir.read_discoveries()}
    assert islands <= {1, 2} and islands


def test_deterministic_islands_reproduce_themselves_and_migrate(tmp_path):
    config = island_config(deterministic=True)
    first, a = run_quietly(config, tmp_path / "a")
    second, b = run_quietly(config, tmp_path / "b")
    assert discovery_keys(first.rundir.path) == discovery_keys(second.rundir.path)
    assert a["program"] == b["program"] and a["final_fitness"] == b["final_fitness"]
    assert a["individuals"] == 20_000, "each island has the whole budget"
    last = first.rundir.read_progress()[-1]
    assert [i["individuals"] for i in last["islands"]] == [10_000, 10_000]
    # 9 rounds (at 1000 ... 9000 individuals; the 10th ends the budget) of 25 migrants each.
    assert [i["migrants"] for i in last["islands"]] == [9 * 25, 9 * 25]
    other, c = run_quietly(island_config(deterministic=True, seed=4), tmp_path / "c")
    assert discovery_keys(other.rundir.path) != discovery_keys(first.rundir.path)


def test_islands_sharing_one_worker_search_exactly_as_on_their_own(tmp_path):
    # Populations of 400 send 200 programs a round: messages larger than a pipe's buffer.
    config = island_config(deterministic=True, population_size=400, islands=2)
    alone, a = run_quietly(config, tmp_path / "alone")
    shared, b = run_quietly(dataclasses.replace(config, workers=1), tmp_path / "shared")
    assert discovery_keys(shared.rundir.path) == discovery_keys(alone.rundir.path)
    assert a["program"] == b["program"] and a["individuals"] == b["individuals"] == 20_000


def test_migration_none_sends_nothing(tmp_path):
    run, result = run_quietly(island_config(migration="none"), tmp_path)
    last = run.rundir.read_progress()[-1]
    assert [i["migrants"] for i in last["islands"]] == [0, 0]
    assert result["individuals"] == 20_000


def test_islands_search_their_own_task_mix(tmp_path):
    config = island_config(islands=[{}, {"search_tasks": {"features": 8, "num_tasks": 2},
                                         "population_size": 40}],
                           deterministic=True)
    run, result = run_quietly(config, tmp_path)
    last = run.rundir.read_progress()[-1]
    # Island 2 sends 20 (half of 40) and receives as many; island 1 asks for 25, but
    # draws without replacement from the 20 island 2 sent.
    assert [i["migrants"] for i in last["islands"]] == [9 * 20, 9 * 20]
    assert result["islands"] == 2 and math.isfinite(result["final_fitness"])


@pytest.mark.slow
def test_workers_auto_means_one_island_per_core(tmp_path):
    run, result = run_quietly(island_config(workers="auto", migration="none"), tmp_path)
    assert result["islands"] == len(os.sched_getaffinity(0))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_a_killed_worker_is_restarted_and_the_run_completes(tmp_path):
    import yaml
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "name": "faults", "seed": 5, "population_size": 100, "workers": 2,
        "search_tasks": {"num_tasks": 3, "train": 30, "valid": 30},
        "select_tasks": {"num_tasks": 5, "train": 50, "valid": 20},
        "final_tasks": {"num_tasks": 5, "train": 50, "valid": 20},
        "budget": {"individuals": 750_000, "train_steps": None}, "max_experiments": 1,
        "sufficient_fitness": 2.0, "checkpoint_every": 0.3, "progress_every": 0.2}))
    process = cli("run", str(config), "--out", str(tmp_path / "runs"))
    checkpoints = tmp_path / "runs" / "faults" / "checkpoint"
    deadline = time.monotonic() + 300
    while len(list(checkpoints.glob("*.json")) if checkpoints.is_dir() else []) < 2:
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)
    workers = child_pids(process.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "killed by SIGKILL" in out and "restarts from its snapshot" in out
    final = RunDir.open(tmp_path / "runs" / "faults").read_final()
    # The restarted island redid the work since its snapshot: the budget is still exact.
    assert final["individuals"] == 1_500_000


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_workers_exit_when_the_main_process_is_killed(tmp_path):
    import yaml
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"name": "orphans", "workers": 2,
                                      "budget": {"individuals": 10**9, "train_steps": None},
                                      "max_experiments": 1, "progress_every": 0.1}))
    process = cli("run", str(config), "--out", str(tmp_path / "runs"))
    progress = tmp_path / "runs" / "orphans" / "progress.jsonl"
    deadline = time.monotonic() + 120
    while not progress.exists():
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)
    workers = child_pids(process.pid)
    assert len(workers) == 2
    process.kill()
    process.communicate()
    deadline = time.monotonic() + 10
    while any(is_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(is_running(pid) for pid in workers), "orphaned workers kept running"


def test_a_failing_worker_reports_the_error_and_is_replaced():
    backend = LocalBackend(1)
    try:
        backend.send(0, {"kind": "advance", "island": 7, "seconds": 0.1})
        replies = []
        deadline = time.monotonic() + 30
        while len(replies) < 2 and time.monotonic() < deadline:
            replies += backend.receive(0.1)
        assert replies[0][1]["kind"] == "error" and "KeyError" in replies[0][1]["error"]
        assert replies[1] == (0, None)
        backend.restart(0)
        spec = domain_for(island_config()).island_spec(0, 0, individuals=10, train_steps=-1)
        backend.send(0, {"kind": "open", "spec": spec, "snapshot": None})
        replies = []
        while not replies and time.monotonic() < deadline:
            replies = backend.receive(0.1)
        assert replies[0][1]["kind"] == "island" and replies[0][1]["status"] == "running"
    finally:
        backend.close()


# --- Ray ---------------------------------------------------------------------------------


@pytest.mark.ray
@pytest.mark.slow
def test_ray_backend_gives_a_valid_run_directory_with_the_same_schema(tmp_path):
    local, local_result = run_quietly(island_config(deterministic=True), tmp_path / "local")
    ray_run, ray_result = run_quietly(island_config(deterministic=True, backend="ray"),
                                      tmp_path / "ray")
    assert set(ray_result) == set(local_result)
    # The same worker code and deterministic migration: the same search.
    assert ray_result["program"] == local_result["program"]
    assert discovery_keys(ray_run.rundir.path) == discovery_keys(local.rundir.path)
    assert set(ray_run.rundir.read_progress()[-1]) == set(local.rundir.read_progress()[-1])
    assert RunDir.open(ray_run.rundir.path).read_final()["individuals"] == 20_000


def test_ray_backend_without_ray_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from evozero.cli import main
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["run", str(NARROW), "--set", "backend=ray", "--out", str(tmp_path)]) == 2
    assert 'pip install "evozero[ray]"' in capsys.readouterr().err


# --- migration pieces --------------------------------------------------------------------


def _emigrants(island: int, count: int, key: str = "k") -> dict:
    return {"round": 1, "key": key, "code": np.full((count, 2, 4), island, dtype=np.int64),
            "constants": np.full((count, 2, 3), float(island)),
            "lengths": np.full((count, 3), island, dtype=np.int64),
            "fitness": np.full(count, island / 10)}


def test_arrivals_come_from_the_other_islands_without_replacement():
    config = island_config()
    views = []
    for island, count in enumerate((4, 6, 5)):
        view = IslandView(domain_for(config).island_spec(island, 0, -1, -1), worker=0)
        view.status, view.emigrants = "waiting", _emigrants(island, count)
        views.append(view)
    arrivals = round_arrivals(views, seed=1, experiment=0, round_=1)
    for view in views:
        got = arrivals[view.index]
        assert len(got["fitness"]) == len(view.emigrants["fitness"])
        assert view.index not in set(got["code"][:, 0, 0])
        assert len(got["keys"]) == len(got["fitness"])
    # From 4 + 5 others, island 1 asks for 6: six different programs.
    pool = draw_arrivals(9, [_emigrants(0, 4), _emigrants(2, 5)], np.random.default_rng(0))
    assert sorted(pool["code"][:, 0, 0]) == [0] * 4 + [2] * 5
    assert round_arrivals(views, 1, 0, 1)[0]["fitness"].tolist() == arrivals[0]["fitness"].tolist()


def test_migrants_replace_the_oldest_and_keep_or_get_their_fitness():
    config = island_config(population_size=20, tournament_size=2)
    tasks = config.search_tasks.make()
    settings = build_settings(config, tasks, 99)
    runner = SearchRunner(settings, group_tasks(tasks)[0], 10, 10, config.memory.sizes)
    state = SearchState.fresh(settings, 5, 1000)
    while state.counter(INDIVIDUALS) < 30:
        runner.step(state, 30 - state.counter(INDIVIDUALS))
    assert state.counter(FILLED) == 20
    oldest = state.counter(OLDEST)
    program = Program.parse("def Setup():\n  s2 = 0.01\ndef Predict():\n  s1 = dot(v0, v1)\n"
                            "def Learn():\n  s3 = s0 - s1\n  s3 = s2 * s3\n  v2 = s3 * v0\n"
                            "  v1 = v1 + v2")
    code, constants, lengths = program_slots(program, settings.offsets, settings.rows)
    def stack(a):
        return np.stack([a, a])

    runner.immigrate(state, stack(code), stack(constants), stack(lengths),
                     np.array([np.nan, 0.123]))
    expected = evaluate(program, tasks, seed=99, memory=config.memory.sizes)
    slots = [oldest, (oldest + 1) % 20]
    assert state.fitness[slots[0]] == pytest.approx(expected, rel=1e-12)
    assert state.fitness[slots[1]] == 0.123
    assert np.array_equal(state.code[slots[0]], code)
    assert state.counter(OLDEST) == (oldest + 2) % 20
    assert state.counter(INDIVIDUALS) == 30, "migrants are not counted as individuals"
