"""The functional-equivalence cache: an LRU map from a 64-bit key to a fitness, in numba.

Keys are either a structural hash of a dead-code-free program or a fingerprint of its
rounded predictions on a few examples (:mod:`evozero.search.evolution` makes both). The map lives
in plain arrays so it can be checkpointed as ``.npz`` and restored exactly:

* ``table[h]``: entry index or -1, open addressing with linear probing; the table has a
  power-of-two size of at least twice the capacity, so probes stay short. Deletion
  shifts later entries of the probe run back (no tombstones).
* per entry ``e``: ``keys[e]``, ``values[e]``, ``flags[e]`` (caller's bits), ``hits[e]``
  and the recency list ``newer[e]`` / ``older[e]`` (-1 at the ends).
* ``meta``: ``[newest, oldest, count, free_list_head]``; unused entries are chained
  through ``newer``.

A hit moves the entry to the front and counts it; when the count reaches
``forget_every`` (> 0) the entry is dropped so the program is evaluated afresh next time.
Inserting into a full cache evicts the least recently used entry.
"""
from __future__ import annotations

import numpy as np

from ops.jit import jit

NEWEST, OLDEST, COUNT, FREE = 0, 1, 2, 3
MISS = -1


def new_cache(capacity: int) -> dict[str, np.ndarray]:
    """Empty cache arrays for ``capacity`` entries (the dict is what checkpoints store)."""
    capacity = max(int(capacity), 1)
    table_size = 1 << max(2 * capacity - 1, 1).bit_length()
    newer = np.arange(1, capacity + 1, dtype=np.int64)
    newer[-1] = -1
    return {
        "table": np.full(table_size, -1, dtype=np.int64),
        "keys": np.zeros(capacity, dtype=np.uint64),
        "values": np.zeros(capacity),
        "flags": np.zeros(capacity, dtype=np.int64),
        "hits": np.zeros(capacity, dtype=np.int64),
        "newer": newer,
        "older": np.full(capacity, -1, dtype=np.int64),
        "meta": np.array([-1, -1, 0, 0], dtype=np.int64),
    }


def cache_arrays(cache: dict[str, np.ndarray]) -> tuple:
    """The arrays in the order the numba functions take them."""
    return (cache["table"], cache["keys"], cache["values"], cache["flags"], cache["hits"],
            cache["newer"], cache["older"], cache["meta"])


@jit
def _slot(table, key):
    return np.int64(key & np.uint64(table.size - 1))


@jit
def _find(cache, key):
    table, keys = cache[0], cache[1]
    mask = table.size - 1
    h = _slot(table, key)
    while table[h] >= 0:
        if keys[table[h]] == key:
            return h
        h = (h + 1) & mask
    return -1


@jit
def _unlink(cache, e):
    newer, older, meta = cache[5], cache[6], cache[7]
    if newer[e] >= 0:
        older[newer[e]] = older[e]
    else:
        meta[NEWEST] = older[e]
    if older[e] >= 0:
        newer[older[e]] = newer[e]
    else:
        meta[OLDEST] = newer[e]


@jit
def _push_front(cache, e):
    newer, older, meta = cache[5], cache[6], cache[7]
    newer[e] = -1
    older[e] = meta[NEWEST]
    if meta[NEWEST] >= 0:
        newer[meta[NEWEST]] = e
    meta[NEWEST] = e
    if meta[OLDEST] < 0:
        meta[OLDEST] = e


@jit
def _remove_at(cache, h):
    """Drop the entry at table position ``h``, keeping every probe run unbroken."""
    table, keys, newer, meta = cache[0], cache[1], cache[5], cache[7]
    mask = table.size - 1
    e = table[h]
    _unlink(cache, e)
    newer[e] = meta[FREE]
    meta[FREE] = e
    meta[COUNT] -= 1
    hole = h
    j = (h + 1) & mask
    while table[j] >= 0:
        home = _slot(table, keys[table[j]])
        # Move j back into the hole unless its home lies cyclically in (hole, j].
        if (j > hole and (home <= hole or home > j)) or (j < hole and home <= hole and home > j):
            table[hole] = table[j]
            hole = j
        j = (j + 1) & mask
    table[hole] = -1


@jit
def lookup(cache, key, forget_every):
    """The entry index holding ``key`` (MISS if absent); counts the hit and may forget it.

    Returns ``(entry, forgotten)``: on the hit that reaches ``forget_every`` the value is
    still returned through ``entry`` but the entry is already unlinked; read it at once.
    """
    h = _find(cache, key)
    if h < 0:
        return MISS, False
    e = cache[0][h]
    hits = cache[4]
    hits[e] += 1
    if forget_every > 0 and hits[e] >= forget_every:
        _remove_at(cache, h)
        return e, True
    _unlink(cache, e)
    _push_front(cache, e)
    return e, False


@jit
def insert(cache, key, value, flags):
    """Store ``key -> (value, flags)`` as the newest entry; returns True if one was evicted."""
    table, keys, values, flag_array, hits, newer, older, meta = cache
    h = _find(cache, key)
    if h >= 0:
        e = table[h]
        values[e] = value
        flag_array[e] = flags
        _unlink(cache, e)
        _push_front(cache, e)
        return False
    evicted = False
    if meta[FREE] < 0:
        _remove_at(cache, _find(cache, keys[meta[OLDEST]]))
        evicted = True
    e = meta[FREE]
    meta[FREE] = newer[e]
    keys[e] = key
    values[e] = value
    flag_array[e] = flags
    hits[e] = 1
    _push_front(cache, e)
    meta[COUNT] += 1
    mask = table.size - 1
    h = _slot(table, key)
    while table[h] >= 0:
        h = (h + 1) & mask
    table[h] = e
    return evicted
