"""Cell search against a table: lookups at the signal epoch with a seed drawn per query,
the simulated clock and its budget, the records that carry them, the inputs refused
before a run is made, and an island reopened from its snapshot continuing exactly."""
from __future__ import annotations

import numpy as np
import pytest
import yaml
from helpers import run_quietly
from synthetic_table import EPOCHS, final_accuracy, synthetic_table, table_config

from evozero.cli import main
from evozero.config import config_from_dict, config_to_dict
from evozero.domains import domain_for
from evozero.errors import EvozeroError
from evozero.nas.search.lookup import lookup_for
from evozero.nas.table.store import cell_of_index, cell_ops
from evozero.runs.migration import empty_arrivals

pytestmark = pytest.mark.nas


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "t.npz"
    synthetic_table(table_config()).save(path)
    return path


def test_lookup_reads_the_signal_epoch_of_a_drawn_seed_and_scales_the_seconds(table):
    nas = table_config(table, nas={"lookup": {"epoch": 4}}).nas
    lookup = lookup_for(nas)
    data = lookup.table
    cells = np.arange(0, 3000, 3)                   # every third cell has two seeds
    rng = np.random.default_rng(0)
    looked = lookup.look_up(cell_ops(cells), 4, rng)
    assert set(looked.seeds) == {0, 1}
    np.testing.assert_array_equal(looked.valid_accuracy,
                                  data.valid_accuracy[cells, looked.seeds, 3])
    np.testing.assert_allclose(looked.seconds, data.seconds[cells, looked.seeds] * 4 / EPOCHS)
    np.testing.assert_allclose(looked.test_accuracy, np.nanmean(data.test_accuracy[cells], 1))
    one_seed = lookup.look_up(cell_ops(cells + 1), 4, rng)
    assert set(one_seed.seeds) == {0}
    mean = lookup_for(table_config(table, nas={"lookup": {"seed": "mean"}}).nas)
    looked = mean.look_up(cell_ops(cells), EPOCHS, rng)
    np.testing.assert_allclose(looked.valid_accuracy,
                               np.mean(data.valid_accuracy[cells, :, -1], axis=1), rtol=1e-6)


def test_a_table_run_reports_simulated_time_and_the_tables_test_accuracy(table, tmp_path,
                                                                          capsys):
    run, final = run_quietly(table_config(table, nas={"lookup": {"seconds": 900.0}},
                                          budget={"individuals": 10_000,
                                                  "train_steps": None}), tmp_path)
    records = run.rundir.read_evaluations()
    clocks = [r["search_clock"] for r in records]
    assert clocks == sorted(clocks) and clocks[-2] < 900.0 <= clocks[-1]
    assert sum(r["simulated_seconds"] for r in records) == pytest.approx(clocks[-1])
    assert all(r["simulated_seconds"] == 0.0 for r in records if r["cache_hit"])
    assert final["simulated_seconds"] == pytest.approx(clocks[-1])
    best = final["cell"]
    index = next(i for i in range(15625) if str(cell_of_index(i)) == best)
    assert final["test_accuracy"] == pytest.approx(final_accuracy()[index] - 0.01, abs=1e-6)
    discoveries = run.rundir.read_discoveries()
    assert discoveries[-1]["search_clock"] == final["found_at_simulated_seconds"]
    assert main(["show", str(run.rundir.path)]) == 0
    assert "simulated search seconds" in capsys.readouterr().out


def _write(tmp_path, config):
    path = tmp_path / "table.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(config)))
    return path


def test_cli_refuses_a_missing_table_with_one_error_line(tmp_path, capsys):
    config = _write(tmp_path, table_config(tmp_path / "absent.npz"))
    assert main(["run", str(config), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "nas.table" in err and "absent.npz" in err
    assert "Traceback" not in err and not (tmp_path / "runs").exists()


def _refusal(config):
    with pytest.raises(EvozeroError) as error:
        domain_for(config).check_inputs()
    return str(error.value)


def test_corrupt_and_foreign_tables_are_refused(table, tmp_path):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not a zip archive")
    message = _refusal(table_config(corrupt))
    assert "nas.table" in message and "corrupt.npz" in message
    other = table_config(table, nas={"training": {"epochs": EPOCHS, "batch_size": 32}})
    message = _refusal(other)
    assert "nas.training.batch_size: 32" in message and "64" in message
    profile = table_config(table, nas={"profile": "server-gpu"})
    assert "nas.profile" in _refusal(profile)


@pytest.mark.parametrize("changes, words", [
    ({"nas": {"space": "nb101", "table": "t.npz"}}, ["nas.table", "space is nb101"]),
    ({"strategy": "reinforce", "nas": {"space": "nb101"}}, ["strategy", "nb201"]),
    ({"nas": {"lookup": {"epoch": 3}}}, ["nas.lookup", "nas.table"]),
    ({"nas": {"table": "t.npz", "hurdle": {"accuracy": 0.5}}}, ["nas.hurdle"]),
    ({"nas": {"table": "t.npz"}, "budget": {"train_steps": 100}}, ["budget.individuals"]),
    ({"nas": {"table": "t.npz", "lookup": {"epoch": 99}}}, ["nas.lookup.epoch"]),
])
def test_config_refuses_a_table_or_strategy_that_does_not_fit(changes, words):
    data = config_to_dict(table_config())
    nas = dict(data["nas"], **changes.pop("nas", {}))
    data.update(changes, nas=nas)
    if "budget" in changes:
        data["budget"] = dict(changes["budget"], individuals=None)
    with pytest.raises(EvozeroError) as error:
        config_from_dict(data)
    assert all(word in str(error.value) for word in words), str(error.value)


def test_a_cell_strategy_in_a_program_search_is_refused():
    with pytest.raises(EvozeroError, match="cell-search strategy.*no nas section"):
        config_from_dict({"strategy": "asha"})


@pytest.mark.parametrize("strategy", ["evolution", "random", "reinforce", "asha", "bohb",
                                      "local", "predictor"])
def test_a_reopened_table_island_continues_identically(table, strategy):
    config = table_config(table, strategy=strategy, migration="half", migrate_every=40,
                          population_size=10, tournament_size=3,
                          nas={"predictor": {"epochs": 20, "batch": 7}})
    domain = domain_for(config)
    spec = domain.island_spec(0, 0, -1, -1)
    island = spec.island_class(spec, None)
    island.advance(600.0)                                  # to the first migration point
    snapshot = island.snapshot()
    domain.check_snapshot(snapshot, spec.own_config, "snapshot")
    twin = spec.island_class(spec, snapshot)
    for _ in range(2):
        ours, theirs = (_search(i.advance(600.0, empty_arrivals())) for i in (island, twin))
        assert ours == theirs and ours
    assert island.snapshot()["meta"] == twin.snapshot()["meta"]


def _search(reply):
    """The records of a reply without their wall-clock seconds (NaN written as None)."""
    return [{k: (None if v != v else v) for k, v in r.items() if k != "seconds"}
            for r in reply["evaluations"]]


def test_a_snapshot_with_a_broken_strategy_state_is_refused(table):
    config = table_config(table, strategy="asha")
    domain = domain_for(config)
    spec = domain.island_spec(0, 0, 30, -1)
    island = spec.island_class(spec, None)
    island.advance(600.0)
    snapshot = island.snapshot()
    snapshot["strategy"]["promoted"][0] = [10_000]
    with pytest.raises(EvozeroError, match="strategy.*promoted"):
        domain.check_snapshot(snapshot, spec.own_config, "island 1 snapshot")
    del snapshot["strategy"]
    with pytest.raises(EvozeroError, match="no state of the asha strategy"):
        domain.check_snapshot(snapshot, spec.own_config, "island 1 snapshot")
