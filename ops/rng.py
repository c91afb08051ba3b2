"""The random stream random ops draw from: splitmix64, one uint64 state per stream.

The same jitted functions serve the VM and the plain-Python reference functions, so a
reference run and a VM run with equal seeds draw identical numbers.
"""
from __future__ import annotations

import math

import numpy as np

from ops.jit import jit

#: Largest seed: a stream's state is one uint64.
SEED_MAX = 2**64 - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TWO_POW_MINUS_53 = 1.0 / 9007199254740992.0


@jit
def mix64(z):
    """Finalise a 64-bit value into a well-mixed one (splitmix64's output function)."""
    z = np.uint64(z)
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@jit
def stream_seed(seed, index):
    """State of sub-stream ``index`` of the stream seeded with ``seed``."""
    return mix64(np.uint64(seed) * _GOLDEN + mix64(np.uint64(index) + _GOLDEN))


@jit
def next_uniform(state, slot):
    """Advance ``state[slot]`` and return a double uniform in [0, 1)."""
    state[slot] = state[slot] + _GOLDEN
    return float(mix64(state[slot]) >> np.uint64(11)) * _TWO_POW_MINUS_53


@jit
def next_normal(state, slot):
    """Advance ``state[slot]`` twice and return a standard normal (Box-Muller, cosine half)."""
    u1 = 1.0 - next_uniform(state, slot)
    u2 = next_uniform(state, slot)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


class Stream:
    """A plain-Python handle on one stream, used by the reference functions and tests."""

    def __init__(self, seed: int, index: int = 0) -> None:
        self.state = np.array([stream_seed(np.uint64(seed), np.uint64(index))], dtype=np.uint64)

    def uniform(self) -> float:
        """Next uniform double in [0, 1)."""
        return next_uniform(self.state, 0)

    def normal(self) -> float:
        """Next standard normal double."""
        return next_normal(self.state, 0)
