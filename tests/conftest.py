"""Shared pytest fixtures and the hypothesis profiles."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings

# No per-example deadline: the first example of a test may compile a kernel, and on a
# shared 2-core machine wall-clock time says nothing about a test's correctness.
settings.register_profile("default", deadline=None)
# Many more examples where a test does not fix its own count, for a long hunt for bugs.
settings.register_profile("thorough", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session", autouse=True)
def warm_numba_kernels():
    """Compile (or load from the on-disk cache) the jitted kernels once per session.

    The first call of a numba function compiles it, which takes seconds; doing it here
    keeps that time out of the first hypothesis example (and its deadline / health
    checks). The argument types match the ones the tests pass, so no test triggers a
    second specialisation.
    """
    from ops.interpreter import run_instructions
    from ops.rng import Stream, stream_seed

    n_features, n_tasks = 2, 1
    code = np.array([[1, 0, 1, 2]], dtype=np.int64)
    constants = np.zeros((1, 3), dtype=np.float64)
    scalars = np.zeros((4, n_tasks), dtype=np.float64)
    vectors = np.zeros((4, n_tasks, n_features), dtype=np.float64)
    matrices = np.zeros((4, n_tasks, n_features, n_features), dtype=np.float64)
    streams = np.array([stream_seed(np.uint64(0), np.uint64(0))], dtype=np.uint64)
    run_instructions(code, constants, 0, 1, scalars, vectors, matrices, streams)
    stream = Stream(0, 0)
    stream.uniform()
    stream.normal()
    yield
