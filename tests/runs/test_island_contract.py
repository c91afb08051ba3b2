"""The contract every island kind keeps with the main process, run on both kinds (program
search and cell search) through the same commands: open, advance, snapshot, reopen from
the snapshot, migrate (emigrants out, immigrants in) and finish."""
import numpy as np
import pytest
from helpers import nas_config, small_config

from evozero.domains import domain_for
from evozero.runs.island import FINISHED, emigrant_count
from evozero.runs.messages import AdvanceReply, IslandResult, IslandSummary
from evozero.runs.migration import draw_arrivals, empty_arrivals

# Small configs that reach a migration point within a few steps: every 100 programs,
# every 4 networks; each island sends half its population.
KINDS = {
    "program": (lambda: small_config(migration="half", migrate_every=100), 100),
    "nas": (lambda: nas_config(migration="half", migrate_every=4), 4),
}


@pytest.fixture(params=sorted(KINDS))
def kind(request):
    make, every = KINDS[request.param]
    return domain_for(make()), every


def _open(domain, island=0, individuals=-1, snapshot=None):
    spec = domain.island_spec(island, 0, individuals, -1)
    return spec.island_class(spec, snapshot)


def _same_search(a, b):
    """Two replies that tell the same search (timing aside)."""
    summary = lambda r: {k: v for k, v in r["summary"].items()  # noqa: E731
                         if k != "kernel_seconds"}
    assert summary(a) == summary(b)
    assert [e["candidate"] for e in a["events"]] == [e["candidate"] for e in b["events"]]
    assert (a["emigrants"] is None) == (b["emigrants"] is None)
    if a["emigrants"] is not None:
        np.testing.assert_array_equal(a["emigrants"]["fitness"], b["emigrants"]["fitness"])


def test_opening_answers_with_a_typed_reply(kind):
    domain, _ = kind
    reply = _open(domain).opened()
    assert set(reply) == set(AdvanceReply.__annotations__)
    # Islands that end by themselves add the optional progress; these two do not.
    assert set(reply["summary"]) == set(IslandSummary.__required_keys__)
    assert (reply["kind"], reply["status"], reply["round"]) == ("island", "running", 0)
    assert reply["summary"]["individuals"] == 0 and reply["emigrants"] is None


def test_advance_counts_individuals_and_stops_at_the_migration_point(kind):
    domain, every = kind
    island = _open(domain)
    reply = island.advance(600.0)
    assert reply["summary"]["individuals"] == every and reply["round"] == 1
    emigrants = reply["emigrants"]
    assert emigrants["round"] == 1 and emigrants["key"] == island.key
    assert len(emigrants["fitness"]) == emigrant_count(domain.config)
    again = island.advance(600.0, empty_arrivals())
    assert again["summary"]["individuals"] == 2 * every and again["round"] == 2


def test_a_reopened_snapshot_continues_identically(kind):
    domain, _ = kind
    island = _open(domain)
    island.advance(600.0)
    twin = _open(domain, snapshot=island.snapshot())
    assert twin.opened()["summary"]["individuals"] == island.opened()["summary"]["individuals"]
    _same_search(island.advance(600.0, empty_arrivals()), twin.advance(600.0, empty_arrivals()))
    _same_search(island.advance(600.0), twin.advance(600.0))


def test_emigrants_of_one_island_arrive_in_another(kind):
    domain, _ = kind
    sender, receiver = _open(domain, 0), _open(domain, 1)
    emigrants = sender.advance(600.0)["emigrants"]
    receiver.advance(600.0)
    count = len(emigrants["fitness"])
    arrivals = draw_arrivals(count, [emigrants], np.random.default_rng(0))
    assert len(arrivals["keys"]) == count
    reply = receiver.advance(0.0, arrivals)
    assert reply["summary"]["migrants"] == count


def test_finish_returns_the_result_record(kind):
    domain, every = kind
    island = _open(domain, individuals=2 * every + 1)
    reply = island.opened()
    while reply["status"] not in FINISHED:
        reply = island.advance(600.0, empty_arrivals() if reply["emigrants"] else None)
    result = reply["result"]
    assert reply["summary"]["individuals"] == 2 * every + 1
    assert set(IslandResult.__required_keys__) <= set(result) <= set(IslandResult.__annotations__)
    assert result["candidate"] == island.result()["candidate"]
    assert result["search_fitness"] == reply["summary"]["best"]
