"""The one numba decorator of the project: it owns the on-disk cache policy.

numba keys a cached function by its own file only, so a cached caller silently keeps
an old callee defined in another file, or a constant it froze from another module. Every
jitted function of evozero and ops is therefore cached under a directory named by a hash
of every file of ``ops/`` (the codes and op arrays kernels read) and every other source
file that holds jitted code: editing any of them starts a fresh cache. Kernels may read
module-level constants only from these files. ``EVOZERO_NUMBA_CACHE=0`` turns caching off.
The directory name also covers numba's bounds-check setting (``NUMBA_BOUNDSCHECK``), which
changes the compiled code but not numba's own cache key.

A cache file that cannot be read (truncated by a full disk or a killed process, or
overwritten) is not an error: the function's index is deleted, a note goes to stderr and
the function is compiled afresh and cached again.
"""
from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numba
from numba.core import config as numba_config
from numba.core.caching import FunctionCache

_OPS_DIR = Path(__file__).resolve().parent
_ROOT = _OPS_DIR.parent
_PACKAGE_DIRS = (_OPS_DIR, _ROOT / "evozero")


def _sources_hash() -> str:
    digest = hashlib.sha256(numba.__version__.encode())
    digest.update(f"boundscheck={numba_config.BOUNDSCHECK}".encode())  # type: ignore[attr-defined]
    for folder in _PACKAGE_DIRS:
        for path in sorted(folder.rglob("*.py")):
            source = path.read_bytes()
            # Kernels freeze constants of ops/*.py (codes, op arrays); elsewhere only files
            # with jitted code can change compiled kernels.
            if path.parent == _OPS_DIR or b"@jit" in source:
                # Relative paths: two files may share a name in different packages.
                digest.update(path.relative_to(_ROOT).as_posix().encode())
                digest.update(source)
    return digest.hexdigest()[:16]


def cache_enabled() -> bool:
    """Whether jitted kernels are cached on disk (``EVOZERO_NUMBA_CACHE`` != "0")."""
    return os.environ.get("EVOZERO_NUMBA_CACHE", "1") != "0"


def cache_dir() -> Path:
    """Directory holding the compiled kernels for the current sources."""
    base = os.environ.get("EVOZERO_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "evozero", "numba")
    return Path(base) / _SOURCES_HASH


_SOURCES_HASH = _sources_hash()
# IEEE semantics: x / 0 gives inf or NaN instead of raising ZeroDivisionError.
_ERROR_MODEL: Final = "numpy"


class _RebuildingCache(FunctionCache):
    """numba's on-disk cache of one function, which recompiles instead of failing when a
    cached file cannot be read."""

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        try:
            return super().load_overload(sig, target_context)
        except Exception as error:  # noqa: BLE001 - any unreadable file means: recompile
            index = Path(self._cache_file._index_path)
            index.unlink(missing_ok=True)
            # Without its index the data files are never read; the next save rewrites them.
            print(f"evozero: the compiled-kernel cache file for {self._py_func.__qualname__} was unreadable "
                  f"({type(error).__name__}); removed {index} and compiling it again",
                  file=sys.stderr, flush=True)
            return None


def jit(func: Callable[..., Any]) -> Callable[..., Any]:
    """Compile ``func`` in nopython mode, cached under :func:`cache_dir` when enabled."""
    if not cache_enabled():
        return numba.njit(cache=False, nogil=True, error_model=_ERROR_MODEL)(func)
    # numba's type stubs do not declare CACHE_DIR, which numba sets from the environment.
    previous = numba_config.CACHE_DIR  # type: ignore[attr-defined]
    numba_config.CACHE_DIR = str(cache_dir())  # type: ignore[attr-defined]
    try:
        # The cache locator reads CACHE_DIR when the cache is created, not later.
        dispatcher = numba.njit(cache=True, nogil=True, error_model=_ERROR_MODEL)(func)
        # numba has no public hook for the cache class of one dispatcher.
        dispatcher._cache = _RebuildingCache(func)  # type: ignore[attr-defined]
        return dispatcher
    finally:
        numba_config.CACHE_DIR = previous  # type: ignore[attr-defined]


def is_cached(func: Any) -> bool:
    """Whether jitted ``func`` has a compiled copy on disk, so its first call is fast."""
    if not cache_enabled():
        return False
    source = func.py_func
    stem = Path(source.__code__.co_filename).stem
    return any(cache_dir().rglob(f"{stem}.{source.__qualname__}-*.nbi"))
