"""The functional-equivalence cache (evozero.evaluation.fec_cache) against a pure-Python LRU model.

The model follows the fec.py docstring: a hit moves the entry to the front and counts
it; the hit that reaches ``forget_every`` (> 0) drops the entry but still returns its
value; inserting an existing key updates value and flags and moves it to the front
(no eviction, hit count kept); inserting a new key into a full cache evicts the least
recently used entry; a new entry starts with hits = 1.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from evozero.evaluation.fec_cache import (
    COUNT,
    FREE,
    MISS,
    NEWEST,
    OLDEST,
    cache_arrays,
    insert,
    lookup,
    new_cache,
)

# Keys chosen so that many share their low bits (the table index is key & (size - 1),
# size <= 16 here): homes 0, 1, size-2 and size-1 (the last two probe across the wrap).
_LOWS = (0x00, 0x01, 0xFE, 0xFF)
_HIGHS = (0, 1 << 8, 2 << 8, 1 << 40, 1 << 63)
KEYS = tuple(low | high for high in _HIGHS for low in _LOWS)


def table_size(capacity: int) -> int:
    return len(new_cache(capacity)["table"])


class ModelCache:
    """The reference: an OrderedDict whose last item is the most recently used."""

    def __init__(self, capacity: int, forget_every: int) -> None:
        self.capacity = capacity
        self.forget_every = forget_every
        self.entries: OrderedDict[int, list] = OrderedDict()   # key -> [value, flags, hits]

    def lookup(self, key: int):
        """(value, flags, forgotten) or None on a miss."""
        if key not in self.entries:
            return None
        entry = self.entries[key]
        entry[2] += 1
        if self.forget_every > 0 and entry[2] >= self.forget_every:
            del self.entries[key]
            return entry[0], entry[1], True
        self.entries.move_to_end(key)
        return entry[0], entry[1], False

    def insert(self, key: int, value: float, flags: int) -> bool:
        if key in self.entries:
            self.entries[key][0] = value
            self.entries[key][1] = flags
            self.entries.move_to_end(key)
            return False
        evicted = False
        if len(self.entries) >= self.capacity:
            self.entries.popitem(last=False)
            evicted = True
        self.entries[key] = [value, flags, 1]
        return evicted


def probe(cache: dict, key: int) -> int:
    """Table position of ``key`` found by linear probing from its home (-1 if absent)."""
    table, keys = cache["table"], cache["keys"]
    mask = len(table) - 1
    h = key & mask
    for _ in range(len(table)):
        if table[h] < 0:
            return -1
        if int(keys[table[h]]) == key:
            return h
        h = (h + 1) & mask
    return -1


def check_agrees(cache: dict, model: ModelCache) -> None:
    """Every structural invariant of the arrays, and their content equals the model's."""
    meta, table, keys = cache["meta"], cache["table"], cache["keys"]
    newer, older = cache["newer"], cache["older"]
    capacity = len(keys)
    assert meta[COUNT] == len(model.entries)
    # Recency list, newest first, equals the model's order; links agree both ways.
    order = []
    e, previous = meta[NEWEST], -1
    while e >= 0:
        assert len(order) < capacity, "recency list has a cycle"
        assert newer[e] == previous
        order.append(e)
        previous, e = e, older[e]
    assert meta[OLDEST] == previous
    assert [int(keys[e]) for e in order] == list(reversed(model.entries))
    # Free list holds exactly the other entries.
    free = []
    e = meta[FREE]
    while e >= 0:
        assert len(free) < capacity, "free list has a cycle"
        free.append(e)
        e = newer[e]
    assert sorted(free + order) == list(range(capacity))
    # The table holds exactly the live entries, each reachable from its home slot.
    occupied = sorted(int(x) for x in table if x >= 0)
    assert occupied == sorted(order)
    for key, (value, flags, hits) in model.entries.items():
        h = probe(cache, key)
        assert h >= 0, f"key {key:#x} not findable by probing"
        e = table[h]
        assert cache["values"][e] == value
        assert cache["flags"][e] == flags
        assert cache["hits"][e] == hits


class CacheMachine(RuleBasedStateMachine):
    @initialize(capacity=st.integers(1, 8), forget_every=st.integers(0, 4))
    def setup(self, capacity, forget_every):
        self.cache = new_cache(capacity)
        self.arrays = cache_arrays(self.cache)
        self.model = ModelCache(capacity, forget_every)
        assert len(self.cache["keys"]) == capacity
        assert table_size(capacity) >= 2 * capacity

    @rule(key=st.sampled_from(KEYS))
    def do_lookup(self, key):
        expected = self.model.lookup(key)
        entry, forgotten = lookup(self.arrays, np.uint64(key), self.model.forget_every)
        if expected is None:
            assert entry == MISS
            assert not forgotten
        else:
            value, flags, expect_forgotten = expected
            assert entry >= 0
            # Read at once, as the docstring says (also right after a forget).
            assert self.cache["keys"][entry] == np.uint64(key)
            assert self.cache["values"][entry] == value
            assert self.cache["flags"][entry] == flags
            assert bool(forgotten) == expect_forgotten

    @rule(key=st.sampled_from(KEYS), value=st.integers(-1000, 1000), flags=st.integers(0, 3))
    def do_insert(self, key, value, flags):
        expected = self.model.insert(key, float(value), flags)
        evicted = insert(self.arrays, np.uint64(key), float(value), flags)
        assert bool(evicted) == expected

    @invariant()
    def agrees_with_model(self):
        check_agrees(self.cache, self.model)


CacheMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=60)
TestCacheAgainstModel = CacheMachine.TestCase


def test_backward_shift_across_the_table_wrap():
    # Capacity 4 -> table of 8. A and B live at home 7 (B wraps to 0); C (home 0) and
    # D (home 1) are pushed to 1 and 2. Evicting A must shift B, C, D back one slot.
    cache = new_cache(4)
    arrays = cache_arrays(cache)
    assert len(cache["table"]) == 8
    a, b, c, d, e = 0x107, 0x207, 0x100, 0x101, 0x307
    for k, key in enumerate((a, b, c, d)):
        assert not insert(arrays, np.uint64(key), float(k), 0)
    slot_keys = {h: int(cache["keys"][cache["table"][h]]) for h in range(8)
                 if cache["table"][h] >= 0}
    assert slot_keys == {7: a, 0: b, 1: c, 2: d}
    assert insert(arrays, np.uint64(e), 4.0, 0)       # evicts A, the oldest
    slot_keys = {h: int(cache["keys"][cache["table"][h]]) for h in range(8)
                 if cache["table"][h] >= 0}
    assert slot_keys == {7: b, 0: c, 1: d, 2: e}
    assert lookup(arrays, np.uint64(a), 0) == (MISS, False)
    for key, value in ((b, 1.0), (c, 2.0), (d, 3.0), (e, 4.0)):
        entry, forgotten = lookup(arrays, np.uint64(key), 0)
        assert cache["values"][entry] == value and not forgotten


def test_forget_every_one_returns_value_once_then_misses():
    cache = new_cache(2)
    arrays = cache_arrays(cache)
    insert(arrays, np.uint64(5), 0.25, 1)
    entry, forgotten = lookup(arrays, np.uint64(5), 1)
    assert forgotten and cache["values"][entry] == 0.25 and cache["flags"][entry] == 1
    assert cache["meta"][COUNT] == 0
    assert lookup(arrays, np.uint64(5), 1) == (MISS, False)


def _random_ops(rng: np.random.Generator, count: int) -> list[tuple]:
    ops = []
    for _ in range(count):
        key = int(KEYS[rng.integers(len(KEYS))])
        if rng.random() < 0.5:
            ops.append(("lookup", key))
        else:
            ops.append(("insert", key, float(rng.integers(-99, 99)), int(rng.integers(0, 2))))
    return ops


def _apply(arrays: tuple, op: tuple, forget_every: int):
    if op[0] == "lookup":
        entry, forgotten = lookup(arrays, np.uint64(op[1]), forget_every)
        value = arrays[2][entry] if entry >= 0 else None
        return int(entry), bool(forgotten), value
    return bool(insert(arrays, np.uint64(op[1]), op[2], op[3]))


@pytest.mark.parametrize("capacity, forget_every", [(1, 0), (3, 2), (5, 3), (8, 0)])
def test_saved_and_loaded_arrays_continue_identically(tmp_path, capacity, forget_every):
    rng = np.random.default_rng(capacity * 100 + forget_every)
    cache = new_cache(capacity)
    model = ModelCache(capacity, forget_every)
    for op in _random_ops(rng, 80):
        _apply(cache_arrays(cache), op, forget_every)
        if op[0] == "lookup":
            model.lookup(op[1])
        else:
            model.insert(*op[1:])
    check_agrees(cache, model)
    path = tmp_path / "cache.npz"
    np.savez(path, **cache)
    with np.load(path) as data:
        loaded = {name: np.array(data[name]) for name in data.files}
    assert set(loaded) == set(cache)
    for name in cache:
        assert loaded[name].dtype == cache[name].dtype
        np.testing.assert_array_equal(loaded[name], cache[name])
    check_agrees(loaded, model)
    for op in _random_ops(rng, 200):
        assert _apply(cache_arrays(cache), op, forget_every) == \
            _apply(cache_arrays(loaded), op, forget_every)
        for name in cache:
            np.testing.assert_array_equal(loaded[name], cache[name])
        if op[0] == "lookup":
            model.lookup(op[1])
        else:
            model.insert(*op[1:])
        check_agrees(loaded, model)
