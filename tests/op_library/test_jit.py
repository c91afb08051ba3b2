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


def _tree(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _hash_of(root, monkeypatch):
    monkeypatch.setattr(jit_module, "_OPS_DIR", root / "ops")
    monkeypatch.setattr(jit_module, "_ROOT", root)
    monkeypatch.setattr(jit_module, "_PACKAGE_DIRS", (root / "ops", root / "evozero"))
    return jit_module._sources_hash()


def test_cache_key_covers_the_codes_kernels_read_and_tells_same_named_files_apart(
        tmp_path, monkeypatch):
    kernel = "from ops.jit import jit\n\n@jit\ndef f(x):\n    return x\n"
    _tree(tmp_path, {"ops/codes.py": "HALT = 99\n", "evozero/a/island.py": kernel,
                     "evozero/b/island.py": kernel + "# b\n", "evozero/plain.py": "X = 1\n"})
    before = _hash_of(tmp_path, monkeypatch)
    (tmp_path / "ops" / "codes.py").write_text("HALT = 98\n")
    assert _hash_of(tmp_path, monkeypatch) != before
    (tmp_path / "ops" / "codes.py").write_text("HALT = 99\n")
    assert _hash_of(tmp_path, monkeypatch) == before
    (tmp_path / "evozero" / "plain.py").write_text("X = 2\n")  # no kernel reads it
    assert _hash_of(tmp_path, monkeypatch) == before
    _tree(tmp_path, {"evozero/a/island.py": kernel + "# b\n", "evozero/b/island.py": kernel})
    assert _hash_of(tmp_path, monkeypatch) != before
