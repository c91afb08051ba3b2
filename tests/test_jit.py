"""The jit decorator's disk cache: where it lives and whether a kernel is in it."""
from __future__ import annotations

import importlib.util

from ops import jit as jit_module


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_is_cached_turns_true_once_a_kernel_was_compiled(tmp_path, monkeypatch):
    monkeypatch.setenv("EVOZERO_CACHE_DIR", str(tmp_path / "cache"))
    source = tmp_path / "tiny_kernel.py"
    source.write_text("from ops.jit import jit\n\n@jit\ndef double(x):\n    return 2 * x\n")
    module = _load(source, "tiny_kernel")
    assert not jit_module.is_cached(module.double)
    assert module.double(21) == 42
    assert jit_module.is_cached(module.double)
    assert str(jit_module.cache_dir()).startswith(str(tmp_path / "cache"))


def test_caching_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv("EVOZERO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("EVOZERO_NUMBA_CACHE", "0")
    source = tmp_path / "tiny_uncached.py"
    source.write_text("from ops.jit import jit\n\n@jit\ndef triple(x):\n    return 3 * x\n")
    module = _load(source, "tiny_uncached")
    assert module.triple(2) == 6
    assert not jit_module.is_cached(module.triple)
    assert not (tmp_path / "cache").exists()
